"""The command layer above the host link: request and response types, payload layouts, error codes
(``docs/protocol.md``, section "Command layer", is the specification; this module is its executable form, used by
the host runtime :mod:`mmfree.host.runtime` and the golden device :mod:`mmfree.host.golden_device`).

Every payload is a fixed-size header of big-endian fields, followed in three of them (WRITE, GENERATE, READBACK) by
``count`` items of one fixed size, ``count`` being a header field; every payload fits
:data:`~mmfree.host.protocol.MAX_PAYLOAD`. The link answers each request with exactly one response, so generation
is pulled: GENERATE feeds the prompt and sets up sampling, each NEXT is answered with a TOKEN (the next generated
token), and the NEXT after the last token with DONE. In a streamed generation (GENERATE's :data:`STREAM` flag) each
token's run takes its matrices and embedding row from STREAM requests that follow the GENERATE or NEXT that started
it. A response's type is its request's with
:data:`~mmfree.host.protocol.REPLY_BIT` set, except TOKEN and DONE (answers to NEXT) and ERROR, the answer to any
command that fails. WRITE, RESET, GENERATE and STREAM are answered with an empty payload (an acknowledgement).

Each message is a frozen dataclass with ``TYPE`` (its frame type), ``encode() -> bytes`` and
``decode(payload)`` (a classmethod). Field values are checked when a message is made: a bad one raises
:class:`CommandError` (a ``ValueError``) with the code and arguments the device sends back for it; a payload of the
wrong length raises it with code MALFORMED.
"""

import dataclasses
import enum
import struct
import zlib
from typing import ClassVar

import numpy as np

from .compiler import CORES, CoreParams
from .fixed import Scalar
from .isa import INSTRUCTION_BITS
from .protocol import MAX_PAYLOAD, REPLY_BIT

__all__ = [
    "VERSION", "Command", "Reply", "Region", "Target", "ErrorCode", "CommandError", "RESET_STATE", "WIDE_IDS",
    "STREAM", "FEATURE_WEIGHT_STREAM", "SCALAR_BITS", "HASH_BYTES", "TRIT_FORMATS", "WORDS_PER_INSTRUCTION",
    "MAX_WRITE_WORDS", "MAX_STREAM_WORDS", "MAX_READ", "region_words", "instruction_words", "words_instructions",
    "digest", "GetInfo", "Write", "Digest", "Reset", "Read", "GetStats", "Stream", "Generate", "Next",
    "Info", "Checksum", "Readback", "DeviceStats", "Token", "Done", "ErrorReport",
    "REQUESTS", "ANSWERS", "decode_request", "decode_reply",
]

#: version of the command layer, reported by INFO (the link's own version is :data:`mmfree.host.protocol.VERSION`)
VERSION = 2


class Command(enum.IntEnum):
    """Request types (host → device)."""
    INFO = 0x11      #: device and core description
    WRITE = 0x12     #: words into the weight image or the program memory
    DIGEST = 0x13    #: CRC-32 of the first words of a region
    RESET = 0x14     #: zero the recurrent state
    READ = 0x15      #: debug read-back of a vector slot, a layer's state or the logits
    STATS = 0x16     #: the device's counters
    STREAM = 0x17    #: words of the weight stream, for the run in progress
    GENERATE = 0x20  #: feed a prompt, set up sampling
    NEXT = 0x21      #: the next generated token (TOKEN) or the end (DONE)


class Reply(enum.IntEnum):
    """Response types (device → host)."""
    INFO = Command.INFO | REPLY_BIT
    WRITE = Command.WRITE | REPLY_BIT
    DIGEST = Command.DIGEST | REPLY_BIT
    RESET = Command.RESET | REPLY_BIT
    READ = Command.READ | REPLY_BIT
    STATS = Command.STATS | REPLY_BIT
    STREAM = Command.STREAM | REPLY_BIT
    GENERATE = Command.GENERATE | REPLY_BIT
    TOKEN = 0xA1     #: answers NEXT: one generated token
    DONE = 0xA2      #: answers the NEXT after the last token
    ERROR = 0xFF     #: answers any failed command


class Region(enum.IntEnum):
    """Memories that WRITE fills and DIGEST checks."""
    IMAGE = 0    #: the weight memory: ``CoreParams.weight_words`` words
    PROGRAM = 1  #: the program memory: ``WORDS_PER_INSTRUCTION · CoreParams.program_instructions`` words


class Target(enum.IntEnum):
    """What READ reads back."""
    SLOT = 0    #: a vector slot (index: :class:`~mmfree.host.isa.Slot`), with its scale
    STATE = 1   #: a layer's recurrent state (index: the layer), Q.state_frac, no scale
    LOGITS = 2  #: the head's accumulators after the last token run, with the head's output scale (index 0)


class ErrorCode(enum.IntEnum):
    """Codes of ERROR responses; ``value`` and ``limit`` are the response's two arguments."""
    UNKNOWN_COMMAND = 1  #: value: the request type
    MALFORMED = 2        #: the payload's length does not match its layout; value: its length, limit: the layout's
    BAD_REGION = 3       #: value: the region (WRITE, DIGEST) or read target (READ)
    OUT_OF_RANGE = 4     #: value: the first word, index or layer beyond the end; limit: how many there are
    NOT_LOADED = 5       #: value: what was never written: bit 0 the weight image, bit 1 the program
    BAD_TOKEN = 6        #: value: the token id; limit: the vocabulary size
    NO_DATA = 7          #: nothing to read back or sample from: no token has run since the last RESET
    IDLE = 8             #: NEXT without a generation in progress
    BAD_PROGRAM = 9      #: the program memory does not decode, has no END, or fails while running
    BAD_VALUE = 10       #: value: the field's payload byte offset; limit: the value it holds
    STREAM_SHORT = 11    #: the run in progress still needs words of the weight stream; value: how many


_MESSAGES = {
    ErrorCode.UNKNOWN_COMMAND: "request type 0x{value:02x} is not a command",
    ErrorCode.MALFORMED: "malformed payload: {value} bytes where its layout needs {limit}",
    ErrorCode.BAD_REGION: "no region or read target {value}",
    ErrorCode.OUT_OF_RANGE: "{value} is out of range: there are {limit}",
    ErrorCode.NOT_LOADED: "nothing loaded ({missing} never written): load a model first",
    ErrorCode.BAD_TOKEN: "token id {value} is outside the vocabulary (0 … {last})",
    ErrorCode.NO_DATA: "no token has run since the last RESET: nothing to read back or sample from",
    ErrorCode.IDLE: "no generation in progress",
    ErrorCode.BAD_PROGRAM: "the program memory does not hold a runnable program (it does not decode, has no END, "
                           "or fails while running)",
    ErrorCode.BAD_VALUE: "the field at payload byte {value} holds {limit}, which is not allowed",
    ErrorCode.STREAM_SHORT: "the run in progress still needs {value} words of the weight stream (STREAM them, or "
                            "RESET)",
}


class CommandError(ValueError):
    """A command failed: the device answered ERROR, or a message does not encode or decode.

    Attributes
    ----------
    code : ErrorCode or int
        The error code (an int when this host does not know it).
    command : int or None
        The request type the error is about.
    value, limit : int
        The error's arguments (their meaning depends on ``code``; see :class:`ErrorCode`).
    """

    def __init__(self, code, command=None, value=0, limit=0, message=None):
        self.code = ErrorCode(code) if code in ErrorCode._value2member_map_ else code
        self.command, self.value, self.limit = command, value, limit
        if message is None:
            template = _MESSAGES.get(self.code, "error code {code} (value {value}, limit {limit})")
            missing = "" if self.code != ErrorCode.NOT_LOADED else \
                " and ".join(name for bit, name in ((1, "weight image"), (2, "program")) if value & bit)
            message = template.format(code=code, value=value, limit=limit, last=limit - 1, missing=missing)
        name = Command(command).name if command in Command._value2member_map_ else None
        super().__init__(f"{name}: {message}" if name else message)


#: GENERATE flag: zero the recurrent state before the prompt
RESET_STATE = 0x01
#: GENERATE flag: prompt ids are u32 (else u16)
WIDE_IDS = 0x02
#: GENERATE flag: a streamed generation (at most one prompt id per GENERATE; each run takes STREAM words)
STREAM = 0x04
#: INFO ``features`` bit: the core has a weight stream (``CoreParams.weight_stream``)
FEATURE_WEIGHT_STREAM = 0x01
#: mantissa bits of a scalar on the wire (u16 mantissa, i16 exponent: ``mant · 2^exp``)
SCALAR_BITS = 16
#: bytes of the gateware hash in INFO
HASH_BYTES = 32
#: trit formats by their INFO code
TRIT_FORMATS = ("base3", "2bit")
#: 64-bit words per instruction in the program region (word ``k`` holds bits ``64k … 64k + 63``)
WORDS_PER_INSTRUCTION = INSTRUCTION_BITS // 64

_WRITE_HEADER = ">BBI"
_STREAM_HEADER = ">B"
_GENERATE_HEADER = ">BBIHhI"
_READBACK_HEADER = ">IHhB"


def _items(header, item_bytes, max_payload=MAX_PAYLOAD):
    """How many ``item_bytes``-byte items fit a payload after a header of struct format ``header``."""
    return (max_payload - struct.calcsize(header)) // item_bytes


#: most words of one WRITE (31)
MAX_WRITE_WORDS = _items(_WRITE_HEADER, 8)
#: most words of one STREAM (31)
MAX_STREAM_WORDS = _items(_STREAM_HEADER, 8)
#: most values of one READ (30)
MAX_READ = _items(_READBACK_HEADER, 8)


def region_words(core, region):
    """Words of ``region`` (:class:`Region`) on a device with core parameters ``core``."""
    if Region(region) is Region.IMAGE:
        return core.weight_words
    return WORDS_PER_INSTRUCTION * core.program_instructions


def instruction_words(instructions):
    """Instructions (ints of ``INSTRUCTION_BITS`` bits) as program-region words (uint64, low word first)."""
    data = b"".join(int(word).to_bytes(INSTRUCTION_BITS // 8, "little") for word in instructions)
    return np.frombuffer(data, dtype="<u8").astype(np.uint64)


def words_instructions(words):
    """The instructions (ints) held by program-region ``words``; the inverse of :func:`instruction_words`."""
    data = np.ascontiguousarray(words, dtype="<u8").tobytes()
    size = INSTRUCTION_BITS // 8
    return [int.from_bytes(data[i:i + size], "little") for i in range(0, len(data) - size + 1, size)]


def digest(words):
    """What DIGEST reports for ``words``: ``zlib.crc32`` of the 64-bit words as little-endian bytes."""
    return zlib.crc32(np.ascontiguousarray(words, dtype="<u8").tobytes())


def _pack(fmt, what, *values):
    try:
        return struct.pack(fmt, *values)
    except struct.error as error:
        raise ValueError(f"{what}: a field does not fit its width ({error})") from None


def _unpack(fmt, payload, command, count_item=None):
    """Fields of a header ``fmt``; with ``count_item`` (struct format of one item, the count being the header's
    field at index ``count_item[0]``) also the items. MALFORMED when the length does not match."""
    size = struct.calcsize(fmt)
    if count_item is None:
        if len(payload) != size:
            raise CommandError(ErrorCode.MALFORMED, command, len(payload), size)
        return struct.unpack(fmt, payload)
    if len(payload) < size:
        raise CommandError(ErrorCode.MALFORMED, command, len(payload), size)
    header = struct.unpack(fmt, payload[:size])
    index, item = count_item
    need = size + header[index] * struct.calcsize(item)
    if len(payload) != need:
        raise CommandError(ErrorCode.MALFORMED, command, len(payload), need)
    return header, struct.unpack(">" + item * header[index], payload[size:])


def _set(message, **values):
    for name, value in values.items():
        object.__setattr__(message, name, value)


class _Message:
    """Base of the messages: by default its dataclass fields are the fields of struct format ``FORMAT``, in order;
    messages with a run of items (or fields that are not plain ints) override :meth:`encode` and :meth:`decode`."""
    TYPE: ClassVar[int]
    FORMAT: ClassVar[str]

    def encode(self):
        """The payload (bytes)."""
        values = [getattr(self, f.name) for f in dataclasses.fields(self)]
        return _pack(self.FORMAT, type(self).__name__, *values)

    @classmethod
    def decode(cls, payload):
        """The message from its payload; :class:`CommandError` MALFORMED when the length is wrong."""
        return cls(*_unpack(cls.FORMAT, bytes(payload), cls._command()))

    @classmethod
    def _command(cls):
        """The request type this message is or answers (None for ERROR)."""
        if cls.TYPE in Command._value2member_map_:
            return cls.TYPE
        return next((command for command, answers in ANSWERS.items() if cls.TYPE in answers), None)


def _check_region(region, command):
    if region not in Region._value2member_map_:
        raise CommandError(ErrorCode.BAD_REGION, command, region)
    return Region(region)


# -- requests ------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GetInfo(_Message):
    """INFO request: empty. Answered by :class:`Info`."""
    TYPE: ClassVar[int] = Command.INFO
    FORMAT: ClassVar[str] = ">"


@dataclasses.dataclass(frozen=True)
class Write(_Message):
    """WRITE: ``region`` u8 (:class:`Region`), ``count`` u8 (1 … :data:`MAX_WRITE_WORDS`), ``offset`` u32 (first
    word), then ``count`` words u64. Answered by an empty acknowledgement.

    ``words`` is a tuple of ints (any sequence of ints, or a uint64 array, is converted).
    """
    TYPE: ClassVar[int] = Command.WRITE
    region: int
    offset: int
    words: tuple

    def __post_init__(self):
        _set(self, region=_check_region(self.region, self.TYPE), words=tuple(int(w) for w in self.words))
        if not 1 <= len(self.words) <= MAX_WRITE_WORDS:
            raise CommandError(ErrorCode.BAD_VALUE, self.TYPE, 1, len(self.words),
                               f"WRITE: 1 … {MAX_WRITE_WORDS} words per request, not {len(self.words)}")

    @staticmethod
    def capacity(max_payload=MAX_PAYLOAD):
        """Most words of a WRITE whose payload is at most ``max_payload`` bytes."""
        return min(MAX_WRITE_WORDS, _items(_WRITE_HEADER, 8, max_payload))

    def encode(self):
        n = len(self.words)
        return _pack(_WRITE_HEADER + "Q" * n, "Write", self.region, n, self.offset, *self.words)

    @classmethod
    def decode(cls, payload):
        (region, _, offset), words = _unpack(_WRITE_HEADER, bytes(payload), Command.WRITE, (1, "Q"))
        return cls(region, offset, words)


@dataclasses.dataclass(frozen=True)
class Digest(_Message):
    """DIGEST: ``region`` u8, ``count`` u32 (words from word 0). Answered by :class:`Checksum`."""
    TYPE: ClassVar[int] = Command.DIGEST
    FORMAT: ClassVar[str] = ">BI"
    region: int
    count: int

    def __post_init__(self):
        _set(self, region=_check_region(self.region, self.TYPE))


@dataclasses.dataclass(frozen=True)
class Reset(_Message):
    """RESET: empty; zeroes the recurrent state and ends a generation. Answered by an empty acknowledgement."""
    TYPE: ClassVar[int] = Command.RESET
    FORMAT: ClassVar[str] = ">"


@dataclasses.dataclass(frozen=True)
class Read(_Message):
    """READ: ``target`` u8 (:class:`Target`), ``index`` u8 (slot or layer; 0 for LOGITS), ``count`` u8 (1 …
    :data:`MAX_READ` values), ``offset`` u32 (first value). Answered by :class:`Readback`."""
    TYPE: ClassVar[int] = Command.READ
    FORMAT: ClassVar[str] = ">BBBI"
    target: int
    index: int
    count: int
    offset: int

    def __post_init__(self):
        if self.target not in Target._value2member_map_:
            raise CommandError(ErrorCode.BAD_REGION, self.TYPE, self.target)
        _set(self, target=Target(self.target))
        if not 1 <= self.count <= MAX_READ:
            raise CommandError(ErrorCode.BAD_VALUE, self.TYPE, 2, self.count,
                               f"READ: 1 … {MAX_READ} values per request, not {self.count}")


@dataclasses.dataclass(frozen=True)
class GetStats(_Message):
    """STATS request: empty. Answered by :class:`DeviceStats`."""
    TYPE: ClassVar[int] = Command.STATS
    FORMAT: ClassVar[str] = ">"


@dataclasses.dataclass(frozen=True)
class Stream(_Message):
    """STREAM: ``count`` u8 (1 … :data:`MAX_STREAM_WORDS`), then ``count`` words u64 of the weight stream, taken by
    the run in progress (at most as many as it still needs). Answered by an empty acknowledgement.

    ``words`` is a tuple of ints (any sequence of ints, or a uint64 array, is converted).
    """
    TYPE: ClassVar[int] = Command.STREAM
    words: tuple

    def __post_init__(self):
        _set(self, words=tuple(int(w) for w in self.words))
        if not 1 <= len(self.words) <= MAX_STREAM_WORDS:
            raise CommandError(ErrorCode.BAD_VALUE, self.TYPE, 0, len(self.words),
                               f"STREAM: 1 … {MAX_STREAM_WORDS} words per request, not {len(self.words)}")

    @staticmethod
    def capacity(max_payload=MAX_PAYLOAD):
        """Most words of a STREAM whose payload is at most ``max_payload`` bytes."""
        return min(MAX_STREAM_WORDS, _items(_STREAM_HEADER, 8, max_payload))

    def encode(self):
        return _pack(_STREAM_HEADER + "Q" * len(self.words), "Stream", len(self.words), *self.words)

    @classmethod
    def decode(cls, payload):
        _, words = _unpack(_STREAM_HEADER, bytes(payload), Command.STREAM, (0, "Q"))
        return cls(words)


@dataclasses.dataclass(frozen=True)
class Generate(_Message):
    """GENERATE: ``flags`` u8 (:data:`RESET_STATE`, :data:`WIDE_IDS`, :data:`STREAM`), ``count`` u8 (prompt ids),
    ``max_new_tokens`` u32, ``1/T`` as mantissa u16 and exponent i16 (mantissa 0: greedy), ``seed`` u32, then
    ``count`` ids (u32 with WIDE_IDS, else u16). Answered by an empty acknowledgement once the prompt has run, or,
    streamed, once its id's run has started.

    ``prompt`` is a tuple of ids (at most :meth:`capacity` of them; at most one when ``stream``);
    ``inv_temperature`` a :class:`~mmfree.host.fixed.Scalar` of :data:`SCALAR_BITS` bits, normalized, or None for
    greedy; ``reset_state`` the RESET_STATE flag, ``stream`` the STREAM flag. WIDE_IDS is set exactly when an id
    exceeds 0xFFFF.
    """
    TYPE: ClassVar[int] = Command.GENERATE
    prompt: tuple
    max_new_tokens: int
    inv_temperature: object = None
    seed: int = 1
    reset_state: bool = True
    stream: bool = False

    def __post_init__(self):
        _set(self, prompt=tuple(int(t) for t in self.prompt), reset_state=bool(self.reset_state),
             stream=bool(self.stream))
        capacity = 1 if self.stream else self.capacity(self.wide)
        if len(self.prompt) > capacity:
            raise CommandError(ErrorCode.BAD_VALUE, self.TYPE, 1, len(self.prompt),
                               f"GENERATE: at most {capacity} prompt ids per request, not {len(self.prompt)}")
        k = self.inv_temperature
        if k is not None and not (isinstance(k, Scalar) and k.bits == SCALAR_BITS and k.mant >> (SCALAR_BITS - 1)):
            raise CommandError(ErrorCode.BAD_VALUE, self.TYPE, 6, getattr(k, "mant", 0),
                               f"GENERATE: 1/T must be a normalized {SCALAR_BITS}-bit Scalar or None, not {k!r}")

    @property
    def wide(self):
        """Whether the ids go as u32."""
        return any(t > 0xFFFF for t in self.prompt)

    @staticmethod
    def capacity(wide):
        """Most prompt ids per GENERATE: 121 as u16, 60 as u32."""
        return _items(_GENERATE_HEADER, 4 if wide else 2)

    def encode(self):
        flags = (RESET_STATE if self.reset_state else 0) | (WIDE_IDS if self.wide else 0) | \
            (STREAM if self.stream else 0)
        k = self.inv_temperature or Scalar(0, 0, SCALAR_BITS)
        return _pack(_GENERATE_HEADER + ("I" if self.wide else "H") * len(self.prompt), "Generate", flags,
                     len(self.prompt), self.max_new_tokens, k.mant, k.exp, self.seed, *self.prompt)

    @classmethod
    def decode(cls, payload):
        payload = bytes(payload)
        flags = payload[0] if payload else 0
        if flags & ~(RESET_STATE | WIDE_IDS | STREAM):
            raise CommandError(ErrorCode.BAD_VALUE, Command.GENERATE, 0, flags)
        (_, _, max_new, mant, exp, seed), prompt = _unpack(_GENERATE_HEADER, payload, Command.GENERATE,
                                                           (1, "I" if flags & WIDE_IDS else "H"))
        k = Scalar(mant, exp, SCALAR_BITS) if mant else None
        return cls(prompt, max_new, k, seed, bool(flags & RESET_STATE), bool(flags & STREAM))


@dataclasses.dataclass(frozen=True)
class Next(_Message):
    """NEXT: empty. Answered by :class:`Token`, or :class:`Done` after the last token; streamed, as soon as the token
    is chosen (its run then takes STREAM words)."""
    TYPE: ClassVar[int] = Command.NEXT
    FORMAT: ClassVar[str] = ">"


# -- responses -----------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Info(_Message):
    """INFO response (54 bytes): ``version`` u8, trit format u8 (index into :data:`TRIT_FORMATS`), ``rows`` u16,
    ``acc_bits`` u8, ``max_vector`` u16, ``program_instructions`` u16, ``weight_words`` u32, ``state_words`` u32,
    ``clock_hz`` u32 (0: no clock), ``gateware_hash`` (32 bytes; zeros: no gateware), ``features`` u8
    (:data:`FEATURE_WEIGHT_STREAM`).

    ``core`` is a :class:`~mmfree.host.compiler.CoreParams`; decoding names it after the entry of
    :data:`~mmfree.host.compiler.CORES` with the same parameters, else ``"device"``.
    """
    TYPE: ClassVar[int] = Reply.INFO
    FORMAT: ClassVar[str] = f">BBHBHHIII{HASH_BYTES}sB"
    version: int
    core: CoreParams
    clock_hz: int
    gateware_hash: bytes = bytes(HASH_BYTES)

    def __post_init__(self):
        if len(self.gateware_hash) != HASH_BYTES:
            raise ValueError(f"a gateware hash is {HASH_BYTES} bytes, not {len(self.gateware_hash)}")

    def encode(self):
        c = self.core
        return _pack(self.FORMAT, "Info", self.version, TRIT_FORMATS.index(c.trit_format), c.rows, c.acc_bits,
                     c.max_vector, c.program_instructions, c.weight_words, c.state_words, self.clock_hz,
                     bytes(self.gateware_hash), FEATURE_WEIGHT_STREAM if c.weight_stream else 0)

    @classmethod
    def decode(cls, payload):
        (version, fmt, rows, acc_bits, max_vector, program_instructions, weight_words, state_words, clock_hz,
         gateware_hash, features) = _unpack(cls.FORMAT, bytes(payload), cls._command())
        if fmt >= len(TRIT_FORMATS):
            raise CommandError(ErrorCode.BAD_VALUE, Command.INFO, 1, fmt, f"INFO: unknown trit format code {fmt}")
        core = CoreParams("device", rows=rows, trit_format=TRIT_FORMATS[fmt], weight_words=weight_words,
                          max_vector=max_vector, state_words=state_words, acc_bits=acc_bits,
                          program_instructions=program_instructions,
                          weight_stream=bool(features & FEATURE_WEIGHT_STREAM))
        name = next((known.name for known in CORES.values() if dataclasses.replace(known, name="device") == core),
                    "device")
        return cls(version, dataclasses.replace(core, name=name), clock_hz, gateware_hash)


@dataclasses.dataclass(frozen=True)
class Checksum(_Message):
    """DIGEST response: ``crc`` u32 (:func:`digest` of the words the device holds)."""
    TYPE: ClassVar[int] = Reply.DIGEST
    FORMAT: ClassVar[str] = ">I"
    crc: int


@dataclasses.dataclass(frozen=True)
class Readback(_Message):
    """READ response: ``length`` u32 (values in the whole vector), the scale as mantissa u16 and exponent i16
    (mantissa 0: none), ``count`` u8, then ``count`` values i64 (from the request's offset).

    ``scale`` is a :class:`~mmfree.host.fixed.Scalar` or None; ``values`` a tuple of ints.
    """
    TYPE: ClassVar[int] = Reply.READ
    length: int
    scale: object
    values: tuple

    def __post_init__(self):
        _set(self, values=tuple(int(v) for v in self.values))
        if len(self.values) > MAX_READ:
            raise ValueError(f"READ: at most {MAX_READ} values per response, not {len(self.values)}")

    def encode(self):
        scale = self.scale or Scalar(0, 0, SCALAR_BITS)
        return _pack(_READBACK_HEADER + "q" * len(self.values), "Readback", self.length, scale.mant, scale.exp,
                     len(self.values), *self.values)

    @classmethod
    def decode(cls, payload):
        (length, mant, exp, _), values = _unpack(_READBACK_HEADER, bytes(payload), Command.READ, (3, "q"))
        return cls(length, Scalar(mant, exp, SCALAR_BITS) if mant else None, values)


@dataclasses.dataclass(frozen=True)
class DeviceStats(_Message):
    """STATS response: ``tokens_run`` u64 (tokens through the program, prompts included), ``tokens_generated`` u64,
    ``cycles`` u64 (spent running them; 0 on a device with no clock), all since power-up."""
    TYPE: ClassVar[int] = Reply.STATS
    FORMAT: ClassVar[str] = ">QQQ"
    tokens_run: int
    tokens_generated: int
    cycles: int


@dataclasses.dataclass(frozen=True)
class Token(_Message):
    """TOKEN (answers NEXT): ``token`` u32, ``cycles`` u64 (sampling it and running it through the program)."""
    TYPE: ClassVar[int] = Reply.TOKEN
    FORMAT: ClassVar[str] = ">IQ"
    token: int
    cycles: int


@dataclasses.dataclass(frozen=True)
class Done(_Message):
    """DONE (answers the NEXT after the last token): ``tokens`` u32 (generated by this GENERATE), ``cycles`` u64
    (the whole GENERATE: prompt and tokens)."""
    TYPE: ClassVar[int] = Reply.DONE
    FORMAT: ClassVar[str] = ">IQ"
    tokens: int
    cycles: int


@dataclasses.dataclass(frozen=True)
class ErrorReport(_Message):
    """ERROR: ``command`` u8 (the request type), ``code`` u8 (:class:`ErrorCode`), ``value`` u32, ``limit`` u32."""
    TYPE: ClassVar[int] = Reply.ERROR
    FORMAT: ClassVar[str] = ">BBII"
    command: int
    code: int
    value: int = 0
    limit: int = 0

    def error(self):
        """The :class:`CommandError` this report stands for."""
        return CommandError(self.code, self.command, self.value, self.limit)


#: request type → message class
REQUESTS = {cls.TYPE: cls for cls in (GetInfo, Write, Digest, Reset, Read, GetStats, Stream, Generate, Next)}
#: request type → {response type: message class, or None for an empty acknowledgement}
ANSWERS = {
    Command.INFO: {Reply.INFO: Info}, Command.WRITE: {Reply.WRITE: None}, Command.DIGEST: {Reply.DIGEST: Checksum},
    Command.RESET: {Reply.RESET: None}, Command.READ: {Reply.READ: Readback}, Command.STATS: {Reply.STATS: DeviceStats},
    Command.STREAM: {Reply.STREAM: None},
    Command.GENERATE: {Reply.GENERATE: None}, Command.NEXT: {Reply.TOKEN: Token, Reply.DONE: Done},
}


def decode_request(type, payload):
    """The request message of a frame (what a device does first); :class:`CommandError` UNKNOWN_COMMAND, MALFORMED,
    BAD_REGION or BAD_VALUE when it is not a valid command."""
    if type not in REQUESTS:
        raise CommandError(ErrorCode.UNKNOWN_COMMAND, type, type)
    return REQUESTS[type].decode(payload)


def decode_reply(command, type, payload):
    """The response to a ``command`` request: its message, or None for an acknowledgement.

    Raises
    ------
    CommandError
        The device answered ERROR (the error it reports), or the response's type does not answer ``command``, or
        its payload does not decode (MALFORMED).
    """
    if type == Reply.ERROR:
        raise ErrorReport.decode(payload).error()
    answers = ANSWERS[Command(command)]
    if type not in answers:
        raise CommandError(ErrorCode.MALFORMED, command, message=f"{Command(command).name} answered with response "
                           f"type 0x{type:02x} (expected {', '.join(f'0x{t:02x}' for t in answers)})")
    cls = answers[type]
    if cls is None:
        _unpack(">", bytes(payload), command)
        return None
    return cls.decode(payload)
