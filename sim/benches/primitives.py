"""Bench of the platform primitives (:mod:`mmfree.hw.primitives`) against cycle-level Python models.

The same checks run on the behavioural models and, where Yosys ships a simulation model of the cell, on the
``"ice40"`` implementation simulated with it (``vendor``): ``SB_MAC16``, ``SB_SPRAM256KA``, ``SB_RAM40_4K``. Each
Python model tracks what is undefined (power-up contents and registers, a RAM's output after a write or standby,
a read of the word being written) as ``None`` and checks everything else on every cycle.

Parameters (:func:`mmfree.sim.benches.params`):

- ``unit``: ``"mac16"``, ``"spram"`` or ``"bram"``;
- ``vendor``: the DUT is the iCE40 cell's simulation model (skips the checks on the behavioural model's own
  choices: random power-up contents, junk where the cell's output is undefined);
- mac16: ``a_signed``, ``b_signed``, ``accumulate``, ``init``, ``input_registers``, ``latency``;
- bram: ``width``, ``depth``, ``granularity``, ``init_seed`` (the initial contents are
  :func:`bram_init` of it; absent: no initial contents);
- ``cycles``: length of the random streams (default 3000).
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer

from . import params

P = params()
UNIT = P.get("unit")
VENDOR = P.get("vendor", False)
CYCLES = P.get("cycles", 3000)
TIMEOUT = {"timeout_time": 50, "timeout_unit": "ms"}
MASK32 = 2**32 - 1


def bram_init(seed, width, depth):
    """The initial contents a bram bench with ``init_seed`` uses: random words, both in the test and the bench."""
    rng = random.Random(seed)
    return [rng.getrandbits(width) for _ in range(depth)]


async def start(dut, inputs):
    """Drive ``inputs`` (name → value), then start the clock and hold reset for two cycles.

    (Verilator may run one clock edge at time 0, before anything is driven, when ``clk`` starts at a random 1: a
    DUT whose initial contents are under test blocks writes until its first edge; see tests/test_primitives.py.)
    """
    dut.rst.value = 1
    for name, value in inputs.items():
        getattr(dut, name).value = value
    await Timer(1, unit="ns")
    Clock(dut.clk, 10, unit="ns").start()
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def run(dut, model, stimuli, check):
    """Drive each stimulus (name → value) for a cycle; before its edge, ``check(cycle, got, expected)`` compares
    the DUT with ``model.output(stimulus)``; after it, ``model.step(stimulus)``. Returns the outputs seen."""
    seen = []
    for cycle, stimulus in enumerate(stimuli):
        for name, value in stimulus.items():
            getattr(dut, name).value = value
        await ReadOnly()
        got = model.read(dut)
        expected = model.output(stimulus)
        if expected is not None:
            check(cycle, got, expected, stimulus)
        seen.append(got)
        await RisingEdge(dut.clk)
        model.step(stimulus)
    return seen


# --- Mac16 ---------------------------------------------------------------------------------------------------------

class MacModel:
    """Mac16, register by register; ``None`` is undefined."""

    def __init__(self, *, a_signed, b_signed, accumulate, init, input_registers=True):
        self.accumulate, self.init, self.input_registers = accumulate, init % 2**32, input_registers
        self.a = self.b = self.product = self.acc = None
        self.load_1 = self.load_2 = 0  # the load delay is logic with an initial value

    def step(self, s):
        if not s["en"]:
            return
        if self.accumulate:
            if self.load_2:
                self.acc = self.init
            elif self.acc is not None and self.product is not None:
                self.acc = (self.acc + self.product) & MASK32
            else:
                self.acc = None
            self.load_1, self.load_2 = s["load"], self.load_1 if self.input_registers else s["load"]
        if not self.input_registers:
            self.a, self.b = s["a"], s["b"]
        self.product = None if self.a is None else (self.a * self.b) & MASK32
        self.a, self.b = s["a"], s["b"]

    def output(self, s):
        return self.acc if self.accumulate else self.product

    @staticmethod
    def read(dut):
        return dut.o.value.to_unsigned()


def operand_range(is_signed):
    return (-2**15, 2**15 - 1) if is_signed else (0, 2**16 - 1)


def corners(is_signed):
    if is_signed:
        return [-2**15, -2**15 + 1, -256, -255, -2, -1, 0, 1, 2, 255, 256, 2**15 - 1]
    return [0, 1, 2, 255, 256, 2**15 - 1, 2**15, 2**16 - 2, 2**16 - 1]


def mac_stimulus(a, b, en=1, load=0):
    s = {"a": a, "b": b, "en": en}
    if P.get("accumulate"):
        s["load"] = load
    return s


def mac_model():
    return MacModel(a_signed=P["a_signed"], b_signed=P["b_signed"], accumulate=P["accumulate"],
                    init=P.get("init", 0), input_registers=P.get("input_registers", True))


def mac_check(cycle, got, expected, s):
    assert got == expected, f"cycle {cycle}: o = {got:#010x}, expected {expected:#010x}"


async def mac_start(dut):
    await start(dut, mac_stimulus(0, 0, en=0))


if UNIT == "mac16":

    @cocotb.test(**TIMEOUT)
    async def mac_latency(dut):
        """A pair shows at ``o`` exactly ``latency`` enabled edges later; disabled edges do not count."""
        await mac_start(dut)
        a, b = (-3 if P["a_signed"] else 3), 7
        expected = (a * b + P.get("init", 0)) & MASK32
        head = [mac_stimulus(0, 0, load=1)] * 4  # (the accumulator restarts at init)
        stimuli = [*head, mac_stimulus(a, b)]
        stimuli += [mac_stimulus(0, 0, en=k % 2) for k in range(2 * P["latency"] + 4)]
        seen = await run(dut, mac_model(), stimuli, mac_check)
        # the pair's edge ends cycle h; then every other edge is enabled: the L-th ends cycle h + 2(L - 1)
        shows = len(head) + 2 * (P["latency"] - 1) + 1
        assert seen[shows] == expected, f"o = {seen[shows]:#x} in cycle {shows}, expected {expected:#x}"
        assert seen[shows - 1] != expected, f"o showed the pair in cycle {shows - 1}, one enabled edge early"

    @cocotb.test(**TIMEOUT)
    async def mac_corners(dut):
        """Every pair of corner operands (extremes, ±1, 0, byte boundaries), back to back."""
        await mac_start(dut)
        pairs = [(a, b) for a in corners(P["a_signed"]) for b in corners(P["b_signed"])]
        if P["accumulate"]:  # sums that wrap, restarted every 7 pairs
            stimuli = [mac_stimulus(0, 0, load=1)]
            for k, (a, b) in enumerate(pairs):
                stimuli.append(mac_stimulus(a, b, load=int(k % 7 == 6)))
        else:
            stimuli = [mac_stimulus(a, b) for a, b in pairs]
        stimuli += [mac_stimulus(0, 0)] * 4
        await run(dut, mac_model(), stimuli, mac_check)

    @cocotb.test(**TIMEOUT)
    async def mac_random(dut):
        """Random operands (a third of them extremes), random clock enables and loads."""
        await mac_start(dut)
        ranges = [operand_range(P["a_signed"]), operand_range(P["b_signed"])]

        def operand(k):
            return random.choice(ranges[k]) if random.random() < 0.3 else random.randint(*ranges[k])

        stimuli = [mac_stimulus(0, 0, load=1)]
        stimuli += [mac_stimulus(operand(0), operand(1), en=int(random.random() < 0.8),
                                 load=int(random.random() < 0.05)) for _ in range(CYCLES)]
        await run(dut, mac_model(), stimuli, mac_check)


# --- SinglePortRam ---------------------------------------------------------------------------------------------------

class SpramModel:
    """SB_SPRAM256KA's truth table. Words are ``(known, value)``: the bits of ``known`` are defined (written);
    ``rdata`` is ``None`` where undefined."""

    def __init__(self):
        self.mem = {}  # address → (known, value); absent: nothing known
        self.dataout = None

    def step(self, s):
        if s["sleep"]:
            self.dataout = (0xFFFF, 0)
        elif s["standby"]:
            self.dataout = None
        elif s["cs"] and s["we"]:
            known, value = self.mem.get(s["addr"], (0, 0))
            mask = sum(0xF << 4 * k for k in range(4) if s["wmask"] >> k & 1)
            self.mem[s["addr"]] = (known | mask, (value & ~mask) | (s["wdata"] & mask))
            self.dataout = None
        elif s["cs"]:
            self.dataout = self.mem.get(s["addr"], (0, 0))

    def output(self, s):
        if s["sleep"]:
            return (0xFFFF, 0)
        return self.dataout

    @staticmethod
    def read(dut):
        return dut.rdata.value.to_unsigned()


def spram_model():
    return SpramModel()


def spram_check(cycle, got, expected, s):
    known, value = expected
    assert got & known == value & known, \
        f"cycle {cycle}: rdata = {got:#06x}, expected {value:#06x} in the bits {known:#06x}"


def spram_op(kind, addr=0, wdata=0, wmask=0xF):
    s = {"addr": addr, "wdata": wdata, "wmask": wmask, "we": 0, "cs": 0, "standby": 0, "sleep": 0}
    if kind == "read":
        s.update(cs=1)
    elif kind == "write":
        s.update(cs=1, we=1)
    elif kind in ("standby", "sleep"):
        s[kind] = 1
        s["cs"] = random.getrandbits(1)  # ignored in standby and sleep
        s["we"] = random.getrandbits(1)
    elif kind != "idle":
        raise ValueError(kind)
    return s


async def spram_start(dut):
    await start(dut, spram_op("idle"))


if UNIT == "spram":

    @cocotb.test(**TIMEOUT)
    async def spram_random_power_up(dut):
        """Reads before any write: the model's contents start random (not zero), as the cell's are undefined."""
        await spram_start(dut)
        addresses = random.sample(range(2**14), 256)
        stimuli = [spram_op("read", addr) for addr in addresses] + [spram_op("idle")]
        seen = (await run(dut, spram_model(), stimuli, spram_check))[1:]
        assert len(seen) == len(addresses)
        if not VENDOR:
            assert any(seen), "every word read 0 before any write: the model's memory is not randomised"
            assert len(set(seen)) > 200, f"only {len(set(seen))} distinct words in 256 reads: not random enough"

    @cocotb.test(**TIMEOUT)
    async def spram_latency_and_back_to_back(dut):
        """Read latency 1; write bursts, read bursts, write-then-read and read-after-write of one address."""
        await spram_start(dut)
        base = random.randrange(2**14 - 64)
        words = [random.getrandbits(16) for _ in range(64)]
        stimuli = [spram_op("write", base + k, word) for k, word in enumerate(words)]
        stimuli += [spram_op("read", base + k) for k in range(64)]
        for k in range(0, 64, 2):  # write, read it, read it again, write another nibble, read
            stimuli += [spram_op("write", base + k, ~words[k] & 0xFFFF), spram_op("read", base + k),
                        spram_op("read", base + k), spram_op("write", base + k, 0x5A5A, wmask=0b0100),
                        spram_op("read", base + k), spram_op("idle"), spram_op("idle")]
        stimuli.append(spram_op("idle"))
        seen = await run(dut, spram_model(), stimuli, spram_check)
        # latency: the read of word k issued in cycle 64 + k shows in cycle 65 + k, not before
        for k in range(64):
            assert seen[65 + k] == words[k], f"read {k}: {seen[65 + k]:#06x}, expected {words[k]:#06x}"
        for k in range(1, 64):
            assert seen[64 + k] == words[k - 1], f"read {k} showed before its edge"

    @cocotb.test(**TIMEOUT)
    async def spram_random(dut):
        """Random reads, masked writes, idles, standby and sleep over a small address window (many collisions)."""
        await spram_start(dut)
        window = random.randrange(2**14 - 32)
        kinds = ["read"] * 40 + ["write"] * 35 + ["idle"] * 15 + ["standby"] * 5 + ["sleep"] * 5
        stimuli = []
        for _ in range(CYCLES):
            kind = random.choice(kinds)
            stimuli.append(spram_op(kind, window + random.randrange(32), random.getrandbits(16),
                                    random.getrandbits(4)))
        stimuli.append(spram_op("idle"))
        seen = await run(dut, spram_model(), stimuli, spram_check)
        if not VENDOR:  # the model drives junk where the cell's output is undefined
            after_write = [seen[k + 1] for k, s in enumerate(stimuli[:-1])
                           if s["cs"] and s["we"] and not s["standby"] and not s["sleep"]]
            assert len(set(after_write)) > len(after_write) // 2, "rdata after a write is not junk"


# --- BlockRam --------------------------------------------------------------------------------------------------------

class BramModel:
    """BlockRam; ``None`` is undefined (no initial contents, a read of the word being written)."""

    def __init__(self, width, depth, granularity, init):
        self.width, self.granularity = width, granularity
        self.mem = list(init) + [0] * (depth - len(init)) if init is not None else [None] * depth
        self.data = None

    def step(self, s):
        if s["r_en"]:
            self.data = self.mem[s["r_addr"]]
            if s["w_en"] and s["w_addr"] == s["r_addr"]:
                self.data = None  # a read of the word being written is undefined
        if s["w_en"]:
            mask = 0
            for k in range(self.width // self.granularity):
                if s["w_en"] >> k & 1:
                    mask |= ((1 << self.granularity) - 1) << (k * self.granularity)
            old = self.mem[s["w_addr"]]
            if old is None and mask != (1 << self.width) - 1:
                self.mem[s["w_addr"]] = None  # partly written, partly undefined: not checked
            else:
                self.mem[s["w_addr"]] = ((old or 0) & ~mask) | (s["w_data"] & mask)

    def output(self, s):
        return self.data

    @staticmethod
    def read(dut):
        return dut.r_data.value.to_unsigned()


def bram_check(cycle, got, expected, s):
    assert got == expected, f"cycle {cycle}: r_data = {got:#x}, expected {expected:#x}"


def bram_params():
    width, depth = P["width"], P["depth"]
    granularity = P.get("granularity") or width
    init = bram_init(P["init_seed"], width, depth) if "init_seed" in P else None
    return width, depth, granularity, init


def bram_op(w_addr=0, w_data=0, w_en=0, r_addr=0, r_en=0):
    return {"w_addr": w_addr, "w_data": w_data, "w_en": w_en, "r_addr": r_addr, "r_en": r_en}


async def bram_start(dut):
    await start(dut, bram_op())


if UNIT == "bram":

    @cocotb.test(**TIMEOUT)
    async def bram_power_up(dut):
        """Every word read back before any write: the initial contents, or (model, none given) random words."""
        await bram_start(dut)
        width, depth, granularity, init = bram_params()
        stimuli = [bram_op(r_addr=addr, r_en=1) for addr in range(depth)] + [bram_op()]
        seen = (await run(dut, BramModel(width, depth, granularity, init), stimuli, bram_check))[1:]
        if init is None and not VENDOR and width >= 4:
            assert any(seen), "every word read 0: the model's memory is not randomised"
            assert len(set(seen)) > min(depth, 2**width) // 4, "the model's power-up contents are not random"

    @cocotb.test(**TIMEOUT)
    async def bram_random(dut):
        """Random masked writes and reads with random read enables, back to back, over every address."""
        await bram_start(dut)
        width, depth, granularity, init = bram_params()
        lanes = width // granularity
        stimuli = []
        # fill first (whole words) unless the contents are known, so that most reads are checked
        if init is None:
            stimuli += [bram_op(addr, random.getrandbits(width), 2**lanes - 1) for addr in range(depth)]
        hot = random.sample(range(depth), min(depth, 8))  # a few addresses often, for collisions

        def address():
            return random.choice(hot) if random.random() < 0.3 else random.randrange(depth)

        for _ in range(CYCLES):
            write = random.random() < 0.5
            stimuli.append(bram_op(address(), random.getrandbits(width),
                                   random.getrandbits(lanes) if write else 0,
                                   address(), int(random.random() < 0.7)))
        stimuli.append(bram_op())
        await run(dut, BramModel(width, depth, granularity, init), stimuli, bram_check)

    @cocotb.test(**TIMEOUT)
    async def bram_read_enable_holds(dut):
        """``r_data`` holds while ``r_en`` is low, whatever the address and the writes do."""
        await bram_start(dut)
        width, depth, granularity, init = bram_params()
        lanes = width // granularity
        stimuli = [bram_op(addr, random.getrandbits(width), 2**lanes - 1) for addr in (0, depth - 1)]
        stimuli += [bram_op(r_addr=depth - 1, r_en=1)]
        stimuli += [bram_op(random.choice([0, depth - 1]), random.getrandbits(width), 2**lanes - 1,
                            random.randrange(depth), 0) for _ in range(50)]
        stimuli.append(bram_op())
        seen = await run(dut, BramModel(width, depth, granularity, init), stimuli, bram_check)
        assert len(set(seen[3:])) == 1, "r_data changed while r_en was low"
