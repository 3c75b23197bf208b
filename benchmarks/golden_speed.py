"""Golden-model decode speed on a random model of a given shape (default: 370M, H=1024 L=24 I=2816 V=32000).

    python benchmarks/golden_speed.py [--tokens 32] [--out golden_speed.json]

Reports greedy decode tokens/s (after one warm-up token) with the machine's core count; JSON out.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from mmfree.host.golden import GoldenModel
from mmfree.host.model import ModelConfig, random_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--intermediate", type=int, default=2816)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--out", help="write the JSON here (default: stdout)")
    args = parser.parse_args(argv)

    config = ModelConfig(args.vocab, args.hidden, args.layers, args.intermediate)
    start = time.perf_counter()
    golden = GoldenModel(random_model(config, seed=0))
    setup = time.perf_counter() - start
    logits, state = golden.forward([1])
    start = time.perf_counter()
    for _ in range(args.tokens):
        logits, state = golden.forward([int(np.argmax(logits[-1]))], state)
    elapsed = time.perf_counter() - start
    result = {
        "config": config.to_dict(), "ternary_weights": config.ternary_weights, "tokens": args.tokens,
        "seconds": elapsed, "tokens_per_s": args.tokens / elapsed, "setup_seconds": setup,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "numpy": np.__version__},
    }
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    print(f"golden decode: {result['tokens_per_s']:.1f} tokens/s "
          f"({config.ternary_weights / 1e6:.0f} M ternary weights, {os.cpu_count()} cores)", file=sys.stderr)


if __name__ == "__main__":
    main()
