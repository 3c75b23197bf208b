"""The device side of the host link: frames in, checked requests up; responses down, frames out
(``docs/protocol.md`` is the specification, :mod:`mmfree.host.protocol` holds its constants).

:class:`LinkDevice` sits between a pair of byte streams (a UART PHY, or bytes injected directly by the virtual
board) and the layer above, which sees one request at a time as a packet of bytes and answers each with one
response packet. :class:`mmfree.host.link.DeviceModel` is its behaviour in Python, byte for byte.

Receive path. A deframer takes a byte every cycle (``rx.ready`` is always 1). It hunts for the sync byte, checks the
header (a byte-parallel CRC-16 over length, sequence number and type), then the payload's CRC-16, and classifies the
frame by type and sequence number. Every frame's ``len_hi, len_lo, seq, type`` and payload are written to the RX
buffer (``depth`` bytes, one iCE40 EBR at 512) as they arrive, at a write pointer that runs ahead of the commit
pointer; only an accepted request is committed, and only committed words reach the layer above. A byte that finds
the buffer full is not written, and the frame gets ERROR OVERFLOW if it would have been accepted. Other outcomes are
link-generated frames: ERROR (bad header, bad length, bad CRC, bad sequence, unknown type, inter-byte timeout), the
HELLO reply (the HELLO also resets the sequence state: the next request expected is HELLO's ``seq`` plus one, and
there is no last request), and the resent response to a duplicate of the last request (sent only when every
accepted request has been answered completely; otherwise the duplicate is dropped). After a bad header the deframer
hunts from the next byte; after an intact header it consumes exactly the frame's extent. ``timeout`` cycles without
a byte inside a frame end it with ERROR TIMEOUT.

Layer above. ``request`` carries one packet per request: the type byte (``first``), then the payload bytes, ``last``
on the final beat (the type beat of an empty request). The next request is offered only after the previous one's
response has been sent completely. ``response`` takes one packet per request, in order: the response's type byte,
then its payload (bytes beyond ``MAX_PAYLOAD`` are dropped). It is collected in the TX buffer (256 bytes, one EBR) to
learn its length and goes out once its request has been read completely, with that request's sequence number. The
buffer keeps the last response for a resend.

Transmit path. One sender frames the waiting link-generated frame or the collected response, computing both CRCs as
the bytes pass, into the ``tx`` register. Link-generated frames go first. One waits in a slot until it has been sent
(an ERROR's ``expected`` byte is read then); one produced while the slot is full is dropped: the UART cannot be
stalled, so the link cannot hold back the line, and the host's timeout recovers.

Credits. The HELLO reply grants ``depth − CREDIT_RESERVE`` bytes: the host keeps at most that many bytes of
unanswered request frames on the wire. A request of ``len`` payload bytes takes ``len + 4`` bytes of the buffer
until the layer above has read it (fewer than its ``len + 9`` bytes on the wire), and its response goes out only
after that, so a host within its credit never overflows the buffer.

Cost on the iCE40UP5K (``benchmarks/cost_table.py`` harness, ``synth_ice40``, nextpnr at 30 MHz, seeds 1–3), default
parameters: 683 logic cells, 2 EBR (the two buffers), Fmax 36.5–37.9 MHz; with the 3 Mbaud UART in front 777 cells,
33.8–38.5 MHz. About 250 of the cells are flip-flops (two CRC registers, three buffer pointers, four 9-bit counters,
the 19-bit timeout counter, the header fields and sequence state).
"""

from functools import reduce
from operator import xor

from amaranth import *
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..host import protocol
from .checks import check_int

__all__ = ["request_layout", "response_layout", "crc16_step", "LinkDevice"]


def request_layout():
    """Layout of a ``request`` beat: ``data`` (8 bits), ``first`` (the type beat), ``last``."""
    return data.StructLayout({"data": 8, "first": 1, "last": 1})


def response_layout():
    """Layout of a ``response`` beat: ``data`` (8 bits), ``last``; the first beat of a packet is the type."""
    return data.StructLayout({"data": 8, "last": 1})


def crc16_step(crc, byte):
    """The CRC-16 register after one more byte, byte-parallel: ``protocol.CRC16_POLY``, MSB first, unrolled into
    one XOR per register bit (derived here from the polynomial).

    Parameters
    ----------
    crc : Value
        16 bits.
    byte : Value
        8 bits.

    Returns
    -------
    Value
        16 bits.
    """
    state = [frozenset({("crc", i)}) for i in range(16)]
    for k in reversed(range(8)):
        feedback = state[15] ^ {("byte", k)}
        state = [frozenset()] + state[:15]
        state = [bits ^ feedback if protocol.CRC16_POLY >> i & 1 else bits for i, bits in enumerate(state)]
    source = {"crc": Value.cast(crc), "byte": Value.cast(byte)}
    return Cat(*(reduce(xor, (source[name][i] for name, i in sorted(bits))) for bits in state))


class _Event(enum.Enum, shape=2):
    """A link-generated frame."""
    ERROR = 0
    HELLO = 1
    RESEND = 2


class LinkDevice(wiring.Component):
    """The device end of the framed host link (see the module notes and ``docs/protocol.md``).

    Parameters
    ----------
    depth : int
        RX buffer bytes, a power of two, 512 (one iCE40 EBR) to 65536. The credit granted is
        ``depth − protocol.CREDIT_RESERVE``.
    timeout : int
        Inter-byte timeout inside a frame, in clock cycles (1 to 2**24); the default is 10 ms at 30 MHz.

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Bytes from the line; ``ready`` is always 1.
    tx : Out(stream.Signature(8))
        Bytes to the line.
    request : Out(stream.Signature(request_layout()))
        Accepted requests, one packet each: type, then payload.
    response : In(stream.Signature(response_layout()))
        One response packet per request, in order: type, then payload (at most ``MAX_PAYLOAD`` bytes).
    """

    def __init__(self, *, depth=512, timeout=300_000):
        check_int("depth", depth, 512, 1 << 16)
        if depth & (depth - 1):
            raise ValueError(f"depth must be a power of two, got {depth}")
        check_int("timeout", timeout, 1, 1 << 24)
        self._depth, self._timeout = depth, timeout
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "request": Out(stream.Signature(request_layout())),
            "response": In(stream.Signature(response_layout())),
        })

    depth = property(lambda self: self._depth)
    timeout = property(lambda self: self._timeout)
    credit = property(lambda self: self._depth - protocol.CREDIT_RESERVE)

    def elaborate(self, platform):
        m = Module()
        addr_bits = self._depth.bit_length() - 1

        m.submodules.rx_buffer = rx_buffer = memory.Memory(shape=8, depth=self._depth, init=[])
        m.submodules.tx_buffer = tx_buffer = memory.Memory(shape=8, depth=protocol.MAX_PAYLOAD, init=[])
        rx_write, rx_read = rx_buffer.write_port(), rx_buffer.read_port()
        tx_write, tx_read = tx_buffer.write_port(), tx_buffer.read_port()

        # -- state shared by the paths --------------------------------------------------------------------------
        expected = Signal(8)            # the sequence number of the next request
        last_valid = Signal()           # expected − 1 is a request that was accepted (a duplicate can be answered)
        commit = Signal(addr_bits + 1)  # RX buffer pointers, with a wrap bit: end of the committed requests,
        wptr = Signal(addr_bits + 1)    # where the frame being received goes,
        rptr = Signal(addr_bits + 1)    # the next word the reader takes
        answer_due = Signal()           # a request has been read and its response is not sent yet
        answer_seq = Signal(8)          # that request's sequence number
        everything_answered = Signal()
        has_request = Signal()          # the RX buffer holds words the reader has not taken

        post = Signal()                 # the deframer asks for a link-generated frame
        post_kind = Signal(_Event)
        post_code = Signal(3)

        def error(code):
            return [post.eq(1), post_kind.eq(_Event.ERROR), post_code.eq(code)]

        # -- the deframer: one byte per cycle -------------------------------------------------------------------
        byte = self.rx.payload
        take = self.rx.valid
        m.d.comb += self.rx.ready.eq(1)

        HUNT, HEADER, PAYLOAD, CRC_HI, CRC_LO = range(5)
        state = Signal(range(5))
        pos = Signal(range(protocol.HEADER_SIZE))  # index of the header byte being received, 1..6
        crc = Signal(16)
        crc_next = Signal(16)
        m.d.comb += crc_next.eq(crc16_step(crc, byte))
        remaining = Signal(9)   # the length, then the payload bytes still to come
        too_long = Signal()
        seq, frame_type = Signal(8), Signal(8)
        overflow = Signal()     # a byte of this frame found the RX buffer full
        idle = Signal(range(self._timeout))

        full = Signal()
        m.d.comb += [
            full.eq((wptr[:addr_bits] == rptr[:addr_bits]) & (wptr[addr_bits] != rptr[addr_bits])),
            has_request.eq(commit != rptr),
            rx_write.addr.eq(wptr[:addr_bits]),
            rx_write.data.eq(byte),
        ]
        # the header's length, sequence number and type, then the payload, go to the buffer as they arrive; only
        # an accepted request's words are committed
        store = take & (((state == HEADER) & (pos <= 4)) | (state == PAYLOAD))
        with m.If(store & full):
            m.d.sync += overflow.eq(1)
        with m.Elif(store):
            m.d.comb += rx_write.en.eq(1)
            m.d.sync += wptr.eq(wptr + 1)

        with m.If(take | (state == HUNT)):
            m.d.sync += idle.eq(0)
        with m.Else():
            m.d.sync += idle.eq(idle + 1)
        # the check bytes are compared with the CRC register instead of passing through it (the same test, without
        # the XOR network in front of the decision)
        check_hi = Signal()
        check = Signal()
        m.d.comb += check.eq(check_hi & (byte == crc[:8]))
        with m.If(state == HUNT):
            m.d.sync += crc.eq(protocol.CRC16_INIT)
        with m.Elif(store):
            m.d.sync += crc.eq(crc_next)
        with m.If(take):
            m.d.sync += check_hi.eq(byte == crc[8:])

        finish = Signal()  # a frame with an intact header and payload ends
        with m.Switch(state):
            with m.Case(HUNT):
                m.d.sync += [pos.eq(1), overflow.eq(0), wptr.eq(commit)]
                with m.If(take & (byte == protocol.SYNC)):
                    m.d.sync += state.eq(HEADER)
            with m.Case(HEADER):
                with m.If(take):
                    m.d.sync += pos.eq(pos + 1)
                    with m.Switch(pos):
                        with m.Case(1):
                            m.d.sync += [remaining[8].eq(byte[0]), too_long.eq(byte[1:].any())]
                        with m.Case(2):
                            m.d.sync += [remaining[:8].eq(byte), too_long.eq(too_long | (remaining[8] & byte.any()))]
                        with m.Case(3):
                            m.d.sync += seq.eq(byte)
                        with m.Case(4):
                            m.d.sync += frame_type.eq(byte)
                        with m.Case(protocol.HEADER_SIZE - 1):
                            m.d.sync += [state.eq(HUNT), crc.eq(protocol.CRC16_INIT)]
                            with m.If(~check):
                                m.d.comb += error(protocol.ErrorCode.BAD_HEADER)
                            with m.Elif(too_long):
                                m.d.comb += error(protocol.ErrorCode.BAD_LENGTH)
                            with m.Elif(remaining == 0):
                                m.d.comb += finish.eq(1)
                            with m.Else():
                                m.d.sync += state.eq(PAYLOAD)
            with m.Case(PAYLOAD):
                with m.If(take):
                    m.d.sync += remaining.eq(remaining - 1)
                    with m.If(remaining == 1):
                        m.d.sync += state.eq(CRC_HI)
            with m.Case(CRC_HI):
                with m.If(take):
                    m.d.sync += state.eq(CRC_LO)
            with m.Case(CRC_LO):
                with m.If(take):
                    m.d.sync += state.eq(HUNT)
                    with m.If(~check):
                        m.d.comb += error(protocol.ErrorCode.BAD_CRC)
                    with m.Else():
                        m.d.comb += finish.eq(1)
        with m.If((state != HUNT) & ~take & (idle == self._timeout - 1)):
            m.d.sync += state.eq(HUNT)
            m.d.comb += error(protocol.ErrorCode.TIMEOUT)

        # the frame's class, from the type and sequence number, registered while the header check arrives (a frame
        # ends at least two bytes after its type; `expected` changes only when a frame ends)
        next_seq = Signal(8)
        is_hello, is_request, in_order, duplicate = Signal(), Signal(), Signal(), Signal()
        m.d.comb += next_seq.eq(seq + 1)
        m.d.sync += [
            is_hello.eq(frame_type == protocol.HELLO),
            is_request.eq((frame_type >= protocol.REQUEST_TYPES.start) & (frame_type < protocol.REQUEST_TYPES.stop)),
            in_order.eq(seq == expected),
            duplicate.eq(last_valid & (next_seq == expected)),
        ]
        with m.If(finish):
            with m.If(is_hello):
                m.d.sync += [expected.eq(next_seq), last_valid.eq(0)]
                m.d.comb += [post.eq(1), post_kind.eq(_Event.HELLO)]
            with m.Elif(~is_request):
                m.d.comb += error(protocol.ErrorCode.UNKNOWN_TYPE)
            with m.Elif(in_order & overflow):
                m.d.comb += error(protocol.ErrorCode.OVERFLOW)
            with m.Elif(in_order):
                m.d.sync += [commit.eq(wptr), expected.eq(next_seq), last_valid.eq(1)]
            with m.Elif(duplicate):
                m.d.comb += [post.eq(everything_answered), post_kind.eq(_Event.RESEND)]
            with m.Else():
                m.d.comb += error(protocol.ErrorCode.BAD_SEQUENCE)

        # -- the reader: RX buffer → request packets ----------------------------------------------------------
        # the read port reads the word at rptr after this cycle's pop, so its data is always the word at rptr; a
        # committed word was written at least two cycles before its commit, so that data is never stale
        pop = Signal()
        rptr_next = Signal.like(rptr)
        m.d.comb += [rptr_next.eq(Mux(pop, rptr + 1, rptr)), rx_read.addr.eq(rptr_next[:addr_bits])]
        m.d.sync += rptr.eq(rptr_next)
        R_LEN_HI, R_LEN_LO, R_SEQ, R_TYPE, R_PAYLOAD = range(5)
        reader = Signal(range(5))
        count = Signal(9)
        m.d.comb += [self.request.payload.data.eq(rx_read.data), self.request.payload.first.eq(reader == R_TYPE)]
        with m.Switch(reader):
            with m.Case(R_LEN_HI):
                m.d.comb += pop.eq(has_request & ~answer_due)
                with m.If(pop):
                    m.d.sync += [count[8].eq(rx_read.data[0]), reader.eq(R_LEN_LO)]
            with m.Case(R_LEN_LO):
                m.d.comb += pop.eq(1)
                m.d.sync += [count[:8].eq(rx_read.data), reader.eq(R_SEQ)]
            with m.Case(R_SEQ):
                m.d.comb += pop.eq(1)
                m.d.sync += [answer_seq.eq(rx_read.data), reader.eq(R_TYPE)]
            with m.Case(R_TYPE, R_PAYLOAD):
                last = Mux(reader == R_TYPE, count == 0, count == 1)
                m.d.comb += [self.request.valid.eq(1), self.request.payload.last.eq(last),
                             pop.eq(self.request.ready)]
                with m.If(self.request.ready):
                    m.d.sync += reader.eq(R_PAYLOAD)
                    with m.If(reader == R_PAYLOAD):
                        m.d.sync += count.eq(count - 1)
                    with m.If(last):
                        m.d.sync += [reader.eq(R_LEN_HI), answer_due.eq(1)]

        # -- the collector: a response packet → TX buffer -----------------------------------------------------
        C_EMPTY, C_FILL, C_FULL = range(3)
        collector = Signal(range(3))
        response_type = Signal(8)
        response_length = Signal(range(protocol.MAX_PAYLOAD + 1))
        sending_buffer = Signal()
        m.d.comb += [
            everything_answered.eq((reader == R_LEN_HI) & ~has_request & ~answer_due & (collector == C_EMPTY)),
            self.response.ready.eq((collector != C_FULL) & ~sending_buffer),
            tx_write.addr.eq(response_length),
            tx_write.data.eq(self.response.payload.data),
        ]
        with m.If(self.response.valid & self.response.ready):
            with m.If(self.response.payload.last):
                m.d.sync += collector.eq(C_FULL)
            with m.Elif(collector == C_EMPTY):
                m.d.sync += collector.eq(C_FILL)
            with m.If(collector == C_EMPTY):
                m.d.sync += [response_type.eq(self.response.payload.data), response_length.eq(0)]
            with m.Elif(response_length != protocol.MAX_PAYLOAD):
                m.d.comb += tx_write.en.eq(1)
                m.d.sync += response_length.eq(response_length + 1)

        # -- the waiting link-generated frame: held until it has been sent -------------------------------------
        event_valid = Signal()
        event_kind = Signal(_Event)
        event_code = Signal(3)
        event_seq = Signal(8)
        event_done = Signal()
        with m.If(post & ~event_valid):
            m.d.sync += [event_valid.eq(1), event_kind.eq(post_kind), event_code.eq(post_code),
                         event_seq.eq(seq)]
        with m.Elif(event_done):
            m.d.sync += event_valid.eq(0)

        # -- the sender: one frame from the waiting event or the collected response ----------------------------
        S_IDLE, S_HEADER, S_PAYLOAD, S_CRC = range(4)
        sender = Signal(range(4))
        of_event = Signal()     # the frame being sent is the waiting event's
        index = Signal(range(protocol.MAX_PAYLOAD + 1))  # byte within the header, the payload, the CRC
        s_crc = Signal(16)
        from_buffer = Signal()
        f_type, f_seq = Signal(8), Signal(8)
        f_length = Signal(range(protocol.MAX_PAYLOAD + 1))
        hello = protocol.hello_payload(self.credit)
        with m.Switch(Mux(of_event, event_kind, _Event.RESEND)):
            with m.Case(_Event.ERROR):
                m.d.comb += [f_type.eq(protocol.ERROR), f_length.eq(3)]
            with m.Case(_Event.HELLO):
                m.d.comb += [f_type.eq(protocol.HELLO_REPLY), f_length.eq(len(hello))]
            with m.Case(_Event.RESEND):
                m.d.comb += [from_buffer.eq(1), f_type.eq(response_type), f_length.eq(response_length)]
        m.d.comb += [
            f_seq.eq(Mux(of_event, event_seq, answer_seq)),
            sending_buffer.eq((sender != S_IDLE) & from_buffer),
        ]

        payload_byte = Signal(8)
        with m.If(from_buffer):
            m.d.comb += payload_byte.eq(tx_read.data)
        with m.Elif(event_kind == _Event.ERROR):
            with m.Switch(index[:2]):
                for position, value in enumerate([event_code, expected, event_seq]):
                    with m.Case(position):
                        m.d.comb += payload_byte.eq(value)
        with m.Else():
            with m.Switch(index[:3]):
                for position, value in enumerate(hello):
                    with m.Case(position):
                        m.d.comb += payload_byte.eq(value)
        out_byte = Signal(8)
        header = [C(protocol.SYNC, 8), f_length[8:], f_length[:8], f_seq, f_type, s_crc[8:], s_crc[:8]]
        with m.Switch(Cat(index[:3], sender)):  # one multiplexer over every byte position of a frame
            for position, value in enumerate(header):
                with m.Case(position | S_HEADER << 3):
                    m.d.comb += out_byte.eq(value)
            with m.Case(f"{S_PAYLOAD:02b}---"):
                m.d.comb += out_byte.eq(payload_byte)
            with m.Case(f"{S_CRC:02b}--0"):
                m.d.comb += out_byte.eq(s_crc[8:])
            with m.Case(f"{S_CRC:02b}--1"):
                m.d.comb += out_byte.eq(s_crc[:8])

        advance = Signal()
        index_plus, index_next = Signal.like(index), Signal.like(index)
        m.d.comb += [
            advance.eq((sender != S_IDLE) & (~self.tx.valid | self.tx.ready)),
            index_plus.eq(index + 1),
            index_next.eq(Mux(advance, index_plus, index)),
            tx_read.addr.eq(Mux(sender == S_PAYLOAD, index_next, 0)),
        ]
        with m.If(~self.tx.valid | self.tx.ready):
            m.d.sync += [self.tx.valid.eq(advance), self.tx.payload.eq(out_byte)]
        m.d.sync += index.eq(index_next)
        with m.If(advance):
            with m.If(((sender == S_HEADER) & (index >= 1) & (index <= 4)) | (sender == S_PAYLOAD)):
                m.d.sync += s_crc.eq(crc16_step(s_crc, out_byte))

        frame_end = Signal()
        with m.Switch(sender):
            with m.Case(S_IDLE):
                m.d.sync += [index.eq(0), s_crc.eq(protocol.CRC16_INIT)]
                with m.If(event_valid):
                    m.d.sync += [sender.eq(S_HEADER), of_event.eq(1)]
                with m.Elif((collector == C_FULL) & answer_due):
                    m.d.sync += [sender.eq(S_HEADER), of_event.eq(0)]
            with m.Case(S_HEADER):
                with m.If(advance & (index == protocol.HEADER_SIZE - 1)):
                    m.d.sync += [index.eq(0), s_crc.eq(protocol.CRC16_INIT), sender.eq(S_PAYLOAD)]
                    with m.If(f_length == 0):
                        m.d.comb += frame_end.eq(1)
            with m.Case(S_PAYLOAD):
                with m.If(advance & (index_plus == f_length)):
                    m.d.sync += [index.eq(0), sender.eq(S_CRC)]
            with m.Case(S_CRC):
                with m.If(advance & index[0]):
                    m.d.comb += frame_end.eq(1)
        with m.If(frame_end):
            m.d.sync += sender.eq(S_IDLE)
            m.d.comb += event_done.eq(of_event)
            with m.If(~of_event):
                m.d.sync += [answer_due.eq(0), collector.eq(C_EMPTY)]

        return m
