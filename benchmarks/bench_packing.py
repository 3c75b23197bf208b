"""Throughput of ternary packing and unpacking, in millions of weights per second, for every format.

Usage: ``python benchmarks/bench_packing.py [--count 5e7] [--repeat 5] [--seed 0] [--out results.json]``.
Each figure is the best of ``--repeat`` runs (``time.perf_counter``) on ``--count`` uniformly random trits;
every run's output is checked against the input. A summary goes to stderr, the JSON to ``--out`` or stdout.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from mmfree.host.packing import FORMATS, pack, unpack


def best_time(function, repeat):
    """Smallest wall time of ``repeat`` calls and the result of the last one."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def run(count, repeat, seed):
    trits = np.random.default_rng(seed).integers(-1, 2, count, dtype=np.int8)
    results = {}
    for fmt in FORMATS:
        pack_s, data = best_time(lambda: pack(trits, fmt), repeat)
        unpack_s, back = best_time(lambda: unpack(data, count, fmt), repeat)
        if not np.array_equal(back, trits):
            raise RuntimeError(f"{fmt}: round trip does not reproduce the input")
        results[fmt] = {
            "pack_mweights_per_s": count / pack_s / 1e6,
            "unpack_mweights_per_s": count / unpack_s / 1e6,
            "pack_s": pack_s,
            "unpack_s": unpack_s,
            "packed_bytes": int(data.size),
        }
    return {
        "benchmark": "packing",
        "count": count,
        "repeat": repeat,
        "seed": seed,
        "results": results,
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpu_count": os.cpu_count(),
        },
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=lambda s: int(float(s)), default=50_000_000,
                        help="number of trits (accepts 5e7; default %(default)s)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement, best taken (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random trits (default %(default)s)")
    parser.add_argument("--out", help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    if args.count < 1 or args.repeat < 1:
        parser.error("--count and --repeat must be positive")

    report = run(args.count, args.repeat, args.seed)
    for fmt, r in report["results"].items():
        print(f"{fmt:>6}: pack {r['pack_mweights_per_s']:8.0f} M weights/s, "
              f"unpack {r['unpack_mweights_per_s']:8.0f} M weights/s", file=sys.stderr)
    text = json.dumps(report, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
