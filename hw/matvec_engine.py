"""The matvec of a BITLINEAR: weight words from the weight memory, int8 activations from the q buffer.

A command names a matrix in the weight image (docs/isa.md): its first word ``base``, ``row_groups`` and
``col_groups``. The engine reads word ``base + g·col_groups + j`` together with q-buffer word ``j`` (the
activations of columns ``j·C … j·C + C − 1``) for every row group ``g`` and column group ``j`` and queues them as
one beat in a FIFO, from which a :class:`~mmfree.hw.ternary_matvec.TernaryMatVec` takes them (``last`` on
``j = col_groups − 1``; the activations wait in a register while the array decodes the weights); the array offers
each row group's accumulators on ``o``. Reads are issued against credits, one per free FIFO entry, so the decision
to read depends on registers of the engine alone, never on the array's or its consumer's ``ready``: one beat per
cycle while ``o`` is taken, with the weight memory's read latency (1, or 4 with ``registered_weights``) hidden. A
command is taken when the previous one has issued its last read.

While no command runs, the load port writes the weight memory (words, or with ``port_bits`` parts of words: a core
whose image is in 64-bit words and whose words are wider loads and reads them as they are in the image). The q
buffer's load port (words of ``C`` int8, low column first) writes at any time: with two banks (``q_banks``) a command
reads the bank it names while the other is loaded. The read port reads the weight memory at any time too, before the
command's reads: the word comes on ``r_data`` with ``r_valid``, :func:`read_port_latency` cycles after ``r_en``.
With ``port_bits``, a copy of the word its last read took from the memory (the line) answers the reads of that word's
parts without the memory: a run of parts of one word takes the memory, and so a running command, one cycle. The
sequencer and the link use these ports.

With a weight stream (``stream_depth`` > 0), words pushed on ``ws`` queue in a FIFO, and a command with ``stream``
set takes its words from the FIFO in order instead of the weight memory (``base`` is then ignored); the read port
takes them too while ``r_stream`` is set and no command runs (``r_ready`` says whether a read may be issued). A
word leaves the FIFO when its beat or read is issued and travels with it.
"""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .primitives import BlockRam
from .ternary_matvec import TernaryMatVec, acc_width, output_layout
from .trit_decoder import TRITS_PER_BYTE
from .weight_memory import BANK_WIDTH, WeightMemory, read_latency

__all__ = ["MatvecEngine", "matvec_command_layout", "read_port_latency"]


def read_port_latency(registered, parts):
    """Cycles from a read on the engine's read port to its word on ``r_data``: the weight memory's
    (:func:`~mmfree.hw.weight_memory.read_latency`), and one more with ``parts`` > 1 parts of a word (the line's
    register)."""
    return read_latency(registered) + (parts > 1)


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
    registered_weights : bool
        The weight memory's request and word pass registers (:class:`~mmfree.hw.weight_memory.WeightMemory`), and
        so do the array's decoded trits (:class:`~mmfree.hw.ternary_matvec.TernaryMatVec`'s
        ``registered_decoders``).
    q_banks : {1, 2}
        q-buffer banks; with two, bank ``b`` word ``j`` is at q-buffer address ``b · 2^⌈log2 q_depth⌉ + j``.
    stream_depth : int
        Words of the weight stream's FIFO; 0: no weight stream (no ``ws``, ``r_stream``, ``r_ready``,
        ``stream_wait``).
    decoder_table : {"block", "logic"}
        Where the base-3 decoders' tables live (:class:`~mmfree.hw.trit_decoder.TritDecoder`'s ``table``).
    port_bits : int or None
        Width of the load and read ports, ``8·rows`` (whole words, the default) or that divided by a power of two
        into parts of whole 16-bit banks: the ports and the commands' ``base`` then address parts, part ``k`` of word
        ``w`` at ``w · parts + k`` (bits ``port_bits · k …`` of the word), and a command's ``base`` is a multiple of
        ``parts``. Not with a weight stream.
    impl : {"model", "ice40", "ecp5"} or None
        Memory primitives' implementation.

    Attributes
    ----------
    cmd : In(stream.Signature(matvec_command_layout(bits of a port address)))
    o : Out(stream.Signature(output_layout(rows, acc_width)))
    busy : Out(1)
        A command is running (reads not all issued, or beats not all taken by the array).
    w_addr, w_data, w_we : In
        Weight-memory load port (address below ``weight_depth · parts``, ``port_bits``-bit data); only while not
        ``busy``.
    r_addr, r_en : In; r_data, r_valid : Out
        Weight-memory read port (ignored in a cycle that writes): the word read in a cycle with ``r_en`` is on
        ``r_data`` while ``r_valid``, :func:`read_port_latency` cycles later; after that ``r_data`` holds until the
        memory's next read (a command's included; with ``port_bits``, until the port's next read). A read is issued
        only while ``r_ready``.
    r_ready : Out(1)
        A read may be issued (always, from the weight memory; from the weight stream: a word is there and no command
        runs).
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
                 registered_weights=False, decoder_table="block", stream_depth=0, port_bits=None, impl=None):
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
        word_bits = 8 * rows
        port_bits = word_bits if port_bits is None else port_bits
        if not isinstance(port_bits, int) or isinstance(port_bits, bool):
            raise TypeError(f"port_bits must be an int or None, got {port_bits!r}")
        parts = word_bits // port_bits if port_bits > 0 else 0
        if port_bits % 16 or parts * port_bits != word_bits or parts & (parts - 1):
            raise ValueError(f"port_bits must be the word's {word_bits} bits divided by a power of two into whole "
                             f"16-bit banks, got {port_bits!r}")
        if parts > 1 and stream_depth:
            raise ValueError("a weight stream takes whole words: port_bits must be 8 · rows with stream_depth")
        self.port_bits, self.parts = port_bits, parts
        self.rows, self.fmt, self.cols = rows, fmt, TRITS_PER_BYTE[fmt]
        self.max_len, self.q_depth, self.stream_depth, self._impl = max_len, q_depth, stream_depth, impl
        self.q_banks = q_banks
        self.weights = WeightMemory(rows // 2, depth=weight_depth, registered=registered_weights, impl=impl)
        #: beats in flight or queued at most: enough to issue one per cycle (the read's latency, the FIFO's two
        #: cycles to its output and the credit's return)
        self.beat_depth = self.weights.read_latency + 3
        addr = range(weight_depth * parts)
        #: words of a q-buffer bank as addressed
        self.q_bank_words = q_depth if q_banks == 1 else 1 << (q_depth - 1).bit_length()
        self.array = TernaryMatVec(rows, self.cols, max_len, fmt=fmt, registered_decoders=registered_weights,
                                   decoder_table=decoder_table)
        stream_ports = {"ws": In(stream.Signature(8 * rows)), "r_stream": In(1),
                        "stream_wait": Out(1)} if stream_depth else {}
        super().__init__({
            **stream_ports,
            "cmd": In(stream.Signature(matvec_command_layout(Shape.cast(addr).width))),
            "o": Out(stream.Signature(output_layout(rows, acc_width(max_len)))),
            "busy": Out(1),
            "w_addr": In(addr), "w_data": In(port_bits), "w_we": In(1),
            "r_addr": In(addr), "r_en": In(1), "r_data": Out(port_bits), "r_valid": Out(1), "r_ready": Out(1),
            "q_addr": In(range(q_banks * self.q_bank_words)), "q_data": In(8 * self.cols), "q_we": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self.array
        m.submodules.weights = weights = self.weights
        m.submodules.q = q = BlockRam(width=8 * self.cols, depth=self.q_banks * self.q_bank_words, impl=self._impl)
        wiring.connect(m, wiring.flipped(self.o), array.o)
        latency = weights.read_latency
        word_bits, act_bits = 8 * self.rows, 8 * self.cols
        part_bits = (self.parts - 1).bit_length()   # an address's low bits: the part of the word

        running = Signal()        # reads remain to be issued
        streaming = Signal()      # the command takes the weight stream
        q_bank = Signal()
        addr = Signal(range(weights.depth))
        col = Signal(16)
        final_col = Signal(16)    # col_groups − 1 of the command
        last_col = Signal()       # col is the row group's last column group (a register, so the decision to issue
                                  # the next beat does not wait on a comparison)
        groups_left = Signal(16)  # row groups still to start, the current one included

        # beats issued and not yet taken by the array: in the memories' pipeline or in the beat FIFO
        beat = data.StructLayout({"word": word_bits, "acts": act_bits, "last": 1})
        m.submodules.beats = beats = fifo.SyncFIFOBuffered(width=beat.size, depth=self.beat_depth)
        head = data.View(beat, beats.r_data)
        credits = Signal(range(self.beat_depth + 1), init=self.beat_depth)
        take = beats.r_rdy & array.w.ready

        # the read port: a read takes the weight memory in any cycle (a write has it while no command runs), unless
        # its word is the line's (with parts of words)
        r_stream = Signal()
        r_read = self.r_en & ~r_stream & ~(self.w_we & ~running)
        r_word = self.r_addr >> part_bits   # the read's word
        line_hit = Signal()
        r_memory = r_read & ~line_hit
        word_ok = Signal(init=1)   # the word of a beat issued now is there (the memory's always is)
        issue = running & (credits != 0) & word_ok & ~r_memory

        # what an issued read carries through the weight memory's latency: a beat, or a read of the read port, and
        # the weight stream's word where it comes from there
        flight = data.StructLayout({"beat": 1, "read": 1, "fresh": 1, "last": 1, "stream": 1, "word": word_bits,
                                    "part": part_bits})
        launch = Signal(flight)
        arrive = self._delay(m, launch, latency, "flight")
        m.d.comb += [launch.beat.eq(issue), launch.read.eq(r_read), launch.fresh.eq(r_memory),
                     launch.last.eq(last_col), launch.part.eq(self.r_addr[:part_bits])]
        word = Mux(arrive.stream, arrive.word, weights.rdata)
        if self.stream_depth:
            # a streamed beat or read pops its word from the FIFO when it is issued; the word travels with it
            m.submodules.stream = ws = fifo.SyncFIFOBuffered(width=word_bits, depth=self.stream_depth)
            r_pop = self.r_en & self.r_stream & ws.r_rdy & ~running
            m.d.comb += [
                ws.w_data.eq(self.ws.payload), ws.w_en.eq(self.ws.valid), self.ws.ready.eq(ws.w_rdy),
                ws.r_en.eq(issue & streaming | r_pop),
                r_stream.eq(self.r_stream),
                word_ok.eq(~streaming | ws.r_rdy),
                self.stream_wait.eq(running & streaming & (credits != 0) & ~ws.r_rdy),
                self.r_ready.eq(Mux(self.r_stream, ws.r_rdy & ~running, 1)),
                launch.read.eq(r_read | r_pop),
                launch.stream.eq(issue & streaming | r_pop),
                launch.word.eq(ws.r_data),
            ]
        else:
            m.d.comb += self.r_ready.eq(1)

        # the q buffer is read a cycle before the weight word arrives (its latency is 1)
        q_addr = Signal.like(q.r_addr)
        m.d.comb += q_addr.eq(col if self.q_banks == 1 else Cat(col[:(self.q_bank_words - 1).bit_length()], q_bank))
        q_addr_now = self._delay(m, q_addr, latency - 1, "q_addr")
        q_read_now = self._delay(m, issue, latency - 1, "q_read")

        m.d.comb += [
            self.cmd.ready.eq(~running),
            weights.cs.eq(issue & ~streaming | self.w_we & ~running | r_memory),
            weights.we.eq(~running & self.w_we),
            weights.addr.eq(Mux(r_memory, r_word, Mux(running, addr, self.w_addr >> part_bits))),
            weights.wdata.eq(self.w_data.replicate(self.parts)),
            q.r_en.eq(q_read_now),
            q.r_addr.eq(q_addr_now),
            q.w_addr.eq(self.q_addr),
            q.w_data.eq(self.q_data),
            q.w_en.eq(self.q_we),
            beats.w_en.eq(arrive.beat),
            beats.w_data.eq(Cat(word, q.r_data, arrive.last)),
            beats.r_en.eq(take),
            array.w.valid.eq(beats.r_rdy),
            array.w.payload.as_value().eq(Cat(head.word, head.last)),
        ]
        m.d.sync += credits.eq(credits - issue + take)
        if self.parts == 1:
            m.d.comb += [self.r_data.eq(word), self.r_valid.eq(arrive.read)]
        else:
            # a load writes its part's banks
            banks_per_part = self.port_bits // BANK_WIDTH
            m.d.comb += weights.wbanks.eq(Cat((self.w_addr[:part_bits] == b // banks_per_part)
                                              for b in range(weights.banks)))
            # the line: the word of the port's last read of the memory (tag: its address, from the read's issue on;
            # a load makes it stale). A read of the line's word takes its part from the line, without the memory.
            # Every read's word and part pass a register, so its answer comes a cycle after the memory's latency.
            tag, tag_ok = Signal.like(weights.addr), Signal()
            line, part = Signal(word_bits), Signal(part_bits)
            m.d.comb += line_hit.eq(tag_ok & (r_word == tag))
            with m.If(r_memory):
                m.d.sync += [tag.eq(r_word), tag_ok.eq(1)]
            with m.If(self.w_we & ~running):
                m.d.sync += tag_ok.eq(0)
            with m.If(arrive.fresh):
                m.d.sync += line.eq(word)
            with m.If(arrive.read):
                m.d.sync += part.eq(arrive.part)
            m.d.sync += self.r_valid.eq(arrive.read)
            m.d.comb += self.r_data.eq(line.word_select(part, self.port_bits))
        # the array joins a beat's activations with its weights after its decoders' stages: the activations step
        # through registers of their own beside the decoders, advancing when they do (``array.w.ready``)
        acts, acts_valid = Signal(act_bits + 1), []
        m.d.comb += acts.eq(Cat(head.acts, take))
        for stage in range(array.decode_latency):
            acts, previous = Signal(act_bits + 1, name=f"acts{stage + 1}"), acts
            acts_valid.append(acts[-1])
            with m.If(array.w.ready):
                m.d.sync += acts.eq(previous)
        m.d.comb += [
            array.a.valid.eq(acts[-1]),
            array.a.payload.as_value().eq(acts[:-1]),
            self.busy.eq(running | (credits != self.beat_depth) | Cat(acts_valid).any()),
        ]
        with m.If(issue):
            m.d.sync += addr.eq(addr + 1)
            with m.If(last_col):
                m.d.sync += [col.eq(0), last_col.eq(final_col == 0), groups_left.eq(groups_left - 1)]
                with m.If(groups_left == 1):
                    m.d.sync += running.eq(0)
            with m.Else():
                m.d.sync += [col.eq(col + 1), last_col.eq(col + 1 == final_col)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [running.eq(1), addr.eq(self.cmd.payload.base >> part_bits), col.eq(0),
                         final_col.eq(self.cmd.payload.col_groups - 1), last_col.eq(self.cmd.payload.col_groups == 1),
                         groups_left.eq(self.cmd.payload.row_groups),
                         q_bank.eq(self.cmd.payload.q_bank)]
            if self.stream_depth:
                m.d.sync += streaming.eq(self.cmd.payload.stream)
        return m

    @staticmethod
    def _delay(m, value, cycles, name):
        """``value`` as it was ``cycles`` cycles ago: a chain of registers named ``name`` 1 … ``cycles``."""
        for stage in range(cycles):
            value, previous = Signal(value.shape(), name=f"{name}{stage + 1}"), value
            m.d.sync += value.eq(previous)
        return value
