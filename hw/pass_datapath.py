"""The core's pass datapath: ``((x ≫ pre) · y)`` shifted right by ``post`` (rounded or floor), one beat of
``lanes`` elements every few cycles, on one 16 × 16 multiplier per lane.

The core streams vectors through it to form ``p = v ⊙ c``, ``u = ((v ≫ k) · pre) ≫ pre_shift`` and the embedding
row in the residual format (docs/core.md). The product is exact: ``x ≫ pre`` is cut into :data:`LIMB`-bit limbs from
bit 0 up (all but the top one unsigned, so that each fits a signed 16-bit port; the top one signed), each limb times
``y`` is one partial product on a :class:`~mmfree.hw.primitives.Mac16` (signed × signed), and the partial products
are summed with their shifts as they leave the multiplier. The lanes of a beat are independent elements: each has
its own multiplier, cut, sum and output shift; the control (the limb count, the valid and ``last`` tags, the enables)
and the shift amounts and rounding constant are shared by all lanes.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .primitives import Mac16, check_impl

__all__ = ["LIMB", "limbs_for", "PassDatapath"]

#: bits of a multiplier limb below the top one
LIMB = 15
#: signed bits of the second operand ``y`` (one multiplier port)
FACTOR_BITS = 16
#: low bits of a shift amount that a variable shift applies in its second (fine) stage
FINE_BITS = 3


def limbs_for(bits):
    """Limbs of a signed ``bits``-bit ``x``: 15-bit unsigned ones, then a signed 16-bit top one."""
    return 1 + max(0, -(-(bits - FACTOR_BITS) // LIMB))


def _shift_parts(m, amount, width):
    """The two stages of a right shift of a signed ``width``-bit value by ``amount``: ``(v ≫ coarse) ≫ fine``.

    ``amount`` saturates at the least ``2^b − 1 ≥ width − 1`` (from ``width − 1`` up, a shift leaves the sign
    alone); ``coarse`` (``b`` bits) is its multiple of ``2^FINE_BITS``, ``fine`` its low :data:`FINE_BITS` bits.
    Both are registered every cycle, without an enable: ``amount`` is held while an element is in flight, from the
    cycle it is taken, and the shifts come later.
    """
    bits = max(FINE_BITS, (width - 1).bit_length())
    if len(amount) > bits:
        amount = Mux(amount[bits:].any(), (1 << bits) - 1, amount[:bits])
    coarse, fine = Signal(bits), Signal(FINE_BITS)
    m.d.sync += [coarse.eq(Cat(C(0, FINE_BITS), amount[FINE_BITS:])), fine.eq(amount[:FINE_BITS])]
    return coarse, fine


def _stage(values, name):
    """Registers for ``values`` (a dict of name to value), one each, named ``{name}_{key}``."""
    return {key: Signal(value.shape(), name=f"{name}_{key}") for key, value in values.items()}


def _advance(m, en, stages):
    """Each of ``stages`` (dicts of registers, the first the values entering) takes the one before it when ``en``."""
    with m.If(en):
        for source, stage in zip(stages, stages[1:]):
            m.d.sync += [stage[key].eq(source[key]) for key in stage]


class PassDatapath(wiring.Component):
    """``o = round_or_floor((x' · y) · 2^−post)``, ``x' = x ≫ pre`` (or rounded), with ``x ≫ pre`` alongside.

    Parameters
    ----------
    x_bits : int
        Signed width of each lane's ``x``; up to :attr:`limbs` ``= limbs_for(x_bits)`` limbs.
    lanes : int
        Elements per beat (≥ 1), each on its own :class:`~mmfree.hw.primitives.Mac16`; lane ``k`` of ``o`` is the
        result of lane ``k`` of ``i``.
    impl : {"model", "ice40", "ecp5"} or None
        The multiplier's implementation.

    Attributes
    ----------
    pre, post : In(8)
        Floor shift of ``x`` and shift of the product, for every lane (held over a vector: from the cycle its first
        beat is offered at ``i`` until its last one has left ``o``; the same for ``round``, ``pre_round`` and
        ``limbs``).
    limbs : In(range(1, limbs + 1))
        Limbs of ``x ≫ pre`` (held over a vector): each beat takes that many cycles, and ``x ≫ pre`` must fit
        ``15·(limbs − 1) + 16`` signed bits in every lane (:func:`limbs_for`).
    round : In(1)
        Round the product's shift to nearest, ties up (``golden.round_shift``), else floor.
    pre_round : In(1)
        The product takes ``x' = sat16(round(x · 2^−pre))`` (ties up, saturated to 16 signed bits) instead of the
        floor ``x ≫ pre``; for one limb (``x ≫ pre`` must fit 16 signed bits). ``o.x`` stays the floor.
    i : In(stream)
        ``{x: ArrayLayout(signed(x_bits), lanes), y: ArrayLayout(signed(16), lanes), last: 1}``.
    o : Out(stream)
        ``{x: ArrayLayout(signed(x_bits), lanes) (x ≫ pre), product: ArrayLayout(signed(x_bits + 16), lanes),
        last: 1}``.

    Timing: one beat (``lanes`` elements) every ``limbs`` cycles while ``o`` is taken; ``o`` offers a beat
    ``limbs + 8`` cycles after it was taken, from registers. Every path runs between registers through at most one
    stage of a variable shift and one carry chain: ``i`` is registered (a producer's memory read and multiplexers come
    straight in); ``x ≫ pre`` is shifted by the multiple of 8 of ``pre``, then by the rest (and rounded, a 16-bit
    increment) into the multiplier stage, which offers one limb a cycle; each product is registered shifted into
    place and summed, from the rounding constant ``2^(post − 1)`` (a register decoded from ``post``), so that the sum
    is floor-shifted by ``post`` in two stages into ``o``. When ``o`` stalls the whole datapath holds.
    """

    def __init__(self, x_bits, *, lanes=1, impl=None):
        check_int("x_bits", x_bits, 2)
        check_int("lanes", lanes, 1)
        check_impl(impl)
        self.x_bits, self.lanes, self._impl = x_bits, lanes, impl
        self.product_bits = x_bits + FACTOR_BITS
        x = data.ArrayLayout(signed(x_bits), lanes)
        super().__init__({
            "pre": In(8), "post": In(8), "round": In(1), "pre_round": In(1),
            "limbs": In(range(1, limbs_for(x_bits) + 1)),
            "i": In(stream.Signature(data.StructLayout({
                "x": x, "y": data.ArrayLayout(signed(FACTOR_BITS), lanes), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "x": x, "product": data.ArrayLayout(signed(self.product_bits), lanes), "last": 1}))),
        })

    @property
    def max_limbs(self):
        return limbs_for(self.x_bits)

    def elaborate(self, platform):
        m = Module()
        n, width = self.max_limbs, self.product_bits
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)

        # the multiplier stage: a beat's limbs go in over `limbs` cycles, the next beat is taken with its last
        busy = Signal()                       # a beat's limbs are going in
        limb = Signal(range(n))
        final = limb == self.limbs - 1        # the top limb, signed
        free = ~busy | final                  # it takes a beat (or a bubble) in this enabled cycle

        # the input register, then the cut's coarse shift: Cat(0, x) ≫ pre is x ≫ pre above bit pre − 1 of x
        offered = {"valid": self.i.valid, **{key: self.i.payload[key] for key in ("x", "y", "last")}}
        held = _stage(offered, "held")
        pre_coarse, pre_fine = _shift_parts(m, self.pre, self.x_bits + 1)
        coarse_x = data.ArrayLayout(signed(self.x_bits + 1), self.lanes)
        entering = {**held, "x": coarse_x(Cat(Cat(C(0, 1), x).as_signed() >> pre_coarse for x in held["x"]))}
        coarse = _stage(entering, "coarse")
        m.d.comb += self.i.ready.eq(en & (~held["valid"] | ~coarse["valid"] | free))
        _advance(m, self.i.ready, [offered, held])
        _advance(m, en & (~coarse["valid"] | free), [entering, coarse])

        # the multiplier stage's beat: each lane's x ≫ pre (loaded with its limbs' low 16 bits below), y and last
        x = Signal(self.o.payload.x.shape())
        y = Signal(self.i.payload.y.shape())
        last = Signal()
        with m.If(en):
            with m.If(free):
                m.d.sync += [busy.eq(coarse["valid"]), limb.eq(0), y.eq(coarse["y"]), last.eq(coarse["last"])]
            with m.Else():
                m.d.sync += limb.eq(limb + 1)

        # the partial products leave the multipliers two enabled cycles later and are registered shifted into place;
        # their limb and beat follow them
        tags = {"valid": busy, "limb": limb, "first": limb == 0, "final": final, "x": x, "last": last}
        mac_in, mac_out, at_partial = (_stage(tags, name) for name in ("mac_in", "mac_out", "partial"))
        _advance(m, en, [tags, mac_in, mac_out, at_partial])

        # the sum starts at the rounding constant 2^(post − 1) (0 for floor; 2^(width − 1) for post > width, which
        # keeps it ≥ 0 so that the shift gives 0), so that the output shift is a floor shift:
        # round(t · 2^−s) = ⌊(t + 2^(s−1)) · 2^−s⌋; held over a vector, it is registered without an enable
        rounding = Signal(width)
        m.d.sync += rounding.eq(Mux(self.round, Cat(*(self.post == k + 1 for k in range(width - 1)),
                                                     self.post >= width), 0))

        # the sum's coarse shift, then its fine shift into the output register, with the complete beats
        post_coarse, post_fine = _shift_parts(m, self.post, width + 1)
        done = {"valid": at_partial["valid"] & at_partial["final"], "x": at_partial["x"], "last": at_partial["last"]}
        at_sum, at_shift = _stage(done, "sum"), _stage(done, "shift")
        _advance(m, en, [done, at_sum, at_shift, {"valid": self.o.valid, "x": self.o.payload.x,
                                                  "last": self.o.payload.last}])

        for lane in range(self.lanes):
            m.submodules[f"mac_{lane}"] = mac = Mac16(a_signed=True, b_signed=True, impl=self._impl)

            # the multiplier stage's element: the cut's fine shift, x ≫ pre and the low 16 bits of x' (rounding adds
            # bit pre − 1 of x; only 2^15 − 1 can then overflow 16 bits)
            cut = coarse["x"][lane] >> pre_fine
            floor = Signal(signed(FACTOR_BITS), name=f"floor_{lane}")
            m.d.comb += floor.eq(cut[1:].as_signed())
            rounded = (floor + (cut[0] & self.pre_round))[:FACTOR_BITS]
            rounded = Mux(rounded[-1] & ~floor[-1], (1 << (FACTOR_BITS - 1)) - 1, rounded)   # 2^15 − 1 stays
            low = Signal(FACTOR_BITS, name=f"low_{lane}")
            with m.If(en & free):
                m.d.sync += [x[lane].eq(cut[1:]), low.eq(rounded)]
            xm = Cat(low, x[lane][FACTOR_BITS:])
            operand = Signal(signed(FACTOR_BITS), name=f"operand_{lane}")
            with m.Switch(limb):
                for k in range(n):
                    with m.Case(k):
                        top = xm[LIMB * k:LIMB * k + FACTOR_BITS].as_signed()
                        below = Cat(xm[LIMB * k:LIMB * (k + 1)], C(0, 1)).as_signed()
                        m.d.comb += operand.eq(top if k == n - 1 else Mux(final, top, below))
            m.d.comb += [mac.en.eq(en), mac.a.eq(operand), mac.b.eq(y[lane])]

            partial = Signal(signed(width), name=f"partial_{lane}")
            with m.If(en):
                with m.Switch(mac_out["limb"]):
                    for k in range(n):
                        with m.Case(k):
                            m.d.sync += partial.eq(mac.o << (LIMB * k))
            acc = Signal(signed(width + 1), name=f"acc_{lane}")
            with m.If(en & at_partial["valid"]):
                m.d.sync += acc.eq(Mux(at_partial["first"], rounding, acc) + partial)
            shifted = Signal(signed(width + 1), name=f"shifted_{lane}")
            with m.If(en):
                m.d.sync += [shifted.eq(acc >> post_coarse), self.o.payload.product[lane].eq(shifted >> post_fine)]
        return m
