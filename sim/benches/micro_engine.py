"""Bench of :class:`mmfree.hw.micro_engine.MicroEngine` against :class:`mmfree.host.micro.MicroMachine`.

:class:`Harness` puts the engine (program ROM writable) between block RAMs for four spaces of different widths and
signedness (:data:`SPACES`) and a host port that loads and reads them while the engine is idle. Each program is
loaded into the one build, the memories are preloaded with random words and adversarial values, the engine runs
from its entry (with random ``stall`` cycles in some runs), and then every word of every space and the cycle count
(``MicroMachine.run`` + :data:`~mmfree.hw.micro_engine.MicroEngine.DONE_OFFSET` + stalled cycles) are compared
with the simulator's.

Programs: random straight-line code (every operation, random registers and fields, ``MSR``/``MSF`` shifts over the
whole ``SHIFT_RANGE`` and every ``bits``, ``SIG`` in every mode at several ``frac``, loads and stores through a
register plus an offset), ending by storing every register in the 48-bit space; loops with data-dependent
forward branches, a subroutine called by ``JAL`` and left by ``JR``; adversarial products (extreme operands, every
shift, ``MAC``). Parameters (:func:`mmfree.sim.benches.params`): ``programs`` (per kind, default 40), ``length``
(operations per straight-line program, default 60).
"""

import random

import cocotb
import numpy as np
from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from mmfree.host.micro import REG_BITS, SHIFT_RANGE, Assembler, MicroMachine, Op, Space, decode, encode
from mmfree.hw.micro_engine import MicroEngine
from mmfree.hw.primitives import BlockRam

from . import params

#: the spaces of the harness: 48-bit signed (registers are stored here), 32-bit signed, 16-bit unsigned, 36-bit signed
SPACES = {0: Space("wide", 48, 64), 1: Space("s32", 32, 32), 3: Space("u16", 16, 32, signed=False),
          6: Space("s36", 36, 32)}
#: where programs store the registers in space 0
DUMP = 48
TIMEOUT = {"timeout_time": 2000, "timeout_unit": "ms"}


class Harness(wiring.Component):
    """The engine, a block RAM per space of :data:`SPACES`, and a host port to them (``host`` high: the host owns
    the memories; ``h_rdata`` is the word ``h_addr`` named the cycle before)."""

    def __init__(self):
        self.engine = MicroEngine([encode(Op.HALT)], SPACES, writable=True)
        pc_bits = self.engine.pc_bits
        super().__init__({
            "start": In(stream.Signature(unsigned(pc_bits))),
            "done": Out(1),
            "stall": In(1),
            "prog_addr": In(pc_bits), "prog_data": In(32), "prog_we": In(1),
            "host": In(1), "h_space": In(4), "h_addr": In(8), "h_wdata": In(REG_BITS), "h_we": In(1),
            "h_rdata": Out(REG_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self.engine
        bus = engine.bus
        wiring.connect(m, wiring.flipped(self.start), engine.start)
        m.d.comb += [
            self.done.eq(engine.done), engine.stall.eq(self.stall),
            engine.prog.addr.eq(self.prog_addr), engine.prog.data.eq(self.prog_data),
            engine.prog.we.eq(self.prog_we),
        ]
        space = Mux(self.host, self.h_space, bus.space)
        addr = Mux(self.host, self.h_addr, bus.addr)
        wdata = Mux(self.host, self.h_wdata, bus.wdata)
        write = Mux(self.host, self.h_we, bus.we)
        read_space = Signal(4)
        with m.If(~self.stall):
            m.d.sync += read_space.eq(space)
        rdata = Signal(REG_BITS)
        with m.Switch(read_space):
            for number, sp in SPACES.items():
                m.submodules[f"space_{number}"] = mem = BlockRam(width=sp.width, depth=sp.depth)
                m.d.comb += [
                    mem.w_addr.eq(addr), mem.w_data.eq(wdata), mem.w_en.eq(write & (space == number)),
                    mem.r_addr.eq(addr), mem.r_en.eq(~self.stall),
                ]
                with m.Case(number):
                    m.d.comb += rdata.eq(mem.r_data)
        m.d.comb += [bus.rdata.eq(rdata), self.h_rdata.eq(rdata)]
        return m


# --- programs ---------------------------------------------------------------------------------------------------------

SIG_FRACS = (20, 24, 5, 13, 31)


def adversarial_values(rng):
    """48-bit register values that stress the datapath: extremes, products' extremes, σ's segment edges."""
    values = [0, 1, -1, -2, 2, -(1 << 47), (1 << 47) - 1, -(1 << 39), (1 << 39) - 1, -(1 << 17), (1 << 17) - 1,
              1 << 39, -(1 << 39) - 1, (1 << 16) - 1, 1 << 16, -(1 << 16)]
    for frac in (20, 24):
        seg = 1 << (frac - 5)
        k = rng.randrange(0, 257)
        values += [k * seg, k * seg - 1, -(k * seg), -(k * seg) + 1, 8 << frac, (8 << frac) - 1, -(8 << frac),
                   seg // 2, -(seg // 2), 3 * seg + seg // 2]
    return values


def random_memories(rng):
    """Initial words per space (as stored), space 0 with adversarial values first."""
    memories = {}
    for number, space in SPACES.items():
        words = [rng.getrandbits(space.width) for _ in range(space.depth)]
        memories[number] = words
    values = adversarial_values(rng)
    rng.shuffle(values)
    for index, value in enumerate(values[:DUMP]):
        memories[0][index] = value & ((1 << 48) - 1)
    return memories


def machine(words, memories):
    mm = MicroMachine(words, SPACES)
    for number, stored in memories.items():
        mm.memory[number][:] = np.array(stored, dtype=np.uint64)
    return mm


def random_fields(rng, op, mm, ra):
    """Random fields for ``op`` (``mm``: the state before it, for shifts and addresses that stay legal), or None."""
    if op is Op.ADDI:
        return {"imm": rng.choice([rng.randrange(-(1 << 16), 1 << 16), -(1 << 16), (1 << 16) - 1, 0, -1])}
    if op is Op.LIS:
        return {"imm": rng.randrange(-1024, 1024), "sh": rng.choice([rng.randrange(64), 47, 48, 0, 63])}
    if op in (Op.MSR, Op.MSF):
        rs = rng.randrange(8)
        rs8 = ((mm.regs[rs] & 0xFF) ^ 0x80) - 0x80
        s = rng.randrange(SHIFT_RANGE[0], SHIFT_RANGE[1] + 1)
        if not -64 <= s - rs8 <= 63:
            rs, rs8 = 0, 0
            s = min(max(s, -64), 63)
        return {"rs": rs, "s": s - rs8, "bits": rng.randrange(49)}
    if op is Op.SIG:
        return {"mode": rng.randrange(3), "frac": rng.choice(SIG_FRACS)}
    if op in (Op.LD, Op.ST):
        number = rng.choice(list(SPACES))
        depth = SPACES[number].depth
        target = rng.randrange(depth) if op is Op.LD or number else rng.randrange(DUMP)
        offset = target - mm.regs[ra]
        if not -(1 << 12) <= offset < (1 << 12):
            return None
        return {"space": number, "imm": offset}
    return {}


STRAIGHT = [Op.ADD, Op.SUB, Op.AND, Op.XOR, Op.ADDI, Op.LIS, Op.MAX, Op.MIN, Op.ABS, Op.NEGIF, Op.BITLEN, Op.MSR,
            Op.MSF, Op.MAC, Op.SIG, Op.LD, Op.ST]


def straight_program(rng, memories, length, ops=STRAIGHT):
    """Load r1…r7 from space 0, ``length`` random operations, store r1…r7 at DUMP…, HALT."""
    words = [encode(Op.LD, r, 0, 0, space=0, imm=rng.randrange(DUMP)) for r in range(1, 8)]
    mm = machine([encode(Op.HALT)], memories)
    for word in words:
        mm.decoded, mm.pc = [decode(word)], 0
        mm.step()
    while len(words) < 7 + length:
        op = rng.choice(ops)
        rd, ra, rb = rng.randrange(8), rng.randrange(8), rng.randrange(8)
        if op in (Op.LD, Op.ST) and rng.random() < 0.5:
            ra = 0
        fields = random_fields(rng, op, mm, ra)
        if fields is None:
            continue
        word = encode(op, rd, ra, rb, **fields)
        mm.decoded, mm.pc = [decode(word)], 0
        mm.step()
        words.append(word)
    words += [encode(Op.ST, 0, 0, r, space=0, imm=DUMP + r) for r in range(1, 8)]
    return words + [encode(Op.HALT)]


def products_program(rng, memories):
    """Extreme operands times extreme operands, at every shift, MSR/MSF/MAC, each result stored."""
    extremes = [-(1 << 39), (1 << 39) - 1, -(1 << 17), (1 << 17) - 1, -1, 1 << 46, -(1 << 47), (1 << 47) - 1]
    for index, value in enumerate(extremes):
        memories[0][index] = value & ((1 << 48) - 1)
    asm = Assembler()
    for r in range(1, 8):
        asm.ld(r, 0, space=0, imm=r - 1)
    shifts = list(range(SHIFT_RANGE[0], 64))     # the immediate's range; above it through a register elsewhere
    rng.shuffle(shifts)
    for n, s in enumerate(shifts[:rng.randrange(20, 40)]):
        ra, rb = rng.choice([1, 2, 5, 7]), rng.choice([1, 2, 3, 4, 0])
        op = rng.choice([Op.MSR, Op.MSF, Op.MSR, Op.MAC])
        if op is Op.MAC:
            asm.mac(6, ra, rb)
        else:
            getattr(asm, op.name.lower())(6, ra, rb, rs=0, s=s, bits=rng.choice([0, 48, 47, 1, 2, 3, 32, 16]))
        asm.st(0, 6, space=0, imm=DUMP + n % 16)
    asm.halt()
    return asm.assemble()


def loop_program(rng, memories):
    """A counted loop whose body has data-dependent forward branches and a JAL to a subroutine that JRs back."""
    asm = Assembler()
    for r in range(1, 7):
        asm.ld(r, 0, space=0, imm=rng.randrange(DUMP))
    asm.lis(7, imm=rng.randrange(1, 6), sh=0)
    asm.label("loop")
    body_ops = [Op.ADD, Op.SUB, Op.XOR, Op.ADDI, Op.MAX, Op.MIN, Op.ABS, Op.NEGIF, Op.MSR, Op.MAC, Op.SIG, Op.BITLEN]
    for n in range(rng.randrange(3, 8)):
        branch = rng.choice([Op.BEQ, Op.BNE, Op.BLT, Op.BGE])
        ra, rb = rng.randrange(6), rng.randrange(6)
        getattr(asm, branch.name.lower())(ra, rb, target=f"skip{n}")
        for _ in range(rng.randrange(0, 3)):
            op = rng.choice(body_ops)
            rd, a, b = rng.randrange(1, 6), rng.randrange(6), rng.randrange(6)
            if op is Op.ADDI:
                asm.addi(rd, a, imm=rng.randrange(-500, 500))
            elif op is Op.MSR:
                asm.msr(rd, a, b, rs=0, s=rng.randrange(-48, 64), bits=rng.randrange(49))
            elif op is Op.SIG:
                asm.sig(rd, a, mode=rng.randrange(3), frac=rng.choice(SIG_FRACS))
            else:
                asm._emit(op, rd, a, b)
        asm.label(f"skip{n}")
        if rng.random() < 0.3:
            asm.jal(6, target="sub")
    asm.addi(7, 7, imm=-1)
    asm.bne(7, 0, target="loop")
    if rng.random() < 0.5:
        asm.beq(0, 0, target="end")   # an unconditional jump over dead code
        asm.addi(1, 1, imm=1)
    asm.label("end")
    for r in range(1, 8):
        asm.st(0, r, space=0, imm=DUMP + r)
    asm.halt()
    asm.label("sub")
    asm.xor(1, 1, 2)
    asm.add(2, 2, 3)
    asm.jr(6)
    return asm.assemble()


# --- running -----------------------------------------------------------------------------------------------------

async def setup(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for name in ("start__valid", "stall", "prog_we", "h_we"):
        getattr(dut, name).value = 0
    dut.host.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def run(dut, words, memories, rng, entry=0, p_stall=0.0):
    """Load, run, read back and compare one program."""
    clk = dut.clk
    mm = machine(words, memories)
    want_cycles = mm.run(entry)
    dut.host.value = 1
    for address, word in enumerate(words):
        dut.prog_addr.value, dut.prog_data.value, dut.prog_we.value = address, word, 1
        await RisingEdge(clk)
    dut.prog_we.value = 0
    for number, stored in memories.items():
        dut.h_space.value = number
        for address, word in enumerate(stored):
            dut.h_addr.value, dut.h_wdata.value, dut.h_we.value = address, word, 1
            await RisingEdge(clk)
    dut.h_we.value = 0
    dut.host.value = 0
    dut.start__valid.value, dut.start__payload.value = 1, entry
    await ReadOnly()
    assert dut.start__ready.value, "start not ready while idle"
    await RisingEdge(clk)
    dut.start__valid.value = 0
    cycle, stalled = 1, 0   # cycle 0 accepted start
    while True:
        stall = rng.random() < p_stall
        dut.stall.value = int(stall)
        await ReadOnly()
        if dut.done.value:
            break
        assert not dut.start__ready.value, "ready while running"
        await RisingEdge(clk)
        cycle += 1
        stalled += stall
        assert cycle < want_cycles + 1000 + 3 * stalled, f"no done after {cycle} cycles (want {want_cycles})"
    await RisingEdge(clk)
    dut.stall.value = 0
    listing = "\n".join(f"{n:3}: {decode(w)[0].name} {decode(w)[1:]}" for n, w in enumerate(words))
    assert cycle - stalled == want_cycles + MicroEngine.DONE_OFFSET, \
        f"done in cycle {cycle} ({stalled} stalled), the simulator counts {want_cycles}\n{listing}"
    dut.host.value = 1
    for number, space in SPACES.items():
        dut.h_space.value, dut.h_addr.value = number, 0
        got = []
        for address in range(space.depth):
            await RisingEdge(clk)
            await ReadOnly()
            got.append(int(dut.h_rdata.value) & ((1 << space.width) - 1))
            await FallingEdge(clk)
            dut.h_addr.value = min(address + 1, space.depth - 1)
        want = [int(v) for v in mm.memory[number]]
        bad = [(a, g, w) for a, (g, w) in enumerate(zip(got, want)) if g != w]
        assert not bad, f"space {number}: (address, engine, simulator) {bad[:6]}\nregs {mm.regs}\n{listing}"
    return want_cycles


PARAMS = params()
PROGRAMS = PARAMS.get("programs", 40)
LENGTH = PARAMS.get("length", 60)


@cocotb.test(**TIMEOUT)
async def straight_line(dut):
    """Random straight-line programs over every operation, half of them with random stalls."""
    rng = random.Random(cocotb.RANDOM_SEED)
    await setup(dut)
    ops = 0
    for n in range(PROGRAMS):
        memories = random_memories(rng)
        words = straight_program(rng, memories, LENGTH)
        ops += await run(dut, words, memories, rng, p_stall=0.2 * (n % 2))
    dut._log.info(f"{PROGRAMS} straight-line programs, {ops} cycles")


@cocotb.test(**TIMEOUT)
async def sigmoid_and_shifts(dut):
    """Straight-line programs of SIG, MSR, MSF, LIS and BITLEN only, on adversarial values."""
    rng = random.Random(cocotb.RANDOM_SEED + 1)
    await setup(dut)
    for _ in range(PROGRAMS // 2):
        memories = random_memories(rng)
        words = straight_program(rng, memories, LENGTH, ops=[Op.SIG, Op.SIG, Op.MSR, Op.MSF, Op.LIS, Op.BITLEN, Op.LD])
        await run(dut, words, memories, rng)


@cocotb.test(**TIMEOUT)
async def loops_and_branches(dut):
    """Counted loops, taken and not-taken branches, JAL/JR, from a nonzero entry too."""
    rng = random.Random(cocotb.RANDOM_SEED + 2)
    await setup(dut)
    for n in range(PROGRAMS):
        memories = random_memories(rng)
        words = loop_program(rng, memories)
        entry = 0
        if n % 3 == 2:  # the program behind a HALT, entered at its first word
            words = [encode(Op.HALT)] * 3 + [w if decode(w)[0] not in (Op.BEQ, Op.BNE, Op.BLT, Op.BGE, Op.JAL)
                                             else w + (3 << 15) for w in words]
            entry = 3
        await run(dut, words, memories, rng, entry=entry, p_stall=0.1 * (n % 2))


@cocotb.test(**TIMEOUT)
async def adversarial_products(dut):
    """Products of extreme operands (−2^39·−2^17, max·max, …) at every shift and saturation width."""
    rng = random.Random(cocotb.RANDOM_SEED + 3)
    await setup(dut)
    for _ in range(max(PROGRAMS // 4, 3)):
        memories = random_memories(rng)
        await run(dut, products_program(rng, memories), memories, rng)
