"""The host side of the link layer: a session over any byte transport (sequence numbers, credit-based flow control,
retries), and the device's rules as a Python model (``docs/protocol.md``).

:class:`Link` talks to a device through a transport with two methods: ``write(data: bytes)`` and
``read(n: int, timeout: float) -> bytes`` (at most ``n`` bytes; ``b""`` only when nothing arrived within ``timeout``
seconds). It opens a session with HELLO, numbers its requests, keeps at most the device's credit of request bytes
unanswered, and retries on ERROR frames and timeouts; when the device stops answering it raises a
:class:`LinkError`.

:class:`DeviceModel` behaves as :class:`mmfree.hw.link.LinkDevice` does, byte for byte, with a Python handler as the
layer above: the gateware bench predicts the device with it, and the host tests use it as a device.
"""

import collections
import time

from .protocol import (CREDIT_RESERVE, CRC16_INIT, ERROR, HEADER_SIZE, HELLO, HELLO_REPLY, MAX_PAYLOAD, REPLY_BIT,
                       REQUEST, REQUEST_TYPES, SYNC, VERSION, ErrorCode, Frame, FrameDecoder, crc16, error_payload,
                       frame_size, hello_payload, parse_error, parse_hello)

__all__ = ["LinkError", "LinkTimeout", "DeviceError", "SequenceError", "ResponseLost", "VersionMismatch",
           "Link", "DeviceModel", "echo"]


class LinkError(Exception):
    """The link failed; the subclasses say how."""


class LinkTimeout(LinkError):
    """The device did not answer a request (or HELLO) after the configured retries."""


class DeviceError(LinkError):
    """The device kept answering ERROR after the configured retries; ``report`` is the last
    :class:`~mmfree.host.protocol.LinkErrorReport`."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


class SequenceError(LinkError):
    """The device's sequence state does not match the session (it was reset, or another host opened a session):
    call :meth:`Link.hello` and start over."""


class ResponseLost(LinkError):
    """The device executed a pipelined request but its response was lost, and it was not the device's last request
    (only the last response can be sent again). ``index`` is the request's position in the pipeline."""

    def __init__(self, message, index):
        super().__init__(message)
        self.index = index


class VersionMismatch(LinkError):
    """The device speaks another protocol version."""


class Link:
    """A session with a link device.

    Parameters
    ----------
    transport
        An object with ``write(bytes)`` and ``read(n, timeout) -> bytes`` (see the module notes).
    timeout : float
        Seconds to wait for an answer before retrying (also the quiet time that ends a recovery).
    retries : int
        Retransmissions of a request before giving up with :class:`LinkTimeout` or :class:`DeviceError`.
    first_seq : int
        Sequence number of the HELLO that opens the session (0..255); requests follow from the next one.

    Attributes
    ----------
    info : mmfree.host.protocol.Hello or None
        The device's HELLO reply, once :meth:`hello` succeeded.
    retransmissions : int
        Frames sent again so far (a measure of line quality).
    """

    def __init__(self, transport, *, timeout=0.25, retries=5, first_seq=0):
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValueError(f"retries must be a non-negative int, got {retries!r}")
        if not isinstance(first_seq, int) or not 0 <= first_seq <= 255:
            raise ValueError(f"first_seq must be an int in 0..255, got {first_seq!r}")
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.info = None
        self.retransmissions = 0
        self._seq = first_seq
        self._in_flight = 0
        self._decoder = FrameDecoder()

    @property
    def credit(self):
        """Request bytes (whole frames, on the wire) the device lets the host have unanswered."""
        return self.info.credit if self.info else 0

    @property
    def in_flight(self):
        """Request bytes sent and not yet answered (never more than :attr:`credit`)."""
        return self._in_flight

    # -- receiving ---------------------------------------------------------------------------------------------

    def _receive(self):
        """The frames that complete before ``timeout`` passes without one; ``[]`` on a timeout (a partial frame
        is dropped then, as the device does after its inter-byte timeout)."""
        deadline = time.monotonic() + self.timeout
        while (remaining := deadline - time.monotonic()) > 0:
            data = self.transport.read(4096, remaining)
            if not data:
                break
            frames = self._decoder.feed(data)
            if frames:
                return frames
        self._decoder.flush()
        return []

    # -- the session -------------------------------------------------------------------------------------------

    def hello(self):
        """Open the session: the device resets its sequence state and reports its version, credit and maximum
        payload.

        Returns
        -------
        mmfree.host.protocol.Hello

        Raises
        ------
        LinkTimeout
            No HELLO reply after ``retries`` retransmissions.
        VersionMismatch
            The device speaks another protocol version.
        """
        seq = self._seq
        frame = Frame(HELLO, seq).encode()
        self.transport.write(frame)
        for attempt in range(self.retries + 1):
            while frames := self._receive():
                for reply in frames:
                    if reply.type == HELLO_REPLY and reply.seq == seq:
                        info = parse_hello(reply.payload)
                        if info.version != VERSION:
                            raise VersionMismatch(f"the device speaks protocol version {info.version}, "
                                                  f"this host version {VERSION}")
                        self.info, self._seq, self._in_flight = info, (seq + 1) & 0xFF, 0
                        return info
            if attempt < self.retries:
                self.retransmissions += 1
                self.transport.write(frame)
        raise LinkTimeout(f"no HELLO reply after {self.retries} retries of {self.timeout} s each")

    def request(self, payload=b"", type=REQUEST):
        """Send one request and return the device's response (a :class:`~mmfree.host.protocol.Frame`).

        Opens the session first when :meth:`hello` has not been called. Raises as :meth:`pipeline` does.
        """
        return self.pipeline([(type, payload)])[0]

    def _check(self, requests):
        checked = []
        for index, item in enumerate(requests):
            type, payload = (REQUEST, item) if isinstance(item, (bytes, bytearray, memoryview)) else item
            payload = bytes(payload)
            if type not in REQUEST_TYPES:
                raise ValueError(f"request {index}: type {type!r} is not a request type "
                                 f"(0x{REQUEST_TYPES.start:02x}..0x{REQUEST_TYPES.stop - 1:02x})")
            if len(payload) > self.info.max_payload:
                raise ValueError(f"request {index}: payload of {len(payload)} bytes exceeds the device's maximum "
                                 f"of {self.info.max_payload}")
            if frame_size(len(payload)) > self.credit:
                raise ValueError(f"request {index}: a {frame_size(len(payload))}-byte frame exceeds the device's "
                                 f"credit of {self.credit} bytes")
            checked.append((type, payload))
        return checked

    def pipeline(self, requests):
        """Send requests back to back, never more unanswered bytes than the credit, and return their responses.

        Parameters
        ----------
        requests : iterable
            Payloads (bytes, sent as :data:`~mmfree.host.protocol.REQUEST`) or ``(type, payload)`` pairs.

        Returns
        -------
        list of mmfree.host.protocol.Frame
            The responses, in request order.

        Raises
        ------
        LinkTimeout
            The device stopped answering: no progress after ``retries`` recoveries.
        DeviceError
            The device kept reporting errors after ``retries`` recoveries.
        ResponseLost
            A response was lost for a request that the device had executed and that was not its last.
        SequenceError
            The device's sequence state does not match the session.

        Notes
        -----
        Recovery is go-back-N: after an ERROR or a timeout the link waits until the line is quiet for ``timeout``,
        collecting responses still on their way, then sends every unanswered request again with its own sequence
        number. The device executes the ones it never accepted and sends the last one's response again when only
        that response was lost.
        """
        if self.info is None:
            self.hello()
        requests = self._check(requests)
        results = [None] * len(requests)
        pending = collections.deque()  # [index, seq, frame bytes], oldest first
        sent = 0
        failures = 0
        self._in_flight = 0

        def answered(frame):
            """Record a response; False when it answers nothing pending (stale or a duplicate)."""
            seqs = [entry[1] for entry in pending]
            if frame.type in (ERROR, HELLO_REPLY) or frame.seq not in seqs:
                return False
            position = seqs.index(frame.seq)
            if position:
                index = pending[0][0]
                raise ResponseLost(f"the response to request {index} (seq {pending[0][1]}) was lost, and the "
                                   f"device has executed later requests since", index)
            index, _, data = pending.popleft()
            results[index] = frame
            self._in_flight -= len(data)
            return True

        while sent < len(requests) or pending:
            while sent < len(requests) and self._in_flight + frame_size(len(requests[sent][1])) <= self.credit:
                data = Frame(requests[sent][0], self._seq, requests[sent][1]).encode()
                self.transport.write(data)
                pending.append([sent, self._seq, data])
                self._in_flight += len(data)
                self._seq = (self._seq + 1) & 0xFF
                sent += 1
            frames = self._receive()
            trouble = None if frames else "timeout"
            for frame in frames:
                if frame.type == ERROR:
                    trouble = parse_error(frame.payload)
                    self._check_sequence(trouble, pending)
                elif answered(frame):
                    failures = 0
            if trouble is None:
                continue
            while frames := self._receive():  # recovery: let the line go quiet, keep what arrives
                for frame in frames:
                    if frame.type == ERROR:
                        self._check_sequence(parse_error(frame.payload), pending)
                    else:
                        answered(frame)
            if not pending:
                continue
            failures += 1
            if failures > self.retries:
                if trouble == "timeout":
                    raise LinkTimeout(f"no answer to request {pending[0][0]} (seq {pending[0][1]}) after "
                                      f"{self.retries} retries of {self.timeout} s each")
                raise DeviceError(f"request {pending[0][0]} (seq {pending[0][1]}) still failing after "
                                  f"{self.retries} retries; last error {trouble}", trouble)
            for _, _, data in pending:
                self.retransmissions += 1
                self.transport.write(data)
        return results

    def _check_sequence(self, report, pending):
        """Raise when a BAD_SEQUENCE error about the oldest unanswered request shows that it cannot be recovered."""
        if report.code != ErrorCode.BAD_SEQUENCE or not pending or report.got != pending[0][1]:
            return
        ahead = (report.expected - report.got) & 0xFF
        if 2 <= ahead <= len(pending):
            index = pending[0][0]
            raise ResponseLost(f"the response to request {index} (seq {report.got}) was lost, and the device has "
                               f"executed later requests since (it expects seq {report.expected})", index)
        raise SequenceError(f"the device expects seq {report.expected}, the session is at seq {report.got}: "
                            f"the device was reset or another session opened; call hello()")


def echo(type, payload):
    """The default handler of :class:`DeviceModel`: answers with the request's type plus ``REPLY_BIT`` and the
    same payload (what the gateware bench's echo layer does)."""
    return type | REPLY_BIT, payload


class DeviceModel:
    """The link device's rules, byte for byte (what :class:`mmfree.hw.link.LinkDevice` does).

    Feed it the bytes the host sends; it returns the frames the device sends, in the order the rules produce them.
    The model sends everything at once: it has no transmitter that could be busy, so it never drops a
    link-generated frame (the hardware holds one waiting and drops the next while one waits), and an ERROR's
    ``expected`` byte is the value at the error (the hardware reads it when it sends the ERROR, which can be after
    later requests were accepted).

    Parameters
    ----------
    depth : int
        RX buffer bytes; the credit is ``depth - CREDIT_RESERVE``. Each request takes ``len + 4`` bytes until the
        layer above has read it; one that does not fit gets ERROR OVERFLOW.
    handler : callable
        The layer above: ``handler(type, payload) -> (type, payload)``; default :func:`echo`.

    Attributes
    ----------
    stalled : bool
        While True the layer above reads nothing: accepted requests stay in the buffer (and duplicates are not
        answered). :meth:`resume` ends it.
    """

    def __init__(self, depth=512, handler=echo):
        self.depth = depth
        self.credit = depth - CREDIT_RESERVE
        self.handler = handler
        self.stalled = False
        self.expected = 0
        self.last_valid = False
        self.last_response = None
        self.unread = collections.deque()
        self._state = "hunt"
        self._got = 0
        self._out = []

    @property
    def used(self):
        """RX buffer bytes held by accepted requests that the layer above has not read."""
        return sum(len(payload) + 4 for _, _, payload in self.unread)

    @property
    def in_frame(self):
        """True while a frame has started (its inter-byte timeout runs)."""
        return self._state != "hunt"

    def _error(self, code):
        self._out.append((Frame(ERROR, self._got, error_payload(code, self.expected, self._got)), True))

    def _serve(self):
        while self.unread and not self.stalled:
            type, seq, payload = self.unread.popleft()
            reply_type, reply = self.handler(type, payload)
            self.last_response = Frame(reply_type, seq, bytes(reply)[:MAX_PAYLOAD])
            self._out.append((self.last_response, False))

    def feed(self, data):
        """Bytes from the host; returns the device's answers as ``(Frame, link_generated)`` pairs, where
        ``link_generated`` marks ERROR frames, HELLO replies and resent responses (which the hardware may drop)."""
        for byte in bytes(data):
            self._byte(byte)
        out, self._out = self._out, []
        return out

    def timeout(self):
        """The inter-byte timeout expires: a frame in progress is dropped with ERROR TIMEOUT. Returns like
        :meth:`feed`."""
        if self._state != "hunt":
            self._error(ErrorCode.TIMEOUT)
            self._state = "hunt"
        out, self._out = self._out, []
        return out

    def resume(self):
        """End a stall: the layer above answers the requests it held. Returns like :meth:`feed`."""
        self.stalled = False
        self._serve()
        out, self._out = self._out, []
        return out

    def _byte(self, byte):
        if self._state == "hunt":
            if byte == SYNC:
                self._state, self._header, self._crc = "header", bytearray(), CRC16_INIT
            return
        self._crc = crc16([byte], self._crc)
        if self._state == "header":
            self._header.append(byte)
            if len(self._header) == 3:
                self._got = byte
            if len(self._header) == HEADER_SIZE - 1:
                self._end_header()
        elif self._state == "payload":
            self._payload.append(byte)
            if len(self._payload) == self._length:
                self._state, self._crc_left = "crc", 2
        else:
            self._crc_left -= 1
            if not self._crc_left:
                self._state = "hunt"
                if self._crc:
                    self._error(ErrorCode.BAD_CRC)
                else:
                    self._finish()

    def _end_header(self):
        length, seq, type = (self._header[0] << 8) | self._header[1], self._header[2], self._header[3]
        self._state = "hunt"
        if self._crc:
            self._error(ErrorCode.BAD_HEADER)
            return
        if length > MAX_PAYLOAD:
            self._error(ErrorCode.BAD_LENGTH)
            return
        self._type, self._seq, self._length = type, seq, length
        self._fits = self.used + length + 4 <= self.depth
        self._payload = bytearray()
        if length:
            self._state, self._crc = "payload", CRC16_INIT
        else:
            self._finish()

    def _finish(self):
        type, seq = self._type, self._seq
        if type == HELLO:
            self.expected, self.last_valid = (seq + 1) & 0xFF, False
            self._out.append((Frame(HELLO_REPLY, seq, hello_payload(self.credit)), True))
        elif type not in REQUEST_TYPES:
            self._error(ErrorCode.UNKNOWN_TYPE)
        elif seq == self.expected:
            if not self._fits:
                self._error(ErrorCode.OVERFLOW)
                return
            self.expected, self.last_valid = (seq + 1) & 0xFF, True
            self.unread.append((type, seq, bytes(self._payload)))
            self._serve()
        elif self.last_valid and seq == (self.expected - 1) & 0xFF:
            if not self.unread:
                self._out.append((self.last_response, True))
        else:
            self._error(ErrorCode.BAD_SEQUENCE)
