"""``mmfree diverge``: the first instruction at which the core (in Verilator) departs from the instruction-level
model on a token, with the slot and element where it shows."""

import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("--model", required=True,
                        help="a shipped model's name (e.g. demo), a container file, or an HF MMfreeLM folder")
    parser.add_argument("--board", default="icebreaker", help="whose core configuration (default icebreaker)")
    parser.add_argument("--token", type=int, default=0, help="the token id to run (default 0)")


def run(args):
    from ..sim.diverge import first_divergence
    from .compiler import CORES, compile_model
    from .models import resolve_model

    if args.board not in CORES:
        raise ValueError(f"no core configuration for board {args.board!r}; known: {', '.join(CORES)}")
    program = compile_model(resolve_model(args.model), CORES[args.board])
    result = first_divergence(program, args.token, progress=lambda line: print(line, file=sys.stderr))
    if result is None:
        print(f"no divergence: the core equals the model on token {args.token} (slots, state, logits, token)")
        return 0
    index, name, message = result
    print(f"first divergence at instruction {index}: {name}\n{message}")
    return 1
