"""The core's pass datapath: ``((x ≫ pre) · y)`` shifted right by ``post`` (rounded or floor), one element every
few cycles, on one 16 × 16 multiplier.

The core streams vectors through it to form ``p = v ⊙ c``, ``u = ((v ≫ k) · pre) ≫ pre_shift`` and the embedding
row in the residual format (docs/core.md). The product is exact: ``x ≫ pre`` is cut into :data:`LIMB`-bit limbs from
bit 0 up (all but the top one unsigned, so that each fits a signed 16-bit port; the top one signed), each limb times
``y`` is one partial product on a :class:`~mmfree.hw.primitives.Mac16` (signed × signed), and the partial products
are summed with their shifts as they leave the multiplier.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .primitives import IMPLS, Mac16

__all__ = ["LIMB", "limbs_for", "PassDatapath"]

#: bits of a multiplier limb below the top one
LIMB = 15
#: signed bits of the second operand ``y`` (one multiplier port)
FACTOR_BITS = 16


def limbs_for(bits):
    """Limbs of a signed ``bits``-bit ``x``: 15-bit unsigned ones, then a signed 16-bit top one."""
    return 1 + max(0, -(-(bits - FACTOR_BITS) // LIMB))


class PassDatapath(wiring.Component):
    """``o = round_or_floor((x' · y) · 2^−post)``, ``x' = x ≫ pre`` (or rounded), with ``x ≫ pre`` alongside.

    Parameters
    ----------
    x_bits : int
        Signed width of ``x``; up to :attr:`limbs` ``= limbs_for(x_bits)`` limbs.
    impl : {"model", "ice40", "ecp5"} or None
        The multiplier's implementation.

    Attributes
    ----------
    pre, post : In(8)
        Floor shift of ``x`` and shift of the product (held over a vector).
    limbs : In(range(1, limbs + 1))
        Limbs of ``x ≫ pre`` (held over a vector): each element takes that many cycles, and ``x ≫ pre`` must fit
        ``15·(limbs − 1) + 16`` signed bits (:func:`limbs_for`).
    round : In(1)
        Round the product's shift to nearest, ties up (``golden.round_shift``), else floor.
    pre_round : In(1)
        The product takes ``x' = sat16(round(x · 2^−pre))`` (ties up, saturated to 16 signed bits) instead of the
        floor ``x ≫ pre``; for one limb (``x ≫ pre`` must fit 16 signed bits). ``o.x`` stays the floor.
    i : In(stream)
        ``{x: signed(x_bits), y: signed(16), last}``.
    o : Out(stream)
        ``{x: signed(x_bits) (x ≫ pre), product: signed(x_bits + 16), last}``.

    Timing: one element every ``limbs`` cycles while ``o`` is taken; ``o`` offers an element ``limbs + 4`` cycles
    after it was taken, from registers. ``i`` is registered before the shift (a producer's memory read and
    multiplexers come straight in). When ``o`` stalls the whole datapath holds.
    """

    def __init__(self, x_bits, *, impl=None):
        check_int("x_bits", x_bits, 2)
        if impl is not None and impl not in IMPLS:
            raise ValueError(f"impl must be None or one of {list(IMPLS)}, got {impl!r}")
        self.x_bits, self._impl = x_bits, impl
        self.product_bits = x_bits + FACTOR_BITS
        super().__init__({
            "pre": In(8), "post": In(8), "round": In(1), "pre_round": In(1),
            "limbs": In(range(1, limbs_for(x_bits) + 1)),
            "i": In(stream.Signature(data.StructLayout({"x": signed(x_bits), "y": signed(FACTOR_BITS), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "x": signed(x_bits), "product": signed(self.product_bits), "last": 1}))),
        })

    @property
    def max_limbs(self):
        return limbs_for(self.x_bits)

    def elaborate(self, platform):
        m = Module()
        n, width = self.max_limbs, self.product_bits
        m.submodules.mac = mac = Mac16(a_signed=True, b_signed=True, impl=self._impl)

        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), mac.en.eq(en)]

        # the multiplier stage: an element's limbs go in over `limbs` cycles, the next element is taken with its last
        busy = Signal()                       # an element's limbs are going in
        x = Signal(signed(self.x_bits))       # x ≫ pre
        xm = Signal(signed(self.x_bits))      # the multiplier's x'
        y = Signal(signed(FACTOR_BITS))
        last = Signal()
        limb = Signal(range(n))
        final = limb == self.limbs - 1        # the top limb, signed
        take = en & (~busy | final)

        # the input register
        held = Signal()
        held_x = Signal(signed(self.x_bits))
        held_y = Signal(signed(FACTOR_BITS))
        held_last = Signal()
        m.d.comb += self.i.ready.eq(en & (~held | take))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(1), held_x.eq(self.i.payload.x), held_y.eq(self.i.payload.y),
                         held_last.eq(self.i.payload.last)]
        with m.Elif(held & take):
            m.d.sync += held.eq(0)

        # rounding the cut adds bit pre − 1 of x to its floor; only 2^15 − 1 can then overflow 16 bits
        floor = Signal(signed(self.x_bits))
        up = Signal()
        m.d.comb += [floor.eq(held_x >> self.pre),
                     up.eq((Cat(C(0, 1), held_x).as_signed() >> self.pre)[0] & self.pre_round)]
        with m.If(en):
            with m.If(held & take):
                m.d.sync += [x.eq(floor), xm.eq(Mux(up & (floor != (1 << (FACTOR_BITS - 1)) - 1), floor + 1, floor)),
                             y.eq(held_y), last.eq(held_last),
                             busy.eq(1), limb.eq(0)]
            with m.Elif(busy & final):
                m.d.sync += busy.eq(0)
            with m.Elif(busy):
                m.d.sync += limb.eq(limb + 1)
        operand = Signal(signed(FACTOR_BITS))
        with m.Switch(limb):
            for k in range(n):
                with m.Case(k):
                    top = xm[LIMB * k:LIMB * k + FACTOR_BITS].as_signed()
                    if k == n - 1:
                        m.d.comb += operand.eq(top)
                    else:
                        m.d.comb += operand.eq(Mux(final, top, Cat(xm[LIMB * k:LIMB * (k + 1)], C(0, 1)).as_signed()))
        m.d.comb += [mac.a.eq(operand), mac.b.eq(y)]

        # the partial products leave the multiplier two enabled cycles later, with their limb index and element
        delay = [(Signal(name=f"d{d}_valid"), Signal(range(n), name=f"d{d}_limb"), Signal(name=f"d{d}_final"),
                  Signal(signed(self.x_bits), name=f"d{d}_x"), Signal(name=f"d{d}_last")) for d in range(2)]
        with m.If(en):
            m.d.sync += [a.eq(b) for a, b in zip(delay[0], (busy, limb, final, x, last))]
            m.d.sync += [a.eq(b) for a, b in zip(delay[1], delay[0])]
        valid_d, limb_d, final_d, x_d, last_d = delay[1]
        acc = Signal(signed(width))
        partial = Signal(signed(width))
        with m.Switch(limb_d):
            for k in range(n):
                with m.Case(k):
                    m.d.comb += partial.eq(mac.o << (LIMB * k))
        total = Signal(signed(width))
        m.d.comb += total.eq(Mux(limb_d == 0, 0, acc) + partial)

        # the shift, into the output register: rounding adds bit post − 1 of the product to its floor shift
        # (⌊(t + 2^(s−1)) / 2^s⌋ = ⌊t / 2^s⌋ + bit s − 1 of t, two's complement, sign bits included)
        carry = (Cat(C(0, 1), total).as_signed() >> self.post)[0] & self.round
        with m.If(en):
            m.d.sync += self.o.valid.eq(0)
            with m.If(valid_d):
                m.d.sync += acc.eq(total)
                with m.If(final_d):
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.product.eq((total >> self.post) + carry),
                                 self.o.payload.x.eq(x_d), self.o.payload.last.eq(last_d)]
        return m
