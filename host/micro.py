"""The micro-engine's instruction set, its assembler and its cycle-exact instruction-set simulator.

The micro-engine (``docs/micro.md``) is the narrow, microcoded element engine planned for the UP5K core: 48-bit
registers, one product (a 48-bit by 18-bit multiply on ``SB_MAC16`` partial products) followed by one rounding
shifter, one saturator and an adder, a σ table, and data memories reached through numbered spaces. Firmware
(``host/firmware.py``, written with :class:`Assembler`) does the golden model's work: scalar operations one at a
time, element-wise work as *vector operations*, which stream up to three operands (A, B, C) from the data spaces
through that datapath, one element per cycle, into a fourth (D). This module is the contract between the firmware
and the gateware: :func:`encode`/:func:`decode` fix the word format, :class:`MicroMachine` fixes what every
operation computes and how many cycles it takes.

Words are :data:`WORD_BITS` wide: ``op`` in bits 0–5, ``rd`` 6–8, ``ra`` 9–11, ``rb`` 12–14, then the operation's
immediate fields from bit 15, low bits first (:data:`FORMATS`). Register ``r0`` reads 0 and ignores writes; as the
multiplier of ``MSR``/``MSF``/``MAC`` it reads 1, so ``MSR rd, ra, r0, …`` shifts, rounds and saturates ``ra``.

Vector operations: ``VSTREAM`` points stream A, B, C or D at ``space[ra + imm]`` (or makes A, B or C the constant
value of ``ra``); ``VMSR``/``VMSF``/``VMAC``/``VSIG`` then take ``n = ra`` elements, :data:`VECTOR_PERIOD` · ``n +``
:data:`VECTOR_LATENCY` cycles (``VSIG`` takes two cycles per element: it uses the one shifter twice). Read streams
in one space must share their address (a space has one read port); stream D may write a space a read stream reads at
the same address (in place) or elsewhere beyond the ``n`` elements.
"""

import enum

import numpy as np

from .fixed import SigmoidTable
from .golden import Formats
from .isa import Field

__all__ = ["Op", "SigMode", "Stream", "CMode", "WORD_BITS", "REG_BITS", "REGISTERS", "MUL_A_BITS", "MUL_B_BITS",
           "SHIFT_RANGE", "FORMATS", "CYCLES", "TAKEN_EXTRA", "VECTOR_LATENCY", "VECTOR_PERIOD", "Space", "encode",
           "field_bits", "decode", "OPERANDS", "Assembler", "MicroMachine", "MicroError"]

WORD_BITS = 32
#: width of a register, two's complement
REG_BITS = 48
REGISTERS = 8
#: width of the product's first operand (``ra``, signed) and second (``rb``, signed)
MUL_A_BITS, MUL_B_BITS = REG_BITS, 18
#: the shifts ``s`` that ``MSR``/``MSF`` take: every product is below 2^64 in magnitude, so a shift above the range
#: gives what its top does, and one below it what its bottom does (saturation, or a zero low part)
SHIFT_RANGE = (-REG_BITS, 66)


class Op(enum.IntEnum):
    """Operations (``docs/micro.md`` has the table)."""
    HALT = 0
    ADD = 1     #: rd = ra + rb
    SUB = 2     #: rd = ra − rb
    AND = 3     #: rd = ra & rb
    ADDI = 4    #: rd = ra + imm
    LIS = 5     #: rd = imm << sh
    MAX = 6     #: rd = max(ra, rb)
    MIN = 7     #: rd = min(ra, rb)
    ABS = 8     #: rd = |ra|
    NEGIF = 9   #: rd = −ra if rb < 0 else ra
    BITLEN = 10  #: rd = bit length of |ra|
    MSR = 11    #: rd = sat_bits(round(ra · rb · 2^−s)), ties up
    MSF = 12    #: rd = sat_bits(⌊ra · rb · 2^−s⌋)
    MAC = 13    #: rd = rd + ra · rb
    SIG = 14    #: rd = σ(−|ra|), σ(ra) or 1 − σ(ra) from the table, ra in Q.frac
    LD = 15     #: rd = space[ra + imm]
    ST = 16     #: space[ra + imm] = rb
    BEQ = 17    #: if ra == rb: pc = target
    BNE = 18
    BLT = 19    #: if ra < rb (signed)
    BGE = 20
    JAL = 21    #: rd = pc + 1; pc = target
    JR = 22     #: pc = ra
    XOR = 23    #: rd = ra ^ rb
    VSTREAM = 24  #: stream ``which`` ← space[ra + imm + i], or the value of ra
    VMSR = 25   #: D[i] = ``MSR`` of A[i]·B[i], then C[i] added or its sign applied; n = ra, rs = rb
    VMSF = 26   #: the same, floored
    VMAC = 27   #: rd = rd + Σ A[i]·B[i]; n = ra
    VSIG = 28   #: D[i] = ``SIG`` of A[i]; n = ra


class SigMode(enum.IntEnum):
    """What ``SIG`` gives of ``z``."""
    NEG = 0         #: σ(−|z|)
    SIGMOID = 1     #: σ(z)
    COMPLEMENT = 2  #: 1 − σ(z) = σ(−z)


class Stream(enum.IntEnum):
    """The streams of a vector operation."""
    A = 0
    B = 1
    C = 2
    D = 3


class CMode(enum.IntEnum):
    """What a ``VMSR``/``VMSF`` does with stream C."""
    NONE = 0  #: nothing
    ADD = 1   #: D = sat_bits(y + C)
    SIGN = 2  #: D = −y where C < 0


#: immediate fields per operation: (name, bits, signed), from bit 15 up
_BRANCH = (("target", 10, False),)
FORMATS = {
    Op.HALT: (), Op.ADD: (), Op.SUB: (), Op.AND: (), Op.XOR: (), Op.MAX: (), Op.MIN: (), Op.ABS: (), Op.NEGIF: (),
    Op.BITLEN: (), Op.MAC: (), Op.JR: (),
    Op.ADDI: (("imm", 17, True),),
    Op.LIS: (("imm", 11, True), ("sh", 6, False)),
    Op.MSR: (("rs", 3, False), ("s", 7, True), ("bits", 6, False)),
    Op.MSF: (("rs", 3, False), ("s", 7, True), ("bits", 6, False)),
    Op.SIG: (("mode", 2, False), ("frac", 5, False)),
    Op.LD: (("space", 4, False), ("imm", 13, True)),
    Op.ST: (("space", 4, False), ("imm", 13, True)),
    Op.VSTREAM: (("which", 2, False), ("space", 4, False), ("imm", 10, True), ("reg", 1, False)),
    Op.VMSR: (("s", 7, True), ("bits", 6, False), ("cmode", 2, False), ("absa", 1, False), ("maxr", 1, False)),
    Op.VMSF: (("s", 7, True), ("bits", 6, False), ("cmode", 2, False), ("absa", 1, False), ("maxr", 1, False)),
    Op.VMAC: (),
    Op.VSIG: (("mode", 2, False), ("frac", 5, False)),
    Op.BEQ: _BRANCH, Op.BNE: _BRANCH, Op.BLT: _BRANCH, Op.BGE: _BRANCH, Op.JAL: _BRANCH,
}

#: the register operands each operation names, in the order the assembler's methods take them
OPERANDS = {op: ("rd", "ra", "rb") for op in Op}
OPERANDS.update({Op.HALT: (), Op.LIS: ("rd",), Op.JAL: ("rd",), Op.ADDI: ("rd", "ra"), Op.ABS: ("rd", "ra"),
                 Op.BITLEN: ("rd", "ra"), Op.SIG: ("rd", "ra"), Op.LD: ("rd", "ra"), Op.VMAC: ("rd", "ra"),
                 Op.ST: ("ra", "rb"), Op.JR: ("ra",), Op.VSTREAM: ("ra",), Op.VSIG: ("ra",),
                 **{op: ("ra", "rb") for op in (Op.BEQ, Op.BNE, Op.BLT, Op.BGE)}})

#: cycles per operation; a taken branch, JAL and JR take one more than :data:`CYCLES` says (the fetch restarts)
CYCLES = {op: 1 for op in Op}
CYCLES.update({Op.LD: 2, Op.MSR: 3, Op.MSF: 3, Op.MAC: 3, Op.SIG: 5})
#: a vector operation of n elements takes period · n + latency cycles
VECTOR_LATENCY = {Op.VMSR: 5, Op.VMSF: 5, Op.VMAC: 4, Op.VSIG: 6}
VECTOR_PERIOD = {Op.VMSR: 1, Op.VMSF: 1, Op.VMAC: 1, Op.VSIG: 2}
TAKEN_EXTRA = 1
_BRANCHES = {Op.BEQ: lambda a, b: a == b, Op.BNE: lambda a, b: a != b, Op.BLT: lambda a, b: a < b,
             Op.BGE: lambda a, b: a >= b}


class MicroError(Exception):
    """A firmware fault the simulator detects (bad word, address outside a space, runaway program)."""


def _wrap(value, bits):
    """``value`` as a signed ``bits``-bit two's-complement integer."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _check(name, value, bits, signed):
    """``value``'s ``bits``-bit field (:meth:`mmfree.host.isa.Field.check`; NumPy integers taken as ints)."""
    return Field(name, bits, signed).check(int(value) if isinstance(value, np.integer) else value)


def encode(op, rd=0, ra=0, rb=0, **fields):
    """One word: ``op`` (:class:`Op`), registers 0–7, and the operation's immediate fields by name."""
    op = Op(op)
    word = op | _check("rd", rd, 3, False) << 6 | _check("ra", ra, 3, False) << 9 | _check("rb", rb, 3, False) << 12
    offset, names = 15, set()
    for name, bits, signed in FORMATS[op]:
        if name not in fields:
            raise ValueError(f"{op.name} needs field {name}")
        word |= _check(f"{op.name}.{name}", fields[name], bits, signed) << offset
        offset, names = offset + bits, names | {name}
    if set(fields) - names:
        raise ValueError(f"{op.name} has no field(s) {sorted(set(fields) - names)}")
    return word


def field_bits(op, name):
    """``(offset, bits, signed)`` of an operation's immediate field ``name`` in its word."""
    offset = 15
    for field, bits, signed in FORMATS[Op(op)]:
        if field == name:
            return offset, bits, signed
        offset += bits
    raise KeyError(f"{Op(op).name} has no field {name}")


def decode(word):
    """``(op, rd, ra, rb, fields)`` of a word; :class:`MicroError` for an unknown operation or stray bits."""
    try:
        op = Op(word & 0x3F)
    except ValueError:
        raise MicroError(f"word {word:#010x}: unknown operation {word & 0x3F}") from None
    fields, offset = {}, 15
    for name, bits, signed in FORMATS[op]:
        fields[name] = Field(name, bits, signed).extract(word >> offset & ((1 << bits) - 1))
        offset += bits
    if word >> offset:
        raise MicroError(f"word {word:#010x}: bits above {offset} set for {op.name}")
    return op, word >> 6 & 7, word >> 9 & 7, word >> 12 & 7, fields


class Space:
    """A data memory the engine reaches: ``depth`` words of ``width`` bits, read sign- or zero-extended."""

    def __init__(self, name, width, depth, signed=True):
        if not 1 <= width <= REG_BITS:
            raise ValueError(f"space {name}: width must be 1 … {REG_BITS}, not {width}")
        self.name, self.width, self.depth, self.signed = name, width, depth, signed

    def to_word(self, value):
        """The stored form of a register value (its low ``width`` bits)."""
        return int(value) & ((1 << self.width) - 1)

    def to_register(self, stored):
        return _wrap(stored, self.width) if self.signed else int(stored)

    def read(self, machine, address):
        """A load's value: the stored word, as a register value (a device overrides it)."""
        return self.to_register(int(machine.memory[machine.space_number(self)][address]))

    def write(self, machine, address, value):
        machine.memory[machine.space_number(self)][address] = self.to_word(value)


class Assembler:
    """Builds firmware: one method per operation (lower case; ``and_``) taking its registers (:data:`OPERANDS`)
    by position and its immediate fields by name, labels, and :meth:`assemble`.

    Branch and ``JAL`` targets are label names, resolved by :meth:`assemble`. ``space`` arguments of ``ld``/``st``
    are space numbers.
    """

    def __init__(self):
        self.items, self.labels = [], {}

    def label(self, name):
        if name in self.labels:
            raise ValueError(f"label {name!r} defined twice")
        self.labels[name] = len(self.items)
        return name

    def here(self):
        return len(self.items)

    def _emit(self, op, rd=0, ra=0, rb=0, **fields):
        self.items.append((Op(op), rd, ra, rb, fields))

    def __getattr__(self, name):
        try:
            op = Op[name.rstrip("_").upper()]
        except KeyError:
            raise AttributeError(name) from None
        return lambda *regs, **fields: self._emit(op, **self._registers(op, regs), **fields)

    @staticmethod
    def _registers(op, regs):
        """The register operands by name (:data:`OPERANDS` gives each operation's, in order)."""
        names = OPERANDS[op]
        if len(regs) > len(names):
            raise TypeError(f"{op.name} takes the registers ({', '.join(names)}), not {len(regs)}; its immediate "
                            f"fields go by name: {', '.join(name for name, _, _ in FORMATS[op]) or 'none'}")
        return dict(zip(names, regs))

    def assemble(self):
        """The words (list of int); ``ValueError`` for an undefined label or a field out of range."""
        words = []
        for op, rd, ra, rb, fields in self.items:
            if "target" in fields and isinstance(fields["target"], str):
                if fields["target"] not in self.labels:
                    raise ValueError(f"undefined label {fields['target']!r}")
                fields = {**fields, "target": self.labels[fields["target"]]}
            words.append(encode(op, rd, ra, rb, **fields))
        return words


class MicroMachine:
    """Runs firmware words cycle by cycle, as the gateware does.

    Parameters
    ----------
    words : list of int
        The firmware (program memory from address 0).
    spaces : dict of int → Space
        The data memories by space number (0–15).
    formats : golden.Formats
        The σ table's (``gate_frac``, ``sigmoid_segment_bits``, ``sigmoid_range``).

    Attributes
    ----------
    regs : list
        ``REGISTERS`` signed 48-bit values, ``None`` until written (``regs[0]`` is always 0): reading one that is
        ``None`` is a :class:`MicroError`, as the gateware's registers start undefined.
    memory : dict of int → ndarray
        Per space, its words as stored (uint64).
    cycles : int
        Cycles run since construction (or the last :meth:`reset`).
    """

    def __init__(self, words, spaces, formats=Formats()):
        self.words = [int(w) for w in words]
        self.decoded = [decode(w) for w in self.words]
        self.spaces = dict(spaces)
        self.table = SigmoidTable(formats.gate_frac, formats.sigmoid_segment_bits, formats.sigmoid_range)
        self.memory = {n: np.zeros(s.depth, dtype=np.uint64) for n, s in self.spaces.items()}
        self.reset()

    def reset(self):
        self.regs = [0] + [None] * (REGISTERS - 1)
        self.streams = {which: ("reg", 0) for which in Stream}
        self.cycles = 0
        self.pc = 0

    # -- memories -------------------------------------------------------------------------------------------------

    def space_number(self, space):
        return next(n for n, s in self.spaces.items() if s is space)

    def _space(self, number):
        if number not in self.spaces:
            raise MicroError(f"pc {self.pc}: no data space {number}")
        return self.spaces[number]

    def _address(self, space, address):
        if not 0 <= address < space.depth:
            raise MicroError(f"pc {self.pc}: address {address} outside space {space.name} (depth {space.depth})")
        return address

    def load(self, number, values, start=0):
        """Write register values into a space from ``start`` (stored as the space stores them)."""
        space = self._space(number)
        for offset, value in enumerate(values):
            self.memory[number][self._address(space, start + offset)] = space.to_word(value)

    def read(self, number, count, start=0):
        """``count`` words of a space as register values (int64 array)."""
        space = self._space(number)
        return np.array([space.to_register(int(v)) for v in self.memory[number][start:start + count]], dtype=np.int64)

    # -- the datapath ---------------------------------------------------------------------------------------------

    @staticmethod
    def product(a, b):
        """The multiplier: the low ``MUL_A_BITS`` of ``a`` times the low ``MUL_B_BITS`` of ``b``, both signed."""
        return _wrap(a, MUL_A_BITS) * _wrap(b, MUL_B_BITS)

    @staticmethod
    def shift(value, s, rounding):
        """``value · 2^−s``: rounded (ties up) or floored for ``s > 0``, exact for ``s ≤ 0``."""
        if s <= 0:
            return value << -s
        return (value + (1 << (s - 1)) if rounding else value) >> s

    @staticmethod
    def saturate(value, bits):
        """Clamp to signed ``bits`` bits (``bits`` = 0: keep the low ``REG_BITS`` bits)."""
        if bits == 0:
            return _wrap(value, REG_BITS)
        limit = 1 << (bits - 1)
        return min(max(value, -limit), limit - 1)

    def sigmoid(self, z, mode, frac):
        sub = frac - self.table.segment_bits
        if sub < 0:
            raise MicroError(f"pc {self.pc}: SIG frac {frac} below the table's segment bits")
        if mode not in tuple(SigMode):
            raise MicroError(f"pc {self.pc}: SIG mode {mode}")
        z = np.array([_wrap(z, MUL_A_BITS)], dtype=np.int64)
        return int({SigMode.NEG: self.table.neg, SigMode.SIGMOID: self.table.sigmoid,
                    SigMode.COMPLEMENT: self.table.complement}[SigMode(mode)](z, frac)[0])

    # -- running --------------------------------------------------------------------------------------------------

    def _check_defined(self, op, rd, ra, rb, f):
        """A register read before anything was written to it is a fault (the gateware's start undefined)."""
        named = {"ra": ra, "rb": rb}
        reads = {named[name] for name in OPERANDS[op] if name in named}
        if op in (Op.MSR, Op.MSF):
            reads.add(f["rs"])
        if op in (Op.MAC, Op.VMAC) or op in (Op.VMSR, Op.VMSF) and f["maxr"]:
            reads.add(rd)
        for reg in sorted(reads):
            if self.regs[reg] is None:
                raise MicroError(f"pc {self.pc}: {op.name} reads r{reg} before anything was written to it")

    def _shift_of(self, op, rs_value, f):
        """``s`` of ``MSR``/``MSF`` (and their vector forms): the low 8 bits of ``rs`` plus the immediate, checked
        with the saturation's ``bits``."""
        s = _wrap(rs_value, 8) + f["s"]
        if not SHIFT_RANGE[0] <= s <= SHIFT_RANGE[1] or f["bits"] > REG_BITS:
            raise MicroError(f"pc {self.pc}: {op.name} shift {s} outside {SHIFT_RANGE} or bits {f['bits']} "
                             f"above {REG_BITS}")
        return s

    def step(self):
        """Run one operation; returns False after ``HALT``."""
        if not 0 <= self.pc < len(self.decoded):
            raise MicroError(f"pc {self.pc} outside the firmware ({len(self.decoded)} words)")
        op, rd, ra, rb, f = self.decoded[self.pc]
        self._check_defined(op, rd, ra, rb, f)
        a, b = self.regs[ra], self.regs[rb]
        cycles, next_pc, result = CYCLES[op], self.pc + 1, None
        if op is Op.HALT:
            self.cycles += cycles
            return False
        if op in (Op.ADD, Op.SUB, Op.AND, Op.XOR, Op.MAX, Op.MIN):
            result = {Op.ADD: a + b, Op.SUB: a - b, Op.AND: a & b, Op.XOR: a ^ b, Op.MAX: max(a, b),
                      Op.MIN: min(a, b)}[op]
        elif op is Op.ADDI:
            result = a + f["imm"]
        elif op is Op.LIS:
            result = f["imm"] << f["sh"]
        elif op is Op.ABS:
            result = abs(a)
        elif op is Op.NEGIF:
            result = -a if b < 0 else a
        elif op is Op.BITLEN:
            result = abs(a).bit_length()
        elif op in (Op.MSR, Op.MSF):
            s = self._shift_of(op, self.regs[f["rs"]], f)
            result = self.saturate(self.shift(self.product(a, b if rb else 1), s, op is Op.MSR), f["bits"])
        elif op is Op.MAC:
            result = self.regs[rd] + self.product(a, b if rb else 1)
        elif op is Op.SIG:
            result = self.sigmoid(a, f["mode"], f["frac"])
        elif op is Op.LD:
            space = self._space(f["space"])
            result = space.read(self, self._address(space, a + f["imm"]))
        elif op is Op.ST:
            space = self._space(f["space"])
            space.write(self, self._address(space, a + f["imm"]), b)
        elif op in _BRANCHES:
            if _BRANCHES[op](a, b):
                next_pc, cycles = f["target"], cycles + TAKEN_EXTRA
        elif op is Op.JAL:
            result, next_pc, cycles = self.pc + 1, f["target"], cycles + TAKEN_EXTRA
        elif op is Op.JR:
            next_pc, cycles = a, cycles + TAKEN_EXTRA
        elif op is Op.VSTREAM:
            which = Stream(f["which"])
            if f["reg"]:
                if which is Stream.D or f["imm"]:
                    raise MicroError(f"pc {self.pc}: stream D cannot be a register, nor take an offset as one")
                self.streams[which] = ("reg", a)
            else:
                self.streams[which] = ("mem", f["space"], a + f["imm"])
        elif op in VECTOR_LATENCY:
            result, cycles = self._vector(op, rd, a, b, f), VECTOR_PERIOD[op] * max(a, 0) + VECTOR_LATENCY[op]
        if result is not None and rd:
            self.regs[rd] = _wrap(result, REG_BITS)
        self.pc = next_pc
        self.cycles += cycles
        return True

    def _reads(self, op, f):
        """The streams an operation reads, checked: read streams in one space share their base (one read port)."""
        reads = {Op.VSIG: (Stream.A,), Op.VMAC: (Stream.A, Stream.B)}.get(op, (Stream.A, Stream.B, Stream.C))
        if op in (Op.VMSR, Op.VMSF) and f["cmode"] == CMode.NONE:
            reads = (Stream.A, Stream.B)
        bases = {}
        for which in reads:
            desc = self.streams[which]
            if desc[0] == "mem" and bases.setdefault(desc[1], desc[2]) != desc[2]:
                raise MicroError(f"pc {self.pc}: two read streams in space {desc[1]} at different addresses")
        return reads, bases

    def _stream(self, which, n):
        desc = self.streams[which]
        if desc[0] == "reg":
            return [desc[1]] * n
        space = self._space(desc[1])
        if n:
            self._address(space, desc[2]), self._address(space, desc[2] + n - 1)
        return [space.read(self, desc[2] + i) for i in range(n)]

    def _vector(self, op, rd, n, rs_value, f):
        """One vector operation over ``n`` elements; returns the new value of ``rd`` (or None)."""
        reads, bases = self._reads(op, f)
        if n < 0:
            raise MicroError(f"pc {self.pc}: vector length {n}")
        a, b, c = (self._stream(w, n) if w in reads else [0] * n for w in (Stream.A, Stream.B, Stream.C))
        if op is Op.VMAC:
            return self.regs[rd] + sum(self.product(x, y) for x, y in zip(a, b))
        if op is Op.VSIG:
            out, result = [self.sigmoid(x, f["mode"], f["frac"]) for x in a], None
        else:
            s = self._shift_of(op, rs_value, f)
            out = []
            for x, y, z in zip(a, b, c):
                v = self.saturate(self.shift(self.product(abs(x) if f["absa"] else x, y), s, op is Op.VMSR),
                                  f["bits"])
                if f["cmode"] == CMode.ADD:
                    v = self.saturate(v + z, f["bits"])
                elif f["cmode"] == CMode.SIGN and z < 0:
                    v = -v
                out.append(_wrap(v, REG_BITS))
            result = max([self.regs[rd]] + [abs(v) for v in out]) if f["maxr"] else None
        desc = self.streams[Stream.D]
        if desc[0] != "mem":
            raise MicroError(f"pc {self.pc}: stream D is not set to a space")
        if desc[1] in bases and bases[desc[1]] != desc[2] and abs(bases[desc[1]] - desc[2]) < n:
            raise MicroError(f"pc {self.pc}: stream D overlaps a read stream of space {desc[1]} at another address")
        space = self._space(desc[1])
        for i, v in enumerate(out):
            space.write(self, self._address(space, desc[2] + i), v)
        return result

    def run(self, entry=0, max_cycles=10_000_000, on_step=None):
        """Run from ``entry`` to ``HALT``; returns the cycles it took. ``on_step(pc, cycles)``, if given, hears of
        every operation run (``HALT`` included) and the cycles it took."""
        self.pc, start = entry, self.cycles
        while True:
            pc, before = self.pc, self.cycles
            going = self.step()
            if on_step is not None:
                on_step(pc, self.cycles - before)
            if not going:
                return self.cycles - start
            if self.cycles - start > max_cycles:
                raise MicroError(f"no HALT within {max_cycles} cycles (pc {self.pc})")
