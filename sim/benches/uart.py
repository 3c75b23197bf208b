"""Bench of :class:`mmfree.hw.uart.UART`: the receiver against bytes driven on ``rxd`` with exact bit timing, the
transmitter against a decoder of ``txd``, and the two in loopback.

The bench drives and samples the pins with timers (the clock period is 10 ns, a bit ``divisor`` periods), so a
baud-rate mismatch is a bit period scaled by ``1 + ε``. Checks: random bytes with random idle time between them, at
the nominal rate and at ``ε = ±3 %``; framing errors (a low stop bit: ``framing_error`` pulses, no byte), a break
(the line held low for several bytes: one framing error, then nothing until the line idles), glitches shorter than
half a bit (no byte); an overrun (``rx`` not taken: the next byte is dropped and ``overrun`` pulses); the transmitter's
bit timing (every edge on a bit boundary, back-to-back bytes with no idle time); ``txd`` looped back to ``rxd``
with random bytes, random gaps on ``tx`` and random back-pressure on ``rx``.

Parameters (:func:`mmfree.sim.benches.params`): ``divisor`` (as built), ``bytes`` (per random run, default 400).
"""

import random

import cocotb
from cocotb.triggers import Edge, ReadOnly, RisingEdge, Timer

from . import params
from .streams import Sink, Source, reset

PARAMS = params()
DIVISOR = PARAMS["divisor"]
COUNT = PARAMS.get("bytes", 400)
CLOCK_PS = 10_000
BIT_PS = DIVISOR * CLOCK_PS
TIMEOUT = {"timeout_time": 200, "timeout_unit": "sec"}
#: the rate error the receiver must tolerate: 3/4 of its margin (half a bit less the cycle that detecting the start
#: edge costs, over 9.5 bits), at most 3 %
TOLERANCE = min(0.03, 0.75 * (DIVISOR // 2 - 1) / (9.5 * DIVISOR))


async def start(dut):
    dut.rxd.value = 1
    await reset(dut, sources=("tx",), sinks=("rx",))


class PulseCounter:
    """Counts the cycles in which ``signal`` is high."""

    def __init__(self, dut, signal):
        self.count = 0
        cocotb.start_soon(self._run(dut, signal))

    async def _run(self, dut, signal):
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            self.count += int(signal.value)


async def drive_byte(dut, byte, bit_ps, *, stop=1):
    for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [stop]:
        dut.rxd.value = bit
        await Timer(bit_ps, unit="ps")
    dut.rxd.value = 1


async def drive_bytes(dut, data, bit_ps, rng):
    for byte in data:
        if rng.random() < 0.3:
            await Timer(rng.randrange(1, 4 * bit_ps), unit="ps")
        await drive_byte(dut, byte, bit_ps)


async def collect(dut, count, limit_ps):
    """Bytes from ``rx`` (always ready) until ``count`` arrived or ``limit_ps`` passed."""
    got = []
    dut.rx__ready.value = 1

    async def run():
        while len(got) < count:
            await ReadOnly()
            if dut.rx__valid.value:
                got.append(int(dut.rx__payload.value))
            await RisingEdge(dut.clk)

    task = cocotb.start_soon(run())
    waited = 0
    while not task.done() and waited < limit_ps:
        await Timer(100 * CLOCK_PS, unit="ps")
        waited += 100 * CLOCK_PS
    task.cancel()
    return got


@cocotb.test(**TIMEOUT)
async def receive_at_rate_errors(dut):
    """Random bytes with random idle time, sent at the nominal rate and ``TOLERANCE`` fast and slow."""
    await start(dut)
    rng = random.Random(random.getrandbits(64))
    errors = PulseCounter(dut, dut.framing_error)
    for epsilon in (0.0, TOLERANCE, -TOLERANCE):
        data = rng.randbytes(COUNT // 3) + bytes([0x00, 0xFF, 0x55, 0xAA])
        bit_ps = round(BIT_PS * (1 + epsilon))
        sender = cocotb.start_soon(drive_bytes(dut, data, bit_ps, rng))
        got = await collect(dut, len(data), 15 * bit_ps * len(data))
        await sender
        assert bytes(got) == data, f"ε = {epsilon:+.1%}: received {bytes(got).hex()}, sent {data.hex()}"
    assert errors.count == 0


@cocotb.test(**TIMEOUT)
async def framing_errors_break_and_glitches(dut):
    await start(dut)
    rng = random.Random(random.getrandbits(64))
    errors = PulseCounter(dut, dut.framing_error)
    dut.rx__ready.value = 1
    # a low stop bit: one framing error, no byte; the next byte is fine
    task = cocotb.start_soon(collect(dut, 1, 30 * BIT_PS))
    await drive_byte(dut, 0x5A, BIT_PS, stop=0)
    await Timer(2 * BIT_PS, unit="ps")
    assert errors.count == 1
    await drive_byte(dut, 0xC3, BIT_PS)
    assert await task == [0xC3]
    # a break: the line low for five byte times, then idle: one framing error, then the next byte
    task = cocotb.start_soon(collect(dut, 1, 90 * BIT_PS))
    dut.rxd.value = 0
    await Timer(50 * BIT_PS, unit="ps")
    dut.rxd.value = 1
    await Timer(3 * BIT_PS, unit="ps")
    assert errors.count == 2
    await drive_byte(dut, 0x81, BIT_PS)
    assert await task == [0x81]
    # glitches shorter than half a bit less a cycle start nothing
    task = cocotb.start_soon(collect(dut, 1, 60 * BIT_PS))
    for _ in range(5):
        dut.rxd.value = 0
        await Timer(rng.randrange(CLOCK_PS // 2, (DIVISOR // 2 - 1) * CLOCK_PS + 1), unit="ps")
        dut.rxd.value = 1
        await Timer(3 * BIT_PS, unit="ps")
    await drive_byte(dut, 0x3C, BIT_PS)
    assert await task == [0x3C]
    assert errors.count == 2


@cocotb.test(**TIMEOUT)
async def overrun(dut):
    """``rx`` not taken: the first byte waits, the second is dropped with an ``overrun`` pulse."""
    await start(dut)
    overruns = PulseCounter(dut, dut.overrun)
    dut.rx__ready.value = 0
    await drive_byte(dut, 0x11, BIT_PS)
    await drive_byte(dut, 0x22, BIT_PS)
    await Timer(BIT_PS, unit="ps")
    assert overruns.count == 1
    await ReadOnly()
    assert dut.rx__valid.value == 1 and int(dut.rx__payload.value) == 0x11
    await RisingEdge(dut.clk)
    got = await collect(dut, 1, 2 * BIT_PS)
    assert got == [0x11]
    assert await collect(dut, 1, 20 * BIT_PS) == []


@cocotb.test(**TIMEOUT)
async def transmit_timing(dut):
    """Bytes back to back: each bit lasts exactly ``divisor`` cycles and bytes follow with no idle time."""
    await start(dut)
    rng = random.Random(random.getrandbits(64))
    data = rng.randbytes(40)
    edges = []

    async def watch():
        while True:
            await Edge(dut.txd)
            edges.append((round(cocotb.utils.get_sim_time("ps")), int(dut.txd.value)))

    watcher = cocotb.start_soon(watch())
    source = Source(dut, "tx", dut.clk)
    await source.send(list(data))
    await Timer(12 * BIT_PS, unit="ps")
    watcher.cancel()
    begin = edges[0][0]
    levels = []
    for (time, level), (end, _) in zip(edges, edges[1:] + [(begin + 10 * BIT_PS * len(data), None)]):
        assert (time - begin) % BIT_PS == 0, f"an edge at {time - begin} ps is not on a bit boundary"
        levels += [level] * ((end - time) // BIT_PS)
    bits = [[0] + [(byte >> k) & 1 for k in range(8)] + [1] for byte in data]
    assert levels == [bit for byte in bits for bit in byte]


@cocotb.test(**TIMEOUT)
async def loopback(dut):
    """``txd`` wired to ``rxd``: random bytes with random gaps in, random back-pressure out (bytes are taken
    within a byte time, so none is dropped)."""
    await start(dut)
    rng = random.Random(random.getrandbits(64))

    async def wire():
        while True:
            await Edge(dut.txd)
            dut.rxd.value = dut.txd.value

    cocotb.start_soon(wire())
    overruns = PulseCounter(dut, dut.overrun)
    errors = PulseCounter(dut, dut.framing_error)
    data = list(rng.randbytes(COUNT))
    source = Source(dut, "tx", dut.clk, p_gap=0.05, junk_bits=8)
    sink = Sink(dut, "rx", dut.clk, p_stall=0.5)
    task = cocotb.start_soon(source.send(data))
    got = await sink.receive(len(data), max_cycles=20 * DIVISOR * len(data))
    await task
    assert got == data
    assert overruns.count == 0 and errors.count == 0
