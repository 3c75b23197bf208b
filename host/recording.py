"""Sessions with a device recorded byte for byte, and played back without the device.

:class:`RecordingTransport` wraps any transport (:mod:`mmfree.host.transport`) and keeps every call through it, in
order: the bytes the host wrote, and the bytes each read returned (none when it timed out).
:meth:`~RecordingTransport.save` writes them as a *recording*, a JSON-lines file:

- line 1, the metadata: ``format`` (:data:`FORMAT`), ``format_version``, ``url``, ``device`` (what the URL reaches,
  in words: :func:`describe_device`; a virtual board is marked as not hardware), ``date`` (UTC, ISO 8601),
  ``reply_timeout`` (seconds, the transport's), and what the caller adds (the gateware hash, what ran);
- then one line per call: ``{"w": HEX}``, bytes the host wrote, or ``{"r": HEX}``, bytes a read returned (``""``:
  the read timed out).

:class:`ReplayTransport` stands in for the device: each read returns the next recorded read's bytes, and every byte
the host writes must equal the recorded one, else :class:`ReplayMismatch` names the first byte offset that differs.
A host whose behaviour depends only on the bytes it receives (the link, the runtime, the self-test) thus replays a
session exactly (the link's timeouts never expire during a replay: reads return at once); a replay checks the host
against a device's recorded answers, and nothing of the device beyond them.
"""

import datetime
import json

from .transport import REPLY_TIMEOUT, parse_url

__all__ = ["FORMAT", "RecordingTransport", "ReplayTransport", "ReplayMismatch", "describe_device",
           "read_recording"]

#: the ``format`` field of a recording's metadata
FORMAT = "mmfree-link-recording"
_FORMAT_VERSION = 1
#: bytes of context on either side of a mismatch in :class:`ReplayMismatch`'s message
_CONTEXT = 8


def describe_device(url):
    """What the device URL ``url`` reaches, in words, saying whether it is hardware."""
    kind, target, _ = parse_url(url)
    return {
        "serial": f"a serial port ({target}): a physical board, if one is attached",
        "socket": f"a TCP endpoint ({target[0]}:{target[1]}): a virtual board or a bridge to a board",
        "sim": f"the virtual board sim://{target}: a cycle-accurate Verilator simulation of the board's gateware "
               "top; NOT real hardware",
        "golden": f"the golden device golden://{target}: the golden model in this process; NOT real hardware",
    }[kind]


class RecordingTransport:
    """A transport that passes every call through to ``transport`` and records it.

    Parameters
    ----------
    transport
        The transport to the device.
    url : str
        The device URL it was opened from (it goes into the recording).

    Attributes
    ----------
    events : list of (str, bytes)
        ``("w", data)`` for each write, ``("r", data)`` for each read (``b""``: it timed out), in call order.
    description : str
        What it is, in words.
    reply_timeout : float
        The wrapped transport's.
    """

    def __init__(self, transport, url):
        self.transport, self.url = transport, url
        self.description = f"{url} (recorded)"
        self.reply_timeout = getattr(transport, "reply_timeout", REPLY_TIMEOUT)
        self.events = []

    def write(self, data):
        self.events.append(("w", bytes(data)))
        self.transport.write(data)

    def read(self, count, timeout):
        data = self.transport.read(count, timeout)
        self.events.append(("r", bytes(data)))
        return data

    def close(self):
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def save(self, path, **metadata):
        """Write the recording to ``path`` (see the module notes); ``metadata`` (JSON-serialisable) goes into its
        first line beside the URL, a description of the device, the date and the reply timeout."""
        header = {"format": FORMAT, "format_version": _FORMAT_VERSION, "url": self.url,
                  "device": describe_device(self.url),
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "reply_timeout": self.reply_timeout, **metadata}
        with open(path, "w", encoding="ascii") as f:
            f.write(json.dumps(header) + "\n")
            for kind, data in self.events:
                f.write(json.dumps({kind: data.hex()}) + "\n")


def read_recording(path):
    """A recording's ``(metadata, events)`` (as :attr:`RecordingTransport.events`); ``ValueError`` if ``path`` is
    not one."""
    with open(path, encoding="ascii") as f:
        lines = f.read().splitlines()
    try:
        metadata = json.loads(lines[0]) if lines else {}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"its format is {metadata.get('format')!r}")
        if metadata.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"format version {metadata.get('format_version')!r} (this host reads "
                             f"{_FORMAT_VERSION})")
        events = []
        for number, line in enumerate(lines[1:], start=2):
            (kind, data), = json.loads(line).items()
            if kind not in ("w", "r"):
                raise ValueError(f"line {number}: unknown event {kind!r}")
            events.append((kind, bytes.fromhex(data)))
    except (ValueError, AttributeError) as error:
        raise ValueError(f"{path} is not a {FORMAT} file: {error}") from None
    return metadata, events


class ReplayMismatch(AssertionError):
    """The host departed from a recording: it wrote other bytes, wrote where it had read (or the other way round),
    or went on past the recording's end.

    Attributes
    ----------
    offset : int
        The offset of the first byte that differs in the stream of bytes the host wrote since the replay began.
    """

    def __init__(self, message, offset):
        super().__init__(message)
        self.offset = offset


class ReplayTransport:
    """A transport that plays a recording back (see the module notes).

    Parameters
    ----------
    path : str or os.PathLike
        A recording (:meth:`RecordingTransport.save`).

    Attributes
    ----------
    metadata : dict
        The recording's first line.
    description : str
        What it is, in words.
    reply_timeout : float
        The recorded transport's.
    sent : int
        Bytes the host has written so far.
    """

    def __init__(self, path):
        self.metadata, events = read_recording(path)
        self.description = f"a replay of {path} (recorded from {self.metadata.get('url')})"
        self.reply_timeout = self.metadata.get("reply_timeout", REPLY_TIMEOUT)
        # consecutive writes form one stream: the host may split its bytes into calls differently
        self._events = []
        for kind, data in events:
            if kind == "w" and not data:
                continue
            if kind == "w" and self._events and self._events[-1][0] == "w":
                self._events[-1] = ("w", self._events[-1][1] + data)
            else:
                self._events.append((kind, data))
        self._index = 0
        self._done = 0  # bytes of the current event already written or read
        self.sent = 0

    @property
    def remaining(self):
        """Recorded events (a read, or a run of writes) not yet replayed (0 once the host has done all that the
        recording holds)."""
        return len(self._events) - self._index

    def _where(self):
        return f"(recorded event {self._index + 1} of {len(self._events)})"

    def write(self, data):
        data = bytes(data)
        while data:
            if not self.remaining:
                raise ReplayMismatch(f"the host writes {len(data)} bytes at byte {self.sent} of its stream "
                                     f"({data[:2 * _CONTEXT].hex(' ')} …) after the recording's end", self.sent)
            kind, expected = self._events[self._index]
            if kind != "w":
                raise ReplayMismatch(f"the host writes at byte {self.sent} of its stream "
                                     f"({data[:2 * _CONTEXT].hex(' ')} …) where the recorded host read "
                                     f"{len(expected)} bytes {self._where()}", self.sent)
            part = expected[self._done:self._done + len(data)]
            for k, (want, got) in enumerate(zip(part, data)):
                if want != got:
                    at = self._done + k
                    raise ReplayMismatch(
                        f"the host's byte {self.sent + k} differs from the recording {self._where()}: recorded "
                        f"0x{want:02x}, sent 0x{got:02x}; after {expected[max(0, at - _CONTEXT):at].hex(' ')}, the "
                        f"recording goes on {expected[at:at + 2 * _CONTEXT].hex(' ')}, the host sent "
                        f"{data[k:k + 2 * _CONTEXT].hex(' ')}", self.sent + k)
            self._advance(len(part))
            self.sent += len(part)
            data = data[len(part):]

    def read(self, count, timeout):
        if not self.remaining:
            raise ReplayMismatch(f"the host reads after the recording's end, having sent {self.sent} bytes",
                                 self.sent)
        kind, recorded = self._events[self._index]
        if kind != "r":
            rest = recorded[self._done:]
            raise ReplayMismatch(f"the host reads at byte {self.sent} of its stream where the recorded host wrote "
                                 f"{len(rest)} more bytes ({rest[:2 * _CONTEXT].hex(' ')} …) {self._where()}",
                                 self.sent)
        data = recorded[self._done:self._done + count]
        self._advance(len(data))
        return data

    def _advance(self, count):
        """Consume ``count`` bytes of the current event; move to the next one when it is used up (at once for an
        empty read)."""
        self._done += count
        if self._done == len(self._events[self._index][1]):
            self._index, self._done = self._index + 1, 0

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
