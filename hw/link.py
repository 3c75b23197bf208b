"""The device side of the host link: frames in, checked requests up; responses down, frames out
(``docs/protocol.md`` is the specification, :mod:`mmfree.host.protocol` holds its constants).

:class:`LinkDevice` sits between a pair of byte streams (a UART PHY, or bytes injected directly by the virtual
board) and the layer above, which sees one request at a time as a packet of bytes and answers each with one
response packet. :class:`mmfree.host.link.DeviceModel` is its behaviour in Python, byte for byte.

The link is bit-serial: the UART delivers a byte at most every ``10 · divisor`` cycles (100 at 3 Mbaud and 30 MHz),
so both CRC-16 checks run one bit per cycle (:func:`crc16_bit`), most significant bit first, and the check bytes
pass through the same register (a check matches when every one of its bits leaves the register without feedback).

Receive path. While hunting for the sync byte the deframer takes a byte every cycle; inside a frame it keeps
``rx.ready`` low while it runs the offered byte's 8 bits through the CRC (the stream keeps the byte stable) and takes
it in the eighth cycle, so a frame byte costs 8 cycles. It checks the header (CRC-16 over length, sequence number and
type), then the payload's CRC-16, and classifies the frame by type and sequence number. Every frame's ``len_hi,
len_lo, seq, type`` and payload are written to the RX buffer (``depth`` bytes, one iCE40 EBR at 512) as they
arrive, at a write pointer that runs ahead of the commit pointer; only an accepted request is committed, and only
committed words reach the layer above. A byte that finds the buffer full is not written, and the frame gets ERROR
OVERFLOW if it would have been accepted. Other outcomes are link-generated frames: ERROR (bad header, bad length,
bad CRC, bad sequence, unknown type, inter-byte timeout), the HELLO reply (the HELLO also resets the sequence state:
the next request expected is HELLO's ``seq`` plus one, and there is no last request), and the resent response to a
duplicate of the last request (sent only when every accepted request has been answered completely; otherwise the
duplicate is dropped). After a bad header the deframer hunts from the next byte; after an intact header it consumes
exactly the frame's extent. ``timeout`` cycles without a byte offered inside a frame end it with ERROR TIMEOUT.

Layer above. ``request`` carries one packet per request, one beat per cycle while ``ready``: the type byte
(``first``), then the payload bytes, ``last`` on the final beat (the type beat of an empty request). The next
request is offered only after the previous one's response has been sent completely. ``response`` takes one packet
per request, in order, one beat per cycle: the response's type byte, then its payload (bytes beyond ``MAX_PAYLOAD``
are dropped). The payload is collected in the TX buffer (one EBR: 256 bytes, then the HELLO reply's payload as
constants) to learn its length and goes out once its request has been read completely, with that request's
sequence number. The buffer keeps the last response for a resend.

Transmit path. One sender frames the waiting link-generated frame or the collected response. It composes each byte
bit-serially in the ``tx`` register, shifting the bits in most significant first through its CRC-16 register, in the
8 cycles after the previous byte was taken (a byte from the TX buffer is loaded when the previous one is taken and
rotated through), then offers it: the UART, which takes a byte when it starts sending it, keeps the line busy back to
back. Link-generated frames go first. One waits in a slot until it has been sent (an ERROR's ``expected`` byte is
taken as its frame starts, so that a request accepted while that byte is composed cannot tear it); one produced
while the slot is full is dropped: the UART cannot be stalled, so the link cannot hold back the line, and the host's
timeout recovers.

Credits. The HELLO reply grants ``depth − CREDIT_RESERVE`` bytes: the host keeps at most that many bytes of
unanswered request frames on the wire. A request of ``len`` payload bytes takes ``len + 4`` bytes of the buffer
until the layer above has read it (fewer than its ``len + 9`` bytes on the wire), and its response goes out only
after that, so a host within its credit never overflows the buffer.

Cost on the iCE40UP5K (``benchmarks/cost_table.py`` harness, ``synth_ice40``, nextpnr at 30 MHz, seed 1), default
parameters: 527 logic cells, 2 EBR (the two buffers, :class:`~mmfree.hw.primitives.BlockRam`), Fmax 34.3 MHz. About
210 of the cells are flip-flops (two CRC registers, three buffer pointers, four 9-bit counters, the 20-bit timeout
counter, seven byte registers and the sequence state).
"""

from functools import reduce
from operator import xor

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..host import protocol
from .checks import check_int
from .primitives import BlockRam

__all__ = ["request_layout", "response_layout", "crc16_bit", "crc16_step", "LinkDevice"]


def request_layout():
    """Layout of a ``request`` beat: ``data`` (8 bits), ``first`` (the type beat), ``last``."""
    return data.StructLayout({"data": 8, "first": 1, "last": 1})


def response_layout():
    """Layout of a ``response`` beat: ``data`` (8 bits), ``last``; the first beat of a packet is the type."""
    return data.StructLayout({"data": 8, "last": 1})


def crc16_bit(crc, bit):
    """The CRC-16 register after one more message bit (``protocol.CRC16_POLY``, most significant bit first).

    Feeding the register its own bit 15 shifts it left without feedback: sending a CRC through the register that
    computed it leaves 0, and a received check matches while ``crc[15] ^ bit`` stays 0.

    Parameters
    ----------
    crc : Value
        16 bits.
    bit : Value
        1 bit.

    Returns
    -------
    Value
        16 bits.
    """
    crc = Value.cast(crc)
    feedback = crc[15] ^ bit
    shifted = Cat(C(0, 1), crc[:15])
    return Cat(*(shifted[i] ^ feedback if protocol.CRC16_POLY >> i & 1 else shifted[i] for i in range(16)))


def crc16_step(crc, byte):
    """The CRC-16 register after one more byte, byte-parallel: :func:`crc16_bit` for its 8 bits, most significant
    first, unrolled into one XOR per register bit (derived here from the polynomial).

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
        Bytes from the line. While hunting for a frame, ``ready`` is 1; inside a frame it is 1 only in the eighth
        cycle a byte is offered (the payload must stay stable until then, as the stream rules require).
    tx : Out(stream.Signature(8))
        Bytes to the line, each offered 8 cycles after the previous one was taken.
    request : Out(stream.Signature(request_layout()))
        Accepted requests, one packet each: type, then payload; a beat per cycle.
    response : In(stream.Signature(response_layout()))
        One response packet per request, in order: type, then payload (at most ``MAX_PAYLOAD`` bytes); a beat per
        cycle.
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
        hello = protocol.hello_payload(self.credit)

        # the TX buffer: the response payload at 0..255, the HELLO reply's payload at 256..
        m.submodules.rx_buffer = rx_buffer = BlockRam(width=8, depth=self._depth)
        m.submodules.tx_buffer = tx_buffer = BlockRam(width=8, depth=2 * protocol.MAX_PAYLOAD,
                                                      init=[0] * protocol.MAX_PAYLOAD + list(hello))

        # -- state shared by the paths --------------------------------------------------------------------------
        expected = Signal(8)            # the sequence number of the next request
        last_valid = Signal()           # expected − 1 is a request that was accepted (a duplicate can be answered)
        commit = Signal(addr_bits + 1)  # RX buffer pointers, with a wrap bit: end of the committed requests,
        wptr = Signal(addr_bits + 1)    # where the frame being received goes,
        rptr = Signal(addr_bits + 1)    # the next word the reader takes
        answer_due = Signal()           # a request has been read and its response is not sent yet
        answer_seq = Signal(8, reset_less=True)  # that request's sequence number (rotated through while sent)
        everything_answered = Signal()
        has_request = Signal()          # the RX buffer holds words the reader has not taken

        post = Signal()                 # the deframer asks for a link-generated frame
        post_kind = Signal(_Event)
        post_code = Signal(3)

        def error(code):
            return [post.eq(1), post_kind.eq(_Event.ERROR), post_code.eq(code)]

        # -- the deframer: a byte per cycle while hunting, 8 cycles per byte inside a frame ---------------------
        # rpos: 0 hunting; 1..6 the header byte after the sync byte (len_hi, len_lo, seq, type, hcrc_hi, hcrc_lo);
        # 7 payload; 8, 9 the payload check
        HUNT, LEN_HI, LEN_LO, SEQ, TYPE, HCRC_HI, HCRC_LO, PAYLOAD, CRC_HI, CRC_LO = range(10)
        rpos = Signal(range(CRC_LO + 1))
        rx_bit = Signal(3)              # the bit of the offered byte going through the CRC, 0 = most significant
        in_frame = Signal()
        byte = self.rx.payload
        m.d.comb += [in_frame.eq(rpos != HUNT), self.rx.ready.eq(~in_frame | (rx_bit == 7))]
        take = self.rx.valid & self.rx.ready
        with m.If(self.rx.valid & in_frame):
            m.d.sync += rx_bit.eq(rx_bit + 1)

        crc = Signal(16, init=protocol.CRC16_INIT, reset_less=True)
        rx_feedback = crc[15] ^ byte.bit_select(~rx_bit, 1)
        mismatch = Signal(reset_less=True)             # a bit of the check byte(s) so far differed from the register's
        intact = ~mismatch & ~rx_feedback  # at a check's last bit: the check matched
        with m.If(~in_frame | (take & (rpos == HCRC_LO))):
            m.d.sync += [crc.eq(protocol.CRC16_INIT), mismatch.eq(0)]
        with m.Elif(self.rx.valid):
            m.d.sync += [crc.eq(crc16_bit(crc, byte.bit_select(~rx_bit, 1))),
                         mismatch.eq(mismatch | (rpos.matches(HCRC_HI, HCRC_LO, CRC_HI, CRC_LO) & rx_feedback))]

        remaining = Signal(9, reset_less=True)   # the length, then the payload bytes still to come
        too_long = Signal(reset_less=True)
        seq = Signal(8)         # the last sequence byte received
        is_hello, is_request = Signal(reset_less=True), Signal(reset_less=True)
        overflow = Signal()     # a byte of this frame found the RX buffer full

        # idle counts down from timeout − 2 while no byte is offered inside a frame; its top bit (negative) marks
        # the timeout'th such cycle
        idle_bits = self._timeout.bit_length() + 1
        idle = Signal(idle_bits, reset_less=True)
        idle_reload = (self._timeout - 2) % (1 << idle_bits)
        with m.If(self.rx.valid | ~in_frame):
            m.d.sync += idle.eq(idle_reload)
        with m.Else():
            m.d.sync += idle.eq(idle - 1)

        full = Signal()
        m.d.comb += [
            full.eq((wptr[:addr_bits] == rptr[:addr_bits]) & (wptr[addr_bits] != rptr[addr_bits])),
            has_request.eq(commit != rptr),
            rx_buffer.w_addr.eq(wptr[:addr_bits]),
            rx_buffer.w_data.eq(byte),
        ]
        # the header's length, sequence number and type, then the payload, go to the buffer as they arrive; only
        # an accepted request's words are committed
        store = take & rpos.matches(LEN_HI, LEN_LO, SEQ, TYPE, PAYLOAD)
        with m.If(~in_frame):
            m.d.sync += [overflow.eq(0), wptr.eq(commit)]
        with m.Elif(store & full):
            m.d.sync += overflow.eq(1)
        with m.Elif(store):
            m.d.comb += rx_buffer.w_en.eq(1)
            m.d.sync += wptr.eq(wptr + 1)

        finish = Signal()  # a frame with an intact header and payload ends
        with m.If(take & in_frame):
            m.d.sync += rpos.eq(rpos + 1)
        with m.Switch(rpos):
            with m.Case(HUNT):
                with m.If(take & (byte == protocol.SYNC)):
                    m.d.sync += rpos.eq(LEN_HI)
            with m.Case(LEN_HI):
                with m.If(take):
                    m.d.sync += [remaining[8].eq(byte[0]), too_long.eq(byte[1:].any())]
            with m.Case(LEN_LO):
                with m.If(take):
                    m.d.sync += [remaining[:8].eq(byte), too_long.eq(too_long | (remaining[8] & byte.any()))]
            with m.Case(SEQ):
                with m.If(take):
                    m.d.sync += seq.eq(byte)
            with m.Case(TYPE):
                with m.If(take):
                    m.d.sync += [is_hello.eq(byte == protocol.HELLO),
                                 is_request.eq((byte >= protocol.REQUEST_TYPES.start) &
                                               (byte < protocol.REQUEST_TYPES.stop))]
            with m.Case(HCRC_LO):
                with m.If(take):
                    with m.If(~intact):
                        m.d.sync += rpos.eq(HUNT)
                        m.d.comb += error(protocol.ErrorCode.BAD_HEADER)
                    with m.Elif(too_long):
                        m.d.sync += rpos.eq(HUNT)
                        m.d.comb += error(protocol.ErrorCode.BAD_LENGTH)
                    with m.Elif(remaining == 0):
                        m.d.sync += rpos.eq(HUNT)
                        m.d.comb += finish.eq(1)
            with m.Case(PAYLOAD):
                with m.If(take):
                    m.d.sync += remaining.eq(remaining - 1)
                    with m.If(remaining != 1):
                        m.d.sync += rpos.eq(PAYLOAD)
            with m.Case(CRC_LO):
                with m.If(take):
                    m.d.sync += rpos.eq(HUNT)
                    with m.If(~intact):
                        m.d.comb += error(protocol.ErrorCode.BAD_CRC)
                    with m.Else():
                        m.d.comb += finish.eq(1)
        with m.If(in_frame & ~self.rx.valid & idle[-1]):
            m.d.sync += rpos.eq(HUNT)
            m.d.comb += error(protocol.ErrorCode.TIMEOUT)

        # the frame's class, from the type and sequence number
        next_seq = Signal(8)
        m.d.comb += next_seq.eq(seq + 1)
        with m.If(finish):
            with m.If(is_hello):
                m.d.sync += [expected.eq(next_seq), last_valid.eq(0)]
                m.d.comb += [post.eq(1), post_kind.eq(_Event.HELLO)]
            with m.Elif(~is_request):
                m.d.comb += error(protocol.ErrorCode.UNKNOWN_TYPE)
            with m.Elif((seq == expected) & overflow):
                m.d.comb += error(protocol.ErrorCode.OVERFLOW)
            with m.Elif(seq == expected):
                m.d.sync += [commit.eq(wptr), expected.eq(next_seq), last_valid.eq(1)]
            with m.Elif(last_valid & (next_seq == expected)):
                m.d.comb += [post.eq(everything_answered), post_kind.eq(_Event.RESEND)]
            with m.Else():
                m.d.comb += error(protocol.ErrorCode.BAD_SEQUENCE)

        # -- the reader: RX buffer → request packets ----------------------------------------------------------
        # the read port reads the word at rptr after this cycle's pop, so its data is always the word at rptr; a
        # committed word was written at least two cycles before its commit, so that data is never stale
        pop = Signal()
        rptr_next = Signal.like(rptr)
        m.d.comb += [rptr_next.eq(rptr + pop), rx_buffer.r_addr.eq(rptr_next[:addr_bits])]
        m.d.sync += rptr.eq(rptr_next)
        R_LEN_HI, R_LEN_LO, R_SEQ, R_TYPE, R_PAYLOAD = range(5)
        reader = Signal(range(5))
        count = Signal(9, reset_less=True)
        m.d.comb += [self.request.payload.data.eq(rx_buffer.r_data), self.request.payload.first.eq(reader == R_TYPE)]
        with m.Switch(reader):
            with m.Case(R_LEN_HI):
                m.d.comb += pop.eq(has_request & ~answer_due)
                with m.If(pop):
                    m.d.sync += [count[8].eq(rx_buffer.r_data[0]), reader.eq(R_LEN_LO)]
            with m.Case(R_LEN_LO):
                m.d.comb += pop.eq(1)
                m.d.sync += [count[:8].eq(rx_buffer.r_data), reader.eq(R_SEQ)]
            with m.Case(R_SEQ):
                m.d.comb += pop.eq(1)
                m.d.sync += [answer_seq.eq(rx_buffer.r_data), reader.eq(R_TYPE)]
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
        response_type = Signal(8, reset_less=True)       # rotated through while it is sent
        response_length = Signal(range(protocol.MAX_PAYLOAD + 1), reset_less=True)
        sending_buffer = Signal()
        m.d.comb += [
            everything_answered.eq((reader == R_LEN_HI) & ~has_request & ~answer_due & (collector == C_EMPTY)),
            self.response.ready.eq((collector != C_FULL) & ~sending_buffer),
            tx_buffer.w_addr.eq(response_length[:8]),
            tx_buffer.w_data.eq(self.response.payload.data),
        ]
        with m.If(self.response.valid & self.response.ready):
            with m.If(self.response.payload.last):
                m.d.sync += collector.eq(C_FULL)
            with m.Elif(collector == C_EMPTY):
                m.d.sync += collector.eq(C_FILL)
            with m.If(collector == C_EMPTY):
                m.d.sync += [response_type.eq(self.response.payload.data), response_length.eq(0)]
            with m.Elif(response_length != protocol.MAX_PAYLOAD):
                m.d.comb += tx_buffer.w_en.eq(1)
                m.d.sync += response_length.eq(response_length + 1)

        # -- the waiting link-generated frame: held until it has been sent -------------------------------------
        event_valid = Signal()
        event_kind = Signal(_Event, reset_less=True)
        event_code = Signal(3, reset_less=True)
        event_seq = Signal(8, reset_less=True)  # rotated through while it is sent
        event_expected = Signal(8, reset_less=True)  # ``expected`` as the event's frame starts (an ERROR's byte)
        event_done = Signal()
        with m.If(post & ~event_valid):
            m.d.sync += [event_valid.eq(1), event_kind.eq(post_kind), event_code.eq(post_code),
                         event_seq.eq(seq)]
        with m.Elif(event_done):
            m.d.sync += event_valid.eq(0)

        # -- the sender: one frame from the waiting event or the collected response, a bit per cycle -----------
        # tpos: 0 idle; 1..7 the header byte (sync, len_hi, len_lo, seq, type, hcrc_hi, hcrc_lo); 8 payload;
        # 9, 10 the payload check
        T_IDLE, T_SYNC, T_LEN_HI, T_LEN_LO, T_SEQ, T_TYPE, T_HCRC_HI, T_HCRC_LO, T_PAYLOAD, T_CRC_HI, T_CRC_LO = \
            range(11)
        tpos = Signal(range(T_CRC_LO + 1))
        tx_bit = Signal(3)              # the bit being composed, 0 = most significant
        of_event = Signal()             # the frame being sent is the waiting event's
        index = Signal(range(protocol.MAX_PAYLOAD + 1), reset_less=True)  # payload bytes begun
        s_crc = Signal(16, init=protocol.CRC16_INIT, reset_less=True)
        from_buffer, is_error, is_hello_reply = Signal(), Signal(), Signal()
        composing, sent, payload_done = Signal(), Signal(), Signal()
        m.d.comb += [
            from_buffer.eq(~of_event | (event_kind == _Event.RESEND)),
            is_error.eq(of_event & (event_kind == _Event.ERROR)),
            is_hello_reply.eq(of_event & (event_kind == _Event.HELLO)),
            sending_buffer.eq((tpos != T_IDLE) & from_buffer),
            composing.eq((tpos != T_IDLE) & ~self.tx.valid),
            sent.eq(self.tx.valid & self.tx.ready),
            payload_done.eq(Mux(from_buffer, index == response_length,
                                index == Mux(is_hello_reply, len(hello), 3))),
            # the next payload byte of the response or of the HELLO reply
            tx_buffer.r_addr.eq(Cat(index[:8], is_hello_reply)),
        ]

        def msb_first(value):
            """Bit ``tx_bit`` of ``value`` (zero-extended to 8 bits), counted from the most significant."""
            value = Value.cast(value)
            return Cat(value, C(0, 8 - len(value))).bit_select(~tx_bit, 1)

        out_bit = Signal()
        with m.Switch(tpos):
            with m.Case(T_SYNC):
                m.d.comb += out_bit.eq(msb_first(C(protocol.SYNC, 8)))
            with m.Case(T_LEN_HI):
                m.d.comb += out_bit.eq((tx_bit == 7) & from_buffer & response_length[8])
            with m.Case(T_LEN_LO):
                m.d.comb += out_bit.eq(Mux(from_buffer, msb_first(response_length[:8]),
                                           Mux(is_hello_reply, msb_first(len(hello)), msb_first(3))))
            with m.Case(T_SEQ):
                m.d.comb += out_bit.eq(Mux(of_event, event_seq[7], answer_seq[7]))
            with m.Case(T_TYPE):
                m.d.comb += out_bit.eq(Mux(from_buffer, response_type[7],
                                           Mux(is_hello_reply, msb_first(protocol.HELLO_REPLY),
                                               msb_first(protocol.ERROR))))
            with m.Case(T_PAYLOAD):
                with m.If(~is_error):
                    m.d.comb += out_bit.eq(self.tx.payload[7])
                with m.Else():
                    with m.Switch(index[:2]):   # an ERROR's payload: code, expected, got
                        with m.Case(1):
                            m.d.comb += out_bit.eq(msb_first(event_code))
                        with m.Case(2):
                            m.d.comb += out_bit.eq(msb_first(event_expected))
                        with m.Case(3):
                            m.d.comb += out_bit.eq(event_seq[7])
            with m.Default():   # the checks leave the register they were computed in
                m.d.comb += out_bit.eq(s_crc[15])

        with m.If(composing):
            m.d.sync += [tx_bit.eq(tx_bit + 1), self.tx.payload.eq(Cat(out_bit, self.tx.payload[:7]))]
            with m.If(tx_bit == 7):
                m.d.sync += self.tx.valid.eq(1)
            with m.If(tpos == T_SEQ):
                with m.If(of_event):
                    m.d.sync += event_seq.eq(event_seq.rotate_left(1))
                with m.Else():
                    m.d.sync += answer_seq.eq(answer_seq.rotate_left(1))
            with m.If((tpos == T_TYPE) & from_buffer):
                m.d.sync += response_type.eq(response_type.rotate_left(1))
            with m.If((tpos == T_PAYLOAD) & is_error & (index[:2] == 3)):
                m.d.sync += event_seq.eq(event_seq.rotate_left(1))
        with m.If(sent):
            # a payload byte from the TX buffer is rotated through the register while it is composed
            m.d.sync += [self.tx.valid.eq(0), self.tx.payload.eq(tx_buffer.r_data)]

        with m.If(tpos.matches(T_IDLE, T_SYNC) | (sent & (tpos == T_HCRC_LO))):
            m.d.sync += s_crc.eq(protocol.CRC16_INIT)
        with m.Elif(composing):
            m.d.sync += s_crc.eq(crc16_bit(s_crc, out_bit))

        frame_end = Signal()
        with m.If(sent):
            m.d.sync += tpos.eq(tpos + 1)
            with m.If(tpos.matches(T_HCRC_LO, T_PAYLOAD) & ~payload_done):
                m.d.sync += [tpos.eq(T_PAYLOAD), index.eq(index + 1)]
            with m.If(((tpos == T_HCRC_LO) & payload_done) | (tpos == T_CRC_LO)):
                m.d.comb += frame_end.eq(1)
        with m.If(tpos == T_IDLE):
            m.d.sync += index.eq(0)
            with m.If(event_valid):
                m.d.sync += [tpos.eq(T_SYNC), of_event.eq(1), event_expected.eq(expected)]
            with m.Elif((collector == C_FULL) & answer_due):
                m.d.sync += [tpos.eq(T_SYNC), of_event.eq(0)]
        with m.If(frame_end):
            m.d.sync += tpos.eq(T_IDLE)
            m.d.comb += event_done.eq(of_event)
            with m.If(~of_event):
                m.d.sync += [answer_due.eq(0), collector.eq(C_EMPTY)]

        return m
