# amaranth: UnusedElaboratable=no

"""The ternary matrix-vector unit against exact integer products, in Verilator; its constructor's checks."""

import pytest
from amaranth import signed, unsigned
from amaranth.lib import data, wiring

from mmfree.hw.ternary_matvec import TernaryMatVec, acc_width
from mmfree.sim.runner import run_bench

BENCH = "mmfree.sim.benches.ternary_matvec"


@pytest.mark.parametrize("rows, cols, max_len, fmt, extra", [
    (8, 5, 4096, None, {"random_ops": 800}),      # the UP5K shape, decoded trits
    (8, 5, 1024, "base3", {"random_ops": 150}),   # packed bytes, base-3 decoders inside
    (8, 5, 256, "base3", {"random_ops": 100, "registered_decoders": True}),  # the ULX3S core's decoders
    (4, 4, 300, "2bit", {"random_ops": 150}),     # packed bytes, 2-bit decoders inside
    (3, 1, 37, None, {"random_ops": 150}),        # one column: no adder tree
    (1, 7, 9, None, {"random_ops": 150}),         # one row, an odd tree, a tiny accumulator
])
def test_bench(rows, cols, max_len, fmt, extra, tmp_path):
    unit = TernaryMatVec(rows, cols, max_len, fmt=fmt, registered_decoders=extra.get("registered_decoders", False))
    run_bench(unit, name="ternary_matvec", test_module=BENCH,
              params={"rows": rows, "cols": cols, "max_len": max_len, "fmt": fmt, **extra}, run_dir=tmp_path)


@pytest.mark.parametrize("max_len, width", [(1, 9), (9, 12), (1023, 18), (1024, 19), (4096, 21)])
def test_acc_width_holds_128_times_max_len(max_len, width):
    assert acc_width(max_len) == width
    assert -(1 << (width - 1)) <= -128 * max_len and 128 * max_len < 1 << (width - 1)
    assert 128 * max_len >= 1 << (width - 2), "not one bit wider than needed"


def test_signature_decoded():
    unit = TernaryMatVec(8, 5, 4096)
    assert (unit.rows, unit.cols, unit.max_len, unit.fmt, unit.acc_width) == (8, 5, 4096, None, 21)
    members = unit.signature.members
    assert members["w"].flow == wiring.In and members["a"].flow == wiring.In and members["o"].flow == wiring.Out
    assert unit.w.payload.shape() == data.StructLayout({
        "trits": data.ArrayLayout(data.ArrayLayout(signed(2), 5), 8), "last": 1})
    assert unit.a.payload.shape() == data.ArrayLayout(signed(8), 5)
    assert unit.o.payload.shape() == data.StructLayout({"acc": data.ArrayLayout(signed(21), 8), "error": 1})


@pytest.mark.parametrize("fmt, cols, per_row", [("base3", 5, 1), ("base3", 10, 2), ("2bit", 4, 1), ("2bit", 8, 2)])
def test_signature_packed(fmt, cols, per_row):
    unit = TernaryMatVec(3, cols, 100, fmt=fmt)
    assert unit.w.payload.shape() == data.StructLayout({
        "bytes": data.ArrayLayout(data.ArrayLayout(unsigned(8), per_row), 3), "last": 1})
    assert unit.o.payload.shape() == data.StructLayout({"acc": data.ArrayLayout(signed(15), 3), "error": 1})


@pytest.mark.parametrize("kwargs, error, message", [
    ({"rows": "8"}, TypeError, "rows must be an int, got '8'"),
    ({"rows": True}, TypeError, "rows must be an int, got True"),
    ({"rows": 0}, ValueError, "rows must be at least 1, got 0"),
    ({"cols": 5.0}, TypeError, "cols must be an int, got 5.0"),
    ({"cols": -1}, ValueError, "cols must be at least 1, got -1"),
    ({"max_len": 0}, ValueError, "max_len must be at least 1, got 0"),
    ({"max_len": None}, TypeError, "max_len must be an int, got None"),
    ({"fmt": 3}, TypeError, "fmt must be None or a str, got 3"),
    ({"fmt": "base4"}, ValueError, "unknown packing format 'base4'"),
    ({"cols": 4, "fmt": "base3"}, ValueError, r"cols must be a multiple of 5 \(trits per byte of 'base3'\)"),
    ({"cols": 5, "fmt": "2bit"}, ValueError, r"cols must be a multiple of 4"),
])
def test_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        TernaryMatVec(**kwargs)
