"""The matvec of a BITLINEAR: weight words from the weight memory, int8 activations from the q buffer.

A command names a matrix in the weight image (docs/isa.md): its first word ``base``, ``row_groups`` and
``col_groups``. The engine reads word ``base + g·col_groups + j`` together with q-buffer word ``j`` (the
activations of columns ``j·C … j·C + C − 1``) for every row group ``g`` and column group ``j``, feeds them to a
:class:`~mmfree.hw.ternary_matvec.TernaryMatVec` as one beat (``last`` on ``j = col_groups − 1``; the activations
wait in a register while the array decodes the weights), and the array offers each row group's accumulators on
``o``. One beat per cycle while ``o`` is taken; when ``o`` stalls, both
memories hold their outputs (``cs``/``r_en`` low), so no skid buffer is needed. A command is taken when the
previous one has issued its last read.

While no command runs, the load ports write the weight memory (words) and the q buffer (words of ``C`` int8, low
column first), and the read port reads the weight memory (``r_data`` is the word of the last cycle with ``r_en``,
one cycle later, and holds otherwise); the sequencer and the link use them.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .primitives import BlockRam
from .ternary_matvec import TernaryMatVec, acc_width, output_layout
from .trit_decoder import TRITS_PER_BYTE
from .weight_memory import WeightMemory

__all__ = ["MatvecEngine", "matvec_command_layout"]


def matvec_command_layout(addr_bits=14, group_bits=16):
    """``base`` (first word), ``row_groups`` and ``col_groups`` (each ≥ 1)."""
    return data.StructLayout({"base": addr_bits, "row_groups": group_bits, "col_groups": group_bits})


class MatvecEngine(wiring.Component):
    """Weight memory + q buffer + ternary array.

    Parameters
    ----------
    rows : int
        Rows per row group; one weight word is ``rows`` bytes (a multiple of 2: ``rows / 2`` SPRAM banks).
    fmt : {"base3", "2bit"}
        Trit format of the weight bytes (``cols`` = 5 or 4 trits per byte).
    max_len : int
        Longest input the accumulators hold exactly (:class:`~mmfree.hw.ternary_matvec.TernaryMatVec`).
    q_depth : int
        q-buffer words (inputs of up to ``q_depth · cols`` elements).
    impl : {"model", "ice40", "ecp5"} or None
        Memory primitives' implementation.

    Attributes
    ----------
    cmd : In(stream.Signature(matvec_command_layout()))
    o : Out(stream.Signature(output_layout(rows, acc_width)))
    busy : Out(1)
        A command is running (reads not all issued, or beats not all taken by the array).
    w_addr, w_data, w_we : In
        Weight-memory load port (14-bit word address, ``8·rows``-bit word); only while not ``busy``.
    r_addr, r_en : In; r_data : Out
        Weight-memory read port, only while not ``busy`` and not writing (ignored while the memory holds a word for
        the array); read latency 1.
    q_addr, q_data, q_we : In
        q-buffer load port (``8·cols``-bit word of int8, column ``c`` at bits ``8c … 8c + 7``).
    """

    def __init__(self, rows=8, fmt="base3", *, max_len=256, q_depth=256, impl=None):
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 2 or rows % 2:
            raise ValueError(f"rows must be an even int ≥ 2 (a weight word is rows bytes), got {rows!r}")
        if fmt not in ("base3", "2bit"):
            raise ValueError(f"fmt must be 'base3' or '2bit', got {fmt!r}")
        if not isinstance(q_depth, int) or q_depth < 2:
            raise ValueError(f"q_depth must be an int ≥ 2, got {q_depth!r}")
        self.rows, self.fmt, self.cols = rows, fmt, TRITS_PER_BYTE[fmt]
        self.max_len, self.q_depth, self._impl = max_len, q_depth, impl
        self.array = TernaryMatVec(rows, self.cols, max_len, fmt=fmt)
        super().__init__({
            "cmd": In(stream.Signature(matvec_command_layout())),
            "o": Out(stream.Signature(output_layout(rows, acc_width(max_len)))),
            "busy": Out(1),
            "w_addr": In(14), "w_data": In(8 * rows), "w_we": In(1),
            "r_addr": In(14), "r_en": In(1), "r_data": Out(8 * rows),
            "q_addr": In(range(q_depth)), "q_data": In(8 * self.cols), "q_we": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self.array
        m.submodules.weights = weights = WeightMemory(self.rows // 2, impl=self._impl)
        m.submodules.q = q = BlockRam(width=8 * self.cols, depth=self.q_depth, impl=self._impl)
        wiring.connect(m, wiring.flipped(self.o), array.o)

        running = Signal()        # reads remain to be issued
        beat = Signal()           # the memories' outputs hold a beat not yet taken by the array
        beat_last = Signal()
        addr = Signal(14)
        col = Signal(16)
        cols_left = Signal(16)    # col_groups of the command
        groups_left = Signal(16)  # row groups still to start, the current one included

        acts = Signal(8 * self.cols)
        acts_valid = Signal()
        take = beat & array.w.ready
        issue = running & (~beat | take)
        last_col = col == cols_left - 1

        m.d.comb += [
            self.busy.eq(running | beat | acts_valid),
            self.cmd.ready.eq(~running),
            weights.cs.eq(issue | self.w_we | self.r_en & ~running & ~beat),
            weights.we.eq(~running & self.w_we),
            weights.addr.eq(Mux(running, addr, Mux(self.w_we, self.w_addr, self.r_addr))),
            self.r_data.eq(weights.rdata),
            weights.wdata.eq(self.w_data),
            q.r_en.eq(issue),
            q.r_addr.eq(col),
            q.w_addr.eq(self.q_addr),
            q.w_data.eq(self.q_data),
            q.w_en.eq(self.q_we),
            array.w.valid.eq(beat),
            array.w.payload.as_value().eq(Cat(weights.rdata, beat_last)),
        ]
        # the array joins activations with weights after its decoders' register stage: the activations of a beat
        # wait in a register of their own while its weights are decoded
        m.d.comb += [array.a.valid.eq(acts_valid), array.a.payload.as_value().eq(acts)]
        with m.If(array.a.valid & array.a.ready):
            m.d.sync += acts_valid.eq(0)
        with m.If(take):
            m.d.sync += [acts.eq(q.r_data), acts_valid.eq(1)]
        with m.If(take):
            m.d.sync += beat.eq(0)
        with m.If(issue):
            m.d.sync += [beat.eq(1), beat_last.eq(last_col), addr.eq(addr + 1)]
            with m.If(last_col):
                m.d.sync += [col.eq(0), groups_left.eq(groups_left - 1)]
                with m.If(groups_left == 1):
                    m.d.sync += running.eq(0)
            with m.Else():
                m.d.sync += col.eq(col + 1)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [running.eq(1), addr.eq(self.cmd.payload.base), col.eq(0),
                         cols_left.eq(self.cmd.payload.col_groups), groups_left.eq(self.cmd.payload.row_groups)]
        return m
