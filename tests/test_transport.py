# amaranth: UnusedElaboratable=no

"""Device URLs and byte transports: parsing, a socket to the virtual board, clear errors."""

import pytest

from mmfree.host.transport import DEFAULT_BAUD, open_transport, parse_url
from mmfree.sim.virtual_board import VirtualBoard
from test_virtual_board import Echo


def test_parse_url():
    assert parse_url("/dev/ttyUSB1") == ("serial", "/dev/ttyUSB1", {"baud": DEFAULT_BAUD})
    assert parse_url("serial:///dev/ttyUSB1?baud=115200") == ("serial", "/dev/ttyUSB1", {"baud": 115200})
    assert parse_url("socket://localhost:4567") == ("socket", ("localhost", 4567), {})
    assert parse_url("sim://icebreaker") == ("sim", "icebreaker", {})
    for bad, message in [("http://x", "unknown device URL scheme 'http'"), ("socket://host", "socket://host:port"),
                         ("sim://", "names a board"), ("", "non-empty"), ("serial:///dev/x?baud=fast", "baud")]:
        with pytest.raises(ValueError, match=message):
            parse_url(bad)


def test_sim_url_runs_a_virtual_board_over_a_socket():
    boards = {"echo": lambda: VirtualBoard(Echo(add=3), name="echo3")}
    with open_transport("sim://echo", virtual_boards=boards, progress=None) as link:
        link.write(b"\x00\x10\xff")
        data = b""
        while len(data) < 3:
            chunk = link.read(16, timeout=5)
            assert chunk, "no reply from the virtual board"
            data += chunk
        assert data == b"\x03\x13\x02"
        assert link.read(16, timeout=0.05) == b""
    with pytest.raises(ValueError, match="no virtual board 'nope'; available: echo"):
        open_transport("sim://nope", virtual_boards=boards)


def test_missing_serial_port_is_a_clear_error():
    with pytest.raises(OSError, match="cannot open serial port /dev/mmfree-no-such-port"):
        open_transport("/dev/mmfree-no-such-port")
