"""The matvec of a BITLINEAR: weight words from the weight memory, int8 activations from the q buffer.

A command names a matrix in the weight image (docs/isa.md): its first word ``base``, ``row_groups`` and
``col_groups``. The engine reads word ``base + g·col_groups + j`` together with q-buffer word ``j`` (the
activations of columns ``j·C … j·C + C − 1``) for every row group ``g`` and column group ``j``, feeds them to a
:class:`~mmfree.hw.ternary_matvec.TernaryMatVec` as one beat (``last`` on ``j = col_groups − 1``; the activations
wait in a register while the array decodes the weights), and the array offers each row group's accumulators on
``o``. One beat per cycle while ``o`` is taken; when ``o`` stalls, both
memories hold their outputs (``cs``/``r_en`` low), so no skid buffer is needed. A command is taken when the
previous one has issued its last read.

While no command runs, the load port writes the weight memory (words). The q buffer's load port (words of ``C``
int8, low column first) writes at any time: with two banks (``q_banks``) a command reads the bank it names while the
other is loaded. The read port reads the weight memory at any time too (``r_data`` is the word of the last cycle with
``r_en``, one cycle later, and holds otherwise); while a command runs, a read takes the memory in a cycle where it
holds no beat for the array (``r_ready``), and the command's next read waits a cycle. The sequencer and the link use
these ports.

With a weight stream (``stream_depth`` > 0), words pushed on ``ws`` queue in a FIFO, and a command with ``stream``
set takes its words from the FIFO in order instead of the weight memory (``base`` is then ignored); the read port
takes them too while ``r_stream`` is set (``r_ready`` says whether a read may be issued). A word leaves the FIFO when
it has been used: the FIFO's output holds it until then, so the stream costs no word register.
"""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .primitives import BlockRam
from .ternary_matvec import TernaryMatVec, acc_width, output_layout
from .trit_decoder import TRITS_PER_BYTE
from .weight_memory import WeightMemory

__all__ = ["MatvecEngine", "matvec_command_layout"]


def matvec_command_layout(addr_bits=14, group_bits=16):
    """``base`` (first word), ``row_groups`` and ``col_groups`` (each ≥ 1), ``stream`` (the words come from the weight
    stream), ``q_bank`` (the q-buffer bank of the activations; 0 with one bank)."""
    return data.StructLayout({"base": addr_bits, "row_groups": group_bits, "col_groups": group_bits, "stream": 1,
                              "q_bank": 1})


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
        q-buffer words of a bank (inputs of up to ``q_depth · cols`` elements).
    weight_depth : int
        Words of the weight memory (16 K on the UP5K: its SPRAM).
    q_banks : {1, 2}
        q-buffer banks; with two, bank ``b`` word ``j`` is at q-buffer address ``b · 2^⌈log2 q_depth⌉ + j``.
    stream_depth : int
        Words of the weight stream's FIFO; 0: no weight stream (no ``ws``, ``r_stream``, ``r_ready``,
        ``stream_wait``).
    impl : {"model", "ice40", "ecp5"} or None
        Memory primitives' implementation.

    Attributes
    ----------
    cmd : In(stream.Signature(matvec_command_layout(bits of a word address)))
    o : Out(stream.Signature(output_layout(rows, acc_width)))
    busy : Out(1)
        A command is running (reads not all issued, or beats not all taken by the array).
    w_addr, w_data, w_we : In
        Weight-memory load port (word address below ``weight_depth``, ``8·rows``-bit word); only while not ``busy``.
    r_addr, r_en : In; r_data : Out
        Weight-memory read port (ignored in a cycle that writes); read latency 1. A read is issued only while
        ``r_ready``.
    r_ready : Out(1)
        A read may be issued: the memory holds no beat the array has not taken (for the weight stream: a word is
        there).
    q_addr, q_data, q_we : In
        q-buffer load port (``8·cols``-bit word of int8, column ``c`` at bits ``8c … 8c + 7``; the bank in the top
        address bit with two banks).
    ws : In(stream.Signature(8·rows))
        The weight stream: words into the FIFO.
    r_stream : In(1)
        The read port reads the weight stream.
    stream_wait : Out(1)
        A streamed command waits for a word the FIFO does not have.
    """

    def __init__(self, rows=8, fmt="base3", *, max_len=256, q_depth=256, q_banks=1, weight_depth=16384,
                 stream_depth=0, impl=None):
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 2 or rows % 2:
            raise ValueError(f"rows must be an even int ≥ 2 (a weight word is rows bytes), got {rows!r}")
        if fmt not in ("base3", "2bit"):
            raise ValueError(f"fmt must be 'base3' or '2bit', got {fmt!r}")
        if not isinstance(q_depth, int) or q_depth < 2:
            raise ValueError(f"q_depth must be an int ≥ 2, got {q_depth!r}")
        if q_banks not in (1, 2):
            raise ValueError(f"q_banks must be 1 or 2, got {q_banks!r}")
        if not isinstance(stream_depth, int) or stream_depth < 0 or stream_depth == 1:
            raise ValueError(f"stream_depth must be 0 (no stream) or an int ≥ 2, got {stream_depth!r}")
        self.rows, self.fmt, self.cols = rows, fmt, TRITS_PER_BYTE[fmt]
        self.max_len, self.q_depth, self.stream_depth, self._impl = max_len, q_depth, stream_depth, impl
        self.q_banks = q_banks
        self.weights = WeightMemory(rows // 2, depth=weight_depth, impl=impl)
        addr = range(weight_depth)
        #: words of a q-buffer bank as addressed
        self.q_bank_words = q_depth if q_banks == 1 else 1 << (q_depth - 1).bit_length()
        self.array = TernaryMatVec(rows, self.cols, max_len, fmt=fmt)
        stream_ports = {"ws": In(stream.Signature(8 * rows)), "r_stream": In(1),
                        "stream_wait": Out(1)} if stream_depth else {}
        super().__init__({
            **stream_ports,
            "cmd": In(stream.Signature(matvec_command_layout(Shape.cast(addr).width))),
            "o": Out(stream.Signature(output_layout(rows, acc_width(max_len)))),
            "busy": Out(1),
            "w_addr": In(addr), "w_data": In(8 * rows), "w_we": In(1),
            "r_addr": In(addr), "r_en": In(1), "r_data": Out(8 * rows), "r_ready": Out(1),
            "q_addr": In(range(q_banks * self.q_bank_words)), "q_data": In(8 * self.cols), "q_we": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self.array
        m.submodules.weights = weights = self.weights
        m.submodules.q = q = BlockRam(width=8 * self.cols, depth=self.q_banks * self.q_bank_words, impl=self._impl)
        wiring.connect(m, wiring.flipped(self.o), array.o)

        running = Signal()        # reads remain to be issued
        beat = Signal()           # the memories' outputs hold a beat not yet taken by the array
        beat_stream = Signal()    # … whose word is the weight stream's next
        streaming = Signal()      # the command takes the weight stream
        q_bank = Signal()
        beat_last = Signal()
        addr = Signal.like(self.w_addr)
        col = Signal(16)
        cols_left = Signal(16)    # col_groups of the command
        groups_left = Signal(16)  # row groups still to start, the current one included

        acts = Signal(8 * self.cols)
        acts_valid = Signal()
        take = beat & array.w.ready
        free = ~beat | take        # the memory may read a new word: it holds none the array has not taken
        r_stream = Signal()        # the read port reads the weight stream
        # a read of the read port takes the weight memory this cycle (a write has it while no command runs)
        r_memory = self.r_en & ~r_stream & free & ~(self.w_we & ~running)
        word_ok = Signal(init=1)   # the word of a beat issued now is there (the memory's always is)
        issue = running & free & word_ok & ~r_memory
        last_col = col == cols_left - 1
        word = Signal(8 * self.rows)
        m.d.comb += word.eq(weights.rdata)
        if self.stream_depth:
            # the FIFO's output holds its first word until it is popped, once used: by the array taking its beat,
            # or a cycle after a read of the read port. A word for a beat or a read issued now must be first in the
            # FIFO in the next cycle: one word more if one is popped now.
            m.submodules.stream = ws = fifo.SyncFIFOBuffered(width=8 * self.rows, depth=self.stream_depth)
            r_pop, r_from_stream = Signal(), Signal()
            popping = (take & beat_stream) | r_pop
            there = Mux(popping, ws.level >= 2, ws.level >= 1)
            m.d.comb += [
                ws.w_data.eq(self.ws.payload), ws.w_en.eq(self.ws.valid), self.ws.ready.eq(ws.w_rdy),
                ws.r_en.eq(popping),
                r_stream.eq(self.r_stream),
                word_ok.eq(~streaming | there),
                self.stream_wait.eq(running & streaming & (~beat | take) & ~there),
                self.r_ready.eq(Mux(self.r_stream, there, free)),
                word.eq(Mux(beat_stream, ws.r_data, weights.rdata)),
            ]
            m.d.sync += r_pop.eq(self.r_en & self.r_stream & there & ~running & ~beat)
            with m.If(self.r_en):
                m.d.sync += r_from_stream.eq(self.r_stream)
            read_data = Mux(r_from_stream, ws.r_data, weights.rdata)
        else:
            read_data = weights.rdata
            m.d.comb += self.r_ready.eq(free)

        m.d.comb += [
            self.busy.eq(running | beat | acts_valid),
            self.cmd.ready.eq(~running),
            weights.cs.eq(issue & ~streaming | self.w_we | r_memory),
            weights.we.eq(~running & self.w_we),
            weights.addr.eq(Mux(r_memory, self.r_addr, Mux(running, addr, Mux(self.w_we, self.w_addr, self.r_addr)))),
            self.r_data.eq(read_data),
            weights.wdata.eq(self.w_data),
            q.r_en.eq(issue),
            q.r_addr.eq(col if self.q_banks == 1 else Cat(col[:(self.q_bank_words - 1).bit_length()], q_bank)),
            q.w_addr.eq(self.q_addr),
            q.w_data.eq(self.q_data),
            q.w_en.eq(self.q_we),
            array.w.valid.eq(beat),
            array.w.payload.as_value().eq(Cat(word, beat_last)),
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
            m.d.sync += [beat.eq(1), beat_stream.eq(streaming), beat_last.eq(last_col), addr.eq(addr + 1)]
            with m.If(last_col):
                m.d.sync += [col.eq(0), groups_left.eq(groups_left - 1)]
                with m.If(groups_left == 1):
                    m.d.sync += running.eq(0)
            with m.Else():
                m.d.sync += col.eq(col + 1)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [running.eq(1), addr.eq(self.cmd.payload.base), col.eq(0),
                         cols_left.eq(self.cmd.payload.col_groups), groups_left.eq(self.cmd.payload.row_groups),
                         q_bank.eq(self.cmd.payload.q_bank)]
            if self.stream_depth:
                m.d.sync += streaming.eq(self.cmd.payload.stream)
        return m
