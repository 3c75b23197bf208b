# amaranth: UnusedElaboratable=no

"""The pass datapath against exact integer arithmetic, in Verilator."""

import pytest

from mmfree.hw.pass_datapath import PassDatapath
from mmfree.sim.runner import run_bench

BENCH = "mmfree.sim.benches.pass_datapath"


@pytest.mark.parametrize("x_bits, lanes", [(16, 1), (36, 1), (16, 2), (36, 2)])
def test_bench(x_bits, lanes, tmp_path):
    run_bench(PassDatapath(x_bits, lanes=lanes, impl="model"), name="pass_datapath", test_module=BENCH,
              params={"x_bits": x_bits, "lanes": lanes, "vectors": 30}, run_dir=tmp_path)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="x_bits"):
        PassDatapath(1)
    with pytest.raises(ValueError, match="lanes"):
        PassDatapath(36, lanes=0)
    with pytest.raises(TypeError, match="lanes"):
        PassDatapath(36, lanes="2")
    with pytest.raises(ValueError, match="impl"):
        PassDatapath(36, impl="xilinx")
