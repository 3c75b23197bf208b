"""Byte transports to a device, chosen by URL: a serial port, a TCP socket, or the virtual board.

Every transport has ``write(data)``, ``read(count, timeout) -> bytes`` (up to ``count`` bytes, fewer or none when
``timeout`` seconds pass first), ``close()`` and ``reply_timeout`` (how long the link above should wait for an answer
before it resends: :data:`REPLY_TIMEOUT`, or :data:`SIM_REPLY_TIMEOUT` for a virtual board), and is a context
manager. The link layer above is the same for all.

URLs:

- ``/dev/ttyUSB1``, ``COM3``, ``serial:///dev/ttyUSB1?baud=3000000``: a serial port (pyserial), 3 Mbaud by default;
- ``socket://host:port``: a TCP connection (a virtual board started elsewhere, or a bridge to a board);
- ``sim://<board>``: the board's virtual board, built if needed and started for this connection (see
  :func:`open_transport`'s ``virtual_boards``);
- ``golden://`` or ``golden://<core>``: the golden device (:mod:`mmfree.host.golden_device`) in this process, behind
  the link's device model, with the core parameters of ``CORES[<core>]`` (default ``icebreaker``).
"""

import contextlib
import socket
import urllib.parse

__all__ = ["DEFAULT_BAUD", "REPLY_TIMEOUT", "SIM_REPLY_TIMEOUT", "SerialTransport", "SocketTransport",
           "InProcessTransport", "open_transport", "parse_url"]

DEFAULT_BAUD = 3_000_000
#: seconds a host waits for a device's answer before it resends (a board, golden://)
REPLY_TIMEOUT = 0.25
#: … for a virtual board: a simulated core runs some 60 times slower than the board, and GENERATE answers after its
#: whole prompt has run
SIM_REPLY_TIMEOUT = 5.0


def parse_url(url):
    """``(kind, target, options)``: kind ``"serial"``, ``"socket"``, ``"sim"`` or ``"golden"``; ``ValueError`` for
    anything else."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"a device URL is a non-empty string, not {url!r}")
    if "://" not in url:
        return "serial", url, {"baud": DEFAULT_BAUD}
    parsed = urllib.parse.urlsplit(url)
    options = dict(urllib.parse.parse_qsl(parsed.query))
    if parsed.scheme == "serial":
        baud = options.get("baud", str(DEFAULT_BAUD))
        if not baud.isdigit():
            raise ValueError(f"baud must be an integer in {url!r}")
        return "serial", parsed.path, {"baud": int(baud)}
    if parsed.scheme == "socket":
        if not parsed.hostname or parsed.port is None:
            raise ValueError(f"a socket URL is socket://host:port, not {url!r}")
        return "socket", (parsed.hostname, parsed.port), {}
    if parsed.scheme == "sim":
        if not parsed.netloc:
            raise ValueError(f"a virtual board URL names a board, e.g. sim://icebreaker, not {url!r}")
        return "sim", parsed.netloc, options
    if parsed.scheme == "golden":
        return "golden", parsed.netloc or "icebreaker", {}
    raise ValueError(f"unknown device URL scheme {parsed.scheme!r} in {url!r}: use a serial port path, "
                     "serial://, socket://host:port, sim://<board> or golden://")


class _Transport:
    """What every transport shares: the reply timeout its link should use, and the context-manager protocol."""

    reply_timeout = REPLY_TIMEOUT

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SocketTransport(_Transport):
    """A TCP connection; ``on_close`` runs after the socket closes (the virtual board's session uses it)."""

    def __init__(self, sock, on_close=None, reply_timeout=REPLY_TIMEOUT):
        self.sock, self._on_close, self.reply_timeout = sock, on_close, reply_timeout
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @classmethod
    def connect(cls, host, port, timeout=10.0):
        return cls(socket.create_connection((host, port), timeout=timeout))

    def write(self, data):
        self.sock.sendall(bytes(data))

    def read(self, count, timeout):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(count)
        except socket.timeout:
            return b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            if self._on_close:
                self._on_close()


class SerialTransport(_Transport):
    """A serial port through pyserial (8N1, no flow control: the link's credits do that)."""

    def __init__(self, path, baud=DEFAULT_BAUD):
        import serial

        try:
            self.port = serial.Serial(path, baudrate=baud, timeout=0)
        except serial.SerialException as error:
            raise OSError(f"cannot open serial port {path}: {error}") from None

    def write(self, data):
        self.port.write(bytes(data))

    def read(self, count, timeout):
        self.port.timeout = timeout
        return self.port.read(count)

    def close(self):
        self.port.close()


class InProcessTransport(_Transport):
    """A device in this process: ``device`` is a :class:`~mmfree.host.link.DeviceModel` (its handler is the layer
    above). The device answers within :meth:`write`; :meth:`read` returns what it sent and never waits. A read that
    finds nothing lets the device's inter-byte timeout expire (the line was quiet)."""

    def __init__(self, device):
        self.device = device
        self._queue = bytearray()

    def _deliver(self, outputs):
        for frame, _ in outputs:
            self._queue += frame.encode()

    def write(self, data):
        self._deliver(self.device.feed(data))

    def read(self, count, timeout):
        if not self._queue:
            self._deliver(self.device.timeout())
        data = bytes(self._queue[:count])
        del self._queue[:count]
        return data

    def close(self):
        self._queue.clear()


def open_transport(url, *, virtual_boards=None, progress=print):
    """Open the transport ``url`` names.

    ``virtual_boards`` maps board names to :class:`~mmfree.sim.virtual_board.VirtualBoard` factories for
    ``sim://``; None means the project's boards (:data:`mmfree.sim.boards.VIRTUAL_BOARDS`, imported only then). A
    ``sim://`` URL for a board without one is a ``ValueError``.
    """
    kind, target, options = parse_url(url)
    if kind == "serial":
        return SerialTransport(target, options["baud"])
    if kind == "socket":
        return SocketTransport.connect(*target)
    if kind == "golden":
        from .compiler import CORES
        from .golden_device import GoldenDevice
        from .link import DeviceModel

        if target not in CORES:
            raise ValueError(f"no core {target!r} for golden://; known: {', '.join(sorted(CORES))}")
        return InProcessTransport(DeviceModel(handler=GoldenDevice(CORES[target]).handle))
    if virtual_boards is None:
        from ..sim.boards import VIRTUAL_BOARDS as virtual_boards
    factory = virtual_boards.get(target)
    if factory is None:
        raise ValueError(f"no virtual board {target!r}; available: {', '.join(sorted(virtual_boards)) or 'none'}")
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(factory().serve(progress=progress))
        transport = SocketTransport(session.connect(), on_close=stack.pop_all().close,
                                    reply_timeout=SIM_REPLY_TIMEOUT)
    return transport
