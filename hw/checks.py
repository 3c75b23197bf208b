"""Constructor-argument checks shared by the gateware components."""

__all__ = ["check_int"]


def check_int(name, value, minimum=None, maximum=None):
    """``value`` if it is an int (not a bool) within ``minimum … maximum`` (either bound optional).

    Raises ``TypeError`` for a non-int and ``ValueError`` naming the bounds for an int outside them.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            bound = f"at least {minimum}"
        elif minimum is None:
            bound = f"at most {maximum}"
        else:
            bound = f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value
