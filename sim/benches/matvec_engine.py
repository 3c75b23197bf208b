"""Bench of :class:`mmfree.hw.matvec_engine.MatvecEngine`: matrices from a weight image, exact products.

The weight memory is loaded through its port with a weight image of several matrices laid out by
:func:`mmfree.host.compiler.matrix_words` (the compiler's layout), among them the demo model's layer-0 f_proj; then
each operation loads an int8 vector into the q buffer, sends the command, and takes every row group's accumulators
with random back-pressure, comparing them with the exact product ``T @ q`` (rows and columns padded with trit 0,
the padded q columns random). Adversarial operations: all −1 and all +1 matrices of ``max_len`` columns times −128
and +127, a single row and column, zeros. Memories start random.

The weight image is written while a read is wanted on the read port (the write wins). While the operations run,
the read port reads random words of the weight memory, honouring ``r_ready``, and every word that comes back
(``r_valid``) is checked against the image, in order (the core's field reads beside a matvec). With two q-buffer
banks (``q_banks``) each operation's activations are loaded into the bank the previous operation does not use while
it runs.

With a weight stream (``stream_depth`` > 0) every other operation takes its matrix from the stream, its words
pushed with random gaps while the engine runs, and the read port reads pushed words back in order, honouring
``r_ready``. With ``registered_weights`` the weight memory's read latency is 4. With ``port_bits`` narrower than a
word, the image is loaded, read back and addressed by the commands in parts of words, as a core with 64-bit image
words and wider weight words does; the reads beside the commands then run mostly over consecutive parts, and a test
times a command with every part of a few words read beside it against the command alone: the line must answer all
but each word's first part (at most a cycle lost per word), and a load must replace the line's word.

Parameters (:func:`mmfree.sim.benches.params`): ``rows``, ``fmt``, ``max_len``, ``q_depth``, ``q_banks`` (default
1), ``stream_depth``, ``registered_weights`` (default false), ``port_bits`` (default ``8 · rows``) as built;
``random_ops`` (default 40).
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from mmfree.host.compiler import compile_model, matrix_words
from mmfree.host.machine import matrix_from_words
from mmfree.host.models import resolve_model
from mmfree.host.packing import TRITS_PER_BYTE
from mmfree.hw.matvec_engine import matvec_command_layout, read_port_latency
from mmfree.hw.ternary_matvec import acc_width, output_layout
from mmfree.hw.trit_decoder import decoder_latency
from mmfree.hw.weight_memory import read_latency

from . import params
from .streams import Sink, Source, reset

P = params()
ROWS, FMT, MAX_LEN, Q_DEPTH, STREAM = P["rows"], P["fmt"], P["max_len"], P["q_depth"], P.get("stream_depth", 0)
Q_BANKS = P.get("q_banks", 1)
#: q-buffer address of a bank's first word
BANK_STRIDE = Q_DEPTH if Q_BANKS == 1 else 1 << (Q_DEPTH - 1).bit_length()
COLS = TRITS_PER_BYTE[FMT]
WIDTH = acc_width(MAX_LEN)
LAYOUT = output_layout(ROWS, WIDTH)
#: the load and read ports' width, and the parts of an engine word they address
PORT_BITS = P.get("port_bits") or 8 * ROWS
PARTS = 8 * ROWS // PORT_BITS
DEPTH = 16384   # the engine's weight memory, in engine words
#: cycles from a read on the read port to its word
LATENCY = read_port_latency(P.get("registered_weights", False), PARTS)
COMMAND = matvec_command_layout((DEPTH * PARTS - 1).bit_length())
TIMEOUT = {"timeout_time": 200, "timeout_unit": "ms"}


def signed_field(raw, offset, bits):
    value = (raw >> offset) & ((1 << bits) - 1)
    return value - (1 << bits) if value >> (bits - 1) else value


def operations(rng):
    """(trits, q) pairs: random shapes, the adversarial corners and, for the UP5K shape, a demo model matrix."""
    ops = []
    longest = min(MAX_LEN, Q_DEPTH * COLS)
    for _ in range(P.get("random_ops", 40)):
        rows, cols = int(rng.integers(1, 4 * ROWS + 1)), int(rng.integers(1, min(longest, 200) + 1))
        ops.append((rng.integers(-1, 2, (rows, cols)), rng.integers(-128, 128, cols)))
    for trit in (-1, 1):
        for value in (-128, 127):
            ops.append((np.full((ROWS, longest), trit), np.full(longest, value)))
    ops.append((np.ones((1, 1)), np.array([-128])))
    ops.append((np.zeros((ROWS + 1, 7)), rng.integers(-128, 128, 7)))
    if ROWS == 8 and FMT == "base3":
        program = compile_model(resolve_model("demo"))
        base, words = program.layout["layer 0 f_proj trits"]
        trits = matrix_from_words(program.image[base:base + words], 128, 128, 8, "base3")
        ops.append((trits, rng.integers(-127, 128, 128)))
    return [(np.asarray(t, dtype=np.int64), np.asarray(q, dtype=np.int64)) for t, q in ops]


async def load(dut, port, items):
    """Write ``items`` (address, word) through a load port (``w_`` or ``q_``), one per cycle."""
    for address, word in items:
        getattr(dut, f"{port}addr").value = address
        getattr(dut, f"{port}data").value = word
        getattr(dut, f"{port}we").value = 1
        await RisingEdge(dut.clk)
    getattr(dut, f"{port}we").value = 0


def beats(words):
    """Image words (64-bit, :func:`matrix_words` order) as the engine's words, ``ROWS / 8`` to one."""
    return [sum(int(w) << (64 * k) for k, w in enumerate(row)) for row in np.asarray(words).reshape(-1, ROWS // 8)]


def port_words(words):
    """Image words as the load and read ports' words, ``PARTS`` to an engine word, low part first."""
    mask = (1 << PORT_BITS) - 1
    return [(word >> (PORT_BITS * k)) & mask for word in beats(words) for k in range(PARTS)]


def command(base, groups, col_groups, streamed=0, bank=0):
    """A command's payload; ``base`` in port words."""
    fields = {"base": base, "row_groups": groups, "col_groups": col_groups, "stream": streamed, "q_bank": bank}
    return sum(value << COMMAND[name].offset for name, value in fields.items())


async def load_weights(dut, words):
    """Write image words into the weight memory."""
    items = port_words(words)
    assert len(items) <= DEPTH * PARTS, "the bench's image must fit the weight memory"
    await load(dut, "w_", enumerate(items))


async def load_q(dut, q, bank=0):
    """Write int8 activations (a multiple of ``COLS``) into a bank of the q buffer, ``COLS`` to a word, low column
    first."""
    words = (sum((int(v) & 0xFF) << (8 * c) for c, v in enumerate(q[j:j + COLS])) for j in range(0, len(q), COLS))
    await load(dut, "q_", ((bank * BANK_STRIDE + j, word) for j, word in enumerate(words)))


async def read_beside(dut, image, rng, checked):
    """Read weight-memory words through the read port, honouring ``r_ready``, and check each against ``image``
    (port words); count them in ``checked[0]``. Runs until cancelled. The addresses are random, or with parts of
    words mostly runs of consecutive ones (a field reader's), so that the line answers some."""
    issued = []
    address = int(rng.integers(0, len(image)))
    while True:
        await RisingEdge(dut.clk)
        want = rng.random() < 0.3
        dut.r_en.value = int(want)
        dut.r_addr.value = address
        await ReadOnly()
        if dut.r_valid.value:
            expected = issued.pop(0)
            assert int(dut.r_data.value) == image[expected], f"read of word {expected} beside a command"
            checked[0] += 1
        if want and dut.r_ready.value:
            issued.append(address)
            sequential = PARTS > 1 and rng.random() < 0.9
            address = (address + 1) % len(image) if sequential else int(rng.integers(0, len(image)))


async def start(dut):
    await reset(dut, sources=("cmd", "ws") if STREAM else ("cmd",), sinks=("o",))
    for port in ("w_", "q_"):
        getattr(dut, f"{port}we").value = 0
    dut.r_en.value = 0
    if STREAM:
        dut.r_stream.value = 0


@cocotb.test(**TIMEOUT)
async def matrices_from_the_weight_image(dut):
    rng = np.random.default_rng(random.getrandbits(32))
    await start(dut)
    ops = operations(rng)
    image, bases = [], []
    for trits, _ in ops:
        bases.append(sum(len(w) for w in image) // (ROWS // 8) * PARTS)
        image.append(matrix_words(trits.astype(np.int8), ROWS, FMT))
    words_all = port_words(np.concatenate(image))
    dut.r_en.value, dut.r_addr.value = 1, int(rng.integers(0, DEPTH * PARTS))   # wanted all along: the writes win
    await load_weights(dut, np.concatenate(image))
    dut.r_en.value = 0
    for _ in range(LATENCY):   # the read issued after the writes comes back
        await RisingEdge(dut.clk)
    cmd, out = Source(dut, "cmd", dut.clk, p_gap=0.3), Sink(dut, "o", dut.clk, p_stall=0.3)
    ws = Source(dut, "ws", dut.clk, p_gap=0.4) if STREAM else None
    acc_offset = LAYOUT["acc"].offset
    checked = [0]
    reader = cocotb.start_soon(read_beside(dut, words_all, rng, checked))
    running = None   # the operation in flight: (index, trits, q, groups, the command's and the stream's tasks)

    async def finish(index, trits, q, groups, tasks):
        rows, cols = trits.shape
        received = await out.receive(groups, max_cycles=40 * groups * -(-cols // COLS) + 100)
        for task in tasks:
            await task
        expect = np.zeros(groups * ROWS, dtype=np.int64)
        expect[:rows] = trits @ q
        got = [signed_field(raw, acc_offset + r * WIDTH, WIDTH) for raw in received for r in range(ROWS)]
        assert got == expect.tolist(), f"operation {index} ({rows}×{cols}): accumulators differ"

    for index, ((trits, q), base, words) in enumerate(zip(ops, bases, image)):
        rows, cols = trits.shape
        groups, col_groups = -(-rows // ROWS), -(-cols // COLS)
        padded = np.concatenate([q, rng.integers(-128, 128, col_groups * COLS - cols)])  # junk × trit 0
        bank = index % Q_BANKS
        if Q_BANKS == 1 and running:
            await finish(*running)
            running = None
        await load_q(dut, padded, bank)   # with two banks, while the previous operation runs
        if running:
            await finish(*running)
        streamed = bool(STREAM) and index % 2 == 1
        tasks = [cocotb.start_soon(cmd.send([command(0 if streamed else base, groups, col_groups, streamed, bank)]))]
        if streamed:
            tasks.append(cocotb.start_soon(ws.send(beats(words))))
        running = (index, trits, q, groups, tasks)
    await finish(*running)
    reader.cancel()
    dut.r_en.value = 0
    assert checked[0] > 100, f"only {checked[0]} words read beside the commands"


@cocotb.test(**TIMEOUT)
async def one_beat_per_cycle(dut):
    """Without back-pressure a matrix of G row groups × J column groups takes G·(J + 1) cycles plus the latency
    (the array's hand-off costs one cycle per row group)."""
    rng = np.random.default_rng(random.getrandbits(32))
    await start(dut)
    groups, col_groups = 6, 9
    trits = rng.integers(-1, 2, (groups * ROWS, col_groups * COLS)).astype(np.int8)
    q = rng.integers(-128, 128, col_groups * COLS)
    await load_weights(dut, matrix_words(trits, ROWS, FMT))
    await load_q(dut, q)
    cmd, out = Source(dut, "cmd", dut.clk), Sink(dut, "o", dut.clk)
    sent = cocotb.start_soon(cmd.send([command(0, groups, col_groups)]))
    received = await out.receive(groups)
    await sent
    got = [signed_field(raw, LAYOUT["acc"].offset + r * WIDTH, WIDTH) for raw in received for r in range(ROWS)]
    assert got == (trits.astype(np.int64) @ q).tolist()
    # command register, memory read (its latency), the beat FIFO (2), the decoders, join stage, accumulate, output
    registered = P.get("registered_weights", False)
    latency = 6 + read_latency(registered) + decoder_latency(registered)
    assert out.cycles <= groups * (col_groups + 1) + latency, f"{out.cycles} cycles"


async def timed_command(dut, groups, col_groups, reads=()):
    """Run a command on the matrix at word 0 while reading port words ``reads`` a cycle each from its first cycle on;
    the cycles the sink took and the words read."""
    cmd, out = Source(dut, "cmd", dut.clk), Sink(dut, "o", dut.clk)
    sent = cocotb.start_soon(cmd.send([command(0, groups, col_groups)]))
    got = []

    async def read():
        for address in [*reads, *[None] * (LATENCY + 1)]:
            dut.r_en.value, dut.r_addr.value = int(address is not None), address or 0
            await ReadOnly()
            if dut.r_valid.value:
                got.append(int(dut.r_data.value))
            await RisingEdge(dut.clk)

    reader = cocotb.start_soon(read())
    received = await out.receive(groups)
    await sent
    await reader
    return out.cycles, received, got


@cocotb.test(**TIMEOUT, skip=PARTS == 1)
async def reads_of_one_words_parts_take_a_command_one_cycle(dut):
    """With parts of words, reading every part of ``W`` words, a part a cycle, beside a command delays it by at most
    ``W`` cycles (the line answers all but a word's first part), and every part comes back right; a load makes the
    line stale."""
    rng = np.random.default_rng(random.getrandbits(32))
    await start(dut)
    groups, col_groups, words = 6, 9, 4
    trits = rng.integers(-1, 2, (groups * ROWS, col_groups * COLS)).astype(np.int8)
    q = rng.integers(-128, 128, col_groups * COLS)
    image = matrix_words(trits, ROWS, FMT)
    await load_weights(dut, image)
    await load_q(dut, q)
    alone, expected, _ = await timed_command(dut, groups, col_groups)
    ports = port_words(image)
    first = int(rng.integers(0, len(ports) // PARTS - words + 1))
    reads = range(first * PARTS, (first + words) * PARTS)
    beside, received, got = await timed_command(dut, groups, col_groups, reads)
    assert received == expected
    assert got == [ports[a] for a in reads]
    assert beside - alone <= words, f"{words} words' parts beside a command: {beside} cycles against {alone}"
    # the line holds the last word read; a load of a new word there is read back
    replaced = random.getrandbits(PORT_BITS)
    await load(dut, "w_", [(reads[-1], replaced)])
    _, _, got = await timed_command(dut, groups, col_groups, [reads[-1]])
    assert got == [replaced]


@cocotb.test(**TIMEOUT, skip=not STREAM)
async def the_read_port_reads_the_weight_stream(dut):
    """Words pushed with gaps come out of the read port in order; a read is issued only while ``r_ready``."""
    rng = np.random.default_rng(random.getrandbits(32))
    await start(dut)
    words = [int(w) for w in rng.integers(0, 1 << 62, 3 * STREAM + 7)]
    pushed = cocotb.start_soon(Source(dut, "ws", dut.clk, p_gap=0.5).send(words))
    got, issued = [], 0
    dut.r_stream.value = 1
    for _ in range(40 * len(words)):
        await RisingEdge(dut.clk)
        want = rng.random() < 0.7 and issued < len(words)
        dut.r_en.value = int(want)
        await ReadOnly()
        if dut.r_valid.value:
            got.append(int(dut.r_data.value))
        issued += want and bool(dut.r_ready.value)
        if len(got) == len(words):
            break
    await RisingEdge(dut.clk)
    dut.r_en.value = 0
    await pushed
    assert got == words
