"""The ``mmfree`` command.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``; only the chosen
command's module is imported, so that ``mmfree generate`` works where no HDL tools (or no torch) are installed.
"""

import argparse
import importlib
import sys

__all__ = ["main"]

#: subcommand → (module under mmfree.host, one-line help)
COMMANDS = {
    "doctor": ("doctor", "show which toolchain parts are present, and how to get the missing ones"),
    "compile": ("compile_cmd", "compile a model for a board's core: the program, its weight image, whether it fits"),
    "diverge": ("diverge_cmd", "find the first instruction at which the core (in Verilator) departs from the model"),
    "bench": ("bench_cmd", "measure cycles per token on the virtual board: tokens/s, MAC/s, the bounds, the build's Fmax"),
    "estimate": ("estimate_cmd", "ESTIMATE cycles, tokens/s, bounds and resources of a model on a board, no build"),
    "generate": ("generate_cmd", "generate text from a model"),
    "run": ("run_cmd", "load a model onto a device (a board, the virtual board, golden://) and stream text from it"),
    "train": ("train_cmd", "quantization-aware training of a small model on a text file (needs the train extra)"),
    "build": ("build_cmd", "build a board's bitstream: utilization, Fmax against its clock, a manifest"),
    "program": ("program_cmd", "load a bitstream onto a board (openFPGALoader or iceprog)"),
    "selftest": ("selftest_cmd", "bring-up self-test of a device: link, digests, memory, a known answer, tokens"),
}


def _parser(command=None):
    """The argument parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(prog="mmfree", description="FPGA accelerators for MatMul-free language models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, add_help=name == command)
        if name == command:
            importlib.import_module(f"mmfree.host.{module}").add_arguments(p)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = _parser(command if command in COMMANDS else None).parse_args(argv)
    module = importlib.import_module(f"mmfree.host.{COMMANDS[args.command][0]}")
    try:
        return module.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"mmfree {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
