"""The planned UP5K micro core at cycle level: the micro-engine running the firmware, with its matvec and memories.

:class:`MicroCore` puts :class:`~mmfree.host.micro.MicroMachine` (the engine, cycle-exact) together with
:class:`~mmfree.host.firmware.Firmware` and models of the devices around it, loaded from a compiled
:class:`~mmfree.host.compiler.Program`:

- the matvec (``IO``): started by a store to ``IO[START]`` with the weight address, rows and column groups stored
  before; it reads the q buffer (space ``Q``) and writes the accumulators to ``ACC`` and its even/odd views, taking
  ``⌈rows/lanes⌉ · (col_groups + 1)`` cycles as :class:`~mmfree.hw.matvec_engine.MatvecEngine` does. Loading from
  ``IO[START]`` gives 1 while it runs; reading an accumulator space before it ends is a :class:`MicroError`.
- the embedding reader (``E``): ``E[j]`` is the ``j``-th ``embed_bits`` field from the word in ``IO[E_BASE]``.
- the weight memory's 16-bit fields (``WS``, ``WU``) and the program decoded into a field table (``FT``,
  :func:`field_table`).

It answers what the firmware computes (compared with :class:`~mmfree.host.machine.Machine` by the tests) and in how
many cycles (``benchmarks/micro_cycles.py``); the gateware of the core around the engine is not built yet
(docs/micro.md).
"""

import numpy as np

from .firmware import FT_STRIDE, Firmware, Io, Pa, Sp, spaces
from .isa import FIELDS, decode
from .machine import matrix_from_words
from .micro import MicroError, MicroMachine, Space
from .packing import TRITS_PER_BYTE

__all__ = ["MicroCore", "field_table"]


def field_table(program):
    """The program decoded for the firmware: instruction ``i``'s opcode at ``FT_STRIDE·i``, its fields (isa.FIELDS
    order) after it (uint64 array)."""
    table = np.zeros(FT_STRIDE * program.core.program_instructions, dtype=np.uint64)
    for i, word in enumerate(program.instructions):
        opcode, values = decode(word)
        table[FT_STRIDE * i] = int(opcode)
        for j, field in enumerate(FIELDS[opcode]):
            table[FT_STRIDE * i + j + 1] = values[field.name] & 0xFFFFFFFF
    return table


class _Matvec(Space):
    """The IO registers: the matvec's operands and start, the embedding reader's base word."""

    def __init__(self, core_model):
        super().__init__("IO", 48, len(Io))
        self.model, self.regs, self.busy_until = core_model, [0] * len(Io), 0

    def read(self, machine, address):
        return int(machine.cycles < self.busy_until) if address == Io.START else self.regs[address]

    def write(self, machine, address, value):
        self.regs[address] = value
        if address == Io.START:
            self.model.matvec(machine)


class _Accumulators(Space):
    """An accumulator space, which the firmware must not read while the matvec runs."""

    def __init__(self, space, io):
        super().__init__(space.name, space.width, space.depth, space.signed)
        self.io = io

    def read(self, machine, address):
        if machine.cycles < self.io.busy_until:
            raise MicroError(f"pc {machine.pc}: {self.name} read while the matvec runs")
        return super().read(machine, address)


class _EmbeddingReader(Space):
    """``E[j]``: the ``j``-th signed field of ``width`` bits from the word in ``IO[E_BASE]``."""

    def __init__(self, core_model, width, depth):
        super().__init__("E", width, depth)
        self.model = core_model

    def read(self, machine, address):
        first, bit = divmod(self.model.io.regs[Io.E_BASE] * 64 + address * self.width, 64)
        words = sum(int(word) << 64 * i for i, word in enumerate(self.model.image[first:first + 2]))
        return self.to_register(words >> bit & ((1 << self.width) - 1))

    def write(self, machine, address, value):
        raise MicroError(f"pc {machine.pc}: E is read-only")


class MicroCore:
    """A compiled program on the micro core, one token per :meth:`run`.

    Parameters
    ----------
    program : mmfree.host.compiler.Program
        Resident (not streamed), compiled for the core it runs on.
    firmware : Firmware, optional
        Default: ``Firmware(program.formats)``.

    Attributes
    ----------
    engine : MicroMachine
        The engine; its ``memory`` holds the spaces (slot X, the state, the accumulators …).
    matvec_cycles : int
        Cycles the matvec has run so far.
    """

    def __init__(self, program, firmware=None):
        if program.segment is not None and len(program.segment):
            raise ValueError("the micro core runs resident programs only (no weight stream)")
        self.program, self.core, self.formats = program, program.core, program.formats
        self.firmware = firmware or Firmware(self.formats)
        space_map = spaces(self.core, self.formats)
        self.io = _Matvec(self)
        for number in (Sp.ACC, Sp.ACCE, Sp.ACCO):
            space_map[number] = _Accumulators(space_map[number], self.io)
        space_map[Sp.IO] = self.io
        space_map[Sp.E] = _EmbeddingReader(self, self.formats.embed_bits, self.core.max_vector)
        self.engine = MicroMachine(self.firmware.words, space_map, self.formats)
        self.image = np.zeros(self.core.weight_words, dtype="<u8")
        self.image[:len(program.image)] = program.image
        for number in (Sp.WS, Sp.WU):
            self.engine.memory[number][:] = self.image.view("<u2")
        self.engine.memory[Sp.FT][:] = field_table(program)
        self.matvec_cycles = 0

    def matvec(self, machine):
        """Start the matvec with the operands in the IO registers."""
        if machine.cycles < self.io.busy_until:
            raise MicroError(f"pc {machine.pc}: the matvec started while it runs")
        weights, rows, groups = (self.io.regs[r] for r in (Io.WEIGHTS, Io.ROWS, Io.COL_GROUPS))
        lanes, per = self.core.rows, TRITS_PER_BYTE[self.core.trit_format]
        row_groups = -(-rows // lanes)
        words = self.image[weights:weights + row_groups * groups * (lanes // 8)]
        trits = matrix_from_words(words, rows, groups * per, lanes, self.core.trit_format).astype(np.int64)
        q_space = machine.spaces[Sp.Q]
        q = np.array([q_space.to_register(int(v)) for v in machine.memory[Sp.Q][:groups * per]], dtype=np.int64)
        acc = trits @ q
        for number, values in ((Sp.ACC, acc), (Sp.ACCE, acc[0::2]), (Sp.ACCO, acc[1::2])):
            space = machine.spaces[number]
            machine.memory[number][:len(values)] = [space.to_word(v) for v in values]
        cycles = row_groups * (groups + 1)
        self.io.busy_until = machine.cycles + cycles + 1
        self.matvec_cycles += cycles

    def run(self, token, on_step=None):
        """Run the program for one token id; returns (the argmax of the head's accumulators, cycles taken).
        ``on_step`` as in :meth:`MicroMachine.run`."""
        self.engine.load(Sp.P, [token], Pa.TOKEN)
        cycles = self.engine.run(self.firmware.entries["run"], max_cycles=10 ** 8, on_step=on_step)
        return int(self.engine.read(Sp.P, 1, Pa.OUT_TOKEN)[0]), cycles

    def slot(self, number, count, start=0):
        """``count`` values of a data space from ``start`` (int64 array)."""
        return self.engine.read(number, count, start)
