"""The reduction unit: per-vector max|x|, argmax, sum of squares and the quantizer's constants.

What it computes (the contract is :mod:`mmfree.host.golden` and :mod:`mmfree.host.fixed`), for one vector
``x[0 … n−1]`` of signed integers:

- ``max_abs = max|x|``, exact (``|−2^(w−1)|`` included);
- ``argmax``, the index of the first maximum of the *signed* values, and that maximum ``max`` (greedy decoding
  over accumulators and logits; ties go to the lowest index, as :func:`numpy.argmax`);
- ``sum_sq = Σ (x >> k)²`` with the shift ``k`` the element stream supplies (arithmetic shift, floor). It equals
  ``GoldenModel.sum_of_squares`` when ``k`` is the least shift that fits ``max|x|`` in ``reduce_bits`` bits,
  ``k = max(0, bitlen(max|x|) − (reduce_bits − 1))``: the unit reports that ``k`` (``sq_shift``) and whether the
  supplied one equals it (``shift_ok``);
- the quantizer's constants of ``GoldenModel.quantize`` from ``M = max_abs``: ``q_shift = bitlen(M) − quant_bits``
  and ``q_recip = R = ⌊(127·2^r + ⌊M'/2⌋) / M'⌋``, ``r = quant_bits + recip_bits − 7``,
  ``M' = max(round_shift(M, q_shift), 1)``.

The sum of squares needs ``k`` of the *same* vector, which hardware knows only at its end. So the shift is an
input, and there are two ways to use the unit:

1. **two passes**: stream the vector with any shift (0, say) and read ``max_abs`` and ``sq_shift``; stream it again
   with ``shift = sq_shift`` and read ``sum_sq`` (``shift_ok`` is then 1). The first pass is usually one the
   sequencer makes anyway (the drain of the op that produced the vector), the second the read that feeds the
   next matvec.
2. **one pass**, when ``max|x|`` is known beforehand (its producer reported it): the sequencer sets
   ``shift = max(0, bitlen(max|x|) − (reduce_bits − 1))`` and checks ``shift_ok``.

``sum_sq`` is the golden model's when ``shift_ok``. With another shift it is ``Σ w²`` of ``w = x >> k`` kept to its
low ``reduce_bits`` bits (two's complement): exact for a larger shift, wrapped for a smaller one. It never overflows
for vectors of up to ``max_len`` elements. The other outputs do not depend on the shift.

Protocol. ``i`` carries one element per transfer: ``data`` (the value), ``shift`` (``k``, held constant over a
vector; the unit keeps the one of the last element) and ``last`` (set on the vector's final element; a vector has
at least one element). ``o`` carries one result per vector. The unit takes an element per cycle. ``o.valid`` rises
``3 + ⌊s/4⌋ + s mod 4 + n_div`` cycles after the last element's transfer, ``s = W − bitlen(M)`` the places that
normalize ``M`` (``W = max(width, quant_bits + 1)``) and ``n_div = r + 8 − quant_bits`` the steps of the
reciprocal's bit-serial division (17 at the default formats): 20 to 34 cycles at width 48, and 3 when ``M = 0``.
Meanwhile, and until ``o`` is taken, the first element of the next vector waits (``i.ready`` low) and the
result's fields hold. ``i.ready`` depends on registers only (no path from
``o.ready``); ``o.valid`` and ``o.payload`` come from registers. ``i.payload`` feeds the signed compare, ``|x|``
and the shifter directly: a producer with a long path in front should register it.

Vectors longer than ``max_len`` set ``overlong``; their ``count``, ``argmax`` and ``sum_sq`` are not to be used
(``max_abs``, ``max`` and the quantizer's constants stay exact).
"""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

__all__ = ["ReductionUnit", "reduction_input_layout", "reduction_output_layout"]


def _check_int(name, value, low, high=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def reduction_input_layout(width, shift_bits):
    """One element: ``data`` (``signed(width)``, bits ``[width−1:0]``), then ``shift``, then ``last``."""
    return data.StructLayout({"data": signed(width), "shift": unsigned(shift_bits), "last": 1})


def reduction_output_layout(width, *, index_bits, count_bits, sum_bits, shift_bits, q_shift_shape, recip_width):
    """One result, fields from the least significant bit up, in this order:

    ``max_abs`` (``unsigned(width)``), ``argmax`` (``unsigned(index_bits)``), ``max`` (``signed(width)``),
    ``count`` (``unsigned(count_bits)``, elements in the vector), ``sum_sq`` (``unsigned(sum_bits)``), ``sq_shift``
    (``unsigned(shift_bits)``), ``shift_ok`` (1), ``q_shift`` (signed), ``q_recip`` (``unsigned(recip_width)``),
    ``overlong`` (1).
    """
    return data.StructLayout({
        "max_abs": unsigned(width),
        "argmax": unsigned(index_bits),
        "max": signed(width),
        "count": unsigned(count_bits),
        "sum_sq": unsigned(sum_bits),
        "sq_shift": unsigned(shift_bits),
        "shift_ok": 1,
        "q_shift": q_shift_shape,
        "q_recip": unsigned(recip_width),
        "overlong": 1,
    })


def _greater(a, b):
    """``a > b`` for values of one shape; wide ones as two half-width compares side by side (a shorter carry
    chain: these compares close the loops of the running maxima)."""
    width = len(a)
    if width <= 24:
        return a > b
    cut = width // 2
    high = a[cut:].as_signed() > b[cut:].as_signed() if a.shape().signed else a[cut:] > b[cut:]
    return high | ((a[cut:] == b[cut:]) & (a[:cut] > b[:cut]))


class _State(enum.Enum, shape=2):
    IDLE = 0     # no result in the making
    NORM = 1     # left-normalizing max|x| to find its bit length and M'
    DIV = 2      # bit-serial division for R
    OUT = 3      # o.valid


class ReductionUnit(wiring.Component):
    """Per-vector max|x|, argmax, Σ (x >> k)² and the quantizer's (k, R), over a stream of signed elements.

    See the module documentation for the arithmetic and the per-vector protocol.

    Parameters
    ----------
    width : int
        Bits of a signed element (2 to 63; e.g. 48 for the products ``p = v ⊙ c``).
    max_len : int
        Longest vector (default 8192); sizes ``argmax``, ``count`` and the sum's accumulator.
    reduce_bits : int
        ``Formats.reduce_bits``: the shifted elements are ``reduce_bits``-bit signed values (default 16).
    quant_bits, recip_bits : int
        ``Formats.quant_bits`` and ``Formats.recip_bits`` of the quantizer (defaults 16; ``recip_bits ≥ 7``).

    Attributes
    ----------
    i : In(stream.Signature(reduction_input_layout(width, shift_bits)))
        Elements; ``shift_bits = bits_for(max(1, width − reduce_bits + 1))`` (6 for width 48).
    o : Out(stream.Signature(reduction_output_layout(...)))
        One result per vector. Widths at width 48 and the defaults: ``argmax`` 13, ``count`` 14, ``sum_sq`` 44,
        ``sq_shift`` 6, ``q_shift`` signed 7 (−16 … 32), ``q_recip`` 32.

    ``q_recip`` is below ``2^(r + 8 − quant_bits)`` (17 bits at the defaults) for every vector with ``M ≥ 1``; for
    ``M = 0`` it is ``127·2^r`` (the formula with ``M' = 1``), which multiplies only zeros.
    """

    def __init__(self, width, *, max_len=8192, reduce_bits=16, quant_bits=16, recip_bits=16):
        self._width = _check_int("width", width, 2, 63)
        self._max_len = _check_int("max_len", max_len, 1, 1 << 24)
        self._reduce_bits = _check_int("reduce_bits", reduce_bits, 2, 32)
        self._quant_bits = _check_int("quant_bits", quant_bits, 2, 32)
        self._recip_bits = _check_int("recip_bits", recip_bits, 7, 32)
        self._recip_shift = quant_bits + recip_bits - 7
        self._shift_max = max(0, width - (reduce_bits - 1))
        self._shift_bits = max(1, bits_for(self._shift_max))
        self._index_bits = max(1, bits_for(max_len - 1))
        self._count_bits = bits_for(max_len)
        self._sum_bits = (max_len << (2 * reduce_bits - 2)).bit_length()
        self._recip_width = (127 << self._recip_shift).bit_length()
        self._q_shift_shape = signed(max(bits_for(quant_bits), bits_for(width - quant_bits)) + 1)
        super().__init__({
            "i": In(stream.Signature(reduction_input_layout(width, self._shift_bits))),
            "o": Out(stream.Signature(reduction_output_layout(
                width, index_bits=self._index_bits, count_bits=self._count_bits, sum_bits=self._sum_bits,
                shift_bits=self._shift_bits, q_shift_shape=self._q_shift_shape, recip_width=self._recip_width))),
        })

    width = property(lambda self: self._width)
    max_len = property(lambda self: self._max_len)
    reduce_bits = property(lambda self: self._reduce_bits)
    quant_bits = property(lambda self: self._quant_bits)
    recip_bits = property(lambda self: self._recip_bits)
    #: ``r``: the quantizer's reciprocal is ``≈ 127·2^r / M'``
    recip_shift = property(lambda self: self._recip_shift)
    #: the largest least shift a vector can need, ``max(0, width − reduce_bits + 1)``
    shift_max = property(lambda self: self._shift_max)
    shift_bits = property(lambda self: self._shift_bits)
    sum_bits = property(lambda self: self._sum_bits)

    def elaborate(self, platform):
        m = Module()
        width, rb, qb, r = self._width, self._reduce_bits, self._quant_bits, self._recip_shift
        i, o = self.i, self.o

        busy = Signal()    # a result is being made or offered; the next vector's first element waits
        fresh = Signal(init=1)  # the next element starts a vector
        take = Signal()
        m.d.comb += [
            i.ready.eq(~(fresh & busy)),
            take.eq(i.valid & i.ready),
        ]

        # -- stage 1, on the input: argmax, count, the shift; |x| and x >> k to stage 2 -------------------------
        x = i.payload.data
        count = Signal(self._count_bits, reset_less=True)
        best = Signal(signed(width), reset_less=True)
        best_index = Signal(self._index_bits, reset_less=True)
        overlong = Signal(reset_less=True)
        shift = Signal(self._shift_bits, reset_less=True)
        with m.If(take):
            m.d.sync += [
                fresh.eq(i.payload.last),
                shift.eq(i.payload.shift),
            ]
            with m.If(fresh):
                m.d.sync += [
                    count.eq(1),
                    best.eq(x),
                    best_index.eq(0),
                    overlong.eq(0),
                ]
            with m.Else():
                with m.If(count == self._max_len):
                    m.d.sync += overlong.eq(1)
                with m.Else():
                    m.d.sync += count.eq(count + 1)
                with m.If(_greater(x, best)):
                    m.d.sync += [
                        best.eq(x),
                        best_index.eq(count),
                    ]
            with m.If(i.payload.last):
                m.d.sync += busy.eq(1)

        s2_valid = Signal()
        s2_first, s2_last = Signal(reset_less=True), Signal(reset_less=True)
        s2_abs = Signal(width, reset_less=True)
        s2_w = Signal(signed(rb), reset_less=True)
        m.d.sync += [
            s2_valid.eq(take),
            s2_first.eq(fresh),
            s2_last.eq(i.payload.last),
            s2_abs.eq(abs(x)),
            s2_w.eq((x >> i.payload.shift)[:rb].as_signed() if width > rb else x >> i.payload.shift),
        ]

        # -- stage 2: max|x|; the square to stage 3 ----------------------------------------------------------------
        max_abs = Signal(width, reset_less=True)
        max_next = Signal(width)
        m.d.comb += max_next.eq(Mux(s2_first | _greater(s2_abs, max_abs), s2_abs, max_abs))
        with m.If(s2_valid):
            m.d.sync += max_abs.eq(max_next)

        s3_valid, s3_first, s3_last = Signal(), Signal(reset_less=True), Signal(reset_less=True)
        s3_square = Signal(2 * rb - 1, reset_less=True)
        m.d.sync += [
            s3_valid.eq(s2_valid),
            s3_first.eq(s2_first),
            s3_last.eq(s2_last),
            s3_square.eq(s2_w * s2_w),
        ]

        # -- stage 3: the sum of squares ---------------------------------------------------------------------------
        sum_sq = Signal(self._sum_bits, reset_less=True)
        with m.If(s3_valid):
            m.d.sync += sum_sq.eq(Mux(s3_first, 0, sum_sq) + s3_square)

        # -- per vector, from max|x|: bit length, M', then R = ⌊D / M'⌋ bit by bit ------------------------------
        # N holds max|x| shifted left until its top bit is set (n places); then bitlen = W − n, and M' is the top
        # quant_bits bits plus the next one (round half up; M' = 2^quant_bits when they are all ones).
        norm_width = max(width, qb + 1)
        norm = Signal(norm_width, reset_less=True)
        places = Signal(range(norm_width + 1), reset_less=True)
        zero = Signal(reset_less=True)
        q_shift = Signal(self._q_shift_shape, reset_less=True)
        sq_shift = Signal(self._shift_bits, reset_less=True)
        # the division: D = 127·2^r + ⌊M'/2⌋ (the two never overlap, as ⌊M'/2⌋ < 2^quant_bits ≤ 2^r) by
        # M' ∈ [2^(qb−1), 2^qb]: the quotient has at most div_steps bits, and the remainder starts as D's top bits,
        # which are below 2^(qb−1) ≤ M'.
        dividend_width = ((127 << r) + (1 << (qb - 1))).bit_length()
        div_steps = dividend_width - qb + 1
        divisor = Signal(qb + 1, reset_less=True)
        remainder = Signal(qb, reset_less=True)
        quotient = Signal(div_steps, reset_less=True)
        steps = Signal(range(div_steps + 1), reset_less=True)

        top = norm[norm_width - qb:]
        rounded = Signal(qb + 1)
        m.d.comb += rounded.eq(top + norm[norm_width - qb - 1])
        bitlen = Signal(range(norm_width + 1))
        m.d.comb += bitlen.eq(norm_width - places)

        trial = Signal(qb + 2)
        m.d.comb += trial.eq(Cat(quotient[-1], remainder) - divisor)

        state = Signal(_State)
        with m.Switch(state):
            with m.Case(_State.IDLE):
                # stage 3 meets the last element: max|x| is final
                with m.If(s3_valid & s3_last):
                    m.d.sync += [
                        norm.eq(max_abs),
                        places.eq(0),
                        state.eq(_State.NORM),
                    ]
            with m.Case(_State.NORM):
                m.d.sync += zero.eq(norm == 0)
                with m.If(norm == 0):
                    m.d.sync += [
                        q_shift.eq(-qb),
                        sq_shift.eq(0),
                        state.eq(_State.OUT),
                    ]
                with m.Elif(norm[-4:] == 0 if norm_width > 4 else C(0)):
                    m.d.sync += [
                        norm.eq(norm << 4),
                        places.eq(places + 4),
                    ]
                with m.Elif(~norm[-1]):
                    m.d.sync += [
                        norm.eq(norm << 1),
                        places.eq(places + 1),
                    ]
                with m.Else():
                    dividend = Cat(rounded[1:], C(0, r - qb), C(127, 7))
                    m.d.sync += [
                        q_shift.eq(bitlen - qb),
                        sq_shift.eq(Mux(bitlen > rb - 1, bitlen - (rb - 1), 0)),
                        divisor.eq(rounded),
                        remainder.eq(dividend[div_steps:]),
                        quotient.eq(dividend[:div_steps]),
                        steps.eq(div_steps),
                        state.eq(_State.DIV),
                    ]
            with m.Case(_State.DIV):
                with m.If(trial[-1]):   # negative: the divisor does not go
                    m.d.sync += [
                        remainder.eq(Cat(quotient[-1], remainder)),
                        quotient.eq(Cat(0, quotient)),
                    ]
                with m.Else():
                    m.d.sync += [
                        remainder.eq(trial),
                        quotient.eq(Cat(1, quotient)),
                    ]
                m.d.sync += steps.eq(steps - 1)
                with m.If(steps == 1):
                    m.d.sync += state.eq(_State.OUT)
            with m.Case(_State.OUT):
                with m.If(o.ready):
                    m.d.sync += [
                        busy.eq(0),
                        state.eq(_State.IDLE),
                    ]

        m.d.comb += [
            o.valid.eq(state == _State.OUT),
            o.payload.max_abs.eq(max_abs),
            o.payload.argmax.eq(best_index),
            o.payload.max.eq(best),
            o.payload.count.eq(count),
            o.payload.sum_sq.eq(sum_sq),
            o.payload.sq_shift.eq(sq_shift),
            o.payload.shift_ok.eq(shift == sq_shift),
            o.payload.q_shift.eq(q_shift),
            o.payload.q_recip.eq(Mux(zero, 127 << r, quotient)),
            o.payload.overlong.eq(overlong),
        ]
        return m
