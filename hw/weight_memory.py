"""The weight memory: single-port RAM banks read together as one wide word per cycle.

On the iCE40UP5K: four ``SB_SPRAM256KA`` (:class:`~mmfree.hw.primitives.SinglePortRam`, 16 K × 16 each) make
16 K words of 64 bits, bank ``b`` holding bits ``16b … 16b + 15`` of a word: the layout of
:mod:`mmfree.host.compiler`'s weight image (docs/isa.md). One port, read latency 1; while ``cs`` is low ``rdata``
holds (the cells' behaviour), so a reader stalled by its consumer keeps its word without a buffer. Elsewhere (the
ECP5) the banks are block-RAM memories of any depth.

Registered (``registered=True``, for clocks the block RAM's read path does not reach): the request (address, chip
select, write enable, write data) passes a register before the banks, a copy of it for each bank
(:func:`~mmfree.hw.primitives.replica`: on the ECP5, one register would drive every block's address across the die);
the memory is split into segments of :data:`SEGMENT_WORDS` words (one ``DP16KD`` deep on the ECP5), each segment's
word read passes a register of its own beside its blocks, and the word chosen among them passes one more. So no path
runs from a requester's logic into the blocks, from a block's output into a multiplexer, or through the multiplexer
into its reader's logic. A read then takes 4 cycles (:attr:`WeightMemory.read_latency`) and a write lands a cycle
later; ``rdata`` still holds between reads.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .primitives import SinglePortRam, replica

__all__ = ["BANK_WIDTH", "SEGMENT_WORDS", "WeightMemory", "read_latency"]

BANK_WIDTH = 16
#: words of a segment of a registered weight memory (the depth of an ECP5 DP16KD at 4 bits wide)
SEGMENT_WORDS = 4096


def read_latency(registered):
    """Cycles from a read's access cycle to its word on ``rdata``: 4 registered (the request, the segments' words
    and the word), else 1."""
    return 4 if registered else 1


class WeightMemory(wiring.Component):
    """``banks`` SPRAM banks as one memory of ``16·banks``-bit words.

    Parameters
    ----------
    banks : int
        SPRAM cells side by side (4 on the UP5K: 64-bit words).
    depth : int
        Words (16 K on the UP5K, the SPRAM's).
    registered : bool
        Register the request, each segment's word and the word read (read latency 4, else 1).
    impl : {"model", "ice40", "ecp5"} or None
        Passed to :class:`~mmfree.hw.primitives.SinglePortRam`.

    Attributes
    ----------
    addr : In(range(depth))
    cs : In(1)
        Access this cycle; without it ``rdata`` holds.
    we : In(1)
        Write ``wdata`` into the banks set in ``wbanks``, else read.
    wbanks : In(banks)
        The banks a write writes: bit ``b`` for bits ``16b … 16b + 15`` of the word (all of them unless driven).
    wdata : In(16·banks)
    rdata : Out(16·banks)
        The word of the access cycle :attr:`read_latency` cycles earlier, held until the next read's; undefined
        after a write until the next read.
    """

    def __init__(self, banks=4, *, depth=SinglePortRam.DEPTH, registered=False, impl=None):
        if not isinstance(banks, int) or isinstance(banks, bool) or banks < 1:
            raise ValueError(f"banks must be a positive int, got {banks!r}")
        if not isinstance(registered, bool):
            raise TypeError(f"registered must be a bool, got {registered!r}")
        self.banks, self.depth, self.registered, self._impl = banks, depth, registered, impl
        # the segments' cells, ``[segment][bank]`` (one segment of the whole depth when not registered)
        starts = range(0, depth, SEGMENT_WORDS) if registered else [0]
        self._segments = [[SinglePortRam(min(depth - start, SEGMENT_WORDS) if registered else depth, impl=impl)
                           for _ in range(banks)] for start in starts]
        super().__init__({
            "addr": In(range(depth)),
            "cs": In(1),
            "we": In(1),
            "wbanks": In(banks, init=(1 << banks) - 1),
            "wdata": In(BANK_WIDTH * banks),
            "rdata": Out(BANK_WIDTH * banks),
        })

    @property
    def read_latency(self):
        """Cycles from an access cycle with ``cs & ~we`` to its word on ``rdata``."""
        return read_latency(self.registered)

    def elaborate(self, platform):
        m = Module()
        registered = self.registered
        segment_bits = (SEGMENT_WORDS - 1).bit_length()
        words = [Signal.like(self.rdata, name=f"word{s}") for s in range(len(self._segments))]
        for b in range(self.banks):
            bits = slice(BANK_WIDTH * b, BANK_WIDTH * (b + 1))
            request = {"addr": self.addr, "cs": self.cs, "we": self.we, "wbank": self.wbanks[b],
                       "wdata": self.wdata[bits]}
            if registered:   # each bank's own copy of the request, beside its cells
                request = {name: replica(m, port, name=f"{name}_b{b}", impl=self._impl, platform=platform)
                           for name, port in request.items()}
            segment = request["addr"][segment_bits:] if registered else C(0)
            for s, cells in enumerate(self._segments):
                bank = cells[b]
                m.submodules[f"bank{b}" if len(self._segments) == 1 else f"segment{s}_bank{b}"] = bank
                m.d.comb += [
                    bank.addr.eq(request["addr"]),
                    bank.cs.eq(request["cs"] & (segment == s)),
                    bank.we.eq(request["we"]),
                    bank.wmask.eq(request["wbank"].replicate(4)),
                    bank.wdata.eq(request["wdata"]),
                    words[s][bits].eq(bank.rdata),
                ]
        if not registered:
            m.d.comb += self.rdata.eq(words[0])
            return m

        # the access cycle's read and segment, a cycle later (the cells' words) and two (the segments' registers)
        read = [Signal(name=f"read{k}") for k in range(1, 4)]
        chosen = [Signal(range(len(words)), name=f"segment{k}") for k in range(1, 4)]
        m.d.sync += [read[0].eq(self.cs & ~self.we), chosen[0].eq(self.addr[segment_bits:])]
        m.d.sync += [reg.eq(prev) for regs in (read, chosen) for reg, prev in zip(regs[1:], regs)]
        held = [Signal.like(word, name=f"held{s}") for s, word in enumerate(words)]
        m.d.sync += [reg.eq(word) for reg, word in zip(held, words)]
        with m.If(read[2]):
            with m.Switch(chosen[2]):
                for s, reg in enumerate(held):
                    with m.Case(s):
                        m.d.sync += self.rdata.eq(reg)
        return m
