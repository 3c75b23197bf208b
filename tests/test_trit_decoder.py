# amaranth: UnusedElaboratable=no

"""The trit decoders against the host's unpacking, in Verilator; and their constructor's checks."""

import pytest
from amaranth import signed
from amaranth.lib import data

from mmfree.hw.trit_decoder import TritDecoder
from mmfree.sim.runner import run_bench


@pytest.mark.parametrize("fmt, registered", [("2bit", False), ("base3", False), ("2bit", True), ("base3", True)])
def test_bench(fmt, registered, tmp_path):
    run_bench(TritDecoder(fmt, registered=registered), name="trit_decoder",
              test_module="mmfree.sim.benches.trit_decoder", params={"fmt": fmt, "registered": registered},
              run_dir=tmp_path)


@pytest.mark.parametrize("fmt, trits", [("2bit", 4), ("base3", 5)])
def test_output_layout(fmt, trits):
    payload = TritDecoder(fmt).o.payload.shape()
    assert payload == data.StructLayout({"trits": data.ArrayLayout(signed(2), trits), "error": 1})


def test_rejects_bad_format():
    with pytest.raises(TypeError, match="must be a str"):
        TritDecoder(2)
    with pytest.raises(ValueError, match="unknown packing format 'base4'"):
        TritDecoder("base4")
    with pytest.raises(TypeError, match="registered must be a bool"):
        TritDecoder("base3", registered=1)
    with pytest.raises(ValueError, match="table must be one of"):
        TritDecoder("base3", table="spram")
