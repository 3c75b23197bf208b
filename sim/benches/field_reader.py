# amaranth: UnusedElaboratable=no

"""Bench of :class:`mmfree.hw.field_reader.FieldReader` against :func:`mmfree.host.compiler.pack_words`.

The memory image holds random vectors, each packed with ``pack_words`` from a word boundary (extremes included), the
bits after its last field random, with random words between them. :class:`Memory` models the read port: the word at
``mem_addr`` of a cycle with ``mem_en`` comes back on ``mem_data`` with ``mem_valid`` ``latency`` cycles later;
``mem_ready`` drops at random, and while none of the reader's reads is on its way, ``mem_valid`` pulses at random
with junk (another reader's words). Starts come with random gaps, the beats are taken with random back-pressure
(mixed, long stalls or none, chosen per vector), and every beat is checked: each field (every width of ``widths``,
signed and unsigned, with and without ``wide`` where the width allows it, the counts of :func:`fixed_counts` and
random ones) against the packed value, the lanes beyond a beat's fields zero, ``last`` on the final beat only. A
vector's reads must be its consecutive words from its first, all back before the next start; with ``exact_reads``
exactly its ``⌈count · width / 64⌉`` words, else at most ``2 · lanes`` words beyond.

With ``lanes`` of 2 or 4, a vector of 64 16-bit fields with ``wide``, from a memory that answers 6 cycles after
``mem_en`` and never drops ``mem_ready``, into an ``o`` that is always ready, takes exactly ``64 / lanes`` +
:data:`START_UP` cycles (40 with ``lanes = 2``, 24 with ``lanes = 4``; 2 more with ``buffered``), its start's
handshake and its last beat included: a beat per cycle.

Parameters (:func:`mmfree.sim.benches.params`): the reader's constructor arguments (``widths`` as a list, ``lanes``,
``exact_reads``, ``buffered``; ``addr_bits``, ``count_bits`` optional), ``latency`` (cycles from a read to its word,
default 6) and ``vectors`` (random vectors beyond the fixed ones, default 200).
"""

import collections
import math
import random

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from mmfree.host.compiler import pack_words
from mmfree.hw.field_reader import WORD_BITS, FieldReader

from . import params
from .streams import Sink, Source, reset

PARAMS = params()
LATENCY = PARAMS.pop("latency", 6)
VECTORS = PARAMS.pop("vectors", 200)
UNIT = FieldReader(**{**PARAMS, "widths": tuple(PARAMS["widths"])})
START = UNIT.start.payload.shape()
BEAT = UNIT.o.payload.shape()
WINDOW = 2 * UNIT.lanes
#: the memory's latency in the throughput check
THROUGHPUT_LATENCY = 6
#: cycles of the throughput check beyond one per beat: the start's handshake, the read latency, a cycle into the
#: window, and two more through the FIFO when ``buffered``
START_UP = 1 + THROUGHPUT_LATENCY + 1 + 2 * UNIT.buffered
TIMEOUT = {"timeout_time": 20, "timeout_unit": "ms"}


class Memory:
    """The reader's memory port over ``image`` (a dict of words by address; any other address reads junk).

    Runs a cycle at a time from the current one: drives ``mem_valid``, ``mem_data`` and ``mem_ready``, samples
    ``mem_en`` and ``mem_addr``. ``reads[k]`` lists the addresses read for the ``k``-th start taken.

    Parameters
    ----------
    latency : int
        Cycles from a read to its word (1: the next cycle).
    p_busy : float
        Probability that ``mem_ready`` is low in a cycle.
    p_junk : float
        Probability of a ``mem_valid`` with junk in a cycle while no read of the reader's is on its way.
    """

    def __init__(self, dut, image, *, latency, p_busy=0.0, p_junk=0.0):
        self.dut, self.image, self.latency = dut, image, latency
        self.p_busy, self.p_junk = p_busy, p_junk
        self.reads = []

    async def run(self):
        dut, on_way, cycle = self.dut, collections.deque(), 0   # on_way: (cycle due, word)
        while True:
            if on_way and on_way[0][0] == cycle:
                dut.mem_valid.value, dut.mem_data.value = 1, on_way.popleft()[1]
            else:
                dut.mem_valid.value = int(not on_way and random.random() < self.p_junk)
                dut.mem_data.value = random.getrandbits(WORD_BITS)
            ready = random.random() >= self.p_busy
            dut.mem_ready.value = ready
            await ReadOnly()
            assert ready or not dut.mem_en.value, f"cycle {cycle}: a read without mem_ready"
            assert not (ready and dut.mem_stalled.value), f"cycle {cycle}: mem_stalled with mem_ready"
            if dut.mem_en.value:
                assert self.reads, f"cycle {cycle}: a read before any start"
                addr = dut.mem_addr.value.to_unsigned()
                self.reads[-1].append(addr)
                on_way.append((cycle + self.latency, self.image.get(addr, random.getrandbits(WORD_BITS))))
            if dut.start__valid.value and dut.start__ready.value:
                assert not on_way, f"cycle {cycle}: a start while a read is on its way"
                self.reads.append([])
            await RisingEdge(dut.clk)
            cycle += 1


def wides(bits):
    """The ``wide`` flags a vector of ``bits``-bit fields may have (wide: at most ``64 / lanes`` bits)."""
    return (False, True) if UNIT.lanes > 1 and bits <= WORD_BITS // UNIT.lanes else (False,)


def random_vector(rng, *, count=None, width=None, is_signed=None, wide=None):
    """A vector's start fields ``{addr: None, count, width, signed[, wide]}`` and its field values; random where not
    given."""
    count = count or rng.choice([1, 2, 3, rng.randint(1, 12), rng.randint(1, 80)])
    width = rng.randrange(len(UNIT.widths)) if width is None else width
    is_signed = rng.random() < 0.5 if is_signed is None else is_signed
    bits = UNIT.widths[width]
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else (0, (1 << bits) - 1)
    values = [rng.choice([lo, hi, 0]) if rng.random() < 0.2 else rng.randint(lo, hi) for _ in range(count)]
    fields = {"addr": None, "count": count, "width": width, "signed": int(is_signed)}
    if UNIT.lanes > 1:
        fields["wide"] = int(rng.choice(wides(bits)) if wide is None else wide)
    return fields, values


def fixed_counts(bits):
    """The counts of ``bits``-bit fields every bench run tries: 1 … ``2 · lanes + 1``, 64, the least whose fields end
    at a word's end, and for each ``count mod lanes`` from 1 on the least (if any) whose final beat with ``wide``,
    were it ``lanes`` fields, would end beyond the vector's last word (a count of fields ending at a word's end is a
    multiple of ``lanes``, since ``bits ≤ 64 / lanes``); sorted."""
    overhanging = {}
    for count in range(WORD_BITS, 0, -1):
        rest = count % UNIT.lanes
        if rest and count * bits % WORD_BITS + (UNIT.lanes - rest) * bits > WORD_BITS:
            overhanging[rest] = count
    return sorted({*range(1, 2 * UNIT.lanes + 2), 64, WORD_BITS // math.gcd(bits, WORD_BITS), *overhanging.values()})


def words_of(fields, values):
    """The vector's words, as ``pack_words`` packs them (unsigned values as their two's-complement bit patterns)."""
    bits = UNIT.widths[fields["width"]]
    patterns = [v - (1 << bits) if v >= 1 << (bits - 1) else v for v in values]
    return [int(word) for word in pack_words(patterns, bits)]


def place(rng, vectors):
    """The memory image: the vectors' words from consecutive addresses (the bits after a vector's last field random),
    random words before and between them.

    Sets each vector's ``addr``; returns the image and each vector's word count.
    """
    image, addr, counts = {}, rng.randrange(1 << 8), []
    for fields, values in vectors:
        for _ in range(rng.randint(0, 3)):
            image[addr], addr = rng.getrandbits(WORD_BITS), addr + 1
        fields["addr"] = addr
        words = words_of(fields, values)
        used = len(values) * UNIT.widths[fields["width"]] % WORD_BITS     # the last word's bits in use, if not all
        if used:
            words[-1] |= rng.getrandbits(WORD_BITS - used) << used
        image.update(zip(range(addr, addr + len(words)), words))
        addr += len(words)
        counts.append(len(words))
    assert addr + WINDOW <= 1 << len(UNIT.mem_addr), "the image does not fit the address space"
    return image, counts


def expected_beats(fields, values):
    """The beats the reader must give: a list of ``(lanes' values, last)``."""
    step = UNIT.lanes if fields.get("wide") else 1
    groups = [values[j:j + step] for j in range(0, len(values), step)]
    return [((group + [0] * UNIT.lanes)[:UNIT.lanes], int(j == len(groups) - 1)) for j, group in enumerate(groups)]


def check_beats(index, fields, values, raws):
    for j, (raw, (want, last)) in enumerate(zip(raws, expected_beats(fields, values))):
        beat = BEAT.from_bits(raw)
        got = [int(beat.data[lane]) for lane in range(UNIT.lanes)]
        assert got == want, f"vector {index} ({fields}), beat {j}: fields {got}, expected {want}"
        assert beat.last == last, f"vector {index} ({fields}), beat {j}: last {beat.last}, expected {last}"


def check_reads(index, fields, words, reads):
    addr = fields["addr"]
    assert reads == list(range(addr, addr + len(reads))), \
        f"vector {index} ({fields}): reads {reads} are not its consecutive words from {addr}"
    if UNIT.exact_reads:
        assert len(reads) == words, f"vector {index} ({fields}): {len(reads)} words read of its {words}"
    else:
        assert words <= len(reads) <= words + WINDOW, \
            f"vector {index} ({fields}): {len(reads)} words read for its {words}"


@cocotb.test(**TIMEOUT)
async def vectors_are_exact(dut):
    rng = random.Random(random.getrandbits(32))
    dut.mem_valid.value = 0
    await reset(dut, sources=("start",), sinks=("o",))
    # every width, signed and unsigned, with and without wide, the fixed counts; then random vectors
    vectors = [random_vector(rng, count=count, width=width, is_signed=is_signed, wide=wide)
               for width, bits in enumerate(UNIT.widths) for count in fixed_counts(bits)
               for is_signed in (False, True) for wide in wides(bits)]
    vectors += [random_vector(rng) for _ in range(VECTORS)]
    rng.shuffle(vectors)
    image, word_counts = place(rng, vectors)
    memory = Memory(dut, image, latency=LATENCY, p_junk=0.3)
    cocotb.start_soon(memory.run())
    source = Source(dut, "start", dut.clk, junk_bits=START.size)
    sink = Sink(dut, "o", dut.clk)
    send = cocotb.start_soon(source.send([START.const(fields).as_bits() for fields, _ in vectors]))
    for index, (fields, values) in enumerate(vectors):
        # mixed; long stalls on o and on the memory; none
        source.p_gap, sink.p_stall, memory.p_busy = rng.choice([(0.3, 0.3, 0.2), (0.1, 0.8, 0.5), (0.0, 0.0, 0.0)])
        beats = len(expected_beats(fields, values))
        raws = await sink.receive(beats, max_cycles=100 + 40 * beats * (LATENCY + 1))
        check_beats(index, fields, values, raws)
    await send
    assert len(memory.reads) == len(vectors), f"{len(memory.reads)} starts taken for {len(vectors)} vectors"
    for index, ((fields, _), words, reads) in enumerate(zip(vectors, word_counts, memory.reads)):
        check_reads(index, fields, words, reads)


@cocotb.test(**TIMEOUT, skip=UNIT.lanes == 1 or 16 not in UNIT.widths)
async def a_beat_per_cycle(dut):
    """64 16-bit fields with ``wide`` take ``64 / lanes`` + :data:`START_UP` cycles from the start's handshake to the
    last beat's.

    Memory latency :data:`THROUGHPUT_LATENCY`, ``mem_ready`` and ``o.ready`` always high. The start is offered in
    the sink's cycle 0 and taken at once (the reader is idle), so the sink's count is the number of cycles up to and
    including the last beat's.
    """
    rng = random.Random(random.getrandbits(32))
    dut.mem_valid.value = 0
    await reset(dut, sources=("start",), sinks=("o",))
    vectors = [random_vector(rng, count=64, width=UNIT.widths.index(16), is_signed=is_signed, wide=True)
               for is_signed in (False, True)]
    beats = 64 // UNIT.lanes
    image, _ = place(rng, vectors)
    cocotb.start_soon(Memory(dut, image, latency=THROUGHPUT_LATENCY).run())
    source, sink = Source(dut, "start", dut.clk), Sink(dut, "o", dut.clk)
    for index, (fields, values) in enumerate(vectors):
        for _ in range(2 * THROUGHPUT_LATENCY):   # the reads beyond the vector before come back
            await RisingEdge(dut.clk)
        send = cocotb.start_soon(source.send([START.const(fields).as_bits()]))
        raws = await sink.receive(beats, max_cycles=200)
        await send
        check_beats(index, fields, values, raws)
        assert sink.cycles == beats + START_UP, \
            f"{sink.cycles} cycles for {beats} beats, expected {beats + START_UP}"
