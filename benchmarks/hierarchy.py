"""Where the iCEBreaker top's logic goes: Yosys with the hierarchy kept, LUT4s and flip-flops per module, as JSON.

    python benchmarks/hierarchy.py [--json FILE]

Synthesizes the iCEBreaker's accelerator top (link, UART, command processor, core, for the UP5K) with ``synth_ice40
-dsp -noflatten`` (the ``SB_MAC16`` guard of :data:`mmfree.hw.primitives.ICE40_YOSYS_GUARD`, as board builds use)
and reports each module's own ``SB_LUT4`` and flip-flop cells. Yosys's counts before placement: nextpnr packs a
LUT4 and a flip-flop into one logic cell where it can, so the logic cells of a placed design lie between the larger
of the two totals and their sum (docs/micro.md). Also: the LUT4s of one base-3 trit decoder (``TritDecoder``) built in
logic (``-nobram``) instead of a block-RAM table.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil

from mmfree.host import toolchain
from mmfree.host.build import run_logged
from mmfree.host.compiler import CORES
from mmfree.host.golden import Formats
from mmfree.hw.primitives import ICE40_YOSYS_GUARD, YOSYS_HIDE_VIEW_FIELDS
from mmfree.hw.top import AcceleratorTop
from mmfree.hw.trit_decoder import TritDecoder


def synthesize(elaboratable, top, script, work):
    """Yosys ``script`` (``{top}`` filled in) on ``elaboratable``; returns ``stat -json``'s modules."""
    (work / "top.il").write_text(rtlil.convert(elaboratable, name=top))
    (work / "guard_bb.v").write_text(ICE40_YOSYS_GUARD["verilog"])
    yosys = toolchain.yowasp_env("YOSYS")["YOSYS"]
    run_logged([yosys, "-q", "-p", f"read_verilog guard_bb.v; read_rtlil top.il; {YOSYS_HIDE_VIEW_FIELDS}; "
                f"{ICE40_YOSYS_GUARD['script_after_read']}; {script.format(top=top)}; "
                f"tee -q -o stat.json stat -json"], work, work / "yosys.log")
    return json.loads((work / "stat.json").read_text())["modules"]


def cell_counts(module):
    cells = module.get("cell_types") or module.get("num_cells_by_type") or {}
    return {"lut4": cells.get("SB_LUT4", 0), "ff": sum(n for kind, n in cells.items() if kind.startswith("SB_DFF"))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hierarchy-") as scratch:
        work = Path(scratch)
        top = AcceleratorTop(CORES["icebreaker"], Formats(), 30_000_000, 3_000_000, bytes(32), link="uart",
                             impl="ice40")
        modules = synthesize(top, "acc_top", "synth_ice40 -dsp -noflatten -top {top}", work)
        decoder = synthesize(TritDecoder("base3"), "decoder_top", "synth_ice40 -nobram -top {top}", work)
    rows = {name.strip("\\"): cell_counts(module) for name, module in modules.items()}
    rows = {name: counts for name, counts in rows.items() if counts["lut4"] or counts["ff"]}
    report = {"modules": rows, "total": {key: sum(row[key] for row in rows.values()) for key in ("lut4", "ff")},
              "base3_decoder_in_logic_lut4": sum(cell_counts(m)["lut4"] for m in decoder.values())}
    for name, row in sorted(rows.items(), key=lambda item: -item[1]["lut4"]):
        print(f"{name:40s} {row['lut4']:6,} LUT4 {row['ff']:6,} FF", file=sys.stderr)
    print(f"{'total':40s} {report['total']['lut4']:6,} LUT4 {report['total']['ff']:6,} FF", file=sys.stderr)
    print(f"a base-3 trit decoder in logic: {report['base3_decoder_in_logic_lut4']} LUT4", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
