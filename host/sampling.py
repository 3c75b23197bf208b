"""Token sampling from logits, and the generation loop shared by every model runner."""

import numpy as np

__all__ = ["sample", "generate"]


def sample(logits, temperature=0.0, top_k=None, rng=None):
    """Pick the next token from one row of logits.

    Parameters
    ----------
    logits : ndarray of float, shape (V,)
    temperature : float
        0 selects greedily (argmax, lowest index on ties); otherwise softmax(logits / temperature).
    top_k : int, optional
        Sample only among the ``top_k`` largest logits.
    rng : numpy.random.Generator
        Required when ``temperature > 0``.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, not {temperature}")
    if temperature == 0:
        return int(np.argmax(logits))
    if rng is None:
        raise ValueError("sampling with temperature > 0 needs a random generator")
    z = np.asarray(logits, dtype=np.float64) / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be ≥ 1, not {top_k}")
        if top_k < len(z):
            kth = np.partition(z, -top_k)[-top_k]
            z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def generate(runner, prompt, max_new_tokens, temperature=0.0, top_k=None, seed=None, stop=()):
    """Generate tokens after a prompt, one at a time.

    Parameters
    ----------
    runner : object
        Has ``forward(tokens, state) -> (logits, state)`` (the float reference, the golden model, ...).
    prompt : sequence of int
        Non-empty prompt token ids; run teacher-forced to build the state.
    max_new_tokens : int
    temperature, top_k : see :func:`sample`
    seed : int, optional
        Seeds the sampler; the same seed gives the same tokens.
    stop : collection of int
        Token ids that end generation (the stop token is yielded).

    Yields
    ------
    int
        Each new token id as soon as it is chosen.
    """
    if len(prompt) == 0:
        raise ValueError("the prompt must hold at least one token")
    rng = np.random.default_rng(seed)
    logits, state = runner.forward(list(prompt))
    for _ in range(max_new_tokens):
        token = sample(logits[-1], temperature, top_k, rng)
        yield token
        if token in stop:
            return
        logits, state = runner.forward([token], state)
