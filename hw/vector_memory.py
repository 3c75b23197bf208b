"""A slot of the core's vector memory: elements written one, two or ``lanes`` at a time, and read so.

The elements live ``lanes`` to a word of a :class:`~mmfree.hw.primitives.BlockRam` (element ``i`` in lane
``i mod lanes`` of word ``⌊i / lanes⌋``) with a write enable per lane, so that a write of one element leaves its
neighbours alone. A read of element ``i`` reads its word and picks the lane by ``i``'s low bits, registered beside
the block's output; the same read offers the whole word, so that a pass reads ``lanes`` consecutive elements per
cycle at an address that is a multiple of ``lanes``, and the pair of lanes holding ``i``, so that the drain's two
vector lanes read two at an even address. Writes take the same shapes: one element, a pair, or a word's lanes. With
``lanes = 1`` it is the block RAM itself.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .checks import check_int
from .primitives import BlockRam

__all__ = ["VectorMemory"]


class VectorMemory(wiring.Component):
    """``depth`` elements of ``width`` bits, read latency 1.

    Parameters
    ----------
    width, depth : int
        Bits of an element and elements held.
    lanes : int
        Elements per word: 1, 2, 4, … (a power of two).
    impl : {"model", "ice40", "ecp5"} or None
        The block RAM's implementation.

    Attributes
    ----------
    w_addr : In(range(depth)); w_data : In(width); w_en : In(1)
        Writes element ``w_addr``.
    r_addr : In(range(depth)); r_en : In(1, init=1)
        Reads element ``r_addr`` and its word.
    r_data : Out(width)
        Element ``r_addr`` of the last read.
    r_lanes : Out(ArrayLayout(width, lanes))
        Elements ``r_addr − r_addr mod lanes`` … ``+ lanes − 1`` of the last read (beyond ``depth``: undefined).
    w_pair : In(ArrayLayout(width, 2)); w_pair_en : In(2)
        With ``lanes ≥ 2``: writes element ``w_addr + j`` (``w_addr`` even) from ``w_pair[j]`` where
        ``w_pair_en[j]``, instead of the one-element write.
    r_pair : Out(ArrayLayout(width, 2))
        With ``lanes ≥ 2``: elements ``r_addr − r_addr mod 2`` and the one after, of the last read.
    w_lanes : In(ArrayLayout(width, lanes)); w_lanes_en : In(lanes)
        With ``lanes ≥ 2``: writes element ``w_addr + j`` (``w_addr`` a multiple of ``lanes``) from ``w_lanes[j]``
        where ``w_lanes_en[j]``, instead of the other writes.
    """

    def __init__(self, *, width, depth, lanes=1, impl=None):
        check_int("lanes", lanes, 1)
        exact_log2(lanes)
        self.lanes = lanes
        self.ram = BlockRam(width=width * lanes, depth=max(2, -(-depth // lanes)), granularity=width, impl=impl)
        pairs = {"w_pair": In(data.ArrayLayout(width, 2)), "w_pair_en": In(2),
                 "r_pair": Out(data.ArrayLayout(width, 2)),
                 "w_lanes": In(data.ArrayLayout(width, lanes)), "w_lanes_en": In(lanes)} if lanes > 1 else {}
        super().__init__({
            "w_addr": In(range(depth)), "w_data": In(width), "w_en": In(1),
            "r_addr": In(range(depth)), "r_en": In(1, init=1),
            "r_data": Out(width), "r_lanes": Out(data.ArrayLayout(width, lanes)),
            **pairs,
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = ram = self.ram
        low = exact_log2(self.lanes)
        width = len(self.w_data)
        m.d.comb += [ram.w_addr.eq(self.w_addr >> low), ram.r_addr.eq(self.r_addr >> low), ram.r_en.eq(self.r_en),
                     self.r_lanes.eq(ram.r_data)]
        if self.lanes == 1:
            m.d.comb += [ram.w_en.eq(self.w_en), ram.w_data.eq(self.w_data), self.r_data.eq(ram.r_data)]
            return m
        pair, word = self.w_pair_en.any(), self.w_lanes_en.any()
        m.d.comb += [
            ram.w_en.eq(Mux(word, self.w_lanes_en,
                            Mux(pair, self.w_pair_en << Cat(C(0, 1), self.w_addr[1:low]),
                                self.w_en << self.w_addr[:low]))),
            ram.w_data.eq(Mux(word, self.w_lanes,
                              Mux(pair, self.w_pair.as_value().replicate(self.lanes // 2),
                                  self.w_data.replicate(self.lanes)))),
        ]
        lane = Signal(low, name="r_lane")
        with m.If(self.r_en):
            m.d.sync += lane.eq(self.r_addr[:low])
        m.d.comb += [self.r_data.eq(ram.r_data.word_select(lane, width)),
                     self.r_pair.eq(ram.r_data.word_select(lane[1:], 2 * width) if low > 1 else ram.r_data)]
        return m
