# amaranth: UnusedElaboratable=no

"""The matvec engine (weight memory + q buffer + ternary array) against exact products, in Verilator."""

import pytest

from mmfree.hw.matvec_engine import MatvecEngine
from mmfree.sim.runner import run_bench

BENCH = "mmfree.sim.benches.matvec_engine"


@pytest.mark.parametrize("rows, fmt, max_len, q_depth, q_banks, stream_depth, registered, port_bits", [
    (8, "base3", 256, 53, 2, 0, False, None),    # the UP5K core (and a demo model matrix): two q-buffer banks
    (8, "base3", 256, 53, 2, 0, True, None),     # the weight memory's request and word registered
    (16, "2bit", 300, 80, 1, 0, False, None),    # two image words per beat
    (16, "base3", 256, 53, 2, 0, True, 64),      # the ULX3S core: loaded and read in 64-bit parts of words
    (32, "base3", 200, 40, 1, 0, False, 32),     # four 32-bit parts
    (8, "base3", 256, 64, 1, 16, False, None),   # with a weight stream: every other matrix streamed
    (8, "base3", 256, 64, 1, 16, True, None),
])
def test_bench(rows, fmt, max_len, q_depth, q_banks, stream_depth, registered, port_bits, tmp_path):
    engine = MatvecEngine(rows, fmt, max_len=max_len, q_depth=q_depth, q_banks=q_banks, stream_depth=stream_depth,
                          registered_weights=registered, port_bits=port_bits, impl="model")
    run_bench(engine, name="matvec_engine", test_module=BENCH,
              params={"rows": rows, "fmt": fmt, "max_len": max_len, "q_depth": q_depth, "q_banks": q_banks,
                      "random_ops": 40, "stream_depth": stream_depth, "registered_weights": registered,
                      "port_bits": port_bits},
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
    with pytest.raises(ValueError, match="port_bits must be"):
        MatvecEngine(16, port_bits=48)
    with pytest.raises(ValueError, match="port_bits must be"):
        MatvecEngine(8, port_bits=8)
    with pytest.raises(TypeError, match="port_bits must be an int"):
        MatvecEngine(16, port_bits="64")
    with pytest.raises(ValueError, match="whole words"):
        MatvecEngine(16, port_bits=64, stream_depth=16)
