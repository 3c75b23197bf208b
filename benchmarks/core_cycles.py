"""Cycles per token of the core on a model, measured in Verilator (the core bench, compared bit for bit as it runs).

    python benchmarks/core_cycles.py [--model demo] [--tokens "ROMEO"] [--out core_cycles.json]

Runs the core bench (``mmfree.sim.benches.core``: every token's slots, state, logits and argmax checked against the
instruction-level model) on the model's program, and writes the cycles of each token, from taking the RUN command to
offering the answer, with the SPRAM bound (ternary weights ÷ 40) and the tokens/s they give at the board's clock.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from mmfree.host.compiler import CORES, compile_model
from mmfree.host.models import resolve_model
from mmfree.host.tokenizer import make_tokenizer
from mmfree.sim.diverge import run_program

#: the iCEBreaker core's configured clock (DESIGN.md: ≥ 30 MHz)
CLOCK_HZ = 30e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--tokens", default="ROMEO", help="text whose tokens are run, one RUN each")
    parser.add_argument("--out", default="core_cycles.json")
    args = parser.parse_args(argv)

    model = resolve_model(args.model)
    program = compile_model(model, CORES["icebreaker"])
    tokens = make_tokenizer(model.tokenizer).encode(args.tokens)
    weights = model.config.ternary_weights
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cycles = run_program(program, tokens, tmp)
        wall = time.perf_counter() - start
    bound = weights / 40
    mean = sum(cycles) / len(cycles)
    result = {
        "model": args.model, "tokens": tokens, "cycles": cycles, "mean_cycles": mean,
        "ternary_weights": weights, "spram_bound_cycles": bound, "ratio_to_bound": mean / bound,
        "clock_hz": CLOCK_HZ, "tokens_per_s_at_clock": CLOCK_HZ / mean, "bench_wall_s": wall,
        "note": "cycles measured in Verilator on the core as built (docs/core.md); bit-exact checks ran alongside",
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.model}: {mean:,.0f} cycles per token ({mean / bound:.2f} × the SPRAM bound {bound:,.0f}), "
          f"{CLOCK_HZ / mean:,.0f} tokens/s at {CLOCK_HZ / 1e6:.0f} MHz; JSON in {args.out}")


if __name__ == "__main__":
    main()
