"""Instruction layouts for the sequencer, built from the host's field table (:mod:`mmfree.host.isa`).

The compiler encodes with :func:`mmfree.host.isa.encode`; the sequencer views the same bits through these
``lib.data`` layouts, so the two cannot drift: one table, two readers.
"""

from amaranth import signed, unsigned
from amaranth.lib import data

from ..host.isa import FIELDS, INSTRUCTION_BITS, OPCODE_BITS, Opcode

__all__ = ["opcode_layout", "instruction_layout", "INSTRUCTION_BITS"]


def opcode_layout():
    """The opcode alone: ``opcode`` (:data:`OPCODE_BITS` bits) at bit 0 of every instruction."""
    return data.StructLayout({"opcode": unsigned(OPCODE_BITS)})


def instruction_layout(opcode):
    """The layout of an ``opcode`` instruction: ``opcode``, then its fields in table order (signed ones signed),
    padded to :data:`INSTRUCTION_BITS`."""
    fields = FIELDS[Opcode(opcode)]
    members = {"opcode": unsigned(OPCODE_BITS)}
    members.update((f.name, signed(f.bits) if f.signed else unsigned(f.bits)) for f in fields)
    members["unused"] = unsigned(INSTRUCTION_BITS - OPCODE_BITS - sum(f.bits for f in fields))
    return data.StructLayout(members)
