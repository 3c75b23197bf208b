"""Integer vectors from the weight image: fields packed low bits first in 64-bit words, up to 1, 2 or 4 per beat.

The compiler packs every vector of the image (norm constants, ``1 − lb``, embedding rows and exponents) as integers of
a fixed width, low bits first, from a word boundary (:func:`mmfree.host.compiler.pack_words`); a field may straddle
two words. The reader streams such a vector: given its first word, its number of fields, a field width (one of
``widths``, chosen per vector) and whether the fields are signed, it reads words through a memory read port of any
latency (the word comes back with ``mem_valid``, as from :class:`~mmfree.hw.matvec_engine.MatvecEngine`'s) into a
window of ``2 · lanes`` words, and offers a beat per cycle while the window holds its fields: one field, or with
``lanes`` of 2 or 4 and the vector's ``wide`` up to ``lanes`` consecutive ones.

Reads run ahead: a read is issued while the window and the words on their way leave a slot free, or in the cycle a
beat that uses up the window's first word is taken (so ``mem_en`` depends on the ready of the reader's output, the
FIFO's with ``buffered``). This sustains a beat of ``lanes`` 16-bit fields per cycle with ``wide`` (a word every
cycle with ``lanes = 4``) from a memory that answers 6 cycles after ``mem_en``: 64 such fields take 40 cycles with
``lanes = 2`` and 24 with ``lanes = 4``, the start's handshake and the last beat included (2 more with
``buffered``). A read is issued only while ``mem_ready``; with ``exact_reads`` the reader reads exactly the
vector's ``⌈count · width / 64⌉`` words (a weight stream, whose words must not be taken ahead), else it may read up
to ``2 · lanes`` words beyond the vector's last. A vector starts once every word read for the one before has come
back.

Timing: ``start.ready`` is a register (set from the reader's next state); the window's next state (whether its first
word is used up, where an arriving word goes) and ``o.valid`` follow from registers and the handshake alone; the
beat's end bit, and whether it lies in the first word, are computed a beat ahead, from the fields left (the final
beat's bits exact: ``width`` times the fields it carries).
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .stream_fifo import stream_fifo

__all__ = ["FieldReader"]

WORD_BITS = 64
PTR_BITS = 6    # log2(WORD_BITS)


class FieldReader(wiring.Component):
    """Streams the ``count`` fields of a packed vector, up to ``lanes`` per beat.

    Parameters
    ----------
    widths : tuple of int
        The field widths a vector may have, in bits (each 1 … 64); ``start.payload.width`` selects one by index.
        A ``wide`` vector's is at most ``64 // lanes`` (32 or 16), so that a beat's fields lie in two words.
    lanes : int
        Fields a beat can carry: 1, 2 or 4.
    addr_bits : int
        Word-address width of the memory.
    count_bits : int
        Width of the field count.
    exact_reads : bool
        Read no word beyond the vector's last.
    buffered : bool
        The beats leave through a FIFO of 3 (:func:`~mmfree.hw.stream_fifo.stream_fifo`): two cycles more latency,
        and ``o.ready`` reaches no logic of the reader.

    Attributes
    ----------
    start : In(stream)
        ``{addr, count, width, signed}``, with ``lanes`` of 2 or 4 also ``wide``: the vector's first word, its
        number of fields, the index of its width in ``widths``, whether its fields are two's complement, and whether
        a beat carries ``lanes`` of them. Taken while the reader is idle and no read of its is on its way.
    o : Out(stream)
        ``{data, last}``: ``data`` an array of ``lanes`` fields of ``signed(max(widths) + 1)``, each sign- or
        zero-extended. With ``wide``, field ``lanes · j + k`` in lane ``k`` (the final beat carries the
        ``count mod lanes`` fields left, or ``lanes``, and 0 in the lanes beyond them); without, field ``j`` in lane 0
        and 0 in the others. ``last`` marks the beat with the vector's final field.
    busy : Out(1)
        A vector is being streamed.
    mem_addr, mem_en : Out; mem_data, mem_valid : In
        The memory read port: the words of the cycles with ``mem_en`` come back in order on ``mem_data`` (64 bits),
        each in a cycle with ``mem_valid``. ``mem_valid`` while no read of the reader's is on its way is another
        reader's and is ignored.
    mem_ready : In(1)
        A read may be issued (1 when not driven).
    mem_stalled : Out(1)
        A read is wanted but ``mem_ready`` is low.
    """

    def __init__(self, widths, *, lanes=1, addr_bits=14, count_bits=16, exact_reads=False, buffered=False):
        if not isinstance(widths, tuple) or not widths:
            raise TypeError(f"widths must be a non-empty tuple of ints, got {widths!r}")
        check_int("lanes", lanes)
        if lanes not in (1, 2, 4):
            raise ValueError(f"lanes must be 1, 2 or 4, got {lanes}")
        for width in widths:
            check_int("width", width, 1)
            if width > WORD_BITS:
                raise ValueError(f"a field is at most {WORD_BITS} bits, got {width}")
        check_int("addr_bits", addr_bits, 1)
        check_int("count_bits", count_bits, 1)
        for name, flag in [("exact_reads", exact_reads), ("buffered", buffered)]:
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        self.widths, self.lanes, self.exact_reads, self.buffered = widths, lanes, exact_reads, buffered
        start = {"addr": addr_bits, "count": count_bits, "width": range(len(widths)), "signed": 1}
        super().__init__({
            "mem_ready": In(1, init=1), "mem_stalled": Out(1),
            "start": In(stream.Signature(data.StructLayout({**start, **({"wide": 1} if lanes > 1 else {})}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(max(widths) + 1), lanes), "last": 1}))),
            "busy": Out(1),
            "mem_addr": Out(addr_bits), "mem_en": Out(1), "mem_data": In(WORD_BITS), "mem_valid": In(1),
        })

    def _per_width(self, m, sel, value, shape):
        """A signal of ``shape``: ``value(w)`` for the width ``w`` of index ``sel`` in ``widths``."""
        result = Signal(shape)
        with m.Switch(sel):
            for index, width in enumerate(self.widths):
                with m.Case(index):
                    m.d.comb += result.eq(value(width))
        return result

    def _wide(self, width):
        """Whether a vector of ``width``-bit fields may be read ``wide``."""
        return self.lanes > 1 and width <= WORD_BITS // self.lanes

    def _beat_bits(self, m, sel, wide, many, rest):
        """A signal: the bits of a beat of fields of the width of index ``sel`` in ``widths``; with ``wide``, of
        ``lanes`` fields if ``many``, else of ``rest`` (1 … lanes − 1); without, of one."""
        def bits(w):
            if not self._wide(w):
                return C(w)
            return Mux(wide, Mux(many, self.lanes * w, Array(k * w for k in range(self.lanes))[rest]), w)
        return self._per_width(m, sel, bits, range(WORD_BITS + 1))

    def elaborate(self, platform):
        m = Module()
        depth = 2 * self.lanes                            # the window's words
        log_lanes = self.lanes.bit_length() - 1           # lanes = 2 ** log_lanes
        window = Signal(data.ArrayLayout(WORD_BITS, depth))
        full = Signal(depth)         # thermometer code: slot i of the window holds a word
        asked = Signal(depth)        # thermometer code: slot i holds a word or one read for it is on its way
        ptr = Signal(PTR_BITS)       # the beat's first bit in the window's first word
        end = Signal(PTR_BITS + 1)   # ptr + the beat's bits (1 … 127); from 64 on, the beat uses up the first word
        fits = Signal()              # end ≤ 64: the beat lies in the window's first word
        left = Signal.like(self.start.payload.count)      # fields not yet offered
        width_sel = Signal.like(self.start.payload.width)
        is_signed = Signal()
        wide = Signal()
        addr = Signal.like(self.mem_addr)
        running = Signal()
        idle = Signal(init=1)        # not running and no read on its way: registered, from the next state below
        payload = self.start.payload
        begin = self.start.valid & self.start.ready

        # the beat: the bits from ptr on of the window's first two words, a field per lane; with wide, lane k carries
        # one unless only 1 … k fields are left
        only = Signal(self.lanes)    # only[j]: j + 1 fields are left
        m.d.comb += only.eq(Cat(left == j + 1 for j in range(self.lanes)))
        out = self.o.signature.create(path=("out",))      # the reader's beats, into o or into the FIFO
        wiring.connect(m, wiring.flipped(self.o), stream_fifo(m, out, name="out_fifo") if self.buffered else out)
        raw = Signal(max(self.lanes * w if self._wide(w) else w for w in self.widths))
        m.d.comb += raw.eq(Cat(window[0], window[1]) >> ptr)
        for lane in range(self.lanes):
            def lane_field(w, lane=lane):    # the lane's field of w bits, sign- or zero-extended
                if lane and not self._wide(w):
                    return C(0)
                part = raw[lane * w:(lane + 1) * w]
                return Mux(is_signed, part.as_signed(), part)
            field = self._per_width(m, width_sel, lane_field, self.o.payload.data[lane].shape())
            m.d.comb += out.payload.data[lane].eq(Mux(wide & ~only[:lane].any(), field, 0) if lane else field)
        m.d.comb += [
            out.valid.eq(running & (full[1] | full[0] & fits)),
            out.payload.last.eq(only[0] | wide & only[1:].any()),
            self.start.ready.eq(idle),
            self.busy.eq(running),
        ]

        # the window: taking a beat that ends at or beyond bit 64 uses up its first word, and the others move down;
        # an arriving word goes into the first slot left without one
        take = out.valid & out.ready
        drop = take & end[PTR_BITS]
        kept = Signal(depth)
        m.d.comb += kept.eq(Mux(drop, full[1:], full))    # the words that stay
        arrival = Cat(C(1, 1), kept)[:depth] & ~kept      # one-hot: the slot of an arriving word
        pending = self.mem_valid & (asked != full)         # a word of ours arrives on mem_data
        for slot in range(depth):
            with m.If(pending & arrival[slot]):
                m.d.sync += window[slot].eq(self.mem_data)
            if slot + 1 < depth:
                with m.Elif(drop):
                    m.d.sync += window[slot].eq(window[slot + 1])
        full_next, asked_next, running_next = Signal(depth), Signal(depth), Signal()
        m.d.comb += full_next.eq(Mux(pending, Cat(C(1, 1), kept), kept))

        # a read is issued while a slot of the window is neither full nor asked for, or one is freed now, and (with
        # exact_reads) words of the vector remain unread
        want = running & (~asked[-1] | drop)
        if self.exact_reads:
            unread = Signal(len(left) + 1)
            want &= unread != 0
            bits = self._per_width(m, payload.width, lambda w: payload.count * w + WORD_BITS - 1,
                                   len(left) + PTR_BITS + 1)
            with m.If(begin):
                m.d.sync += unread.eq(bits >> PTR_BITS)
            with m.Elif(self.mem_en):
                m.d.sync += unread.eq(unread - 1)
        m.d.comb += [self.mem_en.eq(want & self.mem_ready), self.mem_stalled.eq(want & ~self.mem_ready),
                     self.mem_addr.eq(addr)]
        asked_kept = Mux(drop, asked[1:], asked)
        m.d.comb += asked_next.eq(Mux(self.mem_en, Cat(C(1, 1), asked_kept), asked_kept))
        with m.If(self.mem_en):
            m.d.sync += addr.eq(addr + 1)

        # a beat ahead: the next beat starts where this one ends; with wide, it carries lanes fields if at least
        # 2 · lanes are left now, else the rest, left mod lanes (left is not used past the final beat)
        upcoming = Signal.like(end)    # the next beat's end
        m.d.comb += upcoming.eq(end[:PTR_BITS] + self._beat_bits(m, width_sel, wide, left[log_lanes + 1:] != 0,
                                                                 left[:log_lanes]))
        with m.If(take):
            m.d.sync += [ptr.eq(end[:PTR_BITS]), end.eq(upcoming), left.eq(left - Mux(wide, self.lanes, 1)),
                         fits.eq(~upcoming[PTR_BITS] | (upcoming == WORD_BITS))]
        m.d.comb += running_next.eq(running & ~(take & out.payload.last))

        start_wide = payload.wide if self.lanes > 1 else C(0)
        first_bits = self._beat_bits(m, payload.width, start_wide, payload.count[log_lanes:] != 0,
                                     payload.count[:log_lanes])
        with m.If(begin):
            m.d.sync += [addr.eq(payload.addr), left.eq(payload.count), width_sel.eq(payload.width),
                         is_signed.eq(payload.signed), wide.eq(start_wide),
                         ptr.eq(0), end.eq(first_bits), fits.eq(1)]
            m.d.comb += [running_next.eq(payload.count != 0), full_next.eq(0), asked_next.eq(0)]
        m.d.sync += [full.eq(full_next), asked.eq(asked_next), running.eq(running_next),
                     idle.eq(~running_next & (asked_next == full_next))]
        return m
