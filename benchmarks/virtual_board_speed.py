"""Simulated cycles per second of the virtual board ``sim://icebreaker`` on the demo model generating tokens.

    python benchmarks/virtual_board_speed.py [--tokens 20] [--prompt "ROMEO:"] [--link fast] [--runs 1]
                                             [--out virtual_board_speed.json]

Each run starts the board (:meth:`VirtualBoard.serve`, the build reused from the cache; a first build is done before
any timing), connects the runtime over its socket as ``sim://`` does, loads the model, and generates ``--tokens``
tokens greedily after the prompt. Two rates per run:

- **compute**: the device's cycles of the generation (the sum of its DONE cycle counts, prompt and tokens) over the
  host's wall seconds waiting for the GENERATE and NEXT answers (:attr:`Accelerator.stats`). The image load is in
  neither. The wall seconds also hold the host's turn-around between answers (link round trips, Python, the board
  asleep meanwhile), so the rate slightly underestimates the simulator's;
- **session**: every simulated cycle of the session (load, generation, link, idle) over the simulator's wall seconds
  from connection to close (``Session.stats``); ``active_cycles_per_second`` leaves out the seconds it slept while the
  board was idle.

The load average (1, 5, 15 min) is recorded at the start and the end: this is a measurement on a shared machine.
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from mmfree.host import toolchain
from mmfree.host.models import resolve_model
from mmfree.host.runtime import Accelerator
from mmfree.host.tokenizer import make_tokenizer
from mmfree.host.transport import SIM_REPLY_TIMEOUT, SocketTransport
from mmfree.sim import virtual_board
from mmfree.sim.boards import BOARDS


def run_once(board, model, prompt, tokens):
    """One session: load ``model``, generate ``tokens`` tokens after ``prompt``; its measurements (dict)."""
    with board.serve(progress=None) as running:
        transport = SocketTransport(running.connect(), reply_timeout=SIM_REPLY_TIMEOUT)
        with Accelerator(transport, progress=False) as acc:
            start = time.perf_counter()
            acc.load(model)
            load_s = time.perf_counter() - start
            generated = list(acc.generate(prompt, tokens))
            stats = acc.stats
    session = running.stats
    return {
        "generated": generated,
        "load_wall_s": load_s,
        "compute_cycles": stats.total_cycles,
        "compute_wall_s": stats.wall_s,
        "compute_cycles_per_second": stats.total_cycles / stats.wall_s,
        "wall_s_per_token": stats.wall_s_per_token,
        "device_cycles_per_token": stats.cycles / stats.tokens,
        "session_cycles": session["cycles"],
        "session_wall_s": session["seconds"],
        "session_idle_wall_s": session["idle_seconds"],
        "session_cycles_per_second": session["cycles_per_second"],
        "active_cycles_per_second": session["active_cycles_per_second"],
    }


def summary(runs, key, best=max):
    """Best (``best`` of the values: ``max`` for rates, ``min`` for times), median and every value of ``key`` over
    the runs."""
    values = [run[key] for run in runs]
    return {"best": best(values), "median": statistics.median(values), "all": values}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--prompt", default="ROMEO:")
    parser.add_argument("--tokens", type=int, default=20, help="tokens to generate per run")
    parser.add_argument("--link", choices=("fast", "uart"), default="fast")
    parser.add_argument("--runs", type=int, default=1, help="sessions to measure (best and median reported)")
    parser.add_argument("--out", default="virtual_board_speed.json")
    args = parser.parse_args(argv)

    model = resolve_model(args.model)
    prompt = make_tokenizer(model.tokenizer).encode(args.prompt)
    board = BOARDS["icebreaker"].virtual_board(link=args.link)
    start = time.perf_counter()
    board.build()
    build_s = time.perf_counter() - start
    load_start = os.getloadavg()
    runs = []
    for index in range(args.runs):
        runs.append(run_once(board, model, prompt, args.tokens))
        run = runs[-1]
        print(f"run {index + 1}/{args.runs}: compute {run['compute_cycles_per_second'] / 1e6:.3f} M cycles/s, "
              f"session {run['session_cycles_per_second'] / 1e6:.3f} M cycles/s "
              f"({run['session_cycles']:,} cycles in {run['session_wall_s']:.1f} s), "
              f"{1e3 * run['wall_s_per_token']:.0f} ms/token wall, load {run['load_wall_s']:.1f} s", flush=True)
    load_end = os.getloadavg()
    result = {
        "board": "icebreaker", "link": args.link, "model": args.model, "prompt": args.prompt, "tokens": args.tokens,
        "runs": runs,
        "compute_cycles_per_second": summary(runs, "compute_cycles_per_second"),
        "session_cycles_per_second": summary(runs, "session_cycles_per_second"),
        "active_cycles_per_second": summary(runs, "active_cycles_per_second"),
        "wall_s_per_token": summary(runs, "wall_s_per_token", best=min),
        "loadavg_start": load_start, "loadavg_end": load_end, "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "verilator_version": toolchain.find_verilator().version,
        "verilator_flags": list(virtual_board.BUILD_ARGS), "cxx_flags": list(virtual_board.CXX_FLAGS),
        "build_or_cache_s": build_s,
        "method": __doc__[__doc__.index("Each run"):].strip(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    best, median = result["compute_cycles_per_second"]["best"], result["compute_cycles_per_second"]["median"]
    print(f"compute: best {best / 1e6:.3f}, median {median / 1e6:.3f} M cycles/s over {args.runs} run(s); "
          f"load average {load_start[0]:.2f} → {load_end[0]:.2f}; JSON in {args.out}")


if __name__ == "__main__":
    main()
