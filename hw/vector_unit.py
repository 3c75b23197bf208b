"""The vector unit: the element-wise epilogue on the matvec's drain, bit-exact to the golden model.

One element every ``cycles_per_element`` cycles in, one result per element out. Each element carries its operation,
its accumulator, the per-vector output scale and up to two operands read from vector memory; the result goes back to
vector memory. The operations (``g`` = ``gate_frac``, ``af`` = ``act_frac``, ``sf`` = ``state_frac``; ``rs(x, s)`` =
round to nearest, ties up, of ``x·2^-s``; ``sat_n`` = clamp to signed ``n`` bits; ``to_fixed(acc) = rs(acc · mant,
shift)``, the golden ``GoldenModel.to_fixed`` with ``shift = −(scale.exp + frac)``):

======== ===== ======================================= ======================================================
op       code  operands                                result ``data``
======== ===== ======================================= ======================================================
SCALE    0     acc, mant, shift                        ``z = sat_act(to_fixed(acc))`` (σ/SiLU inputs, Q.af)
RESIDUAL 1     acc, mant, shift, a = x                 ``sat_res(x + sat_res(to_fixed(acc)))``
FORGET   2     acc_f, mant, shift, a = 1 − lb          ``1 − f = rs((1 − lb)·σ(−z_f), g)``, z_f = SCALE of acc_f
INPUT    3     acc_i, mant, shift, a = 1 − f           ``i = rs(SiLU(z_i)·(1 − f), g + af − sf)``
STATE    4     acc_i, mant, shift, a = 1 − f, b = h    ``h' = sat_state(rs(f·h, g) + i)``, ``f = 2^g − (1 − f)``
GATE     5     acc_g, b = h                            ``rs(acc_g · SiLU(h), gated_shift)`` (SiLU in Q.sf)
GLU      6     acc_g, mant, shift, b = acc_u           ``rs(SiLU(z_g) · acc_u, glu_shift)``, z_g = SCALE of acc_g
======== ===== ======================================= ======================================================

These are the lines of ``GoldenModel.mlgru``, ``glu`` and ``residual_add``. The recurrence is fused with the
input path (STATE): a separate pass would need three operands (1 − f, h, i) and an ``i`` vector in memory; INPUT
gives ``i`` alone. ``a`` holds ``1 − lb`` and ``1 − f`` as non-negative Q0.g values ``≤ 2^g``; ``b`` holds ``h``
(Q.sf). Operands an operation does not name are ignored. Results of operands outside their documented ranges are
unspecified. ``RESIDUAL`` with ``a = 0`` is ``to_fixed`` saturated to the residual width.

The GLU takes a row pair of the gate projection in one element: ``acc_g`` as ``acc`` and ``acc_u`` as ``b`` (within
the accumulators' range), as INPUT takes ``1 − f`` in ``a``. ``last`` travels with each element to its result.

The scale: ``mant`` is the per-vector Scalar's mantissa (``scalar_bits``, unsigned) and ``shift`` the signed
right shift ``−(exp + frac)`` (left when negative), both constant over a vector (the sequencer holds them; they
travel with every element so that ops and vectors can change between any two elements). Every shift the field can
hold gives the mathematically exact ``sat(round(acc·mant·2^-shift))``; the golden model's int64 arithmetic agrees
while ``acc·mant·2^-shift`` fits int64 and ``shift < 63``.

Throughput and stalls. ``cycles_per_element = c`` (default 1): the unit takes at most one element every ``c``
cycles. A phase counter ``0 … c − 1`` advances on every cycle the pipeline advances; ``i.ready = en & (phase ==
0)`` with ``en = ~o.valid | o.ready``, so ``i.ready`` is combinational from ``o.ready`` (as at ``c = 1``, where it
is ``en``), and a stream that offers an element every cycle has one taken every ``c`` cycles (one that arrives in
another phase waits up to ``c − 1`` cycles). The pipeline stalls as a whole (:class:`~mmfree.hw.sigmoid.Pipeline`
with period ``c``): ``o`` comes from registers gated by the phase and holds while stalled; bubbles do not
collapse. :attr:`VectorUnit.latency` is the number of cycles from taking an element to offering
its result without stalls: 15, 18 and 18 cycles at ``c`` = 1, 2, 3 for the UP5K formats (golden.Formats,
``acc_bits = 16``), 15, 17, 20 at the defaults.

Stages: ``acc·mant`` and ``f·h`` on the multipliers; the variable shift; rounding, saturation; residual add and
σ address (input ``z`` or ``h``); ROM word and ``D·r``; σ; ``z·σ``, ``h·σ`` or ``(1 − lb)·σ(−z)`` from the
registered σ; one rounding (SiLU in its input's format, or 1 − f); ``SiLU·(1 − f)``, ``SiLU(h)·acc_g``,
``SiLU(z_g)·acc_u`` or ``(1 − f)·2^s``; the product registered; the result's rounding carry chain; its window and
saturation; output registers. Each product takes 2 stages (the multiplier's registers) plus one per extra phase its
partial products are spread over.

The variable shift. One arithmetic right shifter serves both directions' needs: for ``shift ≥ 0`` it makes
``w = 2·acc·mant >> shift``, rounded as ``(w + 1) >> 1`` (one carry chain for both result widths, each width's
fit read off ``w``'s bits); for a left shift ``l = −shift`` it makes the overflow probe ``2·acc·mant >> max(wide −
l, 0)`` (``wide`` = the wider of act_bits and residual_bits): ``acc·mant·2^l`` fits ``wide`` bits iff
``acc·mant`` fits ``wide − l`` bits, iff the probe is 0 or −1 (for ``l ≥ wide`` the probe is ``2·acc·mant``, 0
iff ``acc·mant = 0``, the only product that does not overflow). A separate left shifter makes the value.

The result's rounding. Every result is ``(p + late·2^s + 2^(s−1)) >> s`` (no rounding constant where ``s ≤ 0``,
``p`` shifted left by ``−s`` where ``s < 0``) with the operation's ``s`` (``input_shift`` for INPUT, STATE, SCALE
and RESIDUAL, ``gated_shift`` for GATE, ``glu_shift`` for GLU), saturated to the state for STATE: ``p`` is the
last product and ``late`` is STATE's ``rs(f·h, g)``, SCALE's ``z`` or RESIDUAL's sum (0 for the others, whose
``late`` is written as 0); SCALE and RESIDUAL multiply by 0, FORGET passes ``1 − f`` through the multiplier as
``(1 − f)·2^s`` (``s = input_shift`` where ``2^s`` fits the operand, else 0). One carry chain and a window
multiplexer replace a rounding adder per operation.

Delay lines. The two values that ride the most stages go through block RAM instead of flip-flops: ``late``
(from the residual add to the result's carry chain) and the late products' narrow operand ``y`` (from the input to
the last product). Each is a :class:`~mmfree.hw.primitives.BlockRam` used as a circular buffer (``_DelayLines``):
written at its stage, read ``k`` periods later from the address ``count − k`` (``count`` counts the pipeline's
periods), the RAM's output register standing for the pipeline's.

Multipliers. Every product is split into 16×16 partial products with explicit signedness (16-bit limbs, unsigned
but the top limb of a signed operand) and made on :class:`~mmfree.hw.primitives.Mac16` instances shared over the
``c`` phases of an element (:class:`~mmfree.hw.multiplier.MultiplierPool`: ``SB_MAC16`` on iCE40, ``MULT18X18D`` on
ECP5, the behavioural model in simulation; ``impl`` or the platform chooses); partial products with a limb of at most
4 bits (``D`` times the top bits of ``r``) are a shift-and-add in logic. ``σ`` and the gates are unsigned Q0.g, so a
product with them is signed × unsigned and takes one tile per limb of the other operand. The last product's narrow
operand is ``1 − f`` (unsigned, up to ``2^g``) or ``acc`` (signed): where ``2^g`` alone would need a 17-bit signed
operand (``g = 15``, 16-bit accumulators), the unit multiplies ``2·SiLU(z_i)`` by ``2^(g−1)`` for ``1 − f = 2^g``
instead (exact). :attr:`VectorUnit.multipliers` is the count.

Cost on the iCE40UP5K (``benchmarks/cost_table.py``: ``synth_ice40 -dsp``, nextpnr ``--up5k --freq 30``, seed 1;
net of the harness), golden.Formats (act Q.20 in 28 bits, Q0.15 gates, state Q.24 in 32 bits, residual 32, 1/32 σ
segments over [0, 8)) with ``acc_bits = 16``: 8 partial products per element (``acc·mant`` 1, ``f·h`` 2, ``D·r``
1 and a 3-bit row in logic, ``z·σ`` 2, ``SiLU·(1 − f)`` 2);

=====  ========  ======  =====  ===========
``c``  SB_MAC16  LC      EBR    Fmax (MHz)
=====  ========  ======  =====  ===========
1      8         1905    5      36.5
2      4         1860    5      35.0
3      4         1777    5      33.3
=====  ========  ======  =====  ===========

Two EBR hold the σ table, three the delay lines (``late`` 32 bits, ``y`` 16). Most of the LC are the variable
shift (the right shifter with its rounding ~300 and the left one ~100, in builds without them), the rounding,
saturating and residual adders of 32-bit values and the multipliers' operand multiplexers; the flip-flops left
carry ``a``, ``b`` and the σ product's operand (``factor``) over 2–4 stages and the products' partial sums.
"""

import math

from amaranth import *
from amaranth.hdl import Fragment
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..host.golden import Formats
from .checks import check_int
from .multiplier import LIMB_BITS, MultiplierPool
from .primitives import IMPLS, BlockRam
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
    GLU = 6


class _DelayLines:
    """Values carried over many stages of a :class:`~mmfree.hw.sigmoid.Pipeline` in block RAM, not flip-flops.

    Each line is a :class:`~mmfree.hw.primitives.BlockRam` used as a circular buffer indexed by a count of the
    pipeline's periods (one element slot each): the element at stage ``b`` during period ``n`` writes address ``n``;
    its read is issued at stage ``t − 2``, ``k = ⌊(t − 2)/c⌋ − ⌊b/c⌋`` periods later, from address ``count − k``; the
    RAM's output register holds it from stage ``t − 1`` on, and a register of the pipeline's from stage ``t`` for
    ``c`` stages (no logic after a block RAM's output, whose clock-to-output is most of an ECP5 cycle). Reads and
    writes of one cycle never share an address (``t ≥ b + 3``), bubbles write junk that nobody reads as valid.
    """

    def __init__(self, m, pipe, *, impl):
        self.m, self.pipe, self.impl = m, pipe, impl
        self.count = Signal(8, name="line_count")
        with m.If(pipe.en & pipe.present(pipe.period - 1)):
            m.d.sync += self.count.eq(self.count + 1)

    def __call__(self, signal, stage):
        """``signal`` (tracked) as seen at ``stage``, through a line; the result is tracked at ``stage``."""
        pipe = self.pipe
        born = pipe.stage_of(signal)
        assert stage >= born + 3, f"{signal.name}: a line needs at least three stages"
        read = stage - 1   # where the RAM's output holds the element
        ram = BlockRam(width=len(signal), depth=1 << len(self.count), impl=self.impl)
        self.m.submodules[f"{signal.name}_line"] = ram
        self.m.d.comb += [
            ram.w_addr.eq(self.count),
            ram.w_data.eq(signal),
            ram.w_en.eq(pipe.en & pipe.present(born)),
            ram.r_addr.eq(self.count - ((read - 1) // pipe.period - born // pipe.period)),
            ram.r_en.eq(pipe.en & pipe.present(read - 1)),
        ]
        out = pipe.comb(ram.r_data, name=f"{signal.name}_line", shape=signal.shape(), stage=read)
        return pipe.track(pipe.at(out, stage), stage=stage)


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
    cycles_per_element : int
        ``c ≥ 1``: the unit takes at most one element every ``c`` cycles and shares each multiplier among ``c``
        partial products of an element (see the module docstring).
    impl : {"model", "ice40", "ecp5"} or None
        Implementation of the multipliers (:class:`~mmfree.hw.primitives.Mac16`); ``None`` chooses by the platform.
    sigmoid_table : {"block", "logic"}
        Where the σ table lives (:meth:`~mmfree.hw.sigmoid.SigmoidCore.build`'s ``table``): a block RAM, or LUTs
        and the read port's register (no block RAM's clock-to-output in front of logic). The stages are the same.

    Attributes
    ----------
    i : In(stream.Signature(StructLayout))
        ``op`` (:class:`VectorOp`), ``last`` (1), ``acc`` (signed(acc_bits)), ``mant`` (unsigned(scalar_bits)),
        ``shift`` (signed(shift_bits)), ``a`` (signed(max(residual_bits, gate_frac + 2))), ``b``
        (signed(max(state_bits, acc_bits))), in that order from bit 0.
        ``ready = (~o.valid | o.ready) & (phase == 0)``.
    o : Out(stream.Signature(StructLayout))
        ``data`` (signed(:attr:`out_bits`)), ``last`` (1).
    latency : int
        Cycles from taking an element to offering its result, without stalls.
    multipliers : int
        ``Mac16`` instances (``SB_MAC16`` or ``MULT18X18D``).
    """

    #: the constructor's parameters that are fields of ``golden.Formats``
    FORMAT_FIELDS = ("scalar_bits", "act_bits", "act_frac", "gate_frac", "state_bits", "state_frac",
                     "residual_bits", "gated_shift", "glu_shift", "sigmoid_segment_bits", "sigmoid_range")

    def __init__(self, *, acc_bits=24, scalar_bits=_F.scalar_bits, shift_bits=7, act_bits=_F.act_bits,
                 act_frac=_F.act_frac, gate_frac=_F.gate_frac, state_bits=_F.state_bits, state_frac=_F.state_frac,
                 residual_bits=_F.residual_bits, gated_shift=_F.gated_shift, glu_shift=_F.glu_shift,
                 sigmoid_segment_bits=_F.sigmoid_segment_bits, sigmoid_range=_F.sigmoid_range,
                 cycles_per_element=1, impl=None, sigmoid_table="block"):
        for name, value, minimum in [("acc_bits", acc_bits, 2), ("scalar_bits", scalar_bits, 1),
                                     ("shift_bits", shift_bits, 2), ("act_bits", act_bits, 2),
                                     ("act_frac", act_frac, 0), ("gate_frac", gate_frac, 1),
                                     ("state_bits", state_bits, 2), ("state_frac", state_frac, 0),
                                     ("residual_bits", residual_bits, 2), ("gated_shift", gated_shift, None),
                                     ("glu_shift", glu_shift, None), ("cycles_per_element", cycles_per_element, 1)]:
            check_int(name, value, minimum)
        if impl is not None and impl not in IMPLS:
            raise ValueError(f"impl must be None or one of {list(IMPLS)}, got {impl!r}")
        if sigmoid_table not in ("block", "logic"):
            raise ValueError(f"sigmoid_table must be 'block' or 'logic', not {sigmoid_table!r}")
        self.cycles_per_element, self._impl, self.sigmoid_table = cycles_per_element, impl, sigmoid_table
        self._latency = self._multipliers = None
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
        # SiLU·(1 − f) and the SiLU·acc products share one multiplier operand, 1 − f ∈ [0, 2^g] or acc; where
        # 1 − f = 2^g alone needs another limb, the unit multiplies 2·SiLU(z_i) by 2^(g−1) instead
        limbs = lambda *widths: math.prod(math.ceil(w / LIMB_BITS) for w in widths)
        self._halve = (limbs(max(act_bits + 1, state_bits), max(acc_bits, gate_frac + 1))
                       < limbs(max(act_bits, state_bits), max(acc_bits, gate_frac + 2)))
        self._first_bits = max(act_bits + self._halve, state_bits)
        self._other_bits = max(acc_bits, gate_frac + 2 - self._halve)
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
                "b": signed(max(state_bits, acc_bits)),
            }))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": signed(self.out_bits),
                "last": 1,
            }))),
        })

    @classmethod
    def from_formats(cls, formats, *, acc_bits=24, shift_bits=7, cycles_per_element=1, impl=None,
                     sigmoid_table="block"):
        """The unit for a ``golden.Formats`` (and the parameters that it does not hold)."""
        unit = cls.__new__(cls, src_loc_at=1)  # an unused unit is reported where from_formats was called
        unit.__init__(acc_bits=acc_bits, shift_bits=shift_bits, cycles_per_element=cycles_per_element, impl=impl,
                      sigmoid_table=sigmoid_table, **{name: getattr(formats, name) for name in cls.FORMAT_FIELDS})
        return unit

    def _elaborated(self):
        if self._latency is None:
            Fragment.get(self, None)  # the stages and multipliers do not depend on the platform
        return self

    @property
    def latency(self):
        """Cycles from taking an element to offering its result, without stalls."""
        return self._elaborated()._latency

    @property
    def multipliers(self):
        """The number of 16×16 multipliers (``Mac16``) the unit instantiates."""
        return self._elaborated()._multipliers

    def elaborate(self, platform):
        m = Module()
        g, af, sf = self.gate_frac, self.act_frac, self.state_frac
        # σ runs in one internal format that holds both z (act) and h (state) exactly
        ifrac = max(af, sf)
        iwidth = max(self.act_bits - af, self.state_bits - sf) + ifrac
        k_act, k_state = ifrac - af, ifrac - sf

        en = Signal()
        pipe = Pipeline(m, en, period=self.cycles_per_element)
        pool = MultiplierPool(m, pipe, impl=self._impl)
        lines = _DelayLines(m, pipe, impl=self._impl)
        payload = self.i.payload

        # stage 0: acc · mant and f · h go to the multipliers
        valid = pipe.comb(self.i.valid, name="valid", reset=True)
        op = pipe.comb(payload.op.as_value(), name="op")
        last = pipe.comb(payload.last, name="last")
        a = pipe.comb(payload.a, name="a")
        b = pipe.comb(payload.b, name="b")

        def is_op(*ops):
            return Cat(pipe(op) == o.value for o in ops).any()

        # the late products' narrow operand, raw bits: 1 − lb or 1 − f (unsigned Q0.g), acc_u, else the accumulator
        y = pipe.comb(Mux(is_op(VectorOp.FORGET, VectorOp.INPUT, VectorOp.STATE), payload.a[:g + 1],
                          Mux(is_op(VectorOp.GLU), payload.b[:self.acc_bits], payload.acc)),
                      name="y", shape=unsigned(max(self.acc_bits, g + 1)))
        wide = max(self.act_bits, self.residual_bits)
        # the right shifter's amount: the shift, or for a left shift l = −shift the overflow probe wide − l (≥ 0):
        # acc·mant << l fits `wide` bits iff 2·acc·mant >> (wide − l) is 0 or −1
        probe = wide + payload.shift
        shift_right = pipe.comb(Mux(payload.shift >= 0, payload.shift, Mux(probe > 0, probe, 0)), name="shift_right",
                                shape=unsigned(max(self.shift_bits - 1, (wide - 1).bit_length())))
        right = pipe.comb(payload.shift >= 0, name="right")
        # a left shift l ≥ wide overflows unless acc·mant = 0, so l mod 2^bits(wide − 1) serves
        shift_left = pipe.comb((-payload.shift)[:(wide - 1).bit_length()], name="shift_left")
        scaled = pool.product(payload.acc, payload.mant, name="scaled")
        decayed = pool.product(b, ((1 << g) - payload.a[:g + 1])[:g + 1], name="decayed")
        fh = pipe.comb(round_shift(decayed, g)[:self.state_bits].as_signed(), name="fh",
                       stage=pipe.stage_of(decayed))

        # the variable shift (right: of 2·acc·mant, rounded in the next stage, or the overflow probe; left)
        pipe.reach(scaled)
        doubled = Cat(C(0, 1), scaled)
        shifted_right = pipe.comb(doubled.as_signed() >> pipe(shift_right), name="shifted_right")
        shifted_left = pipe.comb((scaled[:wide] << pipe(shift_left))[:wide], name="shifted_left", shape=signed(wide))
        negative = pipe.comb(scaled[-1], name="negative")

        # rounding, saturation
        pipe.next()

        w = pipe(shifted_right)
        if len(w) < wide + 2:
            w = Cat(w, w[-1].replicate(wide + 2 - len(w))).as_signed()
        overflow = ~pipe(right) & w.any() & ~w.all()
        # one rounding carry chain for both widths: (w + 1) >> 1 over wide + 1 bits
        rounded = (w[:wide + 1].as_signed() + 1) >> 1

        def saturated(bits):
            """sat_bits of the rounded right shift ((w + 1) >> 1, w = 2·acc·mant >> r) or of the left shift."""
            limit = Mux(pipe(negative), -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
            # the rounded value fits `bits` iff w fits bits + 1 and is not 2·max + 1 (which rounds to max + 1):
            # both read off w's bits
            top = w[bits:]
            fits = (~top.any() | top.all()) & (w[:bits + 1] != (1 << bits) - 1)
            left = Mux(overflow, limit, saturate(pipe(shifted_left), bits))
            return Mux(pipe(right), Mux(fits, rounded[:bits].as_signed(), limit), left)

        z = pipe.comb(saturated(self.act_bits), name="z")
        scaled_residual = pipe.comb(saturated(self.residual_bits), name="scaled_residual")

        # the residual add; σ input (z, or h for GATE) in the internal format; the σ product's other factor
        pipe.next()
        residual = saturate(pipe(a) + pipe(scaled_residual), self.residual_bits)
        # the value the result adds: SCALE's z, RESIDUAL's sum, STATE's rs(f·h), 0 for the others
        late = pipe.comb(Mux(is_op(VectorOp.STATE), pipe(fh),
                             Mux(is_op(VectorOp.RESIDUAL), residual, Mux(is_op(VectorOp.SCALE), pipe(z), 0))),
                         name="late", shape=signed(max(self.state_bits, self.residual_bits, self.act_bits)))
        z_in = pipe.comb(Mux(is_op(VectorOp.GATE), pipe(b) << k_state, pipe(z) << k_act), name="z_in",
                         shape=signed(iwidth))
        factor = pipe.comb(Mux(is_op(VectorOp.FORGET), pipe(a)[:g + 1], Mux(is_op(VectorOp.GATE), pipe(b), pipe(z))),
                           name="factor", shape=signed(max(self.state_bits, self.act_bits, g + 2)))
        # σ(z_in) and σ(−z_in)
        sigma, complement = self.sigmoid.build(m, pipe, z_in, ifrac, multiply=pool.product,
                                                table=self.sigmoid_table)
        # σ lies in [E_last, 2^g − E_last]: g bits unless the table ends at 0
        gate_bits = g + (self.sigmoid.entries[-1] == 0)
        gate = pipe.comb(Mux(is_op(VectorOp.FORGET), pipe(complement), pipe(sigma))[:gate_bits], name="gate")

        # z·σ(z) (SiLU), or (1 − lb)·σ(−z_f), from the registered σ
        pipe.next()
        gated = pool.product(factor, gate, name="gated")

        # rounding: SiLU in its input's format, or 1 − f
        pipe.reach(gated)
        y_line = lines(y, pipe.stage)
        silu = pipe.comb(round_shift(gated, g), name="silu", shape=signed(max(self.act_bits, self.state_bits, g + 2)))
        # the result's rounding: (p + late·2^s + 2^(s−1)) >> s with the operation's s, saturated for STATE; p = 0
        # for SCALE and RESIDUAL, p = 1 − f · 2^s for FORGET (s = input_shift where 2^s fits the operand, else 0);
        # the rounding constant and the operation's selects are made here, ahead of their carry chain
        s_i = self.input_shift
        forget_shift = s_i if 0 <= s_i < self._other_bits - 1 else 0
        shifts = {VectorOp.GATE: self.gated_shift, VectorOp.GLU: self.glu_shift, VectorOp.FORGET: forget_shift}
        for o in (VectorOp.SCALE, VectorOp.RESIDUAL, VectorOp.INPUT, VectorOp.STATE):
            shifts[o] = s_i
        groups = {}
        for o, s in shifts.items():
            groups.setdefault(s, []).append(o)
        rounding = 0
        for s, ops in groups.items():
            if s > 0:
                rounding = rounding | Mux(is_op(*ops), 1 << (s - 1), 0)
        rounding = pipe.comb(rounding, name="rounding")
        selects = {s: pipe.comb(is_op(*ops), name=f"rounding_{s if s >= 0 else f'm{-s}'}")
                   for s, ops in groups.items()}
        saturating = pipe.comb(is_op(VectorOp.STATE), name="saturating")
        # SiLU(z_i)·(1 − f), SiLU(h)·acc_g, SiLU(z_g)·acc_u, or (1 − f)·2^s; 0 for SCALE and RESIDUAL
        gating = is_op(VectorOp.INPUT, VectorOp.STATE)
        if self._halve:  # 1 − f = 2^g does not fit the operand: 2·SiLU(z_i) times 2^(g−1) instead
            one = y_line[g]
            silu_i = Mux(gating & one, silu << 1, silu)
            one_minus_f = y_line[:g] | (one << (g - 1))
        else:
            silu_i, one_minus_f = silu, y_line[:g + 1]
        first = pipe.comb(silu_i, name="first", shape=signed(self._first_bits))
        acc_factor = Mux(is_op(VectorOp.GATE, VectorOp.GLU), y_line[:self.acc_bits].as_signed(), 0)
        other = pipe.comb(Mux(gating, one_minus_f, Mux(is_op(VectorOp.FORGET), 1 << forget_shift, acc_factor)),
                          name="other", shape=signed(self._other_bits))
        product = pool.product(first, other, name="product")

        # the result, from the registered product (its partial sum is a carry chain of its own)
        pipe.reach(product)
        pipe.next()
        p = pipe(product)
        for s in groups:
            if s < 0:
                p = Mux(pipe(selects[s]), pipe(product) << -s, p)
        addend = (lines(late, pipe.stage) << max(s_i, 0)) | pipe(rounding)
        total = pipe.comb(p + addend, name="total")
        pipe.next()
        window = pipe(total) >> max(self.input_shift, 0)
        for s in groups:
            if max(s, 0) != max(self.input_shift, 0):
                window = Mux(pipe(selects[s]), pipe(total) >> max(s, 0), window)
        result = pipe.comb(Mux(pipe(saturating), saturate(window, self.state_bits), window), name="result",
                           shape=signed(self.out_bits))

        # output registers
        pipe.next()
        self._latency = pipe.stage
        pool.finish()
        self._multipliers = len(pool.multipliers)
        m.d.comb += [
            self.o.valid.eq(pipe(valid) & pipe.present()),
            self.o.payload.data.eq(pipe(result)),
            self.o.payload.last.eq(pipe(last)),
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en & pipe.present(0)),
        ]
        pipe.finish()
        return m
