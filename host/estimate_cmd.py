"""``mmfree estimate``: cycles, tokens/s, bounds and resources of a model on a board, in seconds, before any simulation
or build. Every figure is an ESTIMATE: the compiler's program, the timing model of :mod:`mmfree.host.estimate` (the
core as built, docs/core.md) and the UP5K budget of the cost tables (docs/cost.md)."""

import dataclasses
import json
import sys
from importlib import resources

__all__ = ["add_arguments", "budget", "estimate", "run"]

#: how every figure of the report was made
METHOD = ("ESTIMATE: cycles from the compiled program and the timing model of host/estimate.py (the core as built, "
          "docs/core.md: its passes at pass_lanes elements per cycle, one column group per cycle, the scale chain "
          "beside the matvec; constants calibrated on the demo model's trace, −0.9 % on another shape; ±3 %); bounds "
          "from the core's lanes, weight-memory width and the UART's payload rate; "
          "resources from the UP5K budget of docs/cost.json (measured units, estimated sequencer and glue). Not "
          "measured on a board.")


def add_arguments(parser):
    from ..sim.boards import BOARDS

    parser.add_argument("--model", required=True,
                        help="a shipped model's name (e.g. demo), a container file, or an HF MMfreeLM folder")
    parser.add_argument("--board", default="icebreaker", choices=sorted(BOARDS),
                        help="the board: its core, clock and UART rate (default icebreaker)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH ('-': stdout only)")


def budget(board):
    """The packaged UP5K budget (``host/data/cost_budget.json``, a copy of docs/cost.json's) if it is ``board``'s,
    else None."""
    data = json.loads((resources.files("mmfree.host") / "data" / "cost_budget.json").read_text())
    return data if data["board"] == board else None


def _resources(board):
    data = budget(board)
    if data is None:
        return {"board": board, "budget": None, "summary": f"no resource budget for {board} in the cost tables"}
    plan, built = data["up5k_budget"], data["built_core"]
    over = [kind for kind, used in plan["total"].items() if used > plan["available"][kind]]
    summary = ("the planned core's budget exceeds the UP5K: " +
               ", ".join(f"{kind} {plan['total'][kind]:,} > {plan['available'][kind]:,}" for kind in over)
               if over else "the planned core's budget fits the UP5K")
    if not plan["meets_target"]:
        summary += f"; the {100 * plan['headroom_target']:.0f} % headroom target is not met"
    return {"board": board, "budget": plan, "built_core": built, "over": over, "summary": summary,
            "source": f"docs/cost.json ({data['date']}), packaged as host/data/cost_budget.json"}


def estimate(board_name, model):
    """The report of ``model`` (:class:`~mmfree.host.model.Model`) on ``board_name``: a JSON-serialisable dict.

    A model that does not fit the board's core gets the compiler's :class:`~mmfree.host.compiler.FitError` message
    under ``fit``; its cycles and bounds are then those of the same core with its memory limits lifted (the timing
    model's answer, with the link bound the one that applies), or absent where even that program cannot be encoded.

    Raises
    ------
    ValueError
        Unknown board.
    """
    from ..sim.boards import BOARDS
    from .compiler import FitError, compile_model
    from .estimate import estimate_cycles, roofline

    if board_name not in BOARDS:
        raise ValueError(f"unknown board {board_name!r}; the boards are {', '.join(sorted(BOARDS))}")
    board = BOARDS[board_name]
    clk_hz = board.clk_hz   # the board's configured clock: a shipped bitstream's (mmfree.host.build.release)
    c = model.config
    report = {"label": "ESTIMATE", "method": METHOD, "board": board_name, "clock_hz": clk_hz,
              "baud": board.baud, "model": {"vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
                                            "num_layers": c.num_layers, "intermediate_size": c.intermediate_size,
                                            "ternary_weights": c.ternary_weights}}
    try:
        program = compile_model(model, board.core, board.formats)
        report["fit"] = {"fits": True, "weight_words": int(len(program.image)),
                         "weight_capacity": board.core.weight_words, "instructions": len(program.instructions),
                         "program_capacity": board.core.program_instructions}
    except FitError as error:
        report["fit"] = {"fits": False, "message": str(error)}
        lifted = dataclasses.replace(board.core, weight_words=1 << 24, max_vector=(1 << 16) - 1, state_words=1 << 24,
                                     acc_bits=32, program_instructions=1 << 16)
        try:
            program = compile_model(model, lifted, board.formats)
        except ValueError as encode_error:
            report["fit"]["lifted"] = f"no estimate: even with the core's limits lifted: {encode_error}"
            program = None
    if program is not None:
        cycles = estimate_cycles(program)
        bounds = roofline(program, clk_hz, board.baud)
        low, high = cycles["total"]
        report["cycles_per_token"] = {**cycles, "range": [low, high]}
        report["tokens_per_s"] = [clk_hz / high, clk_hz / low]
        report["mac_per_s"] = [bounds["macs"] * clk_hz / high, bounds["macs"] * clk_hz / low]
        report["bounds"] = {**bounds, **{f"{name}_tokens_per_s": clk_hz / bounds[f"{name}_cycles"]
                                         for name in ("lanes", "memory", "link")}}
    report["resources"] = _resources(board_name)
    return report


def _print(report):
    c, clk = report["model"], report["clock_hz"]
    print(f"{report['board']} at {clk / 1e6:g} MHz (its configured clock), UART {report['baud']:,} baud; "
          f"model V={c['vocab_size']} "
          f"H={c['hidden_size']} L={c['num_layers']} I={c['intermediate_size']}, {c['ternary_weights']:,} ternary "
          "weights")
    print(report["method"])
    fit = report["fit"]
    if fit["fits"]:
        print(f"fit: fits; weight memory {fit['weight_words']:,} of {fit['weight_capacity']:,} words "
              f"({100 * fit['weight_words'] / fit['weight_capacity']:.1f} %), program {fit['instructions']} of "
              f"{fit['program_capacity']} instructions")
    else:
        print(f"fit: DOES NOT FIT. {fit['message']}")
        print(fit.get("lifted", "the figures below are for the same core with its memory limits lifted"))
    if "cycles_per_token" in report:
        cycles, b = report["cycles_per_token"], report["bounds"]
        low, high = cycles["range"]
        print(f"cycles per token: ESTIMATE {low:,}–{high:,} (matvec {cycles['matvec']:,}, passes "
              f"{cycles['passes']:,}, embedding {cycles['embed']:,}, the rest {cycles['scale']:,})")
        rate, macs = report["tokens_per_s"], report["mac_per_s"]
        print(f"tokens/s at {clk / 1e6:g} MHz: ESTIMATE {rate[0]:,.0f}–{rate[1]:,.0f}; ternary MAC/s "
              f"{macs[0] / 1e9:.3f}–{macs[1] / 1e9:.3f} G ({b['macs']:,} MACs per token)")
        binds = {b["resident"]: " ← binds (weights resident)", "link": " ← binds (weights streamed)"}
        print("bounds (cycles per token, tokens/s):")
        print(f"  compute lanes, {b['lanes']} MACs per cycle: {b['lanes_cycles']:,.0f}, "
              f"{b['lanes_tokens_per_s']:,.0f}{binds.get('lanes', '')}")
        print(f"  weight memory, {b['words_per_cycle']} word per cycle ({b['matrix_words']:,} padded words): "
              f"{b['memory_cycles']:,.0f}, {b['memory_tokens_per_s']:,.0f}{binds.get('memory', '')}")
        print(f"  host link, weights streamed: {b['streamed_bytes']:,} bytes per token at "
              f"{b['link_bytes_per_s']:,.0f} payload bytes/s (8N1, {100 * b['link_efficiency']:.1f} % of a STREAM "
              f"frame): {b['link_cycles']:,.0f}, {b['link_tokens_per_s']:,.2f}{binds['link']}")
        print(f"  the estimate is {low / b['lanes_cycles']:.2f}–{high / b['lanes_cycles']:.2f} × the lanes bound, "
              f"{low / b['memory_cycles']:.2f}–{high / b['memory_cycles']:.2f} × the memory bound")
    res = report["resources"]
    if res["budget"] is not None:
        plan = res["budget"]
        print(f"resources: ESTIMATE, {res['source']}; the planned fused core:")
        print("  " + ", ".join(f"{kind} {used:,} of {plan['available'][kind]:,} ({100 * plan['headroom'][kind]:+.0f} % "
                               "headroom)" for kind, used in plan["total"].items()))
        built = res["built_core"]
        print(f"  the core as built ({built['point']}) does not place on the UP5K: Yosys counts " +
              ", ".join(f"{kind} {n:,}" for kind, n in built["yosys_bound"].items()))
    print(f"  {res['summary']}")


def run(args):
    from .models import resolve_model

    report = estimate(args.board, resolve_model(args.model))
    if args.json == "-":
        print(json.dumps(report, indent=1, ensure_ascii=False))
        return 0
    _print(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
