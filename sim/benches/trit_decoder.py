"""Bench of :class:`mmfree.hw.trit_decoder.TritDecoder` against :func:`mmfree.host.packing.unpack`.

Every output group and error flag is compared with the host's unpacking of its byte; for bytes the host rejects,
with the decoder's documented answer (a ``0b10`` code reads as trit 0, a base-3 byte above 242 as zeros), with
``error`` set. Input arrives with random gaps (and random junk on the payload while not valid), the output is
stalled at random, and the stream rules are checked on every cycle.

Parameters (:func:`mmfree.sim.benches.params`): ``fmt`` (``"2bit"`` or ``"base3"``), ``registered`` (default
false), ``random_bytes`` (length of the random stream, default 4000).
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from mmfree.host import packing
from mmfree.hw.trit_decoder import TRITS_PER_BYTE, decoder_latency, trit_group_layout

from . import params
from .streams import reset

FMT = params()["fmt"]
LATENCY = decoder_latency(params().get("registered", False))
TRITS = TRITS_PER_BYTE[FMT]
LAYOUT = trit_group_layout(TRITS)
TIMEOUT = {"timeout_time": 10, "timeout_unit": "ms"}


def reference(byte):
    """The group the decoder must emit for ``byte``: ``(trits, error)``."""
    try:
        return tuple(packing.unpack(bytes([byte]), TRITS, FMT).tolist()), 0
    except ValueError:
        pass
    if FMT == "2bit":
        invalid = (byte >> 1) & ~byte & 0x55  # bit 2k set where code k is 0b10
        return tuple(packing.unpack_2bit(bytes([byte & ~(invalid << 1)]), 4).tolist()), 1
    return (0,) * TRITS, 1


EXPECTED = [reference(byte) for byte in range(256)]


def decode(raw):
    group = LAYOUT.from_bits(raw)
    return tuple(group.trits), int(group.error)


async def stream(dut, data, *, p_gap, p_stall):
    """Pass ``data`` through the decoder; return the groups received and the cycles taken.

    Each cycle drives the inputs after the clock edge and samples the handshakes once they settle. A byte once
    offered stays offered until taken; while ``o.valid & ~o.ready``, ``o`` must hold its payload the next cycle.
    """
    received, sent, offered, held, cycles = [], 0, None, None, 0
    while len(received) < len(data):
        if offered is None and sent < len(data) and random.random() >= p_gap:
            offered, sent = data[sent], sent + 1
        dut.i__valid.value = offered is not None
        dut.i__payload.value = random.randrange(256) if offered is None else offered
        dut.o__ready.value = random.random() >= p_stall
        await ReadOnly()
        valid, raw = bool(dut.o__valid.value), dut.o__payload.value.to_unsigned()
        if held is not None:
            assert valid and raw == held, f"cycle {cycles}: o changed while valid and not ready"
        if dut.i__valid.value and dut.i__ready.value:
            offered = None
        if valid and dut.o__ready.value:
            received.append(decode(raw))
        held = raw if valid and not dut.o__ready.value else None
        await RisingEdge(dut.clk)
        cycles += 1
    return received, cycles


async def check(dut, data, *, p_gap, p_stall):
    received, cycles = await stream(dut, data, p_gap=p_gap, p_stall=p_stall)
    for index, (byte, got) in enumerate(zip(data, received)):
        assert got == EXPECTED[byte], \
            f"byte {index} of {len(data)} ({byte:#04x}): got (trits, error) {got}, expected {EXPECTED[byte]}"
    dut.i__valid.value = 0
    dut.o__ready.value = 1
    for _ in range(3):
        await ReadOnly()
        assert not dut.o__valid.value, "o.valid without input"
        await RisingEdge(dut.clk)
    return cycles


@cocotb.test(**TIMEOUT)
async def group_size_agrees_with_host(dut):
    assert packing.packed_size(TRITS, FMT) == 1 and packing.packed_size(TRITS + 1, FMT) == 2


@cocotb.test(**TIMEOUT)
async def every_byte(dut):
    """All 256 byte values in order, then shuffled, under gaps and back-pressure."""
    await reset(dut)
    shuffled = random.sample(range(256), 256)
    await check(dut, [*range(256), *shuffled], p_gap=0.25, p_stall=0.25)


@cocotb.test(**TIMEOUT)
async def full_throughput(dut):
    """With no gaps and no stalls the decoder takes a byte and emits a group every cycle, its latency after."""
    await reset(dut)
    data = [random.randrange(256) for _ in range(256)]
    assert await check(dut, data, p_gap=0, p_stall=0) == len(data) + LATENCY


@cocotb.test(**TIMEOUT)
async def random_stream(dut):
    """Packed random weights mixed with arbitrary bytes, in segments of light to heavy gaps and back-pressure."""
    await reset(dut)
    count = params().get("random_bytes", 4000)
    rng = np.random.default_rng(random.getrandbits(64))
    packed = packing.pack(rng.integers(-1, 2, count // 2 * TRITS), FMT).tolist()
    data = [*packed, *rng.integers(0, 256, count - len(packed)).tolist()]
    random.shuffle(data)
    segments = [(0.0, 0.5), (0.5, 0.0), (0.5, 0.5), (0.1, 0.9), (0.9, 0.1)]
    size = -(-len(data) // len(segments))
    for start, (p_gap, p_stall) in zip(range(0, len(data), size), segments):
        await check(dut, data[start:start + size], p_gap=p_gap, p_stall=p_stall)
