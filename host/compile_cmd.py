"""``mmfree compile``: compile a model for a board's core; report how it fills the core, or why it does not fit."""

import json
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    from .compiler import CORES

    parser.add_argument("--model", required=True,
                        help="a shipped model's name (e.g. demo), a container file, or an HF MMfreeLM folder")
    parser.add_argument("--board", default="icebreaker", choices=sorted(CORES),
                        help="the board whose core to compile for (default icebreaker)")
    parser.add_argument("--out", help="write the program (instructions and weight image) to this file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--items", action="store_true", help="list the weight image item by item")
    parser.add_argument("--stream", action="store_true",
                        help="stream the matrices and embedding rows over the link (a core with a weight stream)")


def _summary(program):
    """Words of the weight image by kind, the words streamed per token, and the program's size."""
    from .estimate import estimate_cycles

    kinds = {}
    for name, (_, words) in program.layout.items():
        kind = ("ternary matrices" if name.endswith("trits") else "embedding" if name.startswith("embedding")
                else "norm constants and 1 − lb")
        kinds[kind] = kinds.get(kind, 0) + words
    core = program.core
    return {"board": core.name, "instructions": len(program.instructions),
            "program_capacity": core.program_instructions, "weight_words": int(len(program.image)),
            "weight_capacity": core.weight_words, "by_kind": kinds, "streamed_words_per_token": program.pass_length,
            "cycles_per_token_estimate": estimate_cycles(program)}


def run(args):
    from .compiler import CORES, compile_model
    from .models import resolve_model

    model = resolve_model(args.model)
    program = compile_model(model, CORES[args.board], stream=args.stream)
    report = _summary(program)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        c = model.config
        print(f"{args.model}: V={c.vocab_size} H={c.hidden_size} L={c.num_layers} I={c.intermediate_size} "
              f"fits the {args.board} core")
        for kind, words in report["by_kind"].items():
            print(f"  {kind:28s} {words:7,} words ({8 * words:,} bytes)")
        used, total = report["weight_words"], report["weight_capacity"]
        print(f"  {'weight memory':28s} {used:7,} of {total:,} words ({100 * used / total:.1f} %)")
        print(f"  {'program':28s} {report['instructions']:7,} of {report['program_capacity']} instructions")
        if program.pass_length:
            print(f"  {'streamed per token':28s} {program.pass_length:7,} words ({8 * program.pass_length:,} bytes)")
        cycles = report["cycles_per_token_estimate"]
        low, high = cycles["total"]
        print(f"  cycles per token: ESTIMATE {low:,}–{high:,} ({low / cycles['bound']:.2f}–"
              f"{high / cycles['bound']:.2f} × the weight-memory bound of {cycles['bound']:,.0f}); the core as built, "
              "host/estimate.py")
        if args.items:
            print(program.memory_table())
    if args.out:
        program.save(args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
