"""The scalar unit: per-vector arithmetic in the golden model's scalar float, bit for bit.

The format (:class:`mmfree.host.fixed.Scalar`) is ``mant · 2^exp``, ``mant`` an unsigned ``bits``-bit integer
normalized to exactly ``bits`` bits (its top bit set), or zero with ``exp = 0``; every operation rounds once, to
nearest with ties up. The unit runs one operation per command over a small shared datapath: one ``SB_MAC16``
(:class:`~mmfree.hw.primitives.Mac16`) for the mantissas' product, one shift-and-add register ``X`` of
``W = 2·bits + 3`` bits (aligner, normalizer, integer scanner, square root, and the dividend and quotient of
``QUANT``), a bit-serial divider, and an exponent adder. The sequencer uses it a few times
per vector: ``QUANT`` for the quantizer's constants from ``max|p|``, then e.g.
``scale = constant · Scalar(M) · unit · rsqrt_scalar(B + ε·(A + ε))`` (``GoldenModel.bitlinear``).

The datapath comes in two modes with the same results. By default it is the iCE40's (slow carry chains, few LUTs):
``X`` shifts one place a cycle, and a division step takes two cycles. With ``fast`` it is the ECP5's (fast carry
chains, LUTs to spare): ``X`` shifts up to four places a cycle, a division step takes one cycle, and ``FROM_INT``
and ``QUANT`` take their integer operand whole rather than scan it in a bit per cycle.

Operations (``cmd.op``), each equal to a golden function of :mod:`mmfree.host.fixed`, and their cycles from the
command's offer (unit idle, ``o`` empty) to ``o.valid``; ``n`` is the most places ``X`` shifts in a cycle and ``c``
the cycles of a division step: ``n = 1`` and ``c = 2`` by default, ``n = 4`` and ``c = 1`` with ``fast``.

=============  ==========================================================================  ======================
op             result                                                                      cycles
=============  ==========================================================================  ======================
``FROM_INT``   ``Scalar.normalize(integer, power, bits)`` (``Scalar.from_int`` when          ``⌊i/n⌋ + 4``; 2 for 0
               ``power = 0``)
``MUL``        ``a * b``                                                                   ``⌊z/n⌋ + 5``; 2 for a
                                                                                           zero operand
``ADD``        ``a + b``: the exact sum rounded once; when an operand is zero, or the        ``⌊Δ/n⌋ + ⌊z/n⌋ + 5``;
               exponents differ by ``Δ > bits + 1``, the other operand (the one with the   2 when an operand is
               larger exponent) unchanged, as the golden model does                        returned
``SCALE``      ``a.scaled(power)``                                                         2
``RSQRT``      ``rsqrt_scalar(a)``                                                         ``c·(4·bits + 2) +
                                                                                           ⌊z/n⌋ + 5``
``RSQRT_INT``  ``rsqrt_scalar(Scalar(integer, power))``, that is                           ``c·(4·bits + 2) +
               ``rsqrt(integer · 2^(power mod 2), bits).scaled(−⌊power/2⌋)``; with         ⌊z/n⌋ + 5 + j``
               ``power = 0`` it is ``fixed.rsqrt(integer, bits)``
``QUANT``      the quantizer's constants of ``Arithmetic.quantize`` for ``M = integer``,   ``⌊i/n⌋ + 4 +
               ``quant_bits = bits``: ``value.exp = k = bitlen(M) − bits``, ``recip = R =  c·(recip_bits + 1)``;
               ⌊(127·2^r + ⌊M'/2⌋) / M'⌋`` (``r = bits + recip_bits − 7``, ``M' =           2 for 0
               round_shift(M, k)``, which is ``2^bits`` when the rounding carries),
               ``value.mant = 0``; for ``M = 0``, ``k = −bits`` and ``R = 0`` (the golden
               ``127·2^r`` does not fit ``recip``; any ``R`` quantizes zeros to zero)
=============  ==========================================================================  ======================

``z`` is the number of places the normalizer shifts the exact result before rounding it (``W`` less its bit length;
for ``ADD`` the exact result is twice the aligned sum, for the square roots it is ``r`` below), ``i`` the number of
places it shifts the integer operand (``int_width + W − L`` by default, ``int_width − L`` with ``fast``; ``L`` is
the bit length of ``integer``), ``Δ`` the difference of the exponents and ``j = int_width − t`` the integer bits
scanned, ``t = s − power mod 2`` when ``s > 0`` and 0 otherwise. Undefined op codes and zero ``rsqrt`` operands
take 2 cycles. At the defaults (16, 16, 48, 16), by default and with ``fast``: ``MUL`` 8 or 9 and 5 or 6, ``ADD``
22 or 23 and 8 or 9 for normalized operands, ``FROM_INT`` 39 to 43 and 4 or 5 for 44- to 48-bit integers (86 and
15 for 1), ``RSQRT`` of a normalized scalar 147 or 148 and 73, ``RSQRT_INT`` 186 to 203 and 106 to 123, ``QUANT``
73 to 81 and 21 to 23 for 40- to 48-bit ``M``.

Normalizing, ``X`` shifts by one place a cycle until its top bit is set; with ``fast``, by the leading zeros of its
top four bits (four when they are all zero), and it is normalized after a cycle that shifts fewer. Aligning
``ADD``'s operands, it shifts ``Δ + 1`` places, four a cycle with ``fast`` and then the rest. With ``fast``,
``FROM_INT`` and ``QUANT`` load the integer at the top of ``X``, its bits below ``X`` (``int_width − W`` of them,
when positive) into a register ``Y`` that shifts into ``X`` as it normalizes.

``QUANT`` normalizes ``M`` as ``FROM_INT`` does, then divides by restoring division, a quotient bit per step of
``c`` cycles: the remainder starts as the dividend's top bits, ``127·2^(bits − 8)`` (below ``M'``), and ``X`` holds
the rest, ``⌊M'/2⌋``, shifting it out at the top while ``R`` enters at the bottom.

``rsqrt`` follows :func:`mmfree.host.fixed.rsqrt` exactly: ``v`` is the value shifted right by the least even ``s``
that fits it in ``2·bits`` bits (``X`` scans ``integer`` in from its top bit and stops there; a value that fits is
taken whole, and an odd exponent then halves the dividend, ``⌊2^(4·bits)/(2v)⌋ = ⌊2^(4·bits − 1)/v⌋``);
``⌊2^(4·bits)/v⌋`` by restoring division, a quotient bit per step, and its square root ``r`` digit by digit, two
quotient bits at a time, interleaved with the division. By default a step takes two cycles (the trial
subtractions are registered before the choice), ``2·(4·bits + 2)`` cycles in all: slower, but no carry chain drives
a wide multiplexer in one cycle, which is what holds the iCE40 below 30 MHz otherwise. With ``fast`` the choice
follows the subtractions in the same cycle (on the ECP5 that path is shorter than ``X``'s shift and add).
``rsqrt`` of zero is zero.

Operands need not be normalized: every operation does what its golden function does with the same ``(mant, exp)``
pairs (a zero mantissa with a nonzero exponent included).

``o.payload.error`` is set when the result's exponent does not fit ``exp_bits`` (the golden model's exponents are
unbounded; the field then holds the exponent's low bits), and for the undefined op code 7 (result zero).
``o.payload.recip`` is set by ``QUANT`` only; the other ops leave it as it was.

Protocol: one result per command, in order. The unit holds a command (``i.ready`` low) while it computes and takes
it in the cycle it writes the result to ``o``, so ``i.payload`` must stay as offered (as ``lib.stream`` requires);
it starts a command only while ``o`` is empty. ``o.valid`` and ``o.payload`` come from registers; ``i.ready``
depends on ``i.payload.op`` and registers only (not on ``o.ready``). The command's fields are registered or
decoded in the first cycle; the integer operand is read a bit per cycle, but by ``FROM_INT`` and ``QUANT`` with
``fast``, which read it whole in the second.
"""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, exact_log2

from .checks import check_int
from .primitives import IMPLS, Mac16

__all__ = ["ScalarOp", "scalar_layout", "scalar_command_layout", "scalar_result_layout", "ScalarUnit"]

#: ``n`` with ``fast``: the most places ``X`` shifts in a cycle when it aligns or normalizes (a power of two)
_FAST_REACH = 4


class ScalarOp(enum.Enum, shape=3):
    """The scalar unit's operations (``cmd.op``)."""
    FROM_INT = 0
    MUL = 1
    ADD = 2
    SCALE = 3
    RSQRT = 4
    RSQRT_INT = 5
    QUANT = 6


def scalar_layout(bits, exp_bits):
    """A :class:`~mmfree.host.fixed.Scalar`: ``mant`` (``unsigned(bits)``), then ``exp`` (``signed(exp_bits)``)."""
    return data.StructLayout({"mant": unsigned(bits), "exp": signed(exp_bits)})


def scalar_command_layout(bits, exp_bits, int_width):
    """A command: ``op``, ``a``, ``b`` (scalars), ``integer`` (``unsigned(int_width)``), ``power``
    (``signed(exp_bits)``), from the least significant bit up. Each op reads only the fields it names."""
    return data.StructLayout({
        "op": ScalarOp,
        "a": scalar_layout(bits, exp_bits),
        "b": scalar_layout(bits, exp_bits),
        "integer": unsigned(int_width),
        "power": signed(exp_bits),
    })


def scalar_result_layout(bits, exp_bits, recip_bits):
    """A result: ``value`` (a scalar, at bit 0, so the low bits read as one), then ``error`` (1), then ``recip``
    (``unsigned(recip_bits + 1)``, the quantizer's reciprocal: set by ``QUANT`` only)."""
    return data.StructLayout({"value": scalar_layout(bits, exp_bits), "error": 1, "recip": unsigned(recip_bits + 1)})


class _State(enum.Enum, shape=3):
    IDLE = 0
    DECODE = 1  # the command's exponent sum and ADD's comparison are registered; start or finish the op
    MUL = 2     # the product into X
    ALIGN = 3   # shift the operand with the larger exponent left by the difference, then add the other
    NORM = 4    # left-normalize X (FROM_INT and QUANT: scanning the integer in from its top bit, or fast, Y)
    ROUND = 5   # round X to bits bits, write the result
    PRE = 6     # RSQRT: find v, the value shifted right by the least even amount that fits 2·bits bits
    DIV = 7     # 2^(4·bits) / v bit by bit, and the square root of the quotient two bits at a time; QUANT: R


class ScalarUnit(wiring.Component):
    """Scalar float arithmetic (``Scalar``, ``rsqrt``) for the per-vector scales, driven by commands.

    See the module documentation for the operations, their timing and the protocol.

    Parameters
    ----------
    bits : int
        ``Formats.scalar_bits``: mantissa bits (8 to 16, as one ``SB_MAC16`` multiplies the mantissas; default 16).
    exp_bits : int
        Bits of the signed exponents (default 16).
    int_width : int
        Bits of the unsigned ``integer`` operand of ``FROM_INT``, ``RSQRT_INT`` and ``QUANT`` (default 48: a sum
        of squares of 8192 elements, a ``max|p|`` of 48-bit products).
    recip_bits : int
        ``Formats.recip_bits`` of ``QUANT`` (default 16; ``bits − 1`` to ``2·bits + 2``); its ``quant_bits`` is
        ``bits``.
    fast : bool
        The ECP5's datapath, for fewer cycles (default ``False``: the iCE40's): ``X`` shifts up to four places a
        cycle, a division step takes one cycle, and ``FROM_INT`` and ``QUANT`` take the integer operand whole (see
        the module documentation). The results are the same.
    impl : {"model", "ice40", "ecp5"} or None
        Implementation of the multiplier (:class:`~mmfree.hw.primitives.Mac16`); ``None`` chooses by the platform.

    Attributes
    ----------
    i : In(stream.Signature(scalar_command_layout(bits, exp_bits, int_width)))
    o : Out(stream.Signature(scalar_result_layout(bits, exp_bits, recip_bits)))
    """

    def __init__(self, *, bits=16, exp_bits=16, int_width=48, recip_bits=16, fast=False, impl=None):
        self._bits = check_int("bits", bits, 8, 16)
        if impl is not None and impl not in IMPLS:
            raise ValueError(f"impl must be None or one of {list(IMPLS)}, got {impl!r}")
        self._impl = impl
        self._exp_bits = check_int("exp_bits", exp_bits, 8, 32)
        self._int_width = check_int("int_width", int_width, 1, 128)
        self._recip_bits = check_int("recip_bits", recip_bits, bits - 1, 2 * bits + 2)
        if not isinstance(fast, bool):
            raise TypeError(f"fast must be a bool, got {fast!r}")
        self._fast = fast
        super().__init__({
            "i": In(stream.Signature(scalar_command_layout(bits, exp_bits, int_width))),
            "o": Out(stream.Signature(scalar_result_layout(bits, exp_bits, recip_bits))),
        })

    bits = property(lambda self: self._bits)
    exp_bits = property(lambda self: self._exp_bits)
    int_width = property(lambda self: self._int_width)
    recip_bits = property(lambda self: self._recip_bits)
    fast = property(lambda self: self._fast)
    #: ``r``: ``QUANT``'s reciprocal is ``≈ 127·2^r / M'``
    recip_shift = property(lambda self: self._bits + self._recip_bits - 7)

    def elaborate(self, platform):
        m = Module()
        bits, eb, iw, fast = self._bits, self._exp_bits, self._int_width, self._fast
        width = 2 * bits + 3                        # X, the working register
        ew = max(eb, bits_for(width + iw)) + 3      # internal exponents: never wrap
        steps = 4 * bits + 2                        # DIV steps: 4·bits + 1 quotient bits, the last root digit
        quant_steps = self._recip_bits + 1          # DIV steps of QUANT: the bits of R
        step_cycles = 1 if fast else 2              # cycles of a DIV step
        reach = _FAST_REACH if fast else 1          # n: the most places X shifts in a cycle (ALIGN, NORM)
        log_reach = exact_log2(reach)
        # X's top bit holds the integer's bit int_span − 1 before FROM_INT and QUANT normalize: scanned in from zero
        # by default; fast, taken whole at X's top (its bits below X in Y)
        int_span = iw if fast else iw + width
        cmd, o = self.i.payload, self.o
        a, b, op = cmd.a, cmd.b, cmd.op

        # datapath registers: no reset (the state machine sets each before use)
        x = Signal(width, reset_less=True)
        e = Signal(signed(ew), reset_less=True)     # the result's exponent once X is normalized (before the carry)
        count = Signal(range(max(2 * steps, iw) + 1), reset_less=True)
        scan = Signal(reset_less=True)              # shifting the integer operand into X, bit `count` next
        remainder = Signal(2 * bits, reset_less=True)   # division: < v
        divisor = Signal(2 * bits, reset_less=True)     # v
        half = Signal(reset_less=True)              # divide 2^(4·bits − 1) instead (odd exponent, v unshifted)
        dividend_bit = Signal(reset_less=True)      # the dividend's bit of the next division step
        root_rem = Signal(2 * bits + 2, reset_less=True)    # square root: ≤ 2·root
        pair = Signal(2, reset_less=True)           # the last two quotient bits
        a_high = Signal(reset_less=True)            # ADD: a has the larger (or equal) exponent
        far = Signal(reset_less=True)               # ADD: the smaller operand is below half an ulp of the other
        a_zero, b_zero, int_zero = Signal(reset_less=True), Signal(reset_less=True), Signal(reset_less=True)
        quant = Signal(reset_less=True)             # the command is QUANT
        quant_last = Signal()                       # QUANT's last DIV cycle
        state = Signal(_State)

        # -- first cycle: the exponents of the command ------------------------------------------------------------
        diff = Signal(signed(eb + 1))
        m.d.comb += diff.eq(a.exp - b.exp)
        # ADD: |diff| > bits + 1, from diff's low bits once its high bits are a sign extension (short compares)
        low = bits_for(bits + 1) + 1
        low_diff = diff[:low].as_signed()
        far_apart = ~((diff[low - 1:] == 0) | diff[low - 1:].all()) | (low_diff < -(bits + 1)) | (low_diff > bits + 1)
        is_rsqrt = op == ScalarOp.RSQRT
        root_pow = Signal(signed(eb))               # RSQRT: a = (mant, exp); RSQRT_INT: (integer, power)
        m.d.comb += root_pow.eq(Mux(is_rsqrt, a.exp, cmd.power))
        odd = root_pow[0]
        # e = p + q: e for the value each op first puts in X (X's top bit has weight 2^(e + bits − 1))
        p, q, e_sum = Signal(signed(ew)), Signal(signed(ew)), Signal(signed(ew))
        m.d.comb += e_sum.eq(p + q)
        with m.Switch(op):
            with m.Case(ScalarOp.FROM_INT):     # the integer, scanned in
                m.d.comb += [p.eq(cmd.power), q.eq(int_span - bits)]
            with m.Case(ScalarOp.QUANT):        # M, scanned in: e = bitlen(M) − bits
                m.d.comb += q.eq(int_span - bits)
            with m.Case(ScalarOp.MUL):          # the product (W − bits added in DECODE)
                m.d.comb += [p.eq(a.exp), q.eq(b.exp)]
            with m.Case(ScalarOp.ADD):          # twice the aligned sum: 2·((m_high << Δ) + m_low) · 2^(low − 1)
                m.d.comb += [p.eq(Mux(a_high, b.exp, a.exp)), q.eq(width - bits - 1)]   # in DECODE
            with m.Case(ScalarOp.SCALE):
                m.d.comb += [p.eq(a.exp), q.eq(cmd.power)]
            with m.Case(ScalarOp.RSQRT):         # r · 2^(−⌊pow/2⌋ − 2·bits)
                m.d.comb += [p.eq(~(root_pow >> 1)), q.eq(width - 3 * bits + 1)]
            with m.Case(ScalarOp.RSQRT_INT):     # r · 2^(−⌊pow/2⌋ − 2·bits − s/2), s/2 set in PRE
                m.d.comb += [
                    p.eq(~(root_pow >> 1)),
                    q.eq(Mux(odd, width - 3 * bits + 1 - (iw + 1) // 2, width - 3 * bits + 1 - iw // 2)),
                ]

        # -- e ← e + delta ----------------------------------------------------------------------------------------
        delta = Signal(signed(bits_for(width) + 2), reset_less=True)   # set a cycle ahead: a short path
        e_step = Signal(signed(ew))
        m.d.comb += e_step.eq(e + delta)

        # -- rounding X (normalized) to bits bits -----------------------------------------------------------------
        rounded = Signal(bits + 1)
        m.d.comb += rounded.eq(x[width - bits:] + x[width - bits - 1])
        carry = rounded[bits]                       # all ones rounded up: 2^bits → 2^(bits−1), exponent + 1

        # -- X ← 2^shift·X + addend (| inject in its lowest bit); shift = 1 but in fast ALIGN and NORM ------------
        addend = Signal(bits + 2, reset_less=True)  # set a cycle ahead (0 but in MUL and ALIGN's last cycle)
        inject = Signal()
        x_shift_add = Signal(width)
        if fast:
            # Y: the integer operand's bits below X while FROM_INT and QUANT normalize it (0 otherwise); it shifts
            # with X, into X
            y = Signal(max(iw - width, 0), reset_less=True)
            shift = Signal(range(reach + 1), init=1)
            align_shift = Signal(range(reach + 1), reset_less=True)    # ALIGN's shift, set a cycle ahead
            y_shifted, x_shifted = Signal(len(y)), Signal(width)
            m.d.comb += Cat(y_shifted, x_shifted).eq(Cat(y, x) << shift)
            whole = cmd.integer << max(width - iw, 0)   # the integer operand at the top of X and Y
            x_integer = Signal()
            # the leading zeros of X's top n bits (n when they are all zero): NORM's shift
            lead = Signal(range(reach + 1), init=reach)
            for place in range(reach):  # from the lowest of the n bits up: the highest set bit wins
                with m.If(x[width - reach + place]):
                    m.d.comb += lead.eq(reach - 1 - place)
        else:
            x_shifted = x << 1
        m.d.comb += x_shift_add.eq(x_shifted + addend)
        with m.If(scan):    # the integer operand, from its top bit
            m.d.comb += inject.eq(cmd.integer.bit_select(count, 1))
        # the mantissas' product: one SB_MAC16, its operands and product registered inside (ready in MUL)
        m.submodules.mac = mac = Mac16(a_signed=False, b_signed=False, impl=self._impl)
        m.d.comb += [mac.a.eq(a.mant), mac.b.eq(b.mant)]
        x_clear, x_load, x_step, x_quant, x_product = Signal(), Signal(), Signal(), Signal(), Signal()
        with m.If(x_clear):
            m.d.sync += x.eq(0)
        with m.Elif(x_product):
            m.d.sync += x.eq(mac.o)
        with m.Elif(x_load):    # ADD: the operand with the larger exponent; RSQRT: a
            m.d.sync += x.eq(Mux(a_high, a.mant, b.mant))
        with m.Elif(x_quant):   # QUANT: ⌊M'/2⌋ at the top
            m.d.sync += x.eq(rounded[1:] << (width - quant_steps))
        with m.Elif(x_step):
            m.d.sync += x.eq(Cat(x_shift_add[0] | inject, x_shift_add[1:]))
        if fast:
            with m.Elif(x_integer):
                m.d.sync += x.eq(whole[len(y):])
            with m.If(x_integer):
                m.d.sync += y.eq(whole[:len(y)])
            with m.Elif(x_step):
                m.d.sync += y.eq(y_shifted)
            with m.Else():
                m.d.sync += y.eq(0)

        def align_next(last):
            # ALIGN's next cycle: its last (the remaining places, + 2·m_low) if `last`, else n places
            m.d.sync += addend.eq(Mux(last, Mux(a_high, b.mant, a.mant) << 1, 0))
            if fast:
                m.d.sync += align_shift.eq(Mux(last, count[:log_reach] + 1, reach))

        def shift_in():
            m.d.comb += x_step.eq(1)
            m.d.sync += [count.eq(count - 1), scan.eq(scan & (count != 0))]

        # -- division and square root steps -----------------------------------------------------------------------
        # by default a step takes two cycles: the trial subtractions into registers (in the carry chain's own
        # cells), then the choice; so no carry chain drives a wide multiplexer in the same cycle. Fast: one cycle
        div_in = Cat(dividend_bit, remainder)       # 2·rem + the dividend's bit
        div_trial = Signal(2 * bits + 2, reset_less=True)
        quotient_bit = ~div_trial[-1]
        root_in = Cat(pair, root_rem)               # 4·R + the quotient's next two bits
        root_trial = Signal(2 * bits + 5, reset_less=True)
        root_bit = ~root_trial[-1]
        trials = [
            div_trial.eq(div_in - divisor),
            root_trial.eq(root_in - Cat(C(1, 2), x[:2 * bits + 2])),   # 4·R + pair − (4·root + 1)
        ]
        last_div = step_cycles * steps - 1          # DIV's last cycle

        def choose():
            # a step's choice, in its last cycle: the dividend's next bit, the remainders, the bit into X
            with m.If(count != last_div):
                m.d.sync += [
                    dividend_bit.eq(Mux(quant, x[-2], (count == step_cycles - 1) & half)),
                    remainder.eq(Mux(quotient_bit, div_trial, div_in)),
                    pair.eq(Cat(quotient_bit, pair[0])),
                ]
            with m.If(quant):   # R's bits into X from the bottom, the dividend's out at the top
                m.d.comb += [inject.eq(quotient_bit), x_step.eq(1)]
            with m.Elif(count[step_cycles - 1]):    # an odd step: a root digit
                m.d.comb += [inject.eq(root_bit), x_step.eq(1)]
                m.d.sync += root_rem.eq(Mux(root_bit, root_trial, root_in))

        # -- finishing: write o, take the command -----------------------------------------------------------------
        finish = Signal()
        res_mant = Signal(bits)
        res_exp = Signal(signed(ew))
        bad_op = Signal()
        m.d.comb += self.i.ready.eq(finish)

        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(self.i.valid & ~o.valid):
                    m.d.sync += [
                        e.eq(e_sum),
                        a_high.eq(~diff[-1] | is_rsqrt),
                        far.eq(far_apart),
                        count.eq(Mux(diff[-1], -diff, diff)),   # ADD: Δ
                        addend.eq(0),
                        a_zero.eq(a.mant == 0),
                        b_zero.eq(b.mant == 0),
                        int_zero.eq(cmd.integer == 0),
                        quant.eq(op == ScalarOp.QUANT),
                        scan.eq(0),
                        delta.eq(-1),
                        state.eq(_State.DECODE),
                    ]

            with m.Case(_State.DECODE):
                with m.Switch(op):
                    with m.Case(ScalarOp.FROM_INT, ScalarOp.QUANT):
                        with m.If(int_zero):    # QUANT of 0: k = −bits, R = 0
                            m.d.comb += [finish.eq(1), res_exp.eq(Mux(quant, -bits, 0))]
                            m.d.sync += o.payload.recip.eq(0)
                        if fast:
                            m.d.comb += x_integer.eq(1)
                        else:
                            m.d.comb += x_clear.eq(1)
                            m.d.sync += [count.eq(iw - 1), scan.eq(1)]
                        m.d.sync += state.eq(_State.NORM)
                    with m.Case(ScalarOp.MUL):
                        with m.If(a_zero | b_zero):
                            m.d.comb += finish.eq(1)
                        m.d.sync += [delta.eq(width - bits), state.eq(_State.MUL)]
                    with m.Case(ScalarOp.ADD):
                        with m.If(a_zero | b_zero | far):
                            # an operand unchanged: b when a is zero, or b is not zero and a is far below it
                            use_b = a_zero | (~b_zero & ~a_high)
                            m.d.comb += [
                                finish.eq(1),
                                res_mant.eq(Mux(use_b, b.mant, a.mant)),
                                res_exp.eq(Mux(use_b, b.exp, a.exp)),
                            ]
                        m.d.comb += x_load.eq(1)
                        m.d.sync += [e.eq(e_sum), state.eq(_State.ALIGN)]
                        align_next(count[log_reach:] == 0)
                    with m.Case(ScalarOp.SCALE):
                        m.d.comb += [
                            finish.eq(1),
                            res_mant.eq(a.mant),
                            res_exp.eq(Mux(a_zero, 0, e)),
                        ]
                    with m.Case(ScalarOp.RSQRT):
                        with m.If(a_zero):
                            m.d.comb += finish.eq(1)
                        m.d.comb += x_load.eq(1)
                        m.d.sync += state.eq(_State.PRE)
                    with m.Case(ScalarOp.RSQRT_INT):
                        with m.If(int_zero):
                            m.d.comb += finish.eq(1)
                        m.d.comb += x_clear.eq(1)
                        m.d.sync += [
                            count.eq(iw - 1), scan.eq(1), delta.eq(odd ^ ((iw - 1) & 1)), state.eq(_State.PRE),
                        ]
                    with m.Default():
                        m.d.comb += [finish.eq(1), bad_op.eq(1)]

            with m.Case(_State.MUL):
                # the product of the mantissas the command offered in IDLE, into X; its exponent: + W − bits
                m.d.comb += x_product.eq(1)
                m.d.sync += [e.eq(e_step), delta.eq(-1), state.eq(_State.NORM)]

            with m.Case(_State.ALIGN):
                # X ← 2^n·X while count ≥ n (count ← count − n); in the last cycle X ← 2^(count + 1)·X + 2·m_low
                m.d.comb += x_step.eq(1)
                if fast:
                    m.d.comb += shift.eq(align_shift)
                m.d.sync += count.eq(count - reach)
                align_next(count[log_reach:] == 1)
                with m.If(count[log_reach:] == 0):
                    m.d.sync += state.eq(_State.NORM)

            with m.Case(_State.NORM):
                # (X is never zero here: zero results finish in DECODE)
                if fast:    # shift out the leading zeros of X's top n bits: fewer than n, and X is normalized
                    m.d.comb += [shift.eq(lead), x_step.eq(1)]
                    m.d.sync += e.eq(e - lead)
                    with m.If(lead != reach):
                        m.d.sync += state.eq(_State.ROUND)
                else:
                    with m.If(x[-1]):
                        m.d.sync += state.eq(_State.ROUND)
                    with m.Else():
                        shift_in()
                        m.d.sync += e.eq(e_step)            # delta is −1

            with m.Case(_State.ROUND):
                e_up = Signal(signed(ew))
                m.d.comb += [
                    e_up.eq(e + 1),
                    finish.eq(~quant),
                    res_mant.eq(Mux(carry, 1 << (bits - 1), rounded)),
                    res_exp.eq(Mux(carry, e_up, e)),
                ]
                with m.If(quant):
                    # R = ⌊(127·2^r + ⌊M'/2⌋) / M'⌋, M' = rounded (2^bits when it carried): the remainder starts
                    # as the dividend's top bits, 127·2^(bits − 8) < M'; X holds the rest, ⌊M'/2⌋, from its top
                    m.d.comb += x_quant.eq(1)
                    m.d.sync += [
                        divisor.eq(rounded),
                        remainder.eq(127 << (bits - 8)),
                        dividend_bit.eq(rounded[quant_steps] if quant_steps < bits + 1 else 0),
                        count.eq(0),
                        state.eq(_State.DIV),
                    ]

            with m.Case(_State.PRE):
                # The value is integer · 2^odd; v is it shifted right by the least even s that fits 2·bits bits
                # (s = 0 when it fits). X scans the integer from its top bit: X = integer >> t with t bits to come,
                # so it stops when X has 2·bits − 1 or 2·bits bits and t + odd is even (then s = t + odd), or when
                # the integer is all in (t = 0: it fits, and an odd exponent halves the dividend instead). RSQRT
                # starts with X = a.mant, t = 0. The exponent started with −⌊(int_width + odd)/2⌋ for s/2 and
                # takes back 1 at each step where t + odd is even, so that it holds −⌊(t + odd)/2⌋ = −s/2.
                stop = Signal()
                m.d.comb += stop.eq(~scan | ((x[2 * bits - 2:] != 0) & (count[0] != odd)))
                with m.If(stop):
                    m.d.comb += x_clear.eq(1)
                    m.d.sync += [
                        divisor.eq(x),
                        half.eq(odd & ~scan),
                        dividend_bit.eq(~(odd & ~scan)),   # 2^(4·bits): its bit enters first; halved: second
                        remainder.eq(0), root_rem.eq(0), pair.eq(0), count.eq(0), scan.eq(0),
                        delta.eq(-1),
                        state.eq(_State.DIV),
                    ]
                with m.Else():
                    shift_in()
                    m.d.sync += [e.eq(e_step), delta.eq(count[0] == odd)]  # delta is [t + odd even]

            with m.Case(_State.DIV):
                # step c = count // step_cycles: quotient bit 4·bits − c for c ≤ 4·bits; on odd c, a root digit from
                # the pair of quotient bits of steps c − 2 and c − 1 (the quotient padded with a leading zero)
                if fast:
                    m.d.comb += trials
                    choose()
                else:
                    with m.If(~count[0]):
                        m.d.sync += trials
                    with m.Else():
                        choose()
                m.d.sync += count.eq(count + 1)
                m.d.sync += quant_last.eq(quant & (count == step_cycles * quant_steps - 2))
                with m.If(quant_last):
                    m.d.comb += [finish.eq(1), res_exp.eq(e)]
                    m.d.sync += o.payload.recip.eq(Cat(quotient_bit, x[:quant_steps - 1]))
                with m.If(count == last_div):
                    m.d.sync += state.eq(_State.NORM)

        # (after the state machine, so that finishing takes precedence)
        with m.If(finish):
            m.d.sync += [
                o.valid.eq(1),
                o.payload.value.mant.eq(res_mant),
                o.payload.value.exp.eq(res_exp),
                # the exponent does not fit exp_bits: its top ew − exp_bits + 1 bits are not all equal
                o.payload.error.eq(bad_op | ~((res_exp[eb - 1:] == 0) | res_exp[eb - 1:].all())),
                state.eq(_State.IDLE),
            ]
        with m.Elif(o.ready):
            m.d.sync += o.valid.eq(0)

        return m
