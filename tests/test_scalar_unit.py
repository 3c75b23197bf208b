# amaranth: UnusedElaboratable=no

"""The scalar unit against the golden model's scalar float, in Verilator; and its constructor's checks."""

import pytest
from amaranth import signed, unsigned

from mmfree.hw.scalar_unit import ScalarOp, ScalarUnit
from mmfree.sim.runner import run_bench

CONFIGS = {
    # Formats.scalar_bits, integers up to a sum of squares of 8192 elements or a 48-bit max|p|
    "default": {},
    # small formats: exponent overflow and every rounding case are common
    "small": {"bits": 8, "exp_bits": 8, "int_width": 24, "recip_bits": 7},
    # the ECP5's datapath: integers wider than X (13 bits below it)
    "fast": {"fast": True},
    # fast, small: integers narrower than X, the widest reciprocal
    "small fast": {"bits": 8, "exp_bits": 8, "int_width": 16, "recip_bits": 18, "fast": True},
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_bench(config, tmp_path):
    run_bench(ScalarUnit(**CONFIGS[config]), name="scalar_unit", test_module="mmfree.sim.benches.scalar_unit",
              params=CONFIGS[config], run_dir=tmp_path)


def test_layouts():
    unit = ScalarUnit()
    cmd, res = unit.i.payload.shape(), unit.o.payload.shape()
    assert [(name, field.offset, field.width) for name, field in cmd] == [
        ("op", 0, 3), ("a", 3, 32), ("b", 35, 32), ("integer", 67, 48), ("power", 115, 16)]
    assert cmd["a"].shape["mant"].shape == unsigned(16) and cmd["a"].shape["exp"].shape == signed(16)
    assert cmd["op"].shape is ScalarOp
    assert [(name, field.offset, field.width) for name, field in res] == [
        ("value", 0, 32), ("error", 32, 1), ("recip", 33, 17)]
    assert [op.value for op in ScalarOp] == list(range(7))
    assert unit.recip_shift == 25


@pytest.mark.parametrize("kwargs, error, match", [
    ({"bits": 16.0}, TypeError, "bits must be an int"),
    ({"bits": 7}, ValueError, "bits must be between 8 and 16, got 7"),
    ({"bits": 17}, ValueError, "bits must be between 8 and 16"),
    ({"impl": "gowin"}, ValueError, "impl must be None or one of"),
    ({"recip_bits": 14}, ValueError, "recip_bits must be between 15 and 34, got 14"),
    ({"bits": 8, "recip_bits": 19}, ValueError, "recip_bits must be between 7 and 18"),
    ({"exp_bits": 7}, ValueError, "exp_bits must be between 8 and 32"),
    ({"exp_bits": False}, TypeError, "exp_bits must be an int"),
    ({"int_width": 0}, ValueError, "int_width must be between 1 and 128"),
    ({"int_width": "48"}, TypeError, "int_width must be an int"),
    ({"fast": 1}, TypeError, "fast must be a bool, got 1"),
    ({"fast": "yes"}, TypeError, "fast must be a bool"),
])
def test_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ScalarUnit(**kwargs)


def test_positional_arguments_are_refused():
    with pytest.raises(TypeError):
        ScalarUnit(16)
