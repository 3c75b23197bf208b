"""Bench of :class:`mmfree.hw.sigmoid.SigmoidUnit` against :class:`mmfree.host.fixed.SigmoidTable`.

Every output (σ(z), 1 − σ(z), SiLU(z)) is compared with ``SigmoidTable.sigmoid``, ``complement`` and ``silu`` of
its input. Inputs: 0, ±1, both ends of the input range, every segment boundary ``±k·2^(frac − segment_bits)``
and its neighbours, the end of the table and beyond, values whose interpolation rounds to a tie, then random values
(uniform over the whole range and log-uniform in magnitude). Input arrives with random gaps (junk on the payload
while not valid), the output is stalled at random, the stream rules are checked every cycle.

Parameters (:func:`mmfree.sim.benches.params`): ``width``, ``frac``, optional ``gate_frac``, ``segment_bits``,
``z_range`` (defaults 24, 4, 16), ``random`` (count of random inputs, default 1500).
"""

import random

import cocotb
import cocotb.utils
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from mmfree.host.fixed import SigmoidTable
from mmfree.hw.sigmoid import SigmoidUnit

from . import params
from .streams import Sink, Source, reset

P = params()
WIDTH, FRAC = P["width"], P["frac"]
G, SEG, RANGE = P.get("gate_frac", 24), P.get("segment_bits", 4), P.get("z_range", 16)
TABLE = SigmoidTable(G, SEG, RANGE)
LO, HI = -(1 << (WIDTH - 1)), (1 << (WIDTH - 1)) - 1
SUB = FRAC - SEG
TIMEOUT = {"timeout_time": 50, "timeout_unit": "ms"}


def expected(zs):
    """(σ, 1 − σ, SiLU) per input, from the golden model's table."""
    z = np.array(zs, dtype=np.int64)
    return list(zip(TABLE.sigmoid(z, FRAC).tolist(), TABLE.complement(z, FRAC).tolist(),
                    TABLE.silu(z, FRAC).tolist()))


def decode(raw):
    sigma = raw & ((1 << (G + 1)) - 1)
    complement = (raw >> (G + 1)) & ((1 << (G + 1)) - 1)
    silu = raw >> (2 * G + 2)
    return sigma, complement, silu - (1 << WIDTH) if silu >> (WIDTH - 1) else silu


def clamp(values):
    return sorted({min(max(v, LO), HI) for v in values})


def adversarial():
    """Edges of the range, segment boundaries and their neighbours, the table's end, interpolation ties."""
    values = [0, 1, -1, 2, -2, LO, LO + 1, HI, HI - 1]
    for k in range(RANGE * (1 << SEG) + 3):
        for d in (-1, 0, 1):
            values += [(k << SUB) + d, -(k << SUB) - d]
    end = RANGE << FRAC
    values += [end + d for d in range(-3, 4)] + [-end - d for d in range(-3, 4)]
    if SUB:
        # r = 2^(SUB-1): D·r/2^SUB is a tie whenever D is odd
        values += [(k << SUB) + (1 << (SUB - 1)) for k in range(RANGE << SEG)]
        values += [-((k << SUB) + (1 << (SUB - 1))) for k in range(RANGE << SEG)]
    return clamp(values)


def random_inputs(count, rng):
    half = count // 2
    uniform = rng.integers(LO, HI, half, endpoint=True)
    magnitude = np.exp2(rng.uniform(0, WIDTH - 1, count - half)).astype(np.int64)
    signs = rng.choice([-1, 1], count - half)
    return clamp([*uniform.tolist(), *(signs * magnitude).tolist()])


async def check(dut, zs, *, p_gap, p_stall):
    """Stream ``zs`` through the unit and compare every output; returns the cycles the sink took."""
    source = Source(dut, "i", dut.clk, p_gap=p_gap, junk_bits=WIDTH)
    sink = Sink(dut, "o", dut.clk, p_stall=p_stall)
    sending = cocotb.start_soon(source.send([z & ((1 << WIDTH) - 1) for z in zs]))
    start = cocotb.utils.get_sim_time("ns")
    received = await sink.receive(len(zs), max_cycles=20 * len(zs) + 100)
    cycles = round((cocotb.utils.get_sim_time("ns") - start) / 10)
    await sending
    for index, (z, raw, want) in enumerate(zip(zs, received, expected(zs))):
        got = decode(raw)
        assert got == want, f"input {index} z = {z} ({z / (1 << FRAC):.6f}): got (σ, 1 − σ, SiLU) {got}, " \
                            f"expected {want}"
    await ReadOnly()
    await RisingEdge(dut.clk)
    for _ in range(3):
        await ReadOnly()
        assert not dut.o__valid.value, "o.valid without input"
        await RisingEdge(dut.clk)
    return cycles


@cocotb.test(**TIMEOUT)
async def adversarial_inputs(dut):
    """Range edges, segment boundaries, the table's end and interpolation ties, shuffled, under gaps and stalls."""
    await reset(dut)
    values = adversarial()
    random.shuffle(values)
    await check(dut, values, p_gap=0.3, p_stall=0.3)


@cocotb.test(**TIMEOUT)
async def random_inputs_under_backpressure(dut):
    """Random inputs in segments of light to heavy gaps and back-pressure."""
    await reset(dut)
    rng = np.random.default_rng(random.getrandbits(64))
    values = random_inputs(P.get("random", 1500), rng)
    random.shuffle(values)
    segments = [(0.0, 0.5), (0.5, 0.0), (0.5, 0.5), (0.1, 0.9), (0.9, 0.1)]
    size = -(-len(values) // len(segments))
    for start, (p_gap, p_stall) in zip(range(0, len(values), size), segments):
        await check(dut, values[start:start + size], p_gap=p_gap, p_stall=p_stall)


@cocotb.test(**TIMEOUT)
async def full_throughput(dut):
    """Without gaps or stalls: one result per cycle after the pipeline's latency."""
    await reset(dut)
    values = [random.randint(LO, HI) for _ in range(200)]
    cycles = await check(dut, values, p_gap=0, p_stall=0)
    assert cycles <= len(values) + SigmoidUnit.latency + 1, f"{len(values)} inputs took {cycles} cycles"
