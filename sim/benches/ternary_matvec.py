"""Bench of :class:`mmfree.hw.ternary_matvec.TernaryMatVec` against exact integer matrix-vector products.

Each operation is a ternary matrix ``T`` (``G·P`` rows, ``N`` columns) and an int8 vector ``q``; the unit must emit,
per row group, ``T[g·P:(g+1)·P] @ q`` exactly (NumPy int64), with ``error`` set exactly for the row groups that had
an invalid packed byte (when the weights arrive packed, whose invalid codes then read as trit 0, as the trit
decoders document; with decoded trits the code ``0b10`` counts as 0 and ``error`` stays 0). Inputs: random matrices
and vectors (``N`` from 1 to ``max_random_len``); at ``N = max_len``, all −1, all +1 and all-zero matrices times
−128 and +127 vectors (the accumulator extremes ``±128·max_len``); columns past ``N`` in a last beat with zero trits and random
activations, or random trits and zero activations. Both input streams have random gaps (with junk payloads) and the
output random back-pressure, with the stream rules checked on every cycle; one test runs without either and checks
the documented throughput.

Parameters (:func:`mmfree.sim.benches.params`): ``rows``, ``cols``, ``max_len``, ``fmt`` (``None``, ``"2bit"``,
``"base3"``), ``registered_decoders`` (default false), as built; ``random_ops`` (default 300), ``max_random_len`` (default ``min(max_len, 96)``).
"""

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from mmfree.host import packing
from mmfree.hw.ternary_matvec import acc_width, output_layout, weight_layout
from mmfree.hw.trit_decoder import TRITS_PER_BYTE, decoder_latency

from . import params
from .streams import Sink, Source

PARAMS = params()
ROWS, COLS, MAX_LEN, FMT = PARAMS["rows"], PARAMS["cols"], PARAMS["max_len"], PARAMS.get("fmt")
WIDTH = acc_width(MAX_LEN)
W_LAYOUT = weight_layout(ROWS, COLS, FMT)
O_LAYOUT = output_layout(ROWS, WIDTH)
LAST_BIT = W_LAYOUT["last"].offset
ERROR_BIT = O_LAYOUT["error"].offset
PER_BYTE = TRITS_PER_BYTE.get(FMT, 1)
BYTES = COLS // PER_BYTE  # packed bytes per row and beat
TIMEOUT = {"timeout_time": 100, "timeout_unit": "ms"}


class Op:
    """One operation: trits ``(G·ROWS, N)``, activations ``(N,)``, optional packed-byte overrides.

    ``bad`` maps (row, byte index within the row's packed stream) → an invalid byte to send instead; with decoded
    trits, (row, column) → the code ``0b10``, which is not a trit and must count as 0 (``error`` stays 0).
    ``pad`` says what fills columns past ``N``: ``"trits"`` (zero trits, random activations) or ``"acts"``
    (random trits, zero activations).
    """

    def __init__(self, trits, acts, *, pad="trits", bad=None):
        self.trits = np.asarray(trits, dtype=np.int64)
        self.acts = np.asarray(acts, dtype=np.int64)
        assert self.trits.shape[0] % ROWS == 0 and self.trits.shape[1] == len(self.acts) >= 1
        self.pad, self.bad = pad, dict(bad or {})

    @property
    def length(self):
        return len(self.acts)

    @property
    def beats(self):
        return -(-self.length // COLS)

    def padded(self):
        """Trits and activations padded to whole beats, as sent (before any invalid byte)."""
        extra = self.beats * COLS - self.length
        rows = self.trits.shape[0]
        if self.pad == "trits":
            trits = np.concatenate([self.trits, np.zeros((rows, extra), np.int64)], axis=1)
            acts = np.concatenate([self.acts, np.array([random.randrange(-128, 128) for _ in range(extra)])])
        else:
            trits = np.concatenate([self.trits, np.array([[random.randrange(-1, 2) for _ in range(extra)]
                                                          for _ in range(rows)], dtype=np.int64).reshape(rows, extra)],
                                   axis=1)
            acts = np.concatenate([self.acts, np.zeros(extra, np.int64)])
        return trits, acts.astype(np.int64)


def _decoded(byte):
    """The trits a decoder emits for ``byte`` (invalid codes read as 0) and whether it was invalid."""
    try:
        return packing.unpack(bytes([byte]), PER_BYTE, FMT).astype(np.int64), False
    except ValueError:
        if FMT == "2bit":
            codes = [(byte >> (2 * k)) & 3 for k in range(4)]
            return np.array([{0: 0, 1: 1, 3: -1, 2: 0}[c] for c in codes], np.int64), True
        return np.zeros(PER_BYTE, np.int64), True


def encode(op):
    """The ``w`` items, ``a`` items and expected ``o`` items (``(accs, error)``) of an operation."""
    trits, acts = op.padded()
    effective = trits.copy()
    group_error = {}
    w_items, a_items, expected = [], [], []
    if FMT is None:
        for (row, col) in op.bad:
            trits[row, col] = 2  # sent as the code 0b10
            effective[row, col] = 0
    else:
        # every row's trits of a beat, packed; invalid bytes overwrite some of them
        row_bytes = [packing.pack(trits[row], FMT).tolist() for row in range(trits.shape[0])]
        for (row, index), byte in op.bad.items():
            row_bytes[row][index] = byte
            decoded, invalid = _decoded(byte)
            assert invalid
            effective[row, index * PER_BYTE:(index + 1) * PER_BYTE] = decoded
            group_error[row // ROWS] = 1
    for group in range(trits.shape[0] // ROWS):
        for beat in range(op.beats):
            bits = 0
            for r in range(ROWS):
                row = group * ROWS + r
                if FMT is None:
                    for c in range(COLS):
                        bits |= (int(trits[row, beat * COLS + c]) & 3) << (2 * (r * COLS + c))
                else:
                    for j in range(BYTES):
                        bits |= row_bytes[row][beat * BYTES + j] << (8 * (r * BYTES + j))
            bits |= int(beat == op.beats - 1) << LAST_BIT
            w_items.append(bits)
            chunk = acts[beat * COLS:(beat + 1) * COLS]
            a_items.append(sum((int(v) & 0xFF) << (8 * c) for c, v in enumerate(chunk)))
        block = effective[group * ROWS:(group + 1) * ROWS]
        expected.append((tuple((block @ acts).tolist()), group_error.get(group, 0)))
    return w_items, a_items, expected


def decode_output(raw):
    mask = (1 << WIDTH) - 1
    accs = []
    for r in range(ROWS):
        value = (raw >> (r * WIDTH)) & mask
        accs.append(value - (1 << WIDTH) if value >> (WIDTH - 1) else value)
    return tuple(accs), (raw >> ERROR_BIT) & 1


async def reset(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.w__valid.value = 0
    dut.a__valid.value = 0
    dut.o__ready.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def run(dut, ops, *, p_gap_w=0.0, p_gap_a=0.0, p_stall=0.0):
    """Stream ``ops`` through the unit and compare every output beat; returns the cycles until the last output."""
    w_items, a_items, expected = [], [], []
    for op in ops:
        w, a, e = encode(op)
        w_items += w
        a_items += a
        expected += e
    w_source = Source(dut, "w", dut.clk, p_gap=p_gap_w, junk_bits=W_LAYOUT.size)
    a_source = Source(dut, "a", dut.clk, p_gap=p_gap_a, junk_bits=8 * COLS)
    sink = Sink(dut, "o", dut.clk, p_stall=p_stall)
    w_task = cocotb.start_soon(w_source.send(w_items))
    a_task = cocotb.start_soon(a_source.send(a_items))
    received = await sink.receive(len(expected), max_cycles=20 * len(w_items) + 100)
    await w_task
    await a_task
    for index, (raw, want) in enumerate(zip(received, expected)):
        got = decode_output(raw)
        assert got == want, f"row group {index} of {len(expected)}: got (accs, error) {got}, expected {want}"
    return sink.cycles


def random_op(rng, length, groups, **kwargs):
    trits = rng.integers(-1, 2, (groups * ROWS, length))
    acts = rng.integers(-128, 128, length)
    return Op(trits, acts, **kwargs)


def rng_from_seed():
    return np.random.default_rng(random.getrandbits(64))


@cocotb.test(**TIMEOUT)
async def random_operations(dut):
    """Random shapes (N from 1 to max_random_len, 1-3 row groups), trits and int8 values, under random gaps and
    back-pressure that change from batch to batch."""
    await reset(dut)
    rng = rng_from_seed()
    count = PARAMS.get("random_ops", 300)
    longest = PARAMS.get("max_random_len", min(MAX_LEN, 96))
    batch = 25
    for start in range(0, count, batch):
        ops = []
        for _ in range(min(batch, count - start)):
            length = int(rng.integers(1, longest + 1))
            ops.append(random_op(rng, length, int(rng.integers(1, 4)), pad=random.choice(["trits", "acts"])))
        gaps = random.choice([0.0, 0.2, 0.6])
        await run(dut, ops, p_gap_w=gaps, p_gap_a=random.choice([0.0, 0.3, 0.7]),
                  p_stall=random.choice([0.0, 0.3, 0.8]))


@cocotb.test(**TIMEOUT)
async def extremes_at_max_len(dut):
    """N = max_len: all −1 trits times −128 (+128·N, the largest accumulator), all +1 times −128 (−128·N), ±1 times
    127, zeros; the rows of a group mix these so that every extreme meets every row position."""
    await reset(dut)
    n = MAX_LEN
    patterns = {
        "-1": np.full(n, -1), "+1": np.full(n, 1), "0": np.zeros(n, np.int64),
        "alternating": np.resize([1, -1], n), "sparse": np.resize([0, 0, 1, 0, -1], n),
    }
    names = list(patterns)
    trits = np.stack([patterns[names[(row + shift) % len(names)]]
                      for shift in range(len(names)) for row in range(ROWS)][:ROWS * len(names)])
    ops = [Op(trits, np.full(n, value)) for value in (-128, 127, 0, 1, -1)]
    ops.append(Op(np.resize([-1, 1], (ROWS, n)), np.resize([-128, 127], n)))  # +128 and +127 per column pair
    ops.append(Op(np.resize([1, -1], (ROWS, n)), np.resize([-128, 127], n)))  # the negative twin
    for op in ops:
        await run(dut, [op], p_gap_w=0.1, p_gap_a=0.1, p_stall=0.3)
    bound = 128 * n
    assert bound < 1 << (WIDTH - 1) and -bound >= -(1 << (WIDTH - 1)), "acc_width holds ±128·max_len"


@cocotb.test(**TIMEOUT)
async def short_vectors_and_padding(dut):
    """Every N from 1 to 3·C + 1 (partial last beats), both padding styles, one and several row groups."""
    await reset(dut)
    rng = rng_from_seed()
    ops = [random_op(rng, n, groups, pad=pad) for n in range(1, 3 * COLS + 2) for pad in ("trits", "acts")
           for groups in (1, 2)]
    await run(dut, ops, p_gap_w=0.3, p_gap_a=0.3, p_stall=0.3)


@cocotb.test(**TIMEOUT)
async def full_throughput(dut):
    """No gaps, no stalls: a beat every cycle within a row group plus one hand-off cycle per group."""
    await reset(dut)
    rng = rng_from_seed()
    length, groups = min(20 * COLS, MAX_LEN), 6  # within max_len: longer inputs may overflow the accumulators
    op = random_op(rng, length, groups)
    cycles = await run(dut, [op])
    beats = op.beats * groups
    decoders = decoder_latency(PARAMS.get("registered_decoders", False)) if FMT else 0
    latency = 2 + decoders  # from a group's last beat to o.valid
    assert cycles == beats + groups - 1 + latency, \
        f"{beats} beats in {groups} row groups took {cycles} cycles to the last output"


if FMT is None:
    @cocotb.test(**TIMEOUT)
    async def invalid_trit_codes(dut):
        """The code ``0b10`` (not a trit; decoders never emit it) counts as 0 in any position."""
        await reset(dut)
        rng = rng_from_seed()
        ops = []
        for _ in range(40):
            op = random_op(rng, int(rng.integers(1, 4 * COLS + 1)), int(rng.integers(1, 3)))
            rows, length = op.trits.shape
            for _ in range(random.randrange(1, 2 * COLS)):
                op.bad[(random.randrange(rows), random.randrange(length))] = 2
            ops.append(op)
        await run(dut, ops, p_gap_w=0.3, p_gap_a=0.3, p_stall=0.3)


if FMT is not None:
    @cocotb.test(**TIMEOUT)
    async def invalid_bytes(dut):
        """Invalid packed bytes read as the decoders document and set ``error`` on their row group only."""
        await reset(dut)
        rng = rng_from_seed()
        invalid = [b for b in range(256) if _decoded(b)[1]]
        ops = []
        for _ in range(40):
            op = random_op(rng, int(rng.integers(1, 4 * COLS + 1)), int(rng.integers(1, 4)))
            rows, length = op.trits.shape
            per_row = -(-op.beats * COLS // PER_BYTE)
            if random.random() < 0.7:
                for _ in range(random.randrange(1, 3)):
                    op.bad[(random.randrange(rows), random.randrange(per_row))] = random.choice(invalid)
            ops.append(op)
        await run(dut, ops, p_gap_w=0.3, p_gap_a=0.2, p_stall=0.4)
