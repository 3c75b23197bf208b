"""The sequencer's instruction layouts read the compiler's encoding field for field."""

import numpy as np
import pytest
from amaranth.lib import data

from mmfree.host.isa import FIELDS, INSTRUCTION_BITS, Opcode, encode
from mmfree.hw.instruction import instruction_layout, opcode_layout


@pytest.mark.parametrize("opcode", list(Opcode))
def test_layout_reads_what_the_compiler_encodes(opcode):
    layout = instruction_layout(opcode)
    assert layout.size == INSTRUCTION_BITS
    rng = np.random.default_rng(int(opcode))
    for _ in range(100):
        values = {f.name: int(rng.integers(-(1 << (f.bits - 1)), 1 << (f.bits - 1))) if f.signed
                  else int(rng.integers(0, 1 << f.bits)) for f in FIELDS[opcode]}
        word = encode(opcode, **values)
        view = data.Const(layout, word)
        assert view.opcode == int(opcode) and data.Const(opcode_layout(), word & 0xF).opcode == int(opcode)
        assert {name: getattr(view, name) for name in values} == values
        assert view.unused == 0
