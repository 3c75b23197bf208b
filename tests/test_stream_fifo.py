"""``stream_fifo``: every beat through in order under random gaps and back-pressure, a beat per cycle when neither
side waits, the output held while stalled, and the producer's ``ready`` independent of the consumer's."""

import random

from amaranth import Module
from amaranth.lib import data, stream
from amaranth.sim import Simulator

from mmfree.hw.stream_fifo import stream_fifo

LAYOUT = data.StructLayout({"value": 12, "last": 1})


def _simulate(m, testbench):
    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def _bench(testbench):
    m = Module()
    source = stream.Signature(LAYOUT).create(path=("source",))
    out = stream_fifo(m, source, name="queue")

    async def run(ctx):
        await testbench(ctx, source, out)

    _simulate(m, run)


def _transfer(beats, p_gap, p_stall, *, check_ready_independent=False):
    received, cycles = [], []

    async def testbench(ctx, source, out):
        sent, held, cycle = 0, None, 0
        while len(received) < len(beats):
            offer = sent < len(beats) and random.random() >= p_gap
            ctx.set(source.valid, offer)
            ctx.set(source.payload, beats[sent] if offer else {"value": random.randrange(4096), "last": 0})
            if check_ready_independent:
                ctx.set(out.ready, 0)
                idle = ctx.get(source.ready)
                ctx.set(out.ready, 1)
                assert ctx.get(source.ready) == idle, "the producer's ready follows the consumer's"
            ready = random.random() >= p_stall
            ctx.set(out.ready, ready)
            valid, payload = ctx.get(out.valid), ctx.get(out.payload)
            if held is not None:
                assert valid and payload == held, f"cycle {cycle}: the output changed while stalled"
            if offer and ctx.get(source.ready):
                sent += 1
            if valid and ready:
                received.append(payload)
                cycles.append(cycle)
            held = payload if valid and not ready else None
            await ctx.tick()
            cycle += 1

    _bench(testbench)
    return received, cycles


def _beats(count):
    return [{"value": random.randrange(4096), "last": random.random() < 0.2} for _ in range(count)]


def test_every_beat_in_order_under_gaps_and_back_pressure():
    random.seed(1)
    for p_gap, p_stall in [(0.5, 0.0), (0.0, 0.5), (0.5, 0.5), (0.1, 0.9), (0.9, 0.1)]:
        beats = _beats(300)
        received, _ = _transfer(beats, p_gap, p_stall, check_ready_independent=True)
        assert [(b.value, b.last) for b in received] == [(b["value"], int(b["last"])) for b in beats]


def test_a_beat_per_cycle_after_two_cycles_of_latency():
    random.seed(2)
    beats = _beats(100)
    received, cycles = _transfer(beats, 0.0, 0.0)
    assert len(received) == 100 and cycles == list(range(2, 102))


def test_fed_through_fifo_puts_the_fifo_in_front_of_a_sink_only_when_buffered():
    from mmfree.hw.stream_fifo import fed_through_fifo

    m = Module()
    sink = stream.Signature(LAYOUT).flip().create(path=("sink",))
    assert fed_through_fifo(m, sink, name="plain", buffered=False) is sink
    source = fed_through_fifo(m, sink, name="unit")
    assert source is not sink
    random.seed(3)
    beats = _beats(50)
    received = []

    async def testbench(ctx):
        sent = 0
        ctx.set(sink.ready, 1)
        while len(received) < len(beats):
            ctx.set(source.valid, sent < len(beats))
            if sent < len(beats):
                ctx.set(source.payload, beats[sent])
            if sent < len(beats) and ctx.get(source.ready):
                sent += 1
            if ctx.get(sink.valid):
                received.append(ctx.get(sink.payload))
            await ctx.tick()

    _simulate(m, testbench)
    assert [(b.value, b.last) for b in received] == [(b["value"], int(b["last"])) for b in beats]
