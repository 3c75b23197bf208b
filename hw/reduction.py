"""The reduction unit: per-vector max|x|, argmax and sum of squares over a stream of signed elements.

What it computes (the contract is :mod:`mmfree.host.golden`), for one vector ``x[0 … n−1]`` of signed integers:

- ``max_abs = max|x|``, exact (``|−2^(w−1)|`` included); the quantizer's constants follow from it in the scalar
  unit (``ScalarOp.QUANT``);
- ``argmax``, the index of the first maximum of the *signed* values, and that maximum ``max`` (greedy decoding
  over accumulators and logits; ties go to the lowest index, as :func:`numpy.argmax`);
- ``sum_sq = Σ (x >> k)²`` with the shift ``k`` the element stream supplies (arithmetic shift, floor). It equals
  ``GoldenModel.sum_of_squares`` when ``k`` is the least shift that fits ``max|x|`` in ``reduce_bits`` bits,
  ``k = max(0, bitlen(max|x|) − (reduce_bits − 1))``: the unit reports that ``k`` (``sq_shift``) and whether the
  supplied one equals it (``shift_ok``).

The sum of squares needs ``k`` of the *same* vector, which hardware knows only at its end. So the shift is an
input, and there are two ways to use the unit:

1. **two passes**: stream the vector with any shift (0, say) and read ``max_abs`` and ``sq_shift``; stream it again
   with ``shift = sq_shift`` and read ``sum_sq`` (``shift_ok`` is then 1). The first pass is usually one the
   sequencer makes anyway (the drain of the op that produced the vector), the second the read that feeds the
   next matvec.
2. **one pass**, when ``max|x|`` is known beforehand (its producer reported it): the sequencer sets
   ``shift = max(0, bitlen(max|x|) − (reduce_bits − 1))`` and checks ``shift_ok``.

``sum_sq`` is the golden model's when ``shift_ok``. With another shift ``k ≤ shift_max`` it is ``Σ w²`` of
``w = x >> k`` kept to its low ``reduce_bits`` bits (two's complement): exact for a larger shift, wrapped for a
smaller one; a shift above ``shift_max`` gives an unspecified ``sum_sq``. It never overflows for vectors of up to
``max_len`` elements. The other outputs do not depend on the shift.

How (iCE40 logic cells first, then the carry chains' delay). The signed maximum is kept complemented (``~max``),
so that ``x > max`` is the carry out of ``x + ~max`` (top bits flipped) with no inverter in front of the carry
chain. The magnitudes are compared as ``V = Cat(s, x ^ s)`` (``s`` the sign: the ones' complement magnitude, then
the sign), registered one stage down; the largest ``V`` has ``y + s = max|x|`` and is kept complemented too. After
the vector the same carry chain adds the ``+ s`` (``V + 1``) and then compares ``max|x|`` with ``2^t`` for ``t``
from the top down, a bit per cycle, to find ``sq_shift``. The shifter is logarithmic and drives one ``SB_MAC16``
(:class:`~mmfree.hw.primitives.Mac16`) that squares and accumulates modulo ``2^32``; the unit counts the
accumulator's wraps (a square is at most ``2^30``, so a wrap is a fall of its top bit) for the bits above.
Cost on the iCE40UP5K at width 48 and the defaults: 420 logic cells and one ``SB_MAC16``, 34–36 MHz over nextpnr
seeds 1–3 (``benchmarks/cost_table.py``).

Protocol. ``i`` carries one element per transfer: ``data`` (the value), ``shift`` (``k``, held constant over a
vector; the unit keeps the one of the last element) and ``last`` (set on the vector's final element; a vector has
at least one element). ``o`` carries one result per vector. The unit takes an element per cycle. ``o.valid`` rises
``3 + shift_max − sq_shift`` cycles after the last element's transfer (3 to 36 at width 48 and the defaults); without
``find_shift`` (a consumer that knows each vector's shift beforehand, as the core does from the peaks it keeps) the
unit makes no ``sq_shift`` and ``shift_ok`` and offers the result 3 cycles after it.
Meanwhile, and until ``o`` is taken, the first element of the next vector waits (``i.ready`` low) and the
result's fields hold. ``i.ready`` depends on registers only (no path from ``o.ready``); ``o.valid`` and
``o.payload`` come from registers (``max`` and ``max_abs`` through inverters, which a consumer's first LUT absorbs).
``i.payload`` feeds the signed compare and the shifter directly: a producer with a long path in front should
register it.

Vectors longer than ``max_len`` set ``overlong``; their ``count``, ``argmax`` and ``sum_sq`` are not to be used
(``max_abs``, ``max`` and ``sq_shift`` stay exact).
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from .checks import check_int
from .primitives import Mac16, check_impl

__all__ = ["ReductionUnit", "reduction_input_layout", "reduction_output_layout"]


def reduction_input_layout(width, shift_bits, square_bits=0):
    """One element: ``data`` (``signed(width)``, bits ``[width−1:0]``), then ``shift``, then ``last``; with
    ``square_bits``, then ``square`` (``signed(square_bits)``) and ``own_square`` (1)."""
    fields = {"data": signed(width), "shift": unsigned(shift_bits), "last": 1}
    if square_bits:
        fields.update({"square": signed(square_bits), "own_square": 1})
    return data.StructLayout(fields)


def reduction_output_layout(width, *, index_bits, count_bits, sum_bits, shift_bits):
    """One result, fields from the least significant bit up, in this order:

    ``max_abs`` (``unsigned(width)``), ``argmax`` (``unsigned(index_bits)``), ``max`` (``signed(width)``),
    ``count`` (``unsigned(count_bits)``, elements in the vector), ``sum_sq`` (``unsigned(sum_bits)``), ``sq_shift``
    (``unsigned(shift_bits)``) and ``shift_ok`` (1) unless ``shift_bits`` is 0, ``overlong`` (1).
    """
    shift = {"sq_shift": unsigned(shift_bits), "shift_ok": 1} if shift_bits else {}
    return data.StructLayout({
        "max_abs": unsigned(width),
        "argmax": unsigned(index_bits),
        "max": signed(width),
        "count": unsigned(count_bits),
        "sum_sq": unsigned(sum_bits),
        **shift,
        "overlong": 1,
    })


def _shifter(m, x, shift, out_bits, shift_max):
    """``(x >> shift)[:out_bits]`` (arithmetic) for ``shift ≤ shift_max``, one 2:1 multiplexer level per bit of
    ``shift``; a level multiplexes only the bits that a shift within ``shift_max`` can still bring down."""
    value = x
    for level in reversed(range(len(shift))):
        step = 1 << level
        later = min(step - 1, shift_max)                 # the most the lower levels can still shift
        when_set = max(0, min(step - 1, shift_max - step))  # … after this level shifted
        keep = min(len(value), out_bits + later)
        moved = min(keep, out_bits + when_set) if step <= shift_max else 0
        extended = Cat(value, value[-1].replicate(step))
        result = Signal(signed(keep))
        m.d.comb += result.eq(Cat(Mux(shift[level], extended[step:step + moved], value[:moved]), value[moved:keep]))
        value = result
    return value[:out_bits].as_signed() if len(value) > out_bits else value


class ReductionUnit(wiring.Component):
    """Per-vector max|x|, argmax and Σ (x >> k)² over a stream of signed elements.

    See the module documentation for the arithmetic and the per-vector protocol.

    Parameters
    ----------
    width : int
        Bits of a signed element (2 to 63; e.g. 48 for the products ``p = v ⊙ c``).
    max_len : int
        Longest vector (default 8192); sizes ``argmax``, ``count`` and ``sum_sq``.
    reduce_bits : int
        ``Formats.reduce_bits``: the shifted elements are ``reduce_bits``-bit signed values (2 to 16; default 16).
    square_input : bool
        Elements carry their own ``square`` operand: with ``own_square`` set, ``sum_sq`` sums ``square²`` in place
        of ``(data >> shift)²`` (``reduce_bits`` signed bits; ``shift``, ``sq_shift`` and ``shift_ok`` still
        describe ``data``), so that one pass gives ``max|p|`` of products and the sum of squares of their inputs.
    find_shift : bool
        Make ``sq_shift`` and ``shift_ok`` (default); without, the result comes 3 cycles after the last element.
    impl : {"model", "ice40", "ecp5"} or None
        Implementation of the multiply-accumulate (:class:`~mmfree.hw.primitives.Mac16`); ``None`` chooses by
        the platform.

    Attributes
    ----------
    i : In(stream.Signature(reduction_input_layout(width, shift_bits, square_bits)))
        Elements; ``shift_bits = bits_for(max(1, shift_max))`` (6 for width 48); ``square_bits`` is
        ``reduce_bits`` with ``square_input``, else 0.
    o : Out(stream.Signature(reduction_output_layout(...)))
        One result per vector. Widths at width 48 and the defaults: ``argmax`` 13, ``count`` 14, ``sum_sq`` 44,
        ``sq_shift`` 6.
    """

    def __init__(self, width, *, max_len=8192, reduce_bits=16, square_input=False, find_shift=True, impl=None):
        self._width = check_int("width", width, 2, 63)
        self._max_len = check_int("max_len", max_len, 1, 1 << 24)
        self._reduce_bits = check_int("reduce_bits", reduce_bits, 2, 16)
        check_impl(impl)
        if not isinstance(square_input, bool):
            raise TypeError(f"square_input must be a bool, got {square_input!r}")
        if not isinstance(find_shift, bool):
            raise TypeError(f"find_shift must be a bool, got {find_shift!r}")
        self._impl, self._square_input, self._find_shift = impl, square_input, find_shift
        self._shift_max = max(0, width - (reduce_bits - 1))
        self._shift_bits = max(1, bits_for(self._shift_max))
        self._index_bits = max(1, bits_for(max_len - 1))
        self._count_bits = bits_for(max_len)
        self._sum_bits = (max_len << (2 * reduce_bits - 2)).bit_length()
        super().__init__({
            "i": In(stream.Signature(reduction_input_layout(width, self._shift_bits,
                                                            reduce_bits if square_input else 0))),
            "o": Out(stream.Signature(reduction_output_layout(
                width, index_bits=self._index_bits, count_bits=self._count_bits, sum_bits=self._sum_bits,
                shift_bits=self._shift_bits if find_shift else 0))),
        })

    width = property(lambda self: self._width)
    max_len = property(lambda self: self._max_len)
    reduce_bits = property(lambda self: self._reduce_bits)
    #: the largest least shift a vector can need, ``max(0, width − reduce_bits + 1)``
    shift_max = property(lambda self: self._shift_max)
    shift_bits = property(lambda self: self._shift_bits)
    find_shift = property(lambda self: self._find_shift)
    sum_bits = property(lambda self: self._sum_bits)

    def elaborate(self, platform):
        m = Module()
        width, rb = self._width, self._reduce_bits
        i, o = self.i, self.o

        # -- control: a vector streams, then (busy) the result is made and offered --------------------------------
        busy = Signal()         # from the last element's transfer until o is taken; the next vector waits
        fresh = Signal(init=1)  # the next element starts a vector
        take = Signal()
        ending = Signal()       # the last element is one stage down
        rounding = Signal()     # the cycle after: max|x| = y + s
        scanning = Signal()     # from then until sq_shift is found
        found = Signal()
        s1_valid = Signal()
        m.d.comb += [
            i.ready.eq(~(fresh & busy)),
            take.eq(i.valid & i.ready),
            ending.eq(s1_valid & busy),
        ]
        m.d.sync += [
            s1_valid.eq(take),
            rounding.eq(ending),
            scanning.eq(ending | scanning & ~(found & ~rounding)),
        ]
        with m.If(scanning & ~rounding & found):
            m.d.sync += o.valid.eq(1)
        with m.Elif(o.ready):
            m.d.sync += o.valid.eq(0)
        with m.If(take & i.payload.last):
            m.d.sync += busy.eq(1)
        with m.Elif(o.valid & o.ready):
            m.d.sync += busy.eq(0)

        # -- on the input: the signed maximum and its index, the count, the shift -------------------------------
        x = i.payload.data
        count = Signal(self._count_bits, reset_less=True)
        not_max = Signal(width, reset_less=True)    # ~max
        best_index = Signal(self._index_bits, reset_less=True)
        overlong = Signal(reset_less=True)
        shift = Signal(self._shift_bits, reset_less=True)
        # x > max (signed) is the carry out of x + ~max with both top bits flipped: no inverter on the chain
        above = Signal(width + 1)
        m.d.comb += above.eq(Cat(x[:-1], ~x[-1]) + Cat(not_max[:-1], ~not_max[-1]))
        with m.If(take):
            m.d.sync += [
                fresh.eq(i.payload.last),
                shift.eq(i.payload.shift),
                count.eq(Mux(fresh, 1, Mux(count == self._max_len, count, count + 1))),
                overlong.eq(~fresh & (overlong | (count == self._max_len))),
            ]
            with m.If(fresh | above[-1]):
                m.d.sync += best_index.eq(Mux(fresh, 0, count))
        # not_max ← ~x where it is loaded, written without an enable: a multiplexer in each bit's LUT is faster here
        # than a clock enable, which nextpnr would route through a global buffer
        load_max = take & (fresh | above[-1])
        m.d.sync += not_max.eq(not_max ^ (load_max.replicate(width) & (not_max ^ ~x)))

        # -- the squares: x >> k into the multiply-accumulate, wraps of its 32 bits counted -----------------------
        m.submodules.mac = mac = Mac16(accumulate=True, impl=self._impl)
        w = Signal(signed(rb))
        shifted = _shifter(m, x, i.payload.shift, rb, self._shift_max)
        if self._square_input:
            m.d.comb += w.eq(Mux(i.payload.own_square, i.payload.square, shifted))
        else:
            m.d.comb += w.eq(shifted)
        clear = Signal()    # the accumulator restarts at 0 (in place of a zero product): between vectors
        m.d.comb += [
            mac.a.eq(Mux(take, w, 0)),
            mac.b.eq(Mux(take, w, 0)),
            mac.load.eq(clear),
            clear.eq(fresh & ~take & ~s1_valid & (~busy | o.valid & o.ready)),
        ]
        sum_sq = mac.o.as_unsigned()[:self._sum_bits]
        if self._sum_bits > 32:
            cleared = Signal(mac.latency, reset_less=True)  # `clear` as it reaches the accumulator
            m.d.sync += cleared.eq(Cat(clear, cleared))
            top = Signal(reset_less=True)           # the accumulator's top bit in the cycle before
            high = Signal(self._sum_bits - 32, reset_less=True)
            m.d.sync += top.eq(mac.o[31] & ~cleared[-1])
            with m.If(cleared[-1]):
                m.d.sync += high.eq(0)
            with m.Elif(top & ~mac.o[31]):
                m.d.sync += high.eq(high + 1)
            sum_sq = Cat(sum_sq, high)

        # -- one stage down: the magnitudes as V = Cat(s, x ^ s), their maximum kept complemented ------------------
        # One carry chain adds the stage register to ~max V, with one more position on top whose operands are
        # registers: (0, 0) passes the comparison out as its sum bit, (1, 0) as its carry (the clock enable of
        # the maximum: load when the element's V is larger), (1, 1) forces the load. After the vector, the stage
        # register holds all ones (the sum is the maximum V + 1: max|x| = y + s, kept with V's lowest bit 0) and then
        # 2^t − 1 for t = width − 1, width − 2, …: with V even, 2^t − 1 > V exactly when V < 2^t.
        s1_mag = Signal(width, reset_less=True)
        s1_any, s1_force = Signal(reset_less=True), Signal(reset_less=True)
        not_mag = Signal(width + 1, reset_less=True)    # ~V of the largest so far; then ~Cat(0, max|x|)
        total = Signal(width + 2)
        m.d.comb += total.eq(Cat(s1_mag, s1_any) + Cat(not_mag[:width], s1_force))
        sign = x[-1]
        m.d.sync += [
            s1_any.eq(take | ending),           # an element, or rounding
            s1_force.eq(take & fresh | ending), # the first element, or rounding
        ]
        with m.If(ending):
            m.d.sync += s1_mag.eq(-1)
        with m.Elif(scanning):
            m.d.sync += s1_mag.eq(s1_mag[1:])
        with m.Else():
            m.d.sync += s1_mag.eq(Cat(sign, (x ^ sign.replicate(width))[:width - 1]))
        with m.If(total[-1]):
            m.d.sync += not_mag.eq(Mux(rounding, Cat(1, total[1:width + 1]), Cat(~s1_mag, 1)))

        # -- sq_shift = max(0, bitlen(max|x|) − (reduce_bits − 1)) ------------------------------------------------
        # Rounding, the chain's comparison (of V_low + 1 with 2^width) says whether max|x| has its top bit set;
        # scanning cycle n, whether max|x| is below 2^(width − 1 − n). `reached` has the answer a cycle later,
        # when sq_shift = shift_max − n: the result, if max|x| reached the threshold
        m.d.comb += [
            o.payload.max_abs.eq(~not_mag[1:]),
            o.payload.argmax.eq(best_index),
            o.payload.max.eq(~not_max),
            o.payload.count.eq(count),
            o.payload.sum_sq.eq(sum_sq),
            o.payload.overlong.eq(overlong),
        ]
        if not self._find_shift:
            m.d.comb += found.eq(1)
            return m
        reached = Signal(reset_less=True)
        sq_shift = Signal(self._shift_bits, reset_less=True)
        m.d.sync += reached.eq(~total[width] | ~not_mag[width])
        m.d.comb += found.eq(reached | (sq_shift == 0))
        with m.If(rounding):
            m.d.sync += sq_shift.eq(self._shift_max)
        with m.Elif(scanning & ~found):
            m.d.sync += sq_shift.eq(sq_shift - 1)
        m.d.comb += [o.payload.sq_shift.eq(sq_shift), o.payload.shift_ok.eq(shift == sq_shift)]
        return m
