"""Bench of :class:`mmfree.hw.pass_datapath.PassDatapath`: exact products and shifts, with gaps and back-pressure.

Vectors of beats stream through with random gaps and random back-pressure (mixed, or long stalls that fill the
pipeline, or a starved pipeline), each vector with its own ``pre``, ``post``, rounding mode, limb count and (for one
limb) rounded cut ``pre_round`` (held while it streams). Each lane of a beat gets its own random ``x`` and ``y``; at
times a vector also carries the adversarial elements (the extremes of ``x ≫ pre`` for the vector's limb count and of
``y``, zeros, ±1): in every lane at once, each lane in its own order, and (with several lanes) in one lane beside
random values in the others. Every lane's output is compared with ``golden.round_shift`` / floor of the exact
product of ``x ≫ pre`` or ``sat16(round(x · 2^−pre))``.
Then, for each limb count, a vector back to back without stalls must take exactly the docstring's cycles.

Parameters (:func:`mmfree.sim.benches.params`): ``x_bits``; ``lanes`` (default 1); ``vectors`` (default 30).
"""

import random

import cocotb
from cocotb.triggers import RisingEdge

from mmfree.host.fixed import round_shift
from mmfree.hw.pass_datapath import limbs_for

from . import params
from .streams import Sink, Source, reset

P = params()
X_BITS = P["x_bits"]
LANES = P.get("lanes", 1)
PRODUCT_BITS = X_BITS + 16
#: cycles from a beat taken at ``i`` to its result offered at ``o``, beyond its ``limbs`` (the docstring's)
LATENCY = 8


def pack(fields):
    """Raw payload bits of ``fields`` (``(value, bits)`` pairs), the first from bit 0."""
    raw, offset = 0, 0
    for value, bits in fields:
        raw |= (value & ((1 << bits) - 1)) << offset
        offset += bits
    return raw


def field(raw, offset, bits):
    value = (raw >> offset) & ((1 << bits) - 1)
    return value - (1 << bits) if value >> (bits - 1) else value


def beats(rng, count, pre, limbs):
    """Beats of ``LANES`` ``(x, y)`` pairs, with ``x ≫ pre`` within ``limbs`` limbs and ``x`` within ``X_BITS``.

    ``count`` random beats, then at times the corners: every lane a corner (each lane in its own order), then (with
    several lanes) each corner in each lane beside random pairs.
    """
    bits = min(15 * (limbs - 1) + 16, X_BITS - pre)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def pair():
        return rng.randint(lo, hi), rng.randint(-32768, 32767)

    items = [[pair() for _ in range(LANES)] for _ in range(count)]
    if rng.random() < 0.3:
        corners = [(lo, -32768), (hi, 32767), (lo, 32767), (hi, -32768), (0, 5), (-1, 1), (1, -1)]
        items += [list(beat) for beat in zip(*(rng.sample(corners, len(corners)) for _ in range(LANES)))]
        if LANES > 1:
            items += [[corner if k == lane else pair() for k in range(LANES)]
                      for corner in corners for lane in range(LANES)]
    return [[((shifted << pre) + rng.randrange(1 << pre), y) for shifted, y in beat] for beat in items]


def configure(dut, rng, limbs):
    """Drives a random ``pre``, ``post``, rounding mode and (for one limb) ``pre_round`` for a vector of ``limbs``."""
    config = {"pre": rng.randint(0, min(20, X_BITS - 2)), "post": rng.randint(0, 60), "round": rng.randint(0, 1),
              "limbs": limbs, "pre_round": int(limbs == 1 and rng.random() < 0.5)}
    for name, value in config.items():
        getattr(dut, name).value = value
    return config


async def stream(dut, source, sink, config, items):
    """Streams ``items`` (beats) as one vector and checks every lane of every output; returns the sink's cycles."""
    raws = [pack([(x, X_BITS) for x, _ in beat] + [(y, 16) for _, y in beat] + [(int(b == len(items) - 1), 1)])
            for b, beat in enumerate(items)]
    send = cocotb.start_soon(source.send(raws))
    got = await sink.receive(len(items), max_cycles=20 * len(items) + 100)
    await send
    pre, post = config["pre"], config["post"]
    for b, (beat, raw) in enumerate(zip(items, got)):
        for lane, (x, y) in enumerate(beat):
            shifted = x >> pre
            exact = (min(32767, int(round_shift(x, pre))) if config["pre_round"] else shifted) * y
            want = int(round_shift(exact, post)) if config["round"] else exact >> post
            assert field(raw, lane * X_BITS, X_BITS) == shifted, f"beat {b}, lane {lane}: x >> pre"
            assert field(raw, LANES * X_BITS + lane * PRODUCT_BITS, PRODUCT_BITS) == want, \
                f"beat {b}, lane {lane}: x = {x}, y = {y} ({config})"
        assert (raw >> (LANES * (X_BITS + PRODUCT_BITS))) & 1 == (b == len(items) - 1), f"beat {b}: last"
    return sink.cycles


@cocotb.test()
async def products_are_exact(dut):
    rng = random.Random(random.getrandbits(32))
    await reset(dut)
    source = Source(dut, "i", dut.clk, p_gap=0.3)
    sink = Sink(dut, "o", dut.clk, p_stall=0.3)
    for _ in range(P.get("vectors", 30)):
        # mixed, a full pipeline held by long stalls, a starved one
        source.p_gap, sink.p_stall = rng.choice([(0.3, 0.3), (0.0, 0.8), (0.8, 0.0)])
        config = configure(dut, rng, rng.randint(1, limbs_for(X_BITS)))
        await stream(dut, source, sink, config, beats(rng, rng.randint(1, 40), config["pre"], config["limbs"]))
        await RisingEdge(dut.clk)


@cocotb.test()
async def one_beat_per_limbs_cycles(dut):
    """Back to back and never stalled, n beats take n · limbs cycles, and the last one ``limbs + LATENCY``.

    The source offers the first beat in the sink's cycle 0, so the last one is taken in cycle ``(n − 1) · limbs``
    and its result in cycle ``n · limbs + LATENCY``, the sink's count less one.
    """
    rng = random.Random(random.getrandbits(32))
    await reset(dut)
    source, sink = Source(dut, "i", dut.clk), Sink(dut, "o", dut.clk)
    for limbs in range(1, limbs_for(X_BITS) + 1):
        config = configure(dut, rng, limbs)
        items = beats(rng, 20, config["pre"], limbs)
        cycles = await stream(dut, source, sink, config, items)
        assert cycles - 1 == len(items) * limbs + LATENCY, f"{limbs} limbs: {cycles} cycles for {len(items)} beats"
        await RisingEdge(dut.clk)
