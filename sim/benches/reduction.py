"""Bench of :class:`mmfree.hw.reduction.ReductionUnit` against the golden model.

Every field of every result is checked: ``sum_sq`` and ``sq_shift`` against ``GoldenModel.sum_of_squares`` (when
the supplied shift is the least one; otherwise against the documented wrap of ``x >> k`` to ``reduce_bits``
bits, and not at all for a shift above ``shift_max``, where it is unspecified); ``max_abs``, ``argmax`` (first
maximum, as :func:`numpy.argmax`), ``max``, ``count`` and ``overlong`` against NumPy; the latency from the last
element to the result against the documented one (without ``find_shift``: no ``sq_shift`` and ``shift_ok``, and 3
cycles). Elements arrive with random gaps (junk on the payload while not
valid) and the results are taken with random back-pressure; the stream rules are checked on every cycle.

With ``square_input``, a random third of the vectors carry their own ``square`` operands (``own_square``), whose
``Σ square²`` is then the expected ``sum_sq``.

Parameters (:func:`mmfree.sim.benches.params`): the unit's constructor arguments (``width``, ``max_len``,
``reduce_bits``, ``square_input``, ``find_shift``) and ``vectors`` (random vectors, default 3000).
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from mmfree.host.golden import Arithmetic, Formats
from mmfree.hw.reduction import ReductionUnit

from . import params
from .streams import Sink, Source, reset

PARAMS = params()
VECTORS = PARAMS.pop("vectors", 3000)
UNIT = ReductionUnit(**PARAMS)
SQUARES = PARAMS.get("square_input", False)
FIND = UNIT.find_shift
WIDTH, MAX_LEN, RB = UNIT.width, UNIT.max_len, UNIT.reduce_bits
IN_LAYOUT = UNIT.i.payload.shape()
OUT_LAYOUT = UNIT.o.payload.shape()
LOW, HIGH = -(1 << (WIDTH - 1)), (1 << (WIDTH - 1)) - 1
# the golden model's reductions need only its formats
GOLDEN = Arithmetic(Formats(reduce_bits=RB), eps=None, residual_frac=0)
TIMEOUT = {"timeout_time": 200, "timeout_unit": "ms"}


def least_shift(x):
    return GOLDEN.sum_of_squares(np.asarray(x, dtype=np.int64)[None])[1][0]


def squares_of(x):
    """Random ``reduce_bits``-bit square operands for vector ``x`` (extremes included), seeded by its contents."""
    rng = np.random.default_rng(abs(hash(tuple(int(v) for v in x))))
    return np.concatenate([[-(1 << (RB - 1)), (1 << (RB - 1)) - 1],
                           rng.integers(-(1 << (RB - 1)), 1 << (RB - 1), len(x))])[-len(x):]


def expected(x, shift, own_square=False):
    """The result fields the unit must give for vector ``x`` streamed with ``shift`` (and its own squares)."""
    x = np.asarray(x, dtype=np.int64)
    sums, shifts = GOLDEN.sum_of_squares(x[None])
    if own_square:
        sum_sq = int((squares_of(x) ** 2).sum())
    elif shift == shifts[0]:
        sum_sq = sums[0]
    else:  # documented: x >> k kept to reduce_bits bits (two's complement wrap)
        w = np.right_shift(x, shift) & ((1 << RB) - 1)
        w = np.where(w >> (RB - 1), w - (1 << RB), w)
        sum_sq = int((w * w).sum())
    result = {
        "max_abs": int(np.abs(x).max()), "argmax": int(np.argmax(x)), "max": int(x.max()),
        "count": min(len(x), MAX_LEN), "sum_sq": sum_sq, "sq_shift": shifts[0], "shift_ok": int(shift == shifts[0]),
        "overlong": int(len(x) > MAX_LEN),
    }
    if not FIND:
        del result["sq_shift"], result["shift_ok"]
    if len(x) > MAX_LEN:  # documented as not to be used
        for name in ("argmax", "sum_sq", "count"):
            del result[name]
    elif shift > UNIT.shift_max and not own_square:  # documented as unspecified
        del result["sum_sq"]
    return result


def latency(x):
    """Documented cycles from the last element's transfer to o.valid."""
    return 3 + UNIT.shift_max - least_shift(x) if FIND else 3


def encode(x, shift, own_square=False):
    """Elements of one vector as raw payloads."""
    extra = [{"square": int(sq), "own_square": int(own_square)} for sq in squares_of(x)] if SQUARES else [{}] * len(x)
    return [IN_LAYOUT.const({"data": int(v), "shift": shift, "last": int(n == len(x) - 1), **more}).as_bits()
            for n, (v, more) in enumerate(zip(x, extra))]


def decode(raw):
    view = OUT_LAYOUT.from_bits(raw)
    return {name: int(getattr(view, name)) for name in OUT_LAYOUT.members}


async def run(dut, jobs, *, p_gap, p_stall):
    """Stream ``jobs`` (vector, shift) and check each result; returns the results and the cycles taken."""
    jobs = [(x, shift & ((1 << UNIT.shift_bits) - 1)) for x, shift in jobs]  # what the shift field holds
    own = [SQUARES and random.random() < 1 / 3 for _ in jobs]
    source = Source(dut, "i", dut.clk, p_gap=p_gap, junk_bits=IN_LAYOUT.size)
    sink = Sink(dut, "o", dut.clk, p_stall=p_stall)
    items = [raw for (x, shift), mine in zip(jobs, own) for raw in encode(x, shift, mine)]
    sender = cocotb.start_soon(source.send(items))
    count = sum(len(x) for x, _ in jobs)
    start = get_sim_time("ns")
    raws = await sink.receive(len(jobs), max_cycles=int(count / (1 - p_gap) * 4) + 200 * len(jobs) + 1000)
    cycles = int((get_sim_time("ns") - start) // 10)
    await sender
    results = [decode(raw) for raw in raws]
    for index, ((x, shift), mine, got) in enumerate(zip(jobs, own, results)):
        want = expected(x, shift, mine)
        diff = {name: (got[name], value) for name, value in want.items() if got[name] != value}
        shown = list(x) if len(x) <= 16 else f"{len(x)} elements, first {list(x[:8])}"
        assert not diff, f"vector {index} {shown}, shift {shift}: (got, expected) {diff}"
    dut._log.info(f"{len(jobs)} vectors ({count} elements) in {cycles} cycles match the golden model")
    return results, cycles


def magnitude_vector(rng, length, bits):
    """``length`` random elements whose largest magnitude has about ``bits`` bits."""
    if bits == 0:
        return np.zeros(length, dtype=np.int64)
    span = 1 << (bits - 1)
    x = rng.integers(-span, span, length, dtype=np.int64)
    if rng.random() < 0.3:  # exact extremes
        x[rng.integers(length)] = rng.choice([-span, span - 1])
    return np.clip(x, LOW, HIGH)


def adversarial():
    """Hand-picked vectors: zeros, ties, extremes, powers of two and their neighbours, rounding ties."""
    vectors = [[0], [0] * 7, [5] * 6, [-3] * 5, [LOW], [HIGH], [LOW, HIGH], [HIGH, LOW], [LOW] * 4,
               [-1, -1, 0, 0], [0, -1, 0], [1, -2, 2, -2, 2], [-7, 3, 3, -7], [HIGH, HIGH - 1, HIGH],
               [LOW, LOW + 1, -1], [0, 0, 0, 1], [-1], [1]]
    for bits in range(WIDTH):
        for value in (1 << bits, (1 << bits) - 1, (1 << bits) + 1):
            if value <= HIGH:
                vectors += [[value], [-value, 0], [0, value - 1, value, value]]
    # magnitudes of both signs, equal and one apart, in either order: max|x| is compared as (x ^ s, s)
    for bits in range(1, WIDTH):
        for value in (1 << bits, (1 << bits) - 1, 3 << (bits - 1) if bits > 1 else 1):
            if value <= HIGH:
                for pair in ([value, -value], [-value, value], [-value, value - 1], [value - 1, -value],
                             [-value - 1, value], [value, -value - 1], [-value, -value, value]):
                    if LOW <= min(pair):
                        vectors.append(pair)
    # sum of squares at the fitting boundary of reduce_bits
    for shift in range(0, UNIT.shift_max + 1):
        for value in ((1 << (RB - 1 + shift)) - 1, 1 << (RB - 1 + shift), -(1 << (RB - 1 + shift)),
                      -(1 << (RB - 1 + shift)) - 1):
            if LOW <= value <= HIGH:
                vectors.append([value, value, -(abs(value) >> 1), 3])
    return [np.array(v, dtype=np.int64) for v in vectors]


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def layouts_agree_with_golden_formats(dut):
    assert UNIT.shift_max == least_shift([LOW])
    assert UNIT.sum_bits >= (MAX_LEN * (1 << (2 * RB - 2))).bit_length()


@cocotb.test(**TIMEOUT)
async def adversarial_vectors(dut):
    """Hand-picked vectors with the least shift, then with shifts one off (two-pass use), under stalls."""
    await reset(dut)
    vectors = adversarial()
    await run(dut, [(x, least_shift(x)) for x in vectors], p_gap=0.3, p_stall=0.3)
    off = [(x, max(0, least_shift(x) + random.choice([-1, 1]))) for x in vectors]
    await run(dut, off, p_gap=0.1, p_stall=0.5)


@cocotb.test(**TIMEOUT)
async def random_vectors(dut):
    """Random lengths and magnitudes, in segments of light to heavy gaps and back-pressure; the shift is the least
    one, found by a first pass, or random."""
    await reset(dut)
    rng = np.random.default_rng(random.getrandbits(64))
    jobs = []
    for _ in range(VECTORS):
        length = int(min(MAX_LEN, rng.choice([1, 2, 3, rng.integers(1, 17), rng.integers(1, 65)])))
        x = magnitude_vector(rng, length, int(rng.integers(0, WIDTH + 1)))
        mode = rng.random()
        shift = least_shift(x) if mode < 0.6 else 0 if mode < 0.8 else int(rng.integers(0, 1 << UNIT.shift_bits))
        jobs.append((x, shift))
    segments = [(0.0, 0.0), (0.3, 0.3), (0.7, 0.1), (0.1, 0.7), (0.0, 0.5)]
    size = -(-len(jobs) // len(segments))
    for start, (p_gap, p_stall) in zip(range(0, len(jobs), size), segments):
        batch = jobs[start:start + size]
        results, _ = await run(dut, batch, p_gap=p_gap, p_stall=p_stall)
        if FIND:   # second pass of the two-pass use: the shift the first pass reported
            second = [(x, got["sq_shift"]) for (x, shift), got in zip(batch, results) if not got["shift_ok"]]
            results, _ = await run(dut, second, p_gap=p_gap, p_stall=p_stall)
            assert all(got["shift_ok"] for got in results)


@cocotb.test(**TIMEOUT)
async def maximum_length(dut):
    """Vectors of max_len elements (all at the extreme, and random), and one longer that is flagged."""
    await reset(dut)
    rng = np.random.default_rng(random.getrandbits(64))
    ramp = magnitude_vector(rng, MAX_LEN, WIDTH)
    ramp[-1] = HIGH  # the maximum at the last index
    jobs = [(np.full(MAX_LEN, LOW, dtype=np.int64), UNIT.shift_max), (ramp, least_shift(ramp)),
            (magnitude_vector(rng, MAX_LEN + 1, WIDTH), 0), (np.array([7]), 0), (np.array([-7, 7]), 0)]
    await run(dut, jobs, p_gap=0.2, p_stall=0.2)


@cocotb.test(**TIMEOUT)
async def throughput(dut):
    """Without gaps or stalls an element enters every cycle; the result follows within the documented latency."""
    await reset(dut)
    rng = np.random.default_rng(random.getrandbits(64))
    lengths = [100, 1, 5, 37]
    jobs = [(magnitude_vector(rng, min(n, MAX_LEN), WIDTH), 0) for n in lengths]
    _, cycles = await run(dut, jobs, p_gap=0.0, p_stall=0.0)
    elements = sum(len(x) for x, _ in jobs)
    assert cycles <= elements + sum(latency(x) + 2 for x, _ in jobs), f"{cycles} cycles for {elements} elements"
    dut._log.info(f"{elements} elements in {len(jobs)} vectors: {cycles} cycles")
    # while a vector streams, i.ready stays high
    source = Source(dut, "i", dut.clk)
    sink = Sink(dut, "o", dut.clk)
    x = magnitude_vector(rng, min(50, MAX_LEN), WIDTH)
    sender = cocotb.start_soon(source.send(encode(x, 0)))
    await RisingEdge(dut.clk)
    stalls = 0
    while not sender.done():
        await ReadOnly()
        stalls += int(dut.i__valid.value and not dut.i__ready.value)
        await RisingEdge(dut.clk)
    assert stalls == 0, f"{stalls} stalled cycles inside a vector"
    await sink.receive(1, max_cycles=200)
    # latency from the last element's transfer to o.valid, as documented
    values = (0, 1, HIGH, LOW, 1 << (WIDTH // 2), -5, 1 << (RB - 1), (1 << (RB - 1)) - 1)
    for value in (v for v in values if LOW <= v <= HIGH):
        want = latency([value])
        dut.i__payload.value = encode([value], 0)[0]
        dut.i__valid.value = 1
        await ReadOnly()
        assert dut.i__ready.value
        await RisingEdge(dut.clk)
        dut.i__valid.value = 0
        cycles = 0
        while True:
            await ReadOnly()
            if dut.o__valid.value:
                break
            await RisingEdge(dut.clk)
            cycles += 1
        assert cycles == want, f"max|x| = {abs(value)}: o.valid {cycles} cycles after the transfer, documented {want}"
        await RisingEdge(dut.clk)
        await sink.receive(1, max_cycles=5)
