# amaranth: UnusedElaboratable=no

"""The virtual board harness: a Verilator model behind a TCP socket, bytes in and out, no Python per cycle."""

import random

import pytest
from amaranth import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from mmfree.sim.virtual_board import VirtualBoard


class Echo(wiring.Component):
    """Echoes every byte plus ``add`` (mod 256) through a FIFO; ``idle`` while the FIFO is empty."""

    rx: In(stream.Signature(8))
    tx: Out(stream.Signature(8))
    idle: Out(1)

    def __init__(self, add=1):
        self.add = add
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = buffer = fifo.SyncFIFOBuffered(width=8, depth=16)
        m.d.comb += [
            buffer.w_data.eq(self.rx.payload + self.add), buffer.w_en.eq(self.rx.valid), self.rx.ready.eq(buffer.w_rdy),
            self.tx.payload.eq(buffer.r_data), self.tx.valid.eq(buffer.r_rdy), buffer.r_en.eq(self.tx.ready),
            self.idle.eq(~buffer.r_rdy),
        ]
        return m


def receive(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(65536)
        assert chunk, "the virtual board closed the connection early"
        data += chunk
    return data


def test_bytes_cross_the_socket_in_order():
    board = VirtualBoard(Echo(add=1), name="echo")
    payload = bytes(random.getrandbits(8) for _ in range(20000))
    with board.serve(progress=None) as session:
        with session.connect() as sock:
            for start in range(0, len(payload), 4096):
                sock.sendall(payload[start:start + 4096])
            echoed = receive(sock, len(payload))
    assert echoed == bytes((b + 1) & 0xFF for b in payload)
    assert session.stats["cycles"] >= len(payload)
    assert session.stats["cycles_per_second"] > 1e6, session.stats


@pytest.mark.parametrize("dump", ["vcd", "saif"])
def test_a_session_dumps_a_waveform_or_its_activity(dump, tmp_path):
    board = VirtualBoard(Echo(add=3), name="echo", dump=dump)
    with board.serve(progress=None, dump_path=tmp_path / f"echo.{dump}") as session:
        with session.connect() as sock:
            sock.sendall(bytes(range(100)))
            assert receive(sock, 100) == bytes((b + 3) & 0xFF for b in range(100))
    text = (tmp_path / f"echo.{dump}").read_text()
    assert "rx__payload" in text or "rx___05Fpayload" in text, text[:500]
    if dump == "vcd":  # a time step per cycle in which something changed, up to the session's last
        assert text.count("\n#") >= 100 and text.rstrip().endswith(f"#{session.stats['cycles']}")
    else:
        assert f"(DURATION {session.stats['cycles']})" in text
    with pytest.raises(ValueError, match="needs a top with trace_valid"):
        with board.serve(progress=None, trace_path=tmp_path / "trace"):
            pass


def test_top_without_link_ports_is_rejected():
    class Nothing(wiring.Component):
        led: Out(1)

        def elaborate(self, platform):
            return Module()

    with pytest.raises(ValueError, match="rx/tx byte streams"):
        VirtualBoard(Nothing(), name="nothing")
    with pytest.raises(ValueError, match="dump must be one of"):
        VirtualBoard(Echo(), name="echo", dump="fst")


class UartEcho(wiring.Component):
    """The echo behind the real UART PHY: pins ``uart_rx``/``uart_tx``, ``clocks_per_bit`` clocks per bit."""

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)

    def __init__(self, clocks_per_bit):
        self.clocks_per_bit = clocks_per_bit
        super().__init__()

    def elaborate(self, platform):
        from mmfree.hw.uart import UART

        m = Module()
        m.submodules.uart = uart = UART(clk_freq=3e6 * self.clocks_per_bit, baud=3_000_000)
        m.submodules.echo = echo = Echo(add=7)
        wiring.connect(m, uart.rx, echo.rx)
        wiring.connect(m, echo.tx, uart.tx)
        m.d.comb += [uart.rxd.eq(self.uart_rx), self.uart_tx.eq(uart.txd)]
        return m


def test_bytes_cross_the_real_uart_phy():
    board = VirtualBoard(UartEcho(clocks_per_bit=10), name="uart_echo", clocks_per_bit=10)
    payload = bytes(random.getrandbits(8) for _ in range(3000))
    with board.serve(progress=None) as session:
        with session.connect() as sock:
            sock.sendall(payload)
            echoed = receive(sock, len(payload))
    assert echoed == bytes((b + 7) & 0xFF for b in payload)
    assert session.stats["cycles"] >= 10 * 10 * len(payload)  # 10 bits of 10 clocks per byte
