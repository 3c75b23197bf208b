"""Integer vectors from the weight image: consecutive fields packed low bits first in 64-bit words.

The compiler packs every vector of the image (norm constants, ``1 − lb``, embedding rows and exponents) as integers of
a fixed width, low bits first, from a word boundary (:func:`mmfree.host.compiler.pack_words`); a field may straddle
two words. The reader streams such a vector: given its first word, a field width (one of ``widths``, chosen per
vector) and whether the fields are signed, it reads words through a memory read port of any latency (the word comes
back with ``mem_valid``, as from :class:`~mmfree.hw.matvec_engine.MatvecEngine`'s) into a two-word window, with at
most two words in the window or on their way, and offers a field per cycle while the window holds one. A read is
issued only while ``mem_ready``; with ``exact_reads`` the reader reads exactly the vector's ``⌈count · width / 64⌉``
words (a weight stream, whose words must not be taken ahead), else it may read a word beyond the vector's last. A
vector starts once every word read for the one before has come back.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .stream_fifo import stream_fifo

__all__ = ["FieldReader"]

WORD_BITS = 64


class FieldReader(wiring.Component):
    """Streams ``count`` fields of a packed vector.

    Parameters
    ----------
    widths : tuple of int
        The field widths a vector may have (each 1 … 64); ``start.payload.width`` selects one by index.
    addr_bits : int
        Word-address width of the memory.
    count_bits : int
        Width of the field count.
    exact_reads : bool
        Read no word beyond the vector's last.
    buffered : bool
        The fields leave through a FIFO of 3 (see the module notes).

    Attributes
    ----------
    start : In(stream)
        ``{addr, count, width, signed}``: the vector's first word, its number of fields, the index of its width in
        ``widths`` and whether its fields are two's complement. Taken while the reader is idle.
    o : Out(stream)
        ``{data: signed(max(widths) + 1), last}``: each field, sign- or zero-extended.
    busy : Out(1)
    mem_addr, mem_en : Out; mem_data, mem_valid : In
        The memory read port: the words of the cycles with ``mem_en`` come back in order on ``mem_data``, each in a
        cycle with ``mem_valid``. ``mem_valid`` while no read of the reader's is on its way is another reader's and
        is ignored.
    mem_ready : In(1)
        A read may be issued (1 when not driven).
    mem_stalled : Out(1)
        A read is wanted but ``mem_ready`` is low.
    """

    def __init__(self, widths, *, addr_bits=14, count_bits=16, exact_reads=False, buffered=False):
        if not isinstance(widths, tuple) or not widths:
            raise TypeError(f"widths must be a non-empty tuple of ints, got {widths!r}")
        for width in widths:
            check_int("width", width, 1)
            if width > WORD_BITS:
                raise ValueError(f"a field is at most {WORD_BITS} bits, got {width}")
        check_int("addr_bits", addr_bits, 1)
        check_int("count_bits", count_bits, 1)
        if not isinstance(buffered, bool):
            raise TypeError(f"buffered must be a bool, got {buffered!r}")
        self.widths, self.exact_reads, self.buffered = widths, exact_reads, buffered
        super().__init__({
            "mem_ready": In(1, init=1), "mem_stalled": Out(1),
            "start": In(stream.Signature(data.StructLayout({
                "addr": addr_bits, "count": count_bits, "width": range(len(widths)), "signed": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"data": signed(max(widths) + 1), "last": 1}))),
            "busy": Out(1),
            "mem_addr": Out(addr_bits), "mem_en": Out(1), "mem_data": In(WORD_BITS), "mem_valid": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        top = max(self.widths)
        window = Signal(2 * WORD_BITS)
        words = Signal(range(3))           # words in the window
        flying = Signal(range(3))          # words read and not yet back
        pending = Signal()                 # a word of ours arrives on mem_data this cycle
        ptr = Signal(range(WORD_BITS))     # bit offset of the next field in the window's first word
        left = Signal.like(self.start.payload.count)
        width_sel = Signal.like(self.start.payload.width)
        is_signed = Signal()
        addr = Signal.like(self.mem_addr)
        running = Signal()

        width = Signal(range(WORD_BITS + 1))
        with m.Switch(width_sel):
            for index, w in enumerate(self.widths):
                with m.Case(index):
                    m.d.comb += width.eq(w)
        raw = Signal(top)
        m.d.comb += raw.eq(window >> ptr)
        field = Signal(top + 1)
        with m.Switch(width_sel):
            for index, w in enumerate(self.widths):
                with m.Case(index):
                    sign = is_signed & raw[w - 1]
                    m.d.comb += field.eq(Cat(raw[:w], sign.replicate(top + 1 - w)))
        # a field is in the window when its last bit is: ptr + width ≤ 64 · words
        ready_field = Mux(words == 2, 1, (words == 1) & (ptr + width <= WORD_BITS))
        out = self.o.signature.create(path=("out",))  # the reader's fields, into o or into the FIFO
        wiring.connect(m, wiring.flipped(self.o), stream_fifo(m, out, name="out_fifo") if self.buffered else out)
        m.d.comb += [
            out.valid.eq(running & ready_field),
            out.payload.data.eq(field),
            out.payload.last.eq(left == 1),
            self.start.ready.eq(~running & (flying == 0)),
            self.busy.eq(running),
        ]

        # a read is issued while the window (counting the words on their way) has room and fields (exactly: words)
        # remain
        want = running & ((words + flying) < 2)
        if self.exact_reads:
            unread = Signal(self.start.payload.count.shape().width + 7)   # the vector's words not yet read
            want &= unread != 0
            with m.If(self.mem_en):
                m.d.sync += unread.eq(unread - 1)
            with m.If(self.start.valid & self.start.ready):
                bits = Signal.like(unread)
                with m.Switch(self.start.payload.width):
                    for index, w in enumerate(self.widths):
                        with m.Case(index):
                            m.d.comb += bits.eq(self.start.payload.count * w + WORD_BITS - 1)
                m.d.sync += unread.eq(bits >> 6)
        m.d.comb += [self.mem_en.eq(want & self.mem_ready), self.mem_stalled.eq(want & ~self.mem_ready),
                     self.mem_addr.eq(addr)]
        m.d.comb += pending.eq(self.mem_valid & (flying != 0))
        m.d.sync += flying.eq(flying + self.mem_en - pending)
        with m.If(self.mem_en):
            m.d.sync += addr.eq(addr + 1)

        take = out.valid & out.ready
        next_ptr = ptr + Mux(take, width, 0)
        drop = next_ptr >= WORD_BITS       # the first word is used up
        kept = Mux(drop, window[WORD_BITS:], window)
        kept_words = words - drop
        with m.If(pending):
            m.d.sync += window.eq(Mux(kept_words == 0, Cat(self.mem_data, C(0, WORD_BITS)),
                                      Cat(kept[:WORD_BITS], self.mem_data)))
        with m.Else():
            m.d.sync += window.eq(kept)
        m.d.sync += [words.eq(kept_words + pending), ptr.eq(Mux(drop, next_ptr - WORD_BITS, next_ptr))]
        with m.If(take):
            m.d.sync += left.eq(left - 1)
            with m.If(left == 1):
                m.d.sync += running.eq(0)

        with m.If(self.start.valid & self.start.ready):
            payload = self.start.payload
            m.d.sync += [addr.eq(payload.addr), left.eq(payload.count), width_sel.eq(payload.width),
                         is_signed.eq(payload.signed), running.eq(payload.count != 0), words.eq(0), ptr.eq(0)]
        return m
