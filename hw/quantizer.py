"""Activation quantizer: ``p = v ⊙ c`` (exact, signed) → int8 ``q``, bit-exact with ``GoldenModel.quantize``.

The per-vector work (``max|p|``, the shift ``k`` and the reciprocal ``R``) belongs to the reduction unit; this unit
takes ``k`` and ``R`` in a command and quantizes the vector's elements as they stream past, ``lanes`` per beat:
``p' = round(|p| · 2^−k)`` (right shift rounding ties up for ``k > 0``, exact left shift for ``k ≤ 0``), then
``q = sign(p) · min(127, (p' · R + 2^(r−1)) >> r)`` with ``r = quant_bits + recip_bits − 7``.

How (no full-width negation or carry chain on ``p``): with ``s = k + quant_bits`` and ``X = p · 2^quant_bits``,
``p' = ⌊(⌊X / 2^(s−1)⌋ + 1) / 2⌋`` for ``p ≥ 0`` and ``p' = ⌊(~y + 1) / 2⌋`` with ``y = ⌊(X − 1) / 2^(s−1)⌋`` for
``p < 0`` (``−⌊(y + 1)/2⌋ = ⌊−y/2⌋``). One arithmetic right shift of ``X`` by ``s − 1`` gives both: a log shifter
keeps an 18-bit window (``quant_bits + 2``) and ORs the bits it shifts out, so ``y = w − borrow`` where ``borrow``
says that nothing nonzero was shifted out, and ``~y = ~w + borrow``. Then one 16 × 16 multiply-add
(``p' ≤ 2^quant_bits`` and ``R < 2^(recip_bits+1)`` are 17-bit values; their top bits are never both set and
``p' = 2^quant_bits`` implies the low part is 0, so ``p' · R = low(p') · low(R) + addend`` with one addend).

Preconditions (what the golden model derives for the vector, from its own ``max|p|``; the bench only ever sends
those): ``k = bit_length(max|p|) − quant_bits`` and ``R = ⌊(127 · 2^r + ⌊M'/2⌋) / M'⌋`` for the vector's ``M'``.
Then ``k`` lies in ``[1 − quant_bits, p_width − quant_bits]`` and ``R`` in ``[127 · 2^(recip_bits−7),
127 · 2^(recip_bits−6)]``, ``recip_bits + 1`` bits. An all-zero vector has ``k = −quant_bits`` and a golden ``R`` too
wide for the field; any ``k`` and ``R`` give ``q = 0`` there. Another ``k`` or ``R`` gives wrong values (the shifter
keeps a window, the product 32 bits), never a hang; the clamp to 127 never acts under the preconditions (the product
stays below ``127.5 · 2^r``) and is kept as a guard.

Interfaces:

* ``cmd``: one command per vector, ``{shift: k (signed), recip: R (unsigned, recip_bits + 1)}``. The unit holds one
  command; its elements follow on ``i`` up to the beat marked ``last``. ``cmd.ready`` is high while no command is
  held, and also in the cycle the held command's ``last`` beat is taken (so back-to-back vectors lose no cycle; it
  then depends on ``i.valid``). ``k`` and ``R`` travel down the pipeline with each beat, so a new command never
  affects elements in flight.
* ``i``: ``{p: lanes × signed(p_width), last}``. Lanes beyond the vector's end should carry 0 (they give ``q = 0``).
* ``o``: ``{q: lanes × signed(8), last}``, ``last`` copied from the input beat.

Pipeline: five register stages (the coarse shift steps; the fine steps and the sign flip; the rounding increment;
the product; the rounding, clamp and sign into the output register), all advancing together while
``~o.valid | o.ready``. Throughput: one beat (``lanes`` elements) per cycle, no bubble between vectors; latency 5
cycles from a beat's transfer on ``i`` to ``o.valid``. ``i.ready`` depends combinationally on ``o.ready``. The
multiply-add sits between the stage-3 and stage-4 registers, the shape Yosys packs into one iCE40 ``SB_MAC16``
(``synth_ice40 -dsp``) with its adder; without ``-dsp`` the multiply takes ~700 logic cells instead.

Cost on the iCE40UP5K (``synth_ice40 -dsp``, nextpnr packing; Fmax with every port behind a register): at the
defaults (``p_width = 60``, ``lanes = 1``, ``quant_bits = recip_bits = 16``) 351 logic cells and one ``SB_MAC16``,
48–57 MHz over 3 seeds; ``p_width = 48`` is the same size (the shifter's cost follows its 6-bit amount and 18-bit
window), ``quant_bits = 24`` takes 430 cells and two ``SB_MAC16``. The defaults mirror ``golden.Formats``
(``hw`` does not import ``host``): build with the golden model's ``quant_bits`` and ``recip_bits``.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int

__all__ = ["command_layout", "input_layout", "output_layout", "Quantizer"]


def _shift_shape(p_width, quant_bits):
    return Shape.cast(range(-quant_bits, p_width - quant_bits + 1))


def command_layout(p_width, quant_bits=16, recip_bits=16):
    """Layout of a command: ``shift`` (``k``, signed, covering ``[−quant_bits, p_width − quant_bits]``) and
    ``recip`` (``R``, ``unsigned(recip_bits + 1)``)."""
    return data.StructLayout({"shift": _shift_shape(p_width, quant_bits), "recip": unsigned(recip_bits + 1)})


def input_layout(p_width, lanes=1):
    """Layout of an input beat: ``p``: ``ArrayLayout(signed(p_width), lanes)``; ``last``: 1 bit."""
    return data.StructLayout({"p": data.ArrayLayout(signed(p_width), lanes), "last": 1})


def output_layout(lanes=1):
    """Layout of an output beat: ``q``: ``ArrayLayout(signed(8), lanes)``; ``last``: 1 bit."""
    return data.StructLayout({"q": data.ArrayLayout(signed(8), lanes), "last": 1})


def _shift_steps(bits, amount, steps, width, fill):
    """Arithmetic right shift by the ``steps`` bits of ``amount`` (largest first), keeping only the bits that the
    remaining steps and the final ``width``-bit window need; also the OR of every bit shifted out (the sticky bit).

    A log shifter that trims each step to what the later steps read: for 76 bits in, an 18-bit window and a 6-bit
    amount it is 165 2:1 muxes, where Yosys's own ``$sshr`` takes ~300 LUTs.
    """
    sticky = []
    for step in steps:
        distance = 1 << step
        need = width + distance - 1
        sticky.append(amount[step] & Cat(*bits[:distance]).any())
        bits = [Mux(amount[step],
                    bits[i + distance] if i + distance < len(bits) else fill,
                    bits[i] if i < len(bits) else fill)
                for i in range(need)]
    return bits, Cat(*sticky).any()


class Quantizer(wiring.Component):
    """Streams ``p`` values through the golden model's int8 quantization (see the module notes).

    Parameters
    ----------
    p_width : int
        Width of the signed ``p`` inputs (≥ 2).
    lanes : int
        Elements per beat (≥ 1); ``lanes = C`` feeds a :class:`~mmfree.hw.ternary_matvec.TernaryMatVec` at full rate.
    quant_bits, recip_bits : int
        ``golden.Formats.quant_bits`` (1..32) and ``recip_bits`` (7..32).

    Attributes
    ----------
    cmd : In(stream.Signature(command_layout(p_width, quant_bits, recip_bits)))
    i : In(stream.Signature(input_layout(p_width, lanes)))
    o : Out(stream.Signature(output_layout(lanes)))
    """

    def __init__(self, p_width=60, lanes=1, *, quant_bits=16, recip_bits=16):
        check_int("p_width", p_width, 2)
        check_int("lanes", lanes, 1)
        check_int("quant_bits", quant_bits, 1, 32)
        check_int("recip_bits", recip_bits, 7, 32)
        self._p_width, self._lanes = p_width, lanes
        self._quant_bits, self._recip_bits = quant_bits, recip_bits
        super().__init__({
            "cmd": In(stream.Signature(command_layout(p_width, quant_bits, recip_bits))),
            "i": In(stream.Signature(input_layout(p_width, lanes))),
            "o": Out(stream.Signature(output_layout(lanes))),
        })

    p_width = property(lambda self: self._p_width)
    lanes = property(lambda self: self._lanes)
    quant_bits = property(lambda self: self._quant_bits)
    recip_bits = property(lambda self: self._recip_bits)
    recip_shift = property(lambda self: self._quant_bits + self._recip_bits - 7)

    def elaborate(self, platform):
        m = Module()
        pw, qb, rb, lanes = self._p_width, self._quant_bits, self._recip_bits, self._lanes
        r = self.recip_shift

        # -- the held command ------------------------------------------------------------------------------------
        active = Signal()
        shift = Signal(range(pw))  # s' = k + quant_bits − 1 (wraps to junk for k = −quant_bits: p = 0 there)
        recip = Signal(rb + 1)
        advance = Signal()
        take = Signal()
        end = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(active & advance),
            take.eq(self.i.valid & self.i.ready),
            end.eq(take & self.i.payload.last),
            self.cmd.ready.eq(~active | end),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                active.eq(1),
                shift.eq(self.cmd.payload.shift + (qb - 1)),
                recip.eq(self.cmd.payload.recip),
            ]
        with m.Elif(end):
            m.d.sync += active.eq(0)

        # -- pipeline registers, all enabled by `advance` --------------------------------------------------------
        def stage(value, name):
            reg = Signal.like(value, name=name) if isinstance(value, Signal) else Signal(value.shape(), name=name)
            with m.If(advance):
                m.d.sync += reg.eq(value)
            return reg

        steps = list(reversed(range(len(shift))))
        coarse, fine = steps[:(len(steps) + 1) // 2], steps[(len(steps) + 1) // 2:]
        valid1, last1 = stage(take, "valid1"), stage(self.i.payload.last, "last1")
        shift1, recip1 = stage(shift, "shift1"), stage(recip, "recip1")
        valid2, last2, recip2 = stage(valid1, "valid2"), stage(last1, "last2"), stage(recip1, "recip2")
        valid3, last3, recip3 = stage(valid2, "valid3"), stage(last2, "last3"), stage(recip2, "recip3")
        valid4, last4 = stage(valid3, "valid4"), stage(last3, "last4")
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(valid4), self.o.payload.last.eq(last4)]

        for lane in range(lanes):
            p = Value.cast(self.i.payload.p[lane])
            negative = p[-1]
            # stages 1 and 2: w = (p · 2^qb) >>> s', low qb + 2 bits, and whether any 1 was shifted out
            bits, sticky = _shift_steps([C(0, 1)] * qb + list(p), shift, coarse, qb + 2, negative)
            sign1, sticky1 = stage(negative, f"sign1_{lane}"), stage(sticky, f"sticky1_{lane}")
            part1 = stage(Cat(*bits), f"part1_{lane}")
            bits, sticky = _shift_steps(list(part1), shift1, fine, qb + 2, sign1)
            # u = ~y = ~w + borrow for p < 0, where y = ((p · 2^qb − 1) >>> s') = w − borrow and borrow says that
            # nothing was shifted out; the XOR folds into the last shift step's muxes
            flipped = Signal(qb + 2, name=f"flipped_{lane}")
            m.d.comb += flipped.eq(Cat(*bits[:qb + 2]) ^ sign1.replicate(qb + 2))
            sign2, u2 = stage(sign1, f"sign2_{lane}"), stage(flipped, f"u2_{lane}")
            borrow2 = stage(sign1 & ~(sticky1 | sticky), f"borrow2_{lane}")
            # stage 3: p' = (u + 1) >> 1 ≤ 2^qb; the product's correction term for the top bits of p' and R
            norm = Signal(qb + 1, name=f"norm_{lane}")
            m.d.comb += norm.eq((u2 + Cat(~borrow2, borrow2))[1:])
            low, top = norm[:qb], norm[qb]
            addend = Signal(qb + rb, name=f"addend_{lane}")
            m.d.comb += addend.eq(Mux(top, recip2[:rb] << qb, Mux(recip2[rb], low << rb, 0)))
            sign3, low3, addend3 = stage(sign2, f"sign3_{lane}"), stage(low, f"low3_{lane}"), \
                stage(addend, f"addend3_{lane}")
            # stage 4: p' · R = low · R_low + addend, between registers (one 16 × 16 multiply-add at the defaults)
            product = Signal(qb + rb, name=f"product_{lane}")
            m.d.comb += product.eq(low3 * recip3[:rb] + addend3)
            sign4, product4 = stage(sign3, f"sign4_{lane}"), stage(product, f"product4_{lane}")
            # stage 5: round, clamp to 127 (never needed for the golden's k and R, kept as a guard), apply the sign
            level = Signal(qb + rb + 1 - r, name=f"level_{lane}")
            m.d.comb += level.eq((product4 + (1 << (r - 1)))[r:])
            clamped = Signal(7, name=f"clamped_{lane}")
            m.d.comb += clamped.eq(Mux(level[7:].any(), 127, level[:7]))
            with m.If(advance):
                m.d.sync += self.o.payload.q[lane].eq(Mux(sign4, -clamped, clamped))

        return m
