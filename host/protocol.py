"""The host link's wire format: frame layout, CRC-16, frame types, error codes (``docs/protocol.md`` is the
specification; this module is its executable form, shared by :mod:`mmfree.hw.link` and :mod:`mmfree.host.link`).

A frame is ``SYNC, len_hi, len_lo, seq, type, hcrc_hi, hcrc_lo`` (the header), then, when ``len > 0``, ``len``
payload bytes and ``crc_hi, crc_lo``. ``hcrc`` is :func:`crc16` of ``len_hi, len_lo, seq, type``; ``crc`` is
:func:`crc16` of the payload. Multi-byte fields are big-endian.
"""

import dataclasses
import enum

__all__ = [
    "VERSION", "SYNC", "HEADER_SIZE", "CRC_SIZE", "MAX_PAYLOAD", "CREDIT_RESERVE",
    "HELLO", "HELLO_REPLY", "REQUEST", "REQUEST_TYPES", "RESPONSE", "REPLY_BIT", "ERROR", "ErrorCode",
    "CRC16_POLY", "CRC16_INIT", "crc16", "frame_size", "encode_frame", "Frame", "FrameDecoder",
    "Hello", "hello_payload", "parse_hello", "LinkErrorReport", "error_payload", "parse_error",
]

#: protocol version, reported by the device in its HELLO reply
VERSION = 1
#: first byte of every frame
SYNC = 0xA5
#: bytes of a header: sync, length (2), seq, type, header check (2)
HEADER_SIZE = 7
#: bytes of the payload check
CRC_SIZE = 2
#: the longest payload of any frame, either direction
MAX_PAYLOAD = 256
#: RX buffer bytes a device keeps back from its credit grant (the credit is its buffer depth minus this)
CREDIT_RESERVE = 8

#: host → device: open a session (resets the device's sequence state); empty payload
HELLO = 0x01
#: device → host: the answer to HELLO; payload :func:`hello_payload`
HELLO_REPLY = 0x81
#: host → device: the generic request type; its payload belongs to the layer above the link
REQUEST = 0x10
#: host → device types passed to the layer above, payloads opaque to the link (``REQUEST`` is the first)
REQUEST_TYPES = range(0x10, 0x80)
#: device → host: the generic response type (``REQUEST | REPLY_BIT``)
RESPONSE = 0x90
#: set in the type of every device → host frame; a response's type is conventionally its request's with this bit
REPLY_BIT = 0x80
#: device → host: a link error; payload :func:`error_payload`
ERROR = 0x80


class ErrorCode(enum.IntEnum):
    """Codes of ERROR frames (the first payload byte)."""
    #: the header check failed (the device hunts for the next sync from the following byte)
    BAD_HEADER = 1
    #: the payload check failed
    BAD_CRC = 2
    #: the sequence number was neither the expected one nor a duplicate of the last request
    BAD_SEQUENCE = 3
    #: the request does not fit the free RX buffer (the host exceeded its credit)
    OVERFLOW = 4
    #: the type is not HELLO or a request type
    UNKNOWN_TYPE = 5
    #: the line went quiet inside a frame for longer than the device's inter-byte timeout
    TIMEOUT = 6
    #: the header is intact but its length exceeds ``MAX_PAYLOAD``
    BAD_LENGTH = 7


#: CRC-16/IBM-3740 (also known as CRC-16/CCITT-FALSE): polynomial 0x1021, not reflected, no final XOR
CRC16_POLY = 0x1021
#: its initial value
CRC16_INIT = 0xFFFF


def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC16_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data, crc=CRC16_INIT):
    """CRC-16/IBM-3740 of ``data`` (``crc16(b"123456789") == 0x29B1``), continuing from ``crc``.

    Appending the result big-endian gives a message whose CRC is 0: receivers check that.
    """
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


def frame_size(length):
    """Bytes on the wire of a frame with a ``length``-byte payload: 7 when empty, else ``length + 9``."""
    return HEADER_SIZE + (length + CRC_SIZE if length else 0)


def _check_byte(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
        raise ValueError(f"{name} must be an int in 0..255, got {value!r}")


def encode_frame(type, seq, payload=b""):
    """The bytes of one frame.

    Parameters
    ----------
    type, seq : int
        Frame type and sequence number, 0..255 each.
    payload : bytes-like
        At most :data:`MAX_PAYLOAD` bytes.

    Returns
    -------
    bytes
        :func:`frame_size` ``(len(payload))`` bytes.
    """
    _check_byte("type", type)
    _check_byte("seq", seq)
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD = {MAX_PAYLOAD}")
    header = bytes([len(payload) >> 8, len(payload) & 0xFF, seq, type])
    frame = bytes([SYNC]) + header + crc16(header).to_bytes(2, "big")
    if payload:
        frame += payload + crc16(payload).to_bytes(2, "big")
    return frame


@dataclasses.dataclass(frozen=True)
class Frame:
    """A decoded frame: ``type``, ``seq`` (ints) and ``payload`` (bytes)."""
    type: int
    seq: int
    payload: bytes = b""

    def encode(self):
        """Its bytes on the wire (:func:`encode_frame`)."""
        return encode_frame(self.type, self.seq, self.payload)


class FrameDecoder:
    """Streaming frame decoder that resynchronises on garbage.

    :meth:`feed` takes bytes as they arrive and returns the complete, intact frames. Rules (``docs/protocol.md``):
    bytes before a sync byte are skipped; a header whose check fails (or whose length exceeds ``MAX_PAYLOAD``)
    drops only its sync byte, and the search goes on from the next byte (this receiver can look back, the device
    cannot); a frame whose payload check fails is dropped whole (its header is intact, so its extent is known).

    Attributes
    ----------
    skipped : int
        Bytes dropped while hunting for a sync byte (bad headers' sync bytes included).
    bad_headers, bad_crcs : int
        Headers and payloads that failed their check.
    """

    def __init__(self):
        self._buffer = bytearray()
        self.skipped = self.bad_headers = self.bad_crcs = 0

    @property
    def pending(self):
        """Bytes held towards the next frame."""
        return len(self._buffer)

    def flush(self):
        """Drop a partial frame (after a timeout: its tail is not coming)."""
        self.skipped += len(self._buffer)
        self._buffer.clear()

    def feed(self, data):
        """Add received bytes; returns the list of :class:`Frame` completed by them, in order."""
        buf = self._buffer
        buf += data
        frames = []
        while buf:
            start = buf.find(SYNC)
            if start < 0:
                start = len(buf)
            if start:
                self.skipped += start
                del buf[:start]
                continue
            if len(buf) < HEADER_SIZE:
                break
            length = (buf[1] << 8) | buf[2]
            if crc16(buf[1:HEADER_SIZE]) != 0 or length > MAX_PAYLOAD:
                self.bad_headers += 1
                self.skipped += 1
                del buf[:1]
                continue
            size = frame_size(length)
            if len(buf) < size:
                break
            if length and crc16(buf[HEADER_SIZE:size]) != 0:
                self.bad_crcs += 1
            else:
                frames.append(Frame(buf[4], buf[3], bytes(buf[HEADER_SIZE:size - CRC_SIZE])))
            del buf[:size]
        return frames


@dataclasses.dataclass(frozen=True)
class Hello:
    """The HELLO reply: protocol ``version``, ``credit`` (RX buffer bytes the host may have in flight) and
    ``max_payload``."""
    version: int
    credit: int
    max_payload: int


def hello_payload(credit, max_payload=MAX_PAYLOAD, version=VERSION):
    """Payload of a HELLO reply: ``version`` (1 byte), ``credit`` (2, big-endian), ``max_payload`` (2)."""
    return bytes([version]) + credit.to_bytes(2, "big") + max_payload.to_bytes(2, "big")


def parse_hello(payload):
    """:class:`Hello` from a HELLO reply's payload; ``ValueError`` when it is not 5 bytes."""
    if len(payload) != 5:
        raise ValueError(f"a HELLO reply has a 5-byte payload, got {len(payload)} bytes")
    return Hello(payload[0], int.from_bytes(payload[1:3], "big"), int.from_bytes(payload[3:5], "big"))


@dataclasses.dataclass(frozen=True)
class LinkErrorReport:
    """An ERROR frame's payload: ``code`` (an :class:`ErrorCode`, or the raw int when unknown), the device's
    ``expected`` sequence number and the ``got`` sequence byte of the frame in error (as received; meaningful for
    BAD_SEQUENCE, BAD_CRC, OVERFLOW, UNKNOWN_TYPE)."""
    code: int
    expected: int
    got: int


def error_payload(code, expected, got):
    """Payload of an ERROR frame: ``code``, ``expected``, ``got`` (one byte each)."""
    return bytes([int(code), expected, got])


def parse_error(payload):
    """:class:`LinkErrorReport` from an ERROR frame's payload; ``ValueError`` when it is not 3 bytes."""
    if len(payload) != 3:
        raise ValueError(f"an ERROR frame has a 3-byte payload, got {len(payload)} bytes")
    code = payload[0]
    return LinkErrorReport(ErrorCode(code) if code in ErrorCode._value2member_map_ else code, payload[1], payload[2])
