# amaranth: UnusedElaboratable=no

"""The reduction unit against the golden model, in Verilator; and its constructor's checks."""

import pytest
from amaranth import signed, unsigned

from mmfree.hw.reduction import ReductionUnit
from mmfree.sim.runner import run_bench

CONFIGS = {
    # products p = v ⊙ c at the default formats, vectors up to 8192, with the squares of their inputs (the core's)
    "default": {"width": 48, "max_len": 8192, "square_input": True},
    # small formats: every shift and rounding case is reached by random vectors
    "small": {"width": 10, "max_len": 24, "reduce_bits": 4, "square_input": True},
    # narrow elements (int8 logits): no shift is ever needed; max_len not a power of two
    "narrow": {"width": 8, "max_len": 300},
    # the core's (ULX3S-85F): the shift known beforehand, the result 3 cycles after the last element
    "known shift": {"width": 32, "max_len": 256, "square_input": True, "find_shift": False},
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_bench(config, tmp_path):
    run_bench(ReductionUnit(**CONFIGS[config]), name="reduction", test_module="mmfree.sim.benches.reduction",
              params=CONFIGS[config], run_dir=tmp_path)


def test_layouts():
    unit = ReductionUnit(48)
    i, o = unit.i.payload.shape(), unit.o.payload.shape()
    assert [(name, field.shape, field.offset) for name, field in i] == [
        ("data", signed(48), 0), ("shift", unsigned(6), 48), ("last", 1, 54)]
    assert {name: field.shape for name, field in o} == {
        "max_abs": unsigned(48), "argmax": unsigned(13), "max": signed(48), "count": unsigned(14),
        "sum_sq": unsigned(44), "sq_shift": unsigned(6), "shift_ok": 1, "overlong": 1}
    assert (unit.shift_max, unit.sum_bits) == (33, 44)
    # the sum of squares grows with max_len
    assert ReductionUnit(48, max_len=1 << 20).sum_bits == 51
    assert ReductionUnit(12).shift_bits == 1
    # without find_shift, no sq_shift and shift_ok
    assert list(ReductionUnit(48, find_shift=False).o.payload.shape().members) == [
        "max_abs", "argmax", "max", "count", "sum_sq", "overlong"]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"width": 48.0}, TypeError, "width must be an int"),
    ({"width": True}, TypeError, "width must be an int"),
    ({"width": 1}, ValueError, "width must be between 2 and 63, got 1"),
    ({"width": 64}, ValueError, "width must be between 2 and 63"),
    ({"width": 16, "max_len": 0}, ValueError, "max_len must be between 1"),
    ({"width": 16, "max_len": "8"}, TypeError, "max_len must be an int"),
    ({"width": 16, "reduce_bits": 1}, ValueError, "reduce_bits must be between 2 and 16, got 1"),
    ({"width": 16, "reduce_bits": 17}, ValueError, "reduce_bits must be between 2 and 16"),
    ({"width": 16, "impl": "gowin"}, ValueError, "impl must be None or one of"),
    ({"width": 16, "square_input": 1}, TypeError, "square_input must be a bool"),
    ({"width": 16, "find_shift": 0}, TypeError, "find_shift must be a bool"),
])
def test_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ReductionUnit(**kwargs)
