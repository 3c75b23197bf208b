"""Wide products as 16×16 partial products on time-shared multipliers, inside a :class:`~mmfree.hw.sigmoid.Pipeline`.

A product ``a · b`` of two operands of any widths (each signed or unsigned) is the sum of the products of their
*limbs*: each operand is cut into 16-bit pieces from bit 0 up, all unsigned except the top piece of a signed
operand, which is signed (``a = Σ a_i · 2^(16 i)``). Each pair of limbs is a *partial product*, made in one of two
places:

- a :class:`~mmfree.hw.primitives.Mac16` (iCE40 ``SB_MAC16``, ECP5 ``MULT18X18D``, the behavioural model in
  simulation), whose ports are signed or unsigned per instance. An unsigned limb of up to 15 bits fits a signed
  port, so one multiplier configured signed × unsigned serves every partial product except signed × signed, and an
  unsigned 16-bit operand never costs a second tile. Signed × signed ones get signed × signed multipliers and
  unsigned 16 × unsigned 16 ones unsigned × unsigned multipliers.
- logic, when one of the two limbs has at most ``lut_bits`` bits: a shift-and-add of that many rows (a row per bit,
  the sign bit's subtracted) is cheaper than the multiplexers in front of a shared multiplier.

Time sharing. The pipeline carries at most one element every ``c = pipe.period`` stages (:class:`Pipeline` with a
period), so a multiplier serves ``c`` partial products of each element, one per phase ``t mod c`` of the stage
``t`` that presents it. :meth:`MultiplierPool.product`, called at stage ``s``, places each of its partial products
at a stage ``t`` in ``[s, s + c)``, in the phase with the fewest partial products placed so far (then the earliest
stage), and returns the product tracked at stage ``max(t) + 2`` (the multiplier's latency), where the partial
products are added in logic (those of earlier stages held in the pipeline's registers). :meth:`MultiplierPool.finish`
then assigns the partial products to as few multipliers as the phases and signedness allow (an exhaustive search,
the problems being small) and builds each multiplier's operand multiplexers, selected by the pipeline's phase; the
multipliers' clock enable is the pipeline's.

The count: the largest number of partial products in one phase (at least ``⌈partials / c⌉``), and more only where
signedness keeps partial products of one phase apart.
"""

import math

from amaranth import *

from .primitives import Mac16, check_impl

__all__ = ["LIMB_BITS", "MAC_LATENCY", "limbs", "MultiplierPool"]

#: bits of a multiplier port
LIMB_BITS = 16
#: enabled clock edges from a multiplier's operands to its product (``Mac16`` without accumulator)
MAC_LATENCY = 2

# kinds of multiplier, (a_signed, b_signed), most widely usable first; unsigned × signed is signed × unsigned with
# the ports swapped
_KINDS = ((True, False), (True, True), (False, False))


def limbs(shape):
    """The limbs of an operand of ``shape``: ``(offset, width, signed)`` from bit 0 up, ``LIMB_BITS`` wide except
    the top one, which alone is signed for a signed operand."""
    shape = Shape.cast(shape)
    count = max(1, math.ceil(shape.width / LIMB_BITS))
    return [(LIMB_BITS * k, min(LIMB_BITS, shape.width - LIMB_BITS * k), shape.signed and k == count - 1)
            for k in range(count)]


def _fits(limb, signed_port):
    """Whether a limb ``(offset, width, signed)`` can drive a port of that signedness."""
    _, width, signed = limb
    return signed == signed_port or (signed_port and width < LIMB_BITS)


def _shift_add(x, y):
    """``x · y`` as one row of ``x`` per bit of ``y`` (the sign bit's row subtracted when ``y`` is signed)."""
    total = 0
    for j in range(len(y)):
        row = Mux(y[j], x, 0) << j
        total = total - row if y.shape().signed and j == len(y) - 1 else total + row
    return total


class _Partial:
    """A partial product on a multiplier: limbs ``x``, ``y`` of operands ``a``, ``b`` (tracked), its stage and the
    signal its product drives (tracked ``MAC_LATENCY`` stages later)."""

    def __init__(self, a, x, b, y, stage, out):
        self.operands = ((a, x), (b, y))
        self.stage = stage
        self.out = out

    def orientations(self, kind):
        """The operand orders, ``(port a, port b)``, that a multiplier of ``kind`` accepts."""
        first, second = self.operands
        return [(p, q) for p, q in ((first, second), (second, first))
                if _fits(p[1], kind[0]) and _fits(q[1], kind[1])]


def _load(partials, period):
    """Partial products per phase, the fullest phase last."""
    return sorted(sum(p.stage % period == phase for p in partials) for phase in range(period))


def _assign(partials, period):
    """The fewest multipliers for ``partials``: a list of ``[kind, {phase: partial}]``, by exhaustive search."""
    kinds = [[kind for kind in _KINDS if p.orientations(kind)] for p in partials]
    for p, fit in zip(partials, kinds):
        assert fit, f"{p.out.name}: no multiplier fits"
    order = sorted(range(len(partials)), key=lambda i: len(kinds[i]))

    def search(index, used, limit):
        if index == len(order):
            return True
        i = order[index]
        phase = partials[i].stage % period
        for unit in used:
            if unit[0] in kinds[i] and phase not in unit[1]:
                unit[1][phase] = partials[i]
                if search(index + 1, used, limit):
                    return True
                del unit[1][phase]
        if len(used) < limit:
            for kind in kinds[i]:  # new multipliers of one kind are interchangeable: one try per kind
                used.append([kind, {phase: partials[i]}])
                if search(index + 1, used, limit):
                    return True
                used.pop()
        return False

    for limit in range(max(_load(partials, period), default=0), len(partials) + 1):
        used = []
        if search(0, used, limit):
            return used
    return []


class MultiplierPool:
    """Products split into partial products on shared :class:`~mmfree.hw.primitives.Mac16` multipliers.

    See the module documentation. Make every product with :meth:`product`, then call :meth:`finish` once, before
    the pipeline's :meth:`~mmfree.hw.sigmoid.Pipeline.finish`.

    Parameters
    ----------
    m : Module
    pipe : Pipeline
        The pipeline the products live in; its period is the number of partial products a multiplier serves.
    impl : {"model", "ice40", "ecp5"} or None
        Implementation of the multipliers (:class:`~mmfree.hw.primitives.Mac16`).
    lut_bits : int
        Partial products with a limb of at most this many bits are made in logic.
    name : str
        Prefix of the multipliers' submodule names.

    Attributes
    ----------
    multipliers : list of Mac16
        After :meth:`finish`.
    """

    def __init__(self, m, pipe, *, impl=None, lut_bits=4, name="mul"):
        check_impl(impl)
        if not isinstance(lut_bits, int) or isinstance(lut_bits, bool) or not 0 <= lut_bits < LIMB_BITS:
            raise ValueError(f"lut_bits must be an int in [0, {LIMB_BITS}), got {lut_bits!r}")
        self.m, self.pipe = m, pipe
        self._impl, self._lut_bits, self._name = impl, lut_bits, name
        self._partials = []
        self.multipliers = None

    @property
    def partials(self):
        """Partial products on multipliers so far."""
        return len(self._partials)

    def product(self, a, b, *, name):
        """``a · b``; returns the exact product (signed or unsigned, ``len(a) + len(b)`` bits), tracked at the stage
        at which it is ready (``pipe.reach`` it).

        Each operand is a tracked signal (read through its registers at the stages its partial products take, made
        at the current stage or before) or a value valid at the current stage.
        """
        pipe, period = self.pipe, self.pipe.period
        start = pipe.stage
        a, b = (operand if pipe.tracks(operand) else pipe.comb(operand, name=f"{name}_{side}")
                for operand, side in ((a, "a"), (b, "b")))
        signed_product = a.shape().signed or b.shape().signed
        shape = (signed if signed_product else unsigned)(len(a) + len(b))
        terms, placed = [], []
        for x in limbs(a.shape()):
            for y in limbs(b.shape()):
                offset = x[0] + y[0]
                if min(x[1], y[1]) <= self._lut_bits:
                    wide, narrow = (self._limb(a, x, start), self._limb(b, y, start))
                    if y[1] > x[1]:
                        wide, narrow = narrow, wide
                    row = pipe.comb(_shift_add(wide, narrow), name=f"{name}_l{len(terms)}")
                    terms.append((row, offset))
                    continue
                out = Signal((signed if x[2] or y[2] else unsigned)(x[1] + y[1]), name=f"{name}_p{len(terms)}")
                trials = [self._partials + [_Partial(a, x, b, y, t, out)] for t in range(start, start + period)]
                chosen = min(trials, key=lambda trial: (len(_assign(trial, period)), _load(trial, period)[-1],
                                                        trial[-1].stage))
                self._partials = chosen
                stage = chosen[-1].stage
                pipe.track(out, stage=stage + MAC_LATENCY)
                placed.append(stage + MAC_LATENCY)
                terms.append((out, offset))
        ready = max(placed, default=start)
        total = sum(pipe.at(term, ready) << offset for term, offset in terms)
        return pipe.comb(total, name=name, shape=shape, stage=ready)

    def _limb(self, operand, limb, stage):
        offset, width, signed = limb
        value = self.pipe.at(operand, stage)[offset:offset + width]
        return value.as_signed() if signed else value

    def finish(self):
        """Instantiate the multipliers and their operand multiplexers."""
        pipe = self.pipe
        self.multipliers = []
        for k, (kind, slots) in enumerate(_assign(self._partials, pipe.period)):
            mac = Mac16(a_signed=kind[0], b_signed=kind[1], impl=self._impl)
            assert mac.latency == MAC_LATENCY
            self.m.submodules[f"{self._name}{k}"] = mac
            self.multipliers.append(mac)
            ports = ([], [])  # per port: (phase, source key, value)
            for phase, partial in sorted(slots.items()):
                options = partial.orientations(kind)
                keys = [[(id(op), limb, partial.stage) for op, limb in option] for option in options]
                # prefer the order that repeats a source already on a port: one multiplexer input fewer
                best = max(range(len(options)), key=lambda j: sum(
                    any(key == other[1] for other in port) for key, port in zip(keys[j], ports)))
                for port, key, (op, limb) in zip(ports, keys[best], options[best]):
                    port.append((phase, key, self._limb(op, limb, partial.stage)))
                self.m.d.comb += partial.out.eq(mac.o)
            for target, port in zip((mac.a, mac.b), ports):
                sources = {}  # source key → (phases, value); phases with no partial take any
                for phase, key, value in port:
                    sources.setdefault(key, ([], value))[0].append(phase)
                (_, value), *others = sources.values()
                for phases, source in others:
                    value = Mux(Cat(pipe.phase == phase for phase in phases).any(), source, value)
                self.m.d.comb += target.eq(value)
            self.m.d.comb += mac.en.eq(pipe.en)
