"""How often a BITLINEAR's input shift ``k`` repeats from one token to the next, as JSON.

    python benchmarks/shift_repeats.py --data tinyshakespeare.txt [--model demo] [--chars 400] [--out FILE]

``k`` (``Arithmetic.reduce_shift`` of the input vector: the cut of the input to reduce_bits, from its ``max|x|``) must
be known before the pass that forms ``max|p|`` can run. Forming ``max|p|`` in the drain that writes the input instead
(docs/core.md) would need ``k`` before that vector is complete: guessing it as the last token's value pays only where
it repeats. Runs the instruction-level model (:class:`~mmfree.host.machine.Machine`, bit-exact with the core) over the
first ``--chars`` characters of the text, one token each, and reports for every BITLINEAR the fraction of tokens whose
``k`` equals the token before's, and the values seen.
"""

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from mmfree.host.compiler import compile_model
from mmfree.host.isa import Opcode, Slot
from mmfree.host.machine import Machine
from mmfree.host.models import resolve_model
from mmfree.host.tokenizer import make_tokenizer
from mmfree.sim.diverge import instruction_names

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--data", required=True, help="text whose characters are run, one token each")
    parser.add_argument("--chars", type=int, default=400)
    parser.add_argument("--out", default="shift_repeats.json")
    args = parser.parse_args(argv)

    model = resolve_model(args.model)
    program = compile_model(model)
    names = instruction_names(program)
    machine = Machine(program, trace=True)
    tokens = make_tokenizer(model.tokenizer).encode(Path(args.data).read_text()[:args.chars])
    shifts = {}   # pc → k per token
    for token in tokens:
        machine.run(token)
        slots = None   # the slots before each instruction: those after the one before it
        for pc, (opcode, fields, after, _) in enumerate(machine.trace):
            if opcode is Opcode.BITLINEAR and slots is not None:
                v = slots[Slot(fields["src"])][0]
                shifts.setdefault(pc, []).append(int(machine.arith.reduce_shift(np.asarray(v).reshape(1, -1))[0, 0]))
            slots = after
    report = {"model": args.model, "tokens": len(tokens), "instructions": []}
    for pc, ks in sorted(shifts.items()):
        ks = np.array(ks)
        report["instructions"].append({"pc": pc, "name": names[pc], "repeats": float(np.mean(ks[1:] == ks[:-1])),
                                       "values": dict(sorted(Counter(ks.tolist()).items()))})
    Path(args.out).write_text(json.dumps(report, indent=1))
    for entry in report["instructions"]:
        print(f"{entry['name']:32s} k repeats {100 * entry['repeats']:5.1f} %  values {entry['values']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
