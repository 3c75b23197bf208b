# amaranth: UnusedElaboratable=no

"""The σ/SiLU unit against the golden model's table, in Verilator; its ROM and its constructor's checks."""

import pytest
from amaranth import signed, unsigned
from amaranth.lib import data

from mmfree.host.fixed import SigmoidTable
from mmfree.host.golden import Formats
from mmfree.hw.sigmoid import SigmoidCore, SigmoidUnit
from mmfree.sim.runner import run_bench

F = Formats()


@pytest.mark.parametrize("width, frac", [(F.act_bits, F.act_frac), (F.state_bits, F.state_frac)],
                         ids=["act", "state"])
def test_bench(width, frac, tmp_path):
    run_bench(SigmoidUnit(width, frac, gate_frac=F.gate_frac, segment_bits=F.sigmoid_segment_bits,
                          z_range=F.sigmoid_range),
              name="sigmoid", test_module="mmfree.sim.benches.sigmoid",
              params={"width": width, "frac": frac, "gate_frac": F.gate_frac, "segment_bits": F.sigmoid_segment_bits,
                      "z_range": F.sigmoid_range},
              run_dir=tmp_path)


def test_bench_small_format(tmp_path):
    """A narrow format (Q0.12 gate, frac = segment_bits + 1, short table) exercises the same code at other widths."""
    run_bench(SigmoidUnit(12, 5, gate_frac=12, segment_bits=4, z_range=8),
              name="sigmoid", test_module="mmfree.sim.benches.sigmoid",
              params={"width": 12, "frac": 5, "gate_frac": 12, "segment_bits": 4, "z_range": 8, "random": 600},
              run_dir=tmp_path)


def test_rom_is_the_golden_table():
    core = SigmoidCore(F.gate_frac, F.sigmoid_segment_bits, F.sigmoid_range)
    entries = SigmoidTable(F.gate_frac, F.sigmoid_segment_bits, F.sigmoid_range).entries.tolist()
    assert core.entries == entries
    mask = (1 << core.e_bits) - 1
    assert [w & mask for w in core.words] == entries[:-1]
    assert [w >> core.e_bits for w in core.words] == [lo - hi for lo, hi in zip(entries, entries[1:])]
    assert len(core.words) == F.sigmoid_range << F.sigmoid_segment_bits
    assert core.e_bits == F.gate_frac  # E[0] = σ(0) = 2^(g−1)


def test_rom_word_at_q0_24_4_16():
    core = SigmoidCore(24, 4, 16)
    assert (core.e_bits, core.d_bits, len(core.words)) == (24, 18, 256)


def test_defaults_are_golden_formats():
    unit = SigmoidUnit()
    assert (unit.width, unit.frac) == (F.act_bits, F.act_frac)
    assert (unit.core.gate_frac, unit.core.segment_bits, unit.core.z_range) == \
        (F.gate_frac, F.sigmoid_segment_bits, F.sigmoid_range)


def test_ports():
    unit = SigmoidUnit(32, 24)
    assert unit.i.payload.shape() == signed(32)
    assert unit.o.payload.shape() == data.StructLayout({
        "sigmoid": unsigned(F.gate_frac + 1), "complement": unsigned(F.gate_frac + 1), "silu": signed(32)})


def test_rejects_bad_parameters():
    with pytest.raises(TypeError, match="width must be an int"):
        SigmoidUnit(24.0, 16)
    with pytest.raises(ValueError, match="width must be at least 2"):
        SigmoidUnit(1, 0, segment_bits=0)
    with pytest.raises(ValueError, match=r"frac \(3\) must be at least segment_bits \(4\)"):
        SigmoidUnit(24, 3, segment_bits=4)
    with pytest.raises(ValueError, match="gate_frac must be at least 1"):
        SigmoidUnit(24, 16, gate_frac=0)
    with pytest.raises(TypeError, match="z_range must be an int"):
        SigmoidUnit(24, 16, z_range=16.0)
