"""Bench of :class:`mmfree.hw.quantizer.Quantizer` against ``GoldenModel.quantize``, alone and feeding a
:class:`~mmfree.hw.ternary_matvec.TernaryMatVec`.

Vectors are ``p = v ⊙ c`` from integer ``v`` and constants ``c`` (int16 mantissas, as the compiler makes them) or
``p`` given directly (``c = 1``). The golden model quantizes them (``GoldenModel.quantize`` with the bench's
``Formats``); the bench derives ``k`` and ``R`` as the reduction unit does (``bit_length(max|p|) − quant_bits``, the
rounded reciprocal) and sends them as the vector's command. Every ``q`` is compared. Inputs: random magnitudes over
the whole ``p_width`` range, the extremes ``−2^(p_width−1)`` and ``2^(p_width−1) − 1``, small vectors (left shifts,
down to ``max|p| = 1``), exact rounding ties at the vector's own shift, ties and their neighbours placed where
``p'`` crosses from one int8 level to the next (so that an off-by-one ``p'`` changes ``q``), a maximum that rounds up
to ``2^quant_bits``, all-zero vectors (sent with a junk ``R``), single elements; commands and elements with random gaps
(junk payloads while not valid), output back-pressure, the stream rules checked; one test checks the documented
throughput.

In ``mode="chain"`` the DUT is a quantizer with ``lanes = C`` whose ``o`` drives a matvec's ``a`` (the bench top
built by ``tests/test_quantizer.py``): each row group gets its command and the vector again, and the matvec's
accumulators must equal ``T @ q_golden``.

Parameters (:func:`mmfree.sim.benches.params`): ``p_width``, ``lanes``, ``quant_bits``, ``recip_bits`` (as built),
``vectors`` (random vectors, default 1000); ``mode`` (``"unit"`` or ``"chain"``) and, for chains, ``rows``,
``cols``, ``max_len`` and ``ops`` (random operations, default 200).
"""

import random
from types import SimpleNamespace

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from mmfree.host.fixed import bit_length, round_shift
from mmfree.host.golden import Formats, GoldenModel
from mmfree.hw.quantizer import command_layout

from . import params
from .streams import Sink, Source

PARAMS = params()
MODE = PARAMS.get("mode", "unit")
P_WIDTH, QUANT_BITS, RECIP_BITS = PARAMS["p_width"], PARAMS["quant_bits"], PARAMS["recip_bits"]
LANES = PARAMS["lanes"]
FORMATS = Formats(quant_bits=QUANT_BITS, recip_bits=RECIP_BITS)
RECIP_SHIFT = FORMATS.recip_shift
CMD_LAYOUT = command_layout(P_WIDTH, QUANT_BITS, RECIP_BITS)
SHIFT_WIDTH = CMD_LAYOUT["recip"].offset
CMD_BITS = CMD_LAYOUT.size
P_MIN, P_MAX = -(1 << (P_WIDTH - 1)), (1 << (P_WIDTH - 1)) - 1
LATENCY = 5
TIMEOUT = {"timeout_time": 100, "timeout_unit": "ms"}


def golden(v, c):
    """``GoldenModel.quantize`` of one vector: the int8 values."""
    fake_model = SimpleNamespace(formats=FORMATS)
    q, _ = GoldenModel.quantize_products(fake_model, np.asarray(v, np.int64) * np.asarray(c, np.int64))
    return q.astype(np.int64)


def reduction(p):
    """What the reduction unit hands the quantizer for vector ``p``: ``(k, R)``; a junk ``R`` for a zero vector
    (whose golden ``R`` does not fit the field, and does not matter)."""
    peak = int(np.abs(np.asarray(p, np.int64)).max())
    k = int(bit_length(peak)) - QUANT_BITS
    top = max(int(round_shift(peak, k)), 1)
    recip = ((127 << RECIP_SHIFT) + top // 2) // top
    if peak == 0:
        recip = random.getrandbits(RECIP_BITS + 1)
    assert recip < 1 << (RECIP_BITS + 1)
    return k, recip


def command(p):
    k, recip = reduction(p)
    return (k & ((1 << SHIFT_WIDTH) - 1)) | (recip << SHIFT_WIDTH)


def beats(p, lanes):
    """Input beats of a vector: ``lanes`` values each, the last beat padded with zeros and marked ``last``."""
    count = -(-len(p) // lanes)
    padded = list(p) + [0] * (count * lanes - len(p))
    items = []
    for b in range(count):
        bits = sum((int(x) & ((1 << P_WIDTH) - 1)) << (lane * P_WIDTH)
                   for lane, x in enumerate(padded[b * lanes:(b + 1) * lanes]))
        items.append(bits | int(b == count - 1) << (lanes * P_WIDTH))
    return items


def decode(raw, lanes):
    values = [(raw >> (8 * lane)) & 0xFF for lane in range(lanes)]
    return tuple(v - 256 if v >= 128 else v for v in values), (raw >> (8 * lanes)) & 1


# -- vector generators: (v, c) with p = v ⊙ c inside p_width ----------------------------------------------------

def _ints(rng, low, high, n):
    """Uniform Python ints in [low, high] (any width)."""
    return [rng.randrange(low, high + 1) for _ in range(n)]


def vec_realistic(rng, n):
    """int16 constants (block floating point, the largest near 2^15) times integers of a random magnitude."""
    c = np.array(_ints(rng, -(1 << 15) + 1, (1 << 15) - 1, n), np.int64)
    c[rng.randrange(n)] = rng.choice([-1, 1]) * rng.randrange(1 << 14, 1 << 15)
    bits = rng.randrange(1, P_WIDTH - 16)
    v = np.array(_ints(rng, -(1 << bits), (1 << bits), n), np.int64)
    return v, c


def vec_full_range(rng, n):
    p = _ints(rng, P_MIN, P_MAX, n)
    if rng.random() < 0.5:
        p[rng.randrange(n)] = rng.choice([P_MIN, P_MAX])
    return np.array(p, np.int64), np.ones(n, np.int64)


def vec_small(rng, n):
    """``max|p| < 2^quant_bits``: the shift is a left shift (``k ≤ 0``), down to ``max|p| = 1``."""
    bits = rng.randrange(1, QUANT_BITS + 1)
    p = _ints(rng, -(1 << (bits - 1)), (1 << (bits - 1)), n)
    return np.array(p, np.int64), np.ones(n, np.int64)


def vec_ties(rng, n):
    """A maximum with ``b`` bits (so ``k = b − quant_bits > 0``) and elements ``odd · 2^(k−1)``: exact ties."""
    b = rng.randrange(QUANT_BITS + 1, P_WIDTH)
    k = b - QUANT_BITS
    peak = rng.randrange(1 << (b - 1), 1 << b)
    limit = peak >> (k - 1)
    p = [rng.choice([-1, 1]) * ((rng.randrange(0, (limit + 1) // 2) * 2 + 1) << (k - 1)) for _ in range(n)]
    p = [x if abs(x) <= peak else x // 2 for x in p]
    p[rng.randrange(n)] = rng.choice([-1, 1]) * peak
    return np.array(p, np.int64), np.ones(n, np.int64)


def vec_rounds_up(rng, n):
    """``max|p| = 2^b − 1 − j`` for small ``j``: the normalized maximum rounds up to ``2^quant_bits``."""
    b = rng.randrange(QUANT_BITS + 2, P_WIDTH)
    k = b - QUANT_BITS
    peak = (1 << b) - 1 - rng.randrange(0, 1 << (k - 1))
    p = _ints(rng, -peak, peak, n)
    p[rng.randrange(n)] = rng.choice([-1, 1]) * peak
    return np.array(p, np.int64), np.ones(n, np.int64)


def vec_boundaries(rng, n):
    """Elements at the edges of int8 levels: for random levels ``j``, the least ``p'`` giving ``j`` is ``n_j``;
    elements ``±((2·n_j − 1) · 2^(k−1) + δ)``, ``δ ∈ {−1, 0, 1}``, are exact ties (``δ = 0``) that must round up
    into level ``j`` or values just beside them, so an off-by-one ``p'`` shows as a wrong ``q``."""
    b = rng.randrange(QUANT_BITS + 1, P_WIDTH)
    k = b - QUANT_BITS
    peak = rng.randrange(1 << (b - 1), 1 << b)
    _, recip = reduction(np.array([peak]))
    p = [rng.choice([-1, 1]) * peak]
    while len(p) < n:
        level = rng.randrange(1, 128)
        least = -(-((level << RECIP_SHIFT) - (1 << (RECIP_SHIFT - 1))) // recip)
        magnitude = ((2 * least - 1) << (k - 1)) + rng.choice([-1, 0, 0, 1])
        if 0 <= magnitude <= peak:
            p.append(rng.choice([-1, 1]) * magnitude)
    rng.shuffle(p)
    return np.array(p, np.int64), np.ones(n, np.int64)


def vec_special(rng, n):
    """Zeros, a single nonzero element, all elements ±max."""
    kind = rng.randrange(3)
    if kind == 0:
        return np.zeros(n, np.int64), np.ones(n, np.int64)
    if kind == 1:
        p = np.zeros(n, np.int64)
        p[rng.randrange(n)] = rng.choice([P_MIN, P_MAX, 1, -1, rng.randrange(P_MIN, P_MAX)])
        return p, np.ones(n, np.int64)
    peak = rng.choice([1, (1 << QUANT_BITS) - 1, 1 << QUANT_BITS, rng.randrange(1, P_MAX), P_MAX])
    return np.array([rng.choice([-1, 1]) * peak for _ in range(n)], np.int64), np.ones(n, np.int64)


GENERATORS = [vec_realistic, vec_full_range, vec_small, vec_ties, vec_rounds_up, vec_boundaries, vec_special]


def random_vector(rng, n):
    v, c = rng.choice(GENERATORS)(rng, n)
    p = v * c
    assert all(P_MIN <= int(x) <= P_MAX for x in p)
    return v, c


async def reset(dut, ports):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for port in ports:
        getattr(dut, f"{port}__valid").value = 0
    dut.o__ready.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def run_vectors(dut, vectors, *, p_gap_cmd=0.0, p_gap_i=0.0, p_stall=0.0):
    """Quantize ``vectors`` (a list of (v, c)) and compare every output beat; returns the cycles taken."""
    cmds, items, expected = [], [], []
    for v, c in vectors:
        p = v * c
        cmds.append(command(p))
        items += beats(p.tolist(), LANES)
        q = golden(v, c).tolist() + [0] * (-len(p) % LANES)
        count = len(q) // LANES
        expected += [(tuple(q[b * LANES:(b + 1) * LANES]), int(b == count - 1)) for b in range(count)]
    cmd_source = Source(dut, "cmd", dut.clk, p_gap=p_gap_cmd, junk_bits=CMD_BITS)
    i_source = Source(dut, "i", dut.clk, p_gap=p_gap_i, junk_bits=LANES * P_WIDTH + 1)
    sink = Sink(dut, "o", dut.clk, p_stall=p_stall)
    tasks = [cocotb.start_soon(cmd_source.send(cmds)), cocotb.start_soon(i_source.send(items))]
    received = await sink.receive(len(expected), max_cycles=20 * len(items) + 100)
    for task in tasks:
        await task
    for index, (raw, want) in enumerate(zip(received, expected)):
        got = decode(raw, LANES)
        assert got == want, f"beat {index} of {len(expected)}: got (q, last) {got}, expected {want}"
    return sink.cycles


if MODE == "unit":
    @cocotb.test(**TIMEOUT)
    async def random_vectors(dut):
        """Random vectors of every kind, lengths 1 to 40, in batches with different gaps and back-pressure."""
        await reset(dut, ["cmd", "i"])
        rng = random.Random(random.getrandbits(64))
        count = PARAMS.get("vectors", 1000)
        batch = 50
        for start in range(0, count, batch):
            vectors = [random_vector(rng, rng.randrange(1, 41)) for _ in range(min(batch, count - start))]
            await run_vectors(dut, vectors, p_gap_cmd=rng.choice([0.0, 0.5]), p_gap_i=rng.choice([0.0, 0.3, 0.7]),
                              p_stall=rng.choice([0.0, 0.3, 0.8]))

    @cocotb.test(**TIMEOUT)
    async def every_kind_and_corner(dut):
        """Each generator many times over short vectors, plus hand-picked corners, all under gaps and stalls."""
        await reset(dut, ["cmd", "i"])
        rng = random.Random(random.getrandbits(64))
        vectors = [generator(rng, rng.randrange(1, 2 * LANES + 2)) for generator in GENERATORS for _ in range(25)]
        ones = lambda n: np.ones(n, np.int64)  # noqa: E731
        corners = [
            [P_MIN], [P_MAX], [P_MIN, P_MAX, -P_MAX, 0, 1, -1], [0], [1], [-1], [1, -1, 0],
            [(1 << QUANT_BITS) - 1, -(1 << QUANT_BITS) + 1, 1],
            [1 << QUANT_BITS, -(1 << QUANT_BITS), 1 << (QUANT_BITS - 1)],
            [3, -3, 1, -1, 2], [(1 << (QUANT_BITS + 1)) - 1, 1, -1, 2, -2, 3],  # rounds up, ties at k = 1
        ]
        vectors += [(np.array(p, np.int64), ones(len(p))) for p in corners]
        rng.shuffle(vectors)
        await run_vectors(dut, vectors, p_gap_cmd=0.3, p_gap_i=0.3, p_stall=0.3)

    @cocotb.test(**TIMEOUT)
    async def full_throughput(dut):
        """No gaps, no stalls: a beat every cycle, no bubble between vectors, latency 5."""
        await reset(dut, ["cmd", "i"])
        rng = random.Random(random.getrandbits(64))
        vectors = [random_vector(rng, rng.randrange(1, 4 * LANES + 1)) for _ in range(30)]
        total = sum(-(-len(v) // LANES) for v, _ in vectors)
        cycles = await run_vectors(dut, vectors)
        # the first command is taken in cycle 0, its first beat in cycle 1, the last beat in cycle `total`
        assert cycles == total + LATENCY + 1, f"{total} beats took {cycles} cycles to the last output"


if MODE == "chain":
    from mmfree.hw.ternary_matvec import acc_width, weight_layout

    ROWS, COLS, MAX_LEN = PARAMS["rows"], PARAMS["cols"], PARAMS["max_len"]
    WIDTH = acc_width(MAX_LEN)
    W_LAST = weight_layout(ROWS, COLS)["last"].offset

    def chain_items(trits, v, c):
        """Commands, p beats and w beats of one operation (every row group replays the vector), and the expected
        accumulators, ``T @ q_golden`` per group."""
        q = golden(v, c)
        p = (v * c).tolist()
        count = -(-len(p) // COLS)
        padded = np.concatenate([trits, np.zeros((trits.shape[0], count * COLS - len(p)), np.int64)], axis=1)
        cmds, items, w_items, expected = [], [], [], []
        for group in range(trits.shape[0] // ROWS):
            cmds.append(command(np.asarray(p)))
            items += beats(p, COLS)
            for b in range(count):
                bits = 0
                for r in range(ROWS):
                    for col in range(COLS):
                        bits |= (int(padded[group * ROWS + r, b * COLS + col]) & 3) << (2 * (r * COLS + col))
                w_items.append(bits | int(b == count - 1) << W_LAST)
            expected.append(tuple((trits[group * ROWS:(group + 1) * ROWS] @ q).tolist()))
        return cmds, items, w_items, expected

    def decode_accs(raw):
        accs = [(raw >> (r * WIDTH)) & ((1 << WIDTH) - 1) for r in range(ROWS)]
        return tuple(a - (1 << WIDTH) if a >> (WIDTH - 1) else a for a in accs)

    async def run_chain(dut, ops, *, p_gap=0.0, p_stall=0.0):
        cmds, items, w_items, expected = [], [], [], []
        for trits, v, c in ops:
            a, b, w, e = chain_items(trits, v, c)
            cmds += a
            items += b
            w_items += w
            expected += e
        sources = [Source(dut, "cmd", dut.clk, p_gap=p_gap, junk_bits=CMD_BITS),
                   Source(dut, "i", dut.clk, p_gap=p_gap, junk_bits=COLS * P_WIDTH + 1),
                   Source(dut, "w", dut.clk, p_gap=p_gap, junk_bits=2 * ROWS * COLS + 1)]
        sink = Sink(dut, "o", dut.clk, p_stall=p_stall)
        tasks = [cocotb.start_soon(source.send(data)) for source, data in zip(sources, [cmds, items, w_items])]
        received = await sink.receive(len(expected), max_cycles=20 * len(w_items) + 100)
        for task in tasks:
            await task
        for index, (raw, want) in enumerate(zip(received, expected)):
            assert decode_accs(raw) == want, f"row group {index}: got {decode_accs(raw)}, expected {want}"
        return sink.cycles

    @cocotb.test(**TIMEOUT)
    async def quantized_matvec(dut):
        """Random operations (N from 1 to 60, 1-3 row groups, every kind of vector) through quantizer and matvec,
        then all ±1 matrices on a maximum-length vector."""
        await reset(dut, ["cmd", "i", "w"])
        rng = random.Random(random.getrandbits(64))
        nrng = np.random.default_rng(rng.getrandbits(64))
        count = PARAMS.get("ops", 200)
        for start in range(0, count, 25):
            ops = []
            for _ in range(min(25, count - start)):
                n = rng.randrange(1, 61)
                v, c = random_vector(rng, n)
                ops.append((nrng.integers(-1, 2, (rng.randrange(1, 4) * ROWS, n)), v, c))
            await run_chain(dut, ops, p_gap=rng.choice([0.0, 0.3]), p_stall=rng.choice([0.0, 0.3, 0.7]))
        n = MAX_LEN
        v, c = vec_full_range(rng, n)
        trits = np.concatenate([np.full((ROWS, n), -1), np.full((ROWS, n), 1), np.resize([1, -1], (ROWS, n))])
        await run_chain(dut, [(trits, v, c)], p_gap=0.1, p_stall=0.2)

    @cocotb.test(**TIMEOUT)
    async def chain_throughput(dut):
        """No gaps, no stalls: the quantizer keeps the matvec busy (one beat per cycle plus one per row group)."""
        await reset(dut, ["cmd", "i", "w"])
        rng = random.Random(random.getrandbits(64))
        n, groups = 20 * COLS, 5
        v, c = vec_realistic(rng, n)
        trits = np.random.default_rng(rng.getrandbits(64)).integers(-1, 2, (groups * ROWS, n))
        cycles = await run_chain(dut, [(trits, v, c)])
        beats_total = groups * 20
        # command in cycle 0, first p beat in cycle 1, 5 quantizer stages, then the matvec as in its own bench
        assert cycles == 1 + LATENCY + beats_total + groups - 1 + 2, f"{beats_total} beats took {cycles} cycles"
