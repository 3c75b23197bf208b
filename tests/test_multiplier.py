# amaranth: UnusedElaboratable=no

"""The time-shared multiplier pool: products against Python in Verilator, its limbs and its multiplier counts."""

import pytest
from amaranth import Module, Signal, signed, unsigned
from amaranth.hdl import Fragment

from mmfree.hw.multiplier import LIMB_BITS, MultiplierPool, limbs
from mmfree.hw.sigmoid import Pipeline
from mmfree.sim.benches.multiplier import Products
from mmfree.sim.runner import run_bench

#: u16 × s16 (one tile), s32 × u16 (two), s28 × s16 (a signed × signed tile), u19 × u9 (a tile and a 3-bit row in
#: logic), s17 × u16 (a 1-bit signed row in logic)
SHAPES = [[[32, True], [16, False]], [[16, False], [16, True]], [[28, True], [16, True]], [[19, False], [9, False]],
          [[17, True], [16, False]]]


@pytest.mark.parametrize("period", [1, 2, 3])
def test_bench(period, tmp_path):
    run_bench(Products(SHAPES, period=period), name="multiplier", test_module="mmfree.sim.benches.multiplier",
              params={"shapes": SHAPES, "period": period, "count": 300}, run_dir=tmp_path)


def test_limbs():
    assert limbs(signed(32)) == [(0, 16, False), (16, 16, True)]
    assert limbs(unsigned(16)) == [(0, 16, False)]
    assert limbs(signed(17)) == [(0, 16, False), (16, 1, True)]
    assert limbs(unsigned(19)) == [(0, 16, False), (16, 3, False)]
    assert limbs(signed(8)) == [(0, 8, True)]
    assert LIMB_BITS == 16


def _count(shapes, period):
    unit = Products(shapes, period=period)
    Fragment.get(unit, None)
    return unit.multipliers, unit.latency


def test_shares_multipliers():
    # five tiles besides the chained product's: 2 + 1 + 2 + 1 + 1 (the chained one: ⌈40/16⌉ · 2 = 6 more)
    counts = {period: _count(SHAPES, period)[0] for period in (1, 2, 3, 6)}
    assert counts[1] == 13
    assert counts[2] <= 8 and counts[3] <= 6 and counts[6] <= 4
    assert all(counts[p] >= -(-13 // p) for p in counts)


def test_unsigned_operands_take_one_tile():
    # u16 × u16, u16 × s16, u15 × s16: one multiplier each, not two
    for shapes in ([[[16, False], [16, False]]], [[[16, False], [16, True]]], [[[15, False], [16, True]]]):
        m = Module()
        pipe = Pipeline(m, Signal())
        pool = MultiplierPool(m, pipe)
        (x, y), = shapes
        pool.product(Signal((signed if x[1] else unsigned)(x[0])), Signal((signed if y[1] else unsigned)(y[0])),
                     name="p")
        assert pool.partials == 1


def test_rejects_bad_parameters():
    m = Module()
    with pytest.raises(ValueError, match="impl must be None or one of"):
        MultiplierPool(m, Pipeline(m, Signal()), impl="xilinx")
    with pytest.raises(ValueError, match="lut_bits must be an int"):
        MultiplierPool(m, Pipeline(m, Signal()), lut_bits=16)
    with pytest.raises(ValueError, match="period must be a positive int"):
        Pipeline(m, Signal(), period=0)
