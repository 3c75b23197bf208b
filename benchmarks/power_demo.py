"""The power ESTIMATE of the iCEBreaker accelerator on the demo model, from simulated switching activity.

    python benchmarks/power_demo.py [--tokens 8] [--out power_demo.json]

Builds the iCEBreaker's virtual board with switching-activity output (Verilator ``--trace-saif``), runs two sessions —
load the demo model, a one-token prompt, then ``--tokens`` greedy tokens, and the same with none generated — and
prices the difference of their SAIFs, the activity of the generated tokens alone, with the coefficients of
``host/data/power_coefficients.json`` (:func:`mmfree.host.power.estimate_power`: P10/P50/P90 of the FPGA core and the
board, pJ per ternary MAC, tokens per joule). Cycles per token are the device's own (its DONE counts). Everything it
reports is an ESTIMATE (docs/power.md: the method and its limits).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from mmfree.host.power import activity, estimate_power, read_saif
from mmfree.host.models import resolve_model
from mmfree.host.runtime import Accelerator
from mmfree.host.tokenizer import make_tokenizer
from mmfree.host.transport import SIM_REPLY_TIMEOUT, SocketTransport
from mmfree.sim.boards import BOARDS


def session(board, saif_path, tokens):
    """One session writing ``saif_path``: load, a one-token prompt, ``tokens`` greedy tokens; the device's cycles of
    the generation (DONE) and the ids."""
    model = resolve_model("demo")
    prompt = make_tokenizer(model.tokenizer).encode("R")
    with board.serve(dump_path=saif_path) as running:
        with Accelerator(SocketTransport(running.connect(), reply_timeout=SIM_REPLY_TIMEOUT), progress=False) as acc:
            acc.load(model)
            ids = list(acc.generate(prompt, tokens))
            cycles = acc.stats.total_cycles
    return cycles, ids, model.config.ternary_weights


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8, help="generated tokens priced (default 8)")
    parser.add_argument("--out", default="power_demo.json")
    args = parser.parse_args(argv)

    board = BOARDS["icebreaker"].virtual_board(dump="saif")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {n: session(board, Path(tmp) / f"run{n}.saif", n) for n in (args.tokens, 0)}
        diff = read_saif(Path(tmp) / f"run{args.tokens}.saif") - read_saif(Path(tmp) / "run0.saif")
    cycles_per_token = (runs[args.tokens][0] - runs[0][0]) / args.tokens
    per_token = activity(diff, board.verilog_path.read_text()).per(args.tokens)
    clock = BOARDS["icebreaker"].clk_hz
    report = estimate_power(per_token, board="icebreaker", clock_hz=clock, cycles_per_token=cycles_per_token,
                            macs_per_token=runs[0][2])
    result = {"label": "ESTIMATE", "workload": f"demo model, 1-token prompt, {args.tokens} greedy tokens, less the "
              "same run with none", "tokens": runs[args.tokens][1], "cycles_per_token": cycles_per_token,
              "clock_hz": clock, "activity_per_token": per_token.__dict__, **report,
              "wall_s": time.perf_counter() - start}
    Path(args.out).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps({k: result[k] for k in result if k not in ("activity_per_token",)}, indent=1, default=str))


if __name__ == "__main__":
    main()
