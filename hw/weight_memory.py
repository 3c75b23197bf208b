"""The weight memory: single-port RAM banks read together as one wide word per cycle.

On the iCE40UP5K: four ``SB_SPRAM256KA`` (:class:`~mmfree.hw.primitives.SinglePortRam`, 16 K × 16 each) make
16 K words of 64 bits, bank ``b`` holding bits ``16b … 16b + 15`` of a word: the layout of
:mod:`mmfree.host.compiler`'s weight image (docs/isa.md). One port, read latency 1; while ``cs`` is low ``rdata``
holds (the cells' behaviour), so a reader stalled by its consumer keeps its word without a buffer. Elsewhere (the
ECP5) the banks are block-RAM memories of any depth.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .primitives import SinglePortRam

__all__ = ["WeightMemory"]

BANK_WIDTH = 16


class WeightMemory(wiring.Component):
    """``banks`` SPRAM banks as one memory of ``16·banks``-bit words.

    Parameters
    ----------
    banks : int
        SPRAM cells side by side (4 on the UP5K: 64-bit words).
    depth : int
        Words (16 K on the UP5K, the SPRAM's).
    impl : {"model", "ice40", "ecp5"} or None
        Passed to :class:`~mmfree.hw.primitives.SinglePortRam`.

    Attributes
    ----------
    addr : In(range(depth))
    cs : In(1)
        Access this cycle; without it ``rdata`` holds.
    we : In(1)
        Write ``wdata`` (all banks), else read.
    wdata : In(16·banks)
    rdata : Out(16·banks)
        The word read in the previous access cycle; undefined after a write until the next read.
    """

    def __init__(self, banks=4, *, depth=SinglePortRam.DEPTH, impl=None):
        if not isinstance(banks, int) or isinstance(banks, bool) or banks < 1:
            raise ValueError(f"banks must be a positive int, got {banks!r}")
        self.banks, self.depth, self._impl = banks, depth, impl
        self._cells = [SinglePortRam(depth, impl=impl) for _ in range(banks)]
        super().__init__({
            "addr": In(range(depth)),
            "cs": In(1),
            "we": In(1),
            "wdata": In(BANK_WIDTH * banks),
            "rdata": Out(BANK_WIDTH * banks),
        })

    def elaborate(self, platform):
        m = Module()
        for b, bank in enumerate(self._cells):
            m.submodules[f"bank{b}"] = bank
            m.d.comb += [
                bank.addr.eq(self.addr),
                bank.cs.eq(self.cs),
                bank.we.eq(self.we),
                bank.wmask.eq(0b1111),
                bank.wdata.eq(self.wdata[BANK_WIDTH * b:BANK_WIDTH * (b + 1)]),
                self.rdata[BANK_WIDTH * b:BANK_WIDTH * (b + 1)].eq(bank.rdata),
            ]
        return m
