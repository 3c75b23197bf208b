"""Elements of a vector read and written one or two at a time, the pair at any address.

Element ``i`` lives in bank ``i mod 2`` at word ``⌊i / 2⌋``, each bank a :class:`~mmfree.hw.primitives.BlockRam` with
its own address: the pair ``a``, ``a + 1`` is word ``⌊(a + 1) / 2⌋`` of bank 0 and word ``⌊a / 2⌋`` of bank 1, so that
an odd ``a`` (a layer's recurrent state at ``layer · H`` with an odd ``H``) takes one read like an even one.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .primitives import BlockRam

__all__ = ["PairMemory"]


class PairMemory(wiring.Component):
    """``depth`` elements of ``width`` bits, read latency 1; the ports of a
    :class:`~mmfree.hw.vector_memory.VectorMemory` with pairs, without its ``r_lanes``, and with pairs at any address.

    Parameters
    ----------
    width, depth : int
        Bits of an element and elements held.
    impl : {"model", "ice40", "ecp5"} or None
        The block RAMs' implementation.

    Attributes
    ----------
    w_addr : In(range(depth)); w_data : In(width); w_en : In(1)
        Writes element ``w_addr``.
    w_pair : In(ArrayLayout(width, 2)); w_pair_en : In(2)
        Writes element ``w_addr + j`` from ``w_pair[j]`` where ``w_pair_en[j]``, instead of the one-element write.
    r_addr : In(range(depth)); r_en : In(1, init=1)
        Reads elements ``r_addr`` and ``r_addr + 1``.
    r_data : Out(width); r_pair : Out(ArrayLayout(width, 2))
        Element ``r_addr``, and it with the next (beyond ``depth``: undefined), of the last read.
    """

    def __init__(self, *, width, depth, impl=None):
        self.banks = [BlockRam(width=width, depth=max(2, (depth + 1 - bank) // 2), impl=impl) for bank in range(2)]
        super().__init__({
            "w_addr": In(range(depth)), "w_data": In(width), "w_en": In(1),
            "w_pair": In(data.ArrayLayout(width, 2)), "w_pair_en": In(2),
            "r_addr": In(range(depth)), "r_en": In(1, init=1),
            "r_data": Out(width), "r_pair": Out(data.ArrayLayout(width, 2)),
        })

    def elaborate(self, platform):
        m = Module()
        for bank, ram in enumerate(self.banks):
            m.submodules[f"bank{bank}"] = ram
        pair = self.w_pair_en.any()
        w_odd = self.w_addr[0]
        # element w_addr (lane 0 of a pair, or the single element) goes to bank w_addr mod 2, lane 1 to the other
        lane_of = [Mux(w_odd, 1, 0), Mux(w_odd, 0, 1)]   # bank → the pair's lane it takes
        for bank, ram in enumerate(self.banks):
            mine = lane_of[bank]
            m.d.comb += [
                ram.w_addr.eq((self.w_addr + (1 - bank) * w_odd) >> 1),
                ram.w_data.eq(Mux(pair, self.w_pair[mine], self.w_data)),
                ram.w_en.eq(Mux(pair, self.w_pair_en.bit_select(mine, 1), self.w_en & (w_odd == bank))),
                ram.r_addr.eq((self.r_addr + (1 - bank) * self.r_addr[0]) >> 1),
                ram.r_en.eq(self.r_en),
            ]
        r_odd = Signal()
        with m.If(self.r_en):
            m.d.sync += r_odd.eq(self.r_addr[0])
        even, odd = (ram.r_data for ram in self.banks)
        m.d.comb += [self.r_pair[0].eq(Mux(r_odd, odd, even)), self.r_pair[1].eq(Mux(r_odd, even, odd)),
                     self.r_data.eq(self.r_pair[0])]
        return m
