"""``mmfree bench``: cycles per token measured on the virtual board, beside the board's clock, the build report's
Fmax, the bounds that no schedule beats, and ``mmfree estimate``'s ESTIMATE with its error against the measurement;
the virtual board's per-instruction trace says where the cycles go.

The cycles are the device's own (TOKEN cycle counts) on ``sim://<board>``, the board's gateware simulated cycle by
cycle; tokens/s are the configured clock over them, not a run on hardware. The clock, Fmax and utilization come from
a build: the report given, else ``build/<board>/build-report.json`` (``mmfree build`` writes it), else the manifest of
the bitstream the package ships for the board; without one, the board's configured clock. A clock is only a figure to
trust where the build meets it with its margin.
"""

import dataclasses
import json
import sys
from pathlib import Path

__all__ = ["add_arguments", "bench", "run", "write_roofline"]


def add_arguments(parser):
    from ..sim.boards import BOARDS

    parser.add_argument("--model", required=True,
                        help="a shipped model's name (e.g. demo), a container file, or an HF MMfreeLM folder")
    parser.add_argument("--board", default="icebreaker", choices=sorted(BOARDS),
                        help="the virtual board to measure on (default icebreaker)")
    parser.add_argument("--tokens", type=int, default=16, help="tokens generated and timed (default 16)")
    parser.add_argument("--report", metavar="PATH",
                        help="a build report or a bitstream's manifest, for the clock and Fmax (default: "
                             "build/<board>/build-report.json, else the shipped bitstream's manifest)")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH")
    parser.add_argument("--png", metavar="PATH", help="also draw the roofline as a PNG at PATH")


def bench(board_name, model, tokens=16, report_path=None, progress=True):
    """Measure ``model`` on ``sim://<board_name>``: a JSON-serialisable dict (see the module notes).

    Raises
    ------
    ValueError
        ``tokens`` below 1, or a build report of another board (a manifest: of another core).
    """
    import tempfile

    from ..sim.boards import BOARDS
    from ..sim.virtual_board import read_trace
    from .estimate import roofline
    from .estimate_cmd import estimate
    from .runtime import Accelerator
    from .transport import SIM_REPLY_TIMEOUT, SocketTransport

    if not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive int, got {tokens!r}")
    board = BOARDS[board_name]
    build = _build(board_name, board, report_path)
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace"
        with board.virtual_board().serve(progress=print if progress else None, trace_path=trace) as running:
            with Accelerator(SocketTransport(running.connect(), reply_timeout=SIM_REPLY_TIMEOUT),
                             progress=progress) as acc:
                program = acc.load(model)
                generated = list(acc.generate([0], tokens))
                stats = acc.stats
        instructions = _per_instruction(read_trace(trace, program), len(program.instructions))
    cycles = stats.cycles / stats.tokens
    # the build's clock where there is a build (an exploratory build may run the core at another clock)
    clk, macs = build.get("clock_hz", board.clk_hz), model.config.ternary_weights
    bounds = roofline(program, clk, board.baud)
    streamed = program.pass_length > 0
    binding = "link" if streamed else bounds["resident"]
    result = {
        "board": board_name, "device": f"sim://{board_name} (virtual board, cycle-accurate; not hardware)",
        "tokens": generated, "streamed": streamed,
        "measured": {"cycles_per_token": cycles, "clock_hz": clk, "tokens_per_s_at_clock": clk / cycles,
                     "ternary_mac_per_s_at_clock": macs * clk / cycles, "wall_s_per_token": stats.wall_s_per_token},
        "bounds": {name: {"cycles": bounds[f"{name}_cycles"], "tokens_per_s": clk / bounds[f"{name}_cycles"]}
                   for name in ("lanes", "memory", "link")},
        "roofline": {"macs_per_weight_byte": bounds["macs"] / (8 * bounds["matrix_words"]),
                     "peak_mac_per_s": bounds["lanes"] * clk,
                     "weight_memory_bytes_per_s": 8 * bounds["words_per_cycle"] * clk,
                     "link_bytes_per_s": bounds["link_bytes_per_s"]},
        "binding": binding, "measured_over_binding": cycles / bounds[f"{binding}_cycles"],
        "build": build,
        "instructions": instructions,
    }
    if streamed:
        result["note"] = ("weights streamed: the virtual board takes them behind the PHY at its fast link's pace, so "
                          "the cycles are not those of a real UART (the link bound is)")
    estimated = estimate(board_name, model)
    if "cycles_per_token" in estimated:
        low, high = estimated["cycles_per_token"]["range"]
        result["estimate"] = {"label": "ESTIMATE", "cycles_per_token": [low, high],
                              "error_vs_measured": [(low - cycles) / cycles, (high - cycles) / cycles],
                              "method": estimated["method"]}
    fmax = result["build"].get("fmax_mhz")
    if fmax:
        result["measured"]["tokens_per_s_at_fmax"] = fmax * 1e6 / cycles
    return result


def _per_instruction(trace, length):
    """Mean cycles of each instruction over the runs of a :func:`~mmfree.sim.virtual_board.read_trace` trace, END
    left out (its time runs on to the next request)."""
    spent = {}
    for _, pc, name, cycles in trace:
        if cycles is not None and pc < length - 1:
            spent.setdefault((pc, name), []).append(cycles)
    return [{"pc": pc, "name": name, "cycles": sum(values) / len(values)} for (pc, name), values in sorted(spent.items())]


def _build(board_name, board, report_path):
    """What a build says of its clock, timing and utilization: the report given, else ``build/<board>``'s (unless its
    manifest is of another core than the virtual board's: a build left from older gateware), else the manifest of
    the bitstream the package ships; or why there is none."""
    from .build import BITSTREAMS

    local = Path("build") / board_name / "build-report.json"
    shipped = BITSTREAMS / board_name / "manifest.json"
    path = Path(report_path) if report_path else local
    skipped = None
    board_core = dataclasses.asdict(board.core)
    manifest = local.with_name("manifest.json")
    if not report_path and local.is_file() and manifest.is_file():
        if json.loads(manifest.read_text()).get("core") != board_core:
            skipped = f"{local.parent} holds a build of another core than the virtual board's: not used"
            path = shipped
    if not path.is_file():
        if report_path:
            raise FileNotFoundError(f"no build report at {path}")
        if not shipped.is_file():
            missing = f"no build report at {path}: run mmfree build --board {board_name}"
            return {"report": None, "note": skipped or missing}
        path = shipped
    report = json.loads(path.read_text())
    if "rtlil_sha256" in report:   # a bitstream's manifest
        if report["core"] != board_core:
            raise ValueError(f"{path} is a build of the core {report['core']}, not the virtual board's {board.core}")
        clock_hz, fmax = report["clk_hz"], report["fmax_mhz"]
    elif "fmax" in report:     # a build report
        clock_hz, fmax = report.get("clock_mhz", board.clk_hz / 1e6) * 1e6, report["fmax"]
    else:
        raise ValueError(f"{path} is neither a build report (build-report.json) nor a bitstream's manifest")
    if report.get("board") not in (None, board_name):
        raise ValueError(f"{path} is a build of {report.get('board')}, not of {board_name}")
    return {"report": str(path), "clock_hz": clock_hz, "fmax_mhz": fmax, "margin": report["margin"],
            "meets_margin": report["meets_margin"],
            "utilization": {name: entry["percent"] for name, entry in report["utilization"].items()},
            **({"note": skipped} if skipped else {})}


def run(args):
    from .models import resolve_model

    result = bench(args.board, resolve_model(args.model), args.tokens, args.report)
    m, b = result["measured"], result["build"]
    print(f"{result['device']}: {m['cycles_per_token']:,.0f} cycles per token (measured), "
          f"{m['tokens_per_s_at_clock']:,.0f} tokens/s and {m['ternary_mac_per_s_at_clock'] / 1e9:.3f} G ternary "
          f"MAC/s at the configured {m['clock_hz'] / 1e6:g} MHz")
    if b["report"]:
        verdict = "meets" if b["meets_margin"] else "MISSES"
        print(f"build {b['report']}: Fmax {b['fmax_mhz']:.1f} MHz, {verdict} the clock with its 10 % margin "
              f"({b['margin']:+.0%}); at Fmax {m['tokens_per_s_at_fmax']:,.0f} tokens/s")
    if "note" in b:
        print(b["note"])
    print("bounds (cycles per token, tokens/s at the clock):")
    for name, bound in result["bounds"].items():
        mark = " ← binds" if name == result["binding"] else ""
        print(f"  {name:7s} {bound['cycles']:>14,.0f} {bound['tokens_per_s']:>12,.1f}{mark}")
    print(f"measured / binding bound: {result['measured_over_binding']:.2f}")
    costly = sorted(result["instructions"], key=lambda entry: -entry["cycles"])[:5]
    print("costliest instructions (mean cycles per run): " +
          "; ".join(f"{entry['name']} {entry['cycles']:,.0f}" for entry in costly))
    if "estimate" in result:
        e = result["estimate"]
        print(f"ESTIMATE (mmfree estimate, the core as built): {e['cycles_per_token'][0]:,}–"
              f"{e['cycles_per_token'][1]:,} cycles per token, {e['error_vs_measured'][0]:+.0%} … "
              f"{e['error_vs_measured'][1]:+.0%} against the measurement")
    if "note" in result:
        print(result["note"])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.png:
        write_roofline(args.png, result)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


def write_roofline(path, result):
    """The roofline of a :func:`bench` result as a PNG: ternary MAC/s against MACs per weight byte moved, the roofs
    of the lanes, the weight memory and the host link (weights streamed), the measured point and the ESTIMATE's."""
    from .plot import write_chart

    r = result["roofline"]
    peak, intensity = r["peak_mac_per_s"], r["macs_per_weight_byte"]
    xs = (intensity / 20, intensity * 20)

    def roof(bytes_per_s):
        ridge = peak / bytes_per_s
        return [(x, min(peak, bytes_per_s * x)) for x in sorted({xs[0], min(max(ridge, xs[0]), xs[1]), xs[1]})]

    series = [("LANES", [(xs[0], peak), (xs[1], peak)], (120, 120, 120), False),
              ("WEIGHT MEMORY", roof(r["weight_memory_bytes_per_s"]), (31, 119, 180), False),
              ("LINK (STREAMED)", roof(r["link_bytes_per_s"]), (148, 103, 189), False),
              ("MEASURED", [(intensity, result["measured"]["ternary_mac_per_s_at_clock"])], (214, 39, 40), True)]
    if "estimate" in result:
        macs = result["measured"]["ternary_mac_per_s_at_clock"] * result["measured"]["cycles_per_token"]
        series.append(("ESTIMATE", [(intensity, macs / cycles) for cycles in result["estimate"]["cycles_per_token"]],
                       (44, 160, 44), True))
    write_chart(path, series, x_title="TERNARY MACS PER WEIGHT BYTE", y_title="TERNARY MAC/S", log=True)
