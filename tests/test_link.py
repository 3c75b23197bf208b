# amaranth: UnusedElaboratable=no

"""The link device against the device model in Verilator: byte streams injected directly (thousands of random and
corrupted frames) and through the UART PHY; the CRC step against the host's CRC; its constructor's checks."""

import random

import pytest
from amaranth import Const, Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from mmfree.host import protocol
from mmfree.hw.link import LinkDevice, crc16_bit, crc16_step, request_layout, response_layout
from mmfree.hw.uart import UART
from mmfree.sim.runner import run_bench

BENCH = "mmfree.sim.benches.link"


def _echo(m, link, stall):
    """The layer above: each request packet comes back with ``REPLY_BIT`` set in its type, unless ``stall``."""
    m.d.comb += [
        link.response.valid.eq(link.request.valid & ~stall),
        link.response.payload.data.eq(Mux(link.request.payload.first,
                                          link.request.payload.data | protocol.REPLY_BIT,
                                          link.request.payload.data)),
        link.response.payload.last.eq(link.request.payload.last),
        link.request.ready.eq(link.response.ready & ~stall),
    ]


class LinkEcho(wiring.Component):
    """Bench top: a :class:`LinkDevice` on byte streams with an echo above it."""

    def __init__(self, depth, timeout):
        self.link = LinkDevice(depth=depth, timeout=timeout)
        super().__init__({"rx": In(self.link.rx.signature.flip()), "tx": Out(self.link.tx.signature),
                          "stall": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        wiring.connect(m, wiring.flipped(self.rx), link.rx)
        wiring.connect(m, link.tx, wiring.flipped(self.tx))
        _echo(m, link, self.stall)
        return m


class UartLinkEcho(wiring.Component):
    """Bench top: UART PHY, :class:`LinkDevice`, echo."""

    def __init__(self, clk_freq, baud, depth, timeout):
        self.uart = UART(clk_freq, baud)
        self.link = LinkDevice(depth=depth, timeout=timeout)
        super().__init__({"rxd": In(1, init=1), "txd": Out(1, init=1), "stall": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart, m.submodules.link = uart, link = self.uart, self.link
        wiring.connect(m, uart.rx, link.rx)
        wiring.connect(m, link.tx, uart.tx)
        m.d.comb += [uart.rxd.eq(self.rxd), self.txd.eq(uart.txd)]
        _echo(m, link, self.stall)
        return m


#: seed 1205225240 found a torn ERROR: a garbage step's BAD_HEADER was sent while the good request after it was
#: accepted, and its ``expected`` byte, read bit by bit as it was composed, went out as 0x0e between 0x0f and 0x10
#: (the link now takes that byte as the frame starts); ``None``: a fresh seed
@pytest.mark.parametrize("depth, steps, seed", [(512, 1000, None), (1024, 300, None), (512, 1000, 1205225240)])
def test_bench_bytes(depth, steps, seed, tmp_path):
    timeout = 64
    run_bench(LinkEcho(depth, timeout), name="link_echo", test_module=BENCH, run_dir=tmp_path, seed=seed,
              params={"mode": "bytes", "depth": depth, "timeout": timeout, "steps": steps})


def test_bench_uart(tmp_path):
    """3 Mbaud at 30 MHz: 10 cycles per bit (the clock's absolute rate does not matter to the bench)."""
    timeout = 400
    run_bench(UartLinkEcho(30e6, 3e6, 512, timeout), name="uart_link_echo", test_module=BENCH, run_dir=tmp_path,
              params={"mode": "uart", "depth": 512, "timeout": timeout, "steps": 60, "divisor": 10})


def test_crc16_step_matches_host():
    from amaranth.sim import Simulator
    rng = random.Random(0)
    cases = [(rng.randrange(1 << 16), rng.randrange(256)) for _ in range(200)]
    m = Module()
    expected = [protocol.crc16([byte], crc) for crc, byte in cases]
    results = [crc16_step(Const(crc, 16), Const(byte, 8)) for crc, byte in cases]

    async def check(ctx):
        for got, want in zip(results, expected):
            assert ctx.get(got) == want

    sim = Simulator(m)
    sim.add_testbench(check)
    sim.run()


def test_crc16_bit_matches_host():
    """Eight steps of the bit-serial CRC, most significant bit first, are the host's CRC of a byte."""
    from amaranth.sim import Simulator
    rng = random.Random(1)
    cases = [(rng.randrange(1 << 16), rng.randrange(256)) for _ in range(50)]
    m = Module()

    async def check(ctx):
        for crc, byte in cases:
            state = crc
            for k in reversed(range(8)):
                state = ctx.get(crc16_bit(Const(state, 16), Const(byte >> k & 1, 1)))
            assert state == protocol.crc16([byte], crc)

    sim = Simulator(m)
    sim.add_testbench(check)
    sim.run()


def test_signature():
    link = LinkDevice(depth=1024, timeout=1000)
    assert (link.depth, link.timeout, link.credit) == (1024, 1000, 1016)
    members = link.signature.members
    assert [members[name].flow for name in ("rx", "tx", "request", "response")] == \
        [wiring.In, wiring.Out, wiring.Out, wiring.In]
    assert link.rx.payload.shape().width == link.tx.payload.shape().width == 8
    assert link.request.payload.shape() == request_layout()
    assert link.response.payload.shape() == response_layout()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"depth": 256}, ValueError, "depth must be between 512 and 65536, got 256"),
    ({"depth": 768}, ValueError, "depth must be a power of two, got 768"),
    ({"depth": 512.0}, TypeError, "depth must be an int, got 512.0"),
    ({"timeout": 0}, ValueError, "timeout must be between 1 and 16777216, got 0"),
    ({"timeout": True}, TypeError, "timeout must be an int, got True"),
])
def test_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        LinkDevice(**kwargs)
