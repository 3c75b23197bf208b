"""Cycles per token of the planned UP5K micro core, from its cycle-exact simulator, with a profile by routine.

Usage::

    python benchmarks/micro_cycles.py                         # the demo model, 5 tokens
    python benchmarks/micro_cycles.py --model random:V=100,H=192,L=1,I=256,seed=3 --tokens 3 --json out.json

Runs :class:`mmfree.host.micro_core.MicroCore` (the firmware on the engine's simulator, with the matvec and memory
models) token by token, checks every token's answer, slot X and the head's accumulators against
:class:`mmfree.host.machine.Machine`, and reports the cycles per token, the matvec's share, the firmware's size and
where the cycles go (each operation's cycles charged to the routine whose label precedes it). These are simulator
cycles of firmware whose engine gateware is checked against the simulator (tests/test_micro_engine.py); the core
around the engine is not built yet (docs/micro.md), so the figures are a model's, not a board's.
"""

import argparse
import bisect
import collections
import json
import sys

import numpy as np

from mmfree.host.compiler import CORES, compile_model
from mmfree.host.firmware import Sp
from mmfree.host.isa import Slot
from mmfree.host.machine import Machine
from mmfree.host.micro_core import MicroCore
from mmfree.host.models import resolve_model


def routine_of(firmware):
    """A function from a firmware address to the routine it belongs to: the nearest label at or before it, cut to
    its longest prefix (at ``_``) that names a routine; waiting for the matvec counts apart."""
    routines = {*firmware.LEAVES, *firmware.SCALARS, "run", "config", "embedding", "bitlinear", "matvec_wait"}
    starts = sorted((address, name) for name, address in firmware.a.labels.items())
    addresses = [address for address, _ in starts]

    def owner(pc):
        parts = starts[bisect.bisect_right(addresses, pc) - 1][1].split("_")
        return next("_".join(parts[:k]) for k in range(len(parts), 0, -1) if "_".join(parts[:k]) in routines)
    return owner


def measure(spec, tokens, core_name="icebreaker"):
    model = resolve_model(spec)
    program = compile_model(model, CORES[core_name])
    core, ref = MicroCore(program), Machine(program)
    owner = routine_of(core.firmware)
    profile, per_token, token = collections.Counter(), [], 0
    h = model.config.hidden_size

    def charge(pc, cycles):
        profile[owner(pc)] += cycles

    for _ in range(tokens):
        acc, _ = ref.run(token)
        matvec_before = core.matvec_cycles
        answer, cycles = core.run(token, on_step=charge)
        if answer != int(np.argmax(acc[0])) or not (core.slot(Sp.X, h) == ref.slots[Slot.X][0][0]).all() \
                or not (core.slot(Sp.ACC, acc.shape[1]) == acc[0]).all():
            raise SystemExit(f"{spec}: the micro core departs from Machine at token {token}")
        per_token.append({"token": token, "cycles": cycles,
                          "matvec_cycles": core.matvec_cycles - matvec_before})
        token = answer
    total = sum(profile.values())
    weights = model.lm_head.codes.size + sum(p.codes.size for layer in model.layers for p in
                                             (layer.i_proj, layer.f_proj, layer.g_proj, layer.o_proj,
                                              layer.gate_proj, layer.down_proj))
    mean = total / tokens
    return {"model": spec, "core": core_name, "tokens": tokens, "firmware_words": len(core.firmware.words),
            "ternary_weights": weights, "cycles_per_token": round(mean, 1),
            "spram_bound_cycles": weights / 40, "ratio_to_spram_bound": round(mean / (weights / 40), 2),
            "matvec_cycles_per_token": per_token[-1]["matvec_cycles"], "per_token": per_token,
            "profile": {name: {"cycles_per_token": round(cycles / tokens, 1), "share": round(cycles / total, 4)}
                        for name, cycles in profile.most_common()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--tokens", type=int, default=5)
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    report = measure(args.model, args.tokens)
    print(f"{report['model']}: {report['cycles_per_token']:,.0f} cycles per token "
          f"({report['ratio_to_spram_bound']} × the SPRAM bound, matvec {report['matvec_cycles_per_token']:,}), "
          f"firmware {report['firmware_words']} words", file=sys.stderr)
    for name, row in report["profile"].items():
        print(f"  {name:14s} {row['cycles_per_token']:9,.0f}  {100 * row['share']:5.1f} %", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=1)


if __name__ == "__main__":
    main()
