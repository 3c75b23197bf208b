# amaranth: UnusedElaboratable=no

"""The matvec engine (weight memory + q buffer + ternary array) against exact products, in Verilator."""

import pytest

from mmfree.hw.matvec_engine import MatvecEngine
from mmfree.sim.runner import run_bench

BENCH = "mmfree.sim.benches.matvec_engine"


@pytest.mark.parametrize("rows, fmt, max_len, q_depth, q_banks, stream_depth, registered", [
    (8, "base3", 256, 53, 2, 0, False),    # the UP5K core (and a demo model matrix): two q-buffer banks
    (8, "base3", 256, 53, 2, 0, True),     # the ULX3S core: the weight memory's request and word registered
    (16, "2bit", 300, 80, 1, 0, False),    # two image words per beat
    (8, "base3", 256, 64, 1, 16, False),   # with a weight stream: every other matrix streamed
    (8, "base3", 256, 64, 1, 16, True),
])
def test_bench(rows, fmt, max_len, q_depth, q_banks, stream_depth, registered, tmp_path):
    engine = MatvecEngine(rows, fmt, max_len=max_len, q_depth=q_depth, q_banks=q_banks, stream_depth=stream_depth,
                          registered_weights=registered, impl="model")
    run_bench(engine, name="matvec_engine", test_module=BENCH,
              params={"rows": rows, "fmt": fmt, "max_len": max_len, "q_depth": q_depth, "q_banks": q_banks,
                      "random_ops": 40, "stream_depth": stream_depth, "registered_weights": registered},
              run_dir=tmp_path)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="rows must be an even int"):
        MatvecEngine(3)
    with pytest.raises(ValueError, match="fmt must be"):
        MatvecEngine(8, "base4")
    with pytest.raises(ValueError, match="q_depth"):
        MatvecEngine(8, q_depth=1)
    with pytest.raises(ValueError, match="q_banks"):
        MatvecEngine(8, q_banks=3)
    with pytest.raises(ValueError, match="stream_depth must be 0"):
        MatvecEngine(8, stream_depth=1)
