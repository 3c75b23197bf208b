# amaranth: UnusedElaboratable=no

"""The vector unit against the golden model, in Verilator; its interface and its constructor's checks."""

import dataclasses

import pytest
from amaranth import signed, unsigned
from amaranth.lib import data

from mmfree.host.golden import Formats
from mmfree.hw.vector_unit import VectorOp, VectorUnit
from mmfree.sim.runner import run_bench

#: a narrower set of formats, to run the same code at other widths (and a left-shifting gate_frac/act_frac mix)
NARROW = {"acc_bits": 20, "scalar_bits": 12, "shift_bits": 6, "act_bits": 16, "act_frac": 10, "gate_frac": 15,
          "state_bits": 24, "state_frac": 16, "residual_bits": 24, "gated_shift": 4, "glu_shift": 3,
          "sigmoid_segment_bits": 3, "sigmoid_range": 12}


#: a 16-bit format whose products each fit one or two SB_MAC16
FIT = {"acc_bits": 16, "scalar_bits": 16, "shift_bits": 6, "act_bits": 16, "act_frac": 12, "gate_frac": 14,
       "state_bits": 16, "state_frac": 12, "residual_bits": 16, "gated_shift": 4, "glu_shift": 4,
       "sigmoid_segment_bits": 4, "sigmoid_range": 8}

#: the iCE40UP5K core's: golden.Formats with 16-bit accumulators (1 − f = 2^g takes the halved path)
UP5K = {"acc_bits": 16}

#: (formats, cycles_per_element, elements per operation, σ table): every cycles_per_element on the UP5K formats, the
#: others at one or two each; the table in block RAM but for the ULX3S core's (default formats, one cycle, LUTs)
BENCHES = [("up5k", UP5K, 1, 150, "block"), ("up5k", UP5K, 2, 250, "block"), ("up5k", UP5K, 3, 150, "block"),
           ("default", {}, 2, 150, "block"), ("default", {}, 1, 150, "logic"), ("narrow", NARROW, 1, 150, "block"),
           ("narrow", NARROW, 3, 100, "block"), ("fit", FIT, 2, 150, "block")]


@pytest.mark.parametrize("formats, cycles, per_op, table", [b[1:] for b in BENCHES],
                         ids=[f"{b[0]}-c{b[2]}-{b[4]}" for b in BENCHES])
def test_bench(formats, cycles, per_op, table, tmp_path):
    run_bench(VectorUnit(**formats, cycles_per_element=cycles, sigmoid_table=table), name="vector_unit",
              test_module="mmfree.sim.benches.vector_unit",
              params={"formats": formats, "cycles_per_element": cycles, "per_op": per_op, "sigmoid_table": table},
              run_dir=tmp_path)


def test_latency_and_multipliers():
    # the UP5K formats: 8 partial products per element (acc·mant 1, f·h 2, D·r 1 and a 3-bit row in logic,
    # z·σ 2, SiLU·(1 − f) 2, the latter with 1 − f halved into one 16-bit operand)
    counts = {c: VectorUnit(**UP5K, cycles_per_element=c) for c in (1, 2, 3)}
    assert {c: unit.multipliers for c, unit in counts.items()} == {1: 8, 2: 4, 3: 4}
    assert [counts[c].latency for c in (1, 2, 3)] == sorted(counts[c].latency for c in (1, 2, 3))
    assert VectorUnit(**NARROW).multipliers == 8


def test_defaults_are_golden_formats():
    unit, f = VectorUnit(), Formats()
    for name in VectorUnit.FORMAT_FIELDS:
        assert getattr(unit, name) == getattr(f, name), name
    assert (unit.sigmoid.segment_bits, unit.sigmoid.z_range) == (f.sigmoid_segment_bits, f.sigmoid_range)
    assert unit.input_shift == f.gate_frac + f.act_frac - f.state_frac


def test_from_formats():
    f = dataclasses.replace(Formats(), act_bits=20, gated_shift=3, glu_shift=2)
    unit = VectorUnit.from_formats(f, acc_bits=18, shift_bits=8)
    assert (unit.act_bits, unit.gated_shift, unit.glu_shift, unit.acc_bits, unit.shift_bits) == (20, 3, 2, 18, 8)


def test_ports():
    f = Formats()
    unit = VectorUnit(acc_bits=24, shift_bits=7)
    assert unit.i.payload.shape() == data.StructLayout({
        "op": VectorOp, "last": 1, "acc": signed(24), "mant": unsigned(f.scalar_bits), "shift": signed(7),
        "a": signed(max(f.residual_bits, f.gate_frac + 2)), "b": signed(f.state_bits)})
    assert unit.o.payload.shape() == data.StructLayout({"data": signed(unit.out_bits), "last": 1})


def test_op_codes():
    assert [(op.name, op.value) for op in VectorOp] == [
        ("SCALE", 0), ("RESIDUAL", 1), ("FORGET", 2), ("INPUT", 3), ("STATE", 4), ("GATE", 5), ("GLU", 6)]


def test_result_width_holds_every_op():
    unit = VectorUnit(act_bits=24, act_frac=16, gate_frac=24, state_bits=32, state_frac=24, residual_bits=32,
                      gated_shift=8, glu_shift=0, acc_bits=24)
    # GATE: 24-bit acc × 32-bit SiLU(h) >> 8, and GLU: 24-bit SiLU(z) × 24-bit acc, are the widest
    assert unit.out_bits == max(24 + 32 - 8, 24 + 24) == 48
    assert VectorUnit(**NARROW).out_bits == max(20 + 24 - 4, 16 + 20 - 3)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="cycles_per_element must be at least 1"):
        VectorUnit(cycles_per_element=0)
    with pytest.raises(TypeError, match="cycles_per_element must be an int"):
        VectorUnit(cycles_per_element=2.0)
    with pytest.raises(ValueError, match="impl must be None or one of"):
        VectorUnit(impl="gowin")
    with pytest.raises(ValueError, match="sigmoid_table must be 'block' or 'logic', not 'spram'"):
        VectorUnit(sigmoid_table="spram")
    with pytest.raises(TypeError, match="acc_bits must be an int"):
        VectorUnit(acc_bits=24.0)
    with pytest.raises(TypeError, match="gated_shift must be an int"):
        VectorUnit(gated_shift=True)
    with pytest.raises(ValueError, match="shift_bits must be at least 2"):
        VectorUnit(shift_bits=1)
    with pytest.raises(ValueError, match=r"act_frac \(3\) must be at least sigmoid_segment_bits \(4\)"):
        VectorUnit(act_frac=3, sigmoid_segment_bits=4)
    with pytest.raises(ValueError, match=r"state_frac \(2\) must be at least sigmoid_segment_bits \(4\)"):
        VectorUnit(state_frac=2, sigmoid_segment_bits=4)
    with pytest.raises(ValueError, match="gate_frac must be at least 1"):
        VectorUnit(gate_frac=0)
