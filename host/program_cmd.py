"""``mmfree program``: load a bitstream onto a board with openFPGALoader or iceprog, whichever is installed.

The bitstream is the package's prebuilt one (``bitstreams/<board>/``) unless ``--bitstream`` names another (such as
``build/<board>/top.bin`` from ``mmfree build``). The iCEBreaker's is written to its SPI flash (it configures from
there at power-up); the ULX3S's into configuration SRAM (lost at power-off). Exit status 1, with what to install,
when no programmer is found.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "find_programmer"]

#: where each programmer comes from (neither is on PyPI)
_HOW_TO_GET = {"openFPGALoader": "apt-get install openfpgaloader, or https://github.com/trabucayre/openFPGALoader",
               "iceprog": "apt-get install fpga-icestorm"}


def add_arguments(parser):
    from .build import TARGETS

    parser.add_argument("--board", required=True, choices=list(TARGETS), help="the board attached")
    parser.add_argument("--bitstream", help="the bitstream file (default: the package's prebuilt one for the board)")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")


def find_programmer(target):
    """The first of a target's programmers that is installed, as a command line with ``{bitstream}`` unfilled.

    An environment variable (``OPENFPGALOADER``, ``ICEPROG``) names a programmer's executable where it is not on
    ``PATH``.

    Returns
    -------
    list of str or None
    """
    for command, variable, arguments in target.programmers:
        path = shutil.which(os.environ.get(variable) or command)
        if path is not None:
            return [path, *arguments]
    return None


def _bitstream(target, path):
    """The bitstream to load: ``path``, else the package's for the target."""
    from .build import BITSTREAMS

    if path is not None:
        bitstream = Path(path)
    else:
        manifest = BITSTREAMS / target.name / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"this package ships no bitstream for {target.name} yet: build one with "
                                    f"`mmfree build --board {target.name}` and pass "
                                    f"--bitstream build/{target.name}/top.*")
        bitstream = manifest.parent / json.loads(manifest.read_text())["bitstream"]
    if not bitstream.is_file():
        raise FileNotFoundError(f"no bitstream at {bitstream}")
    return bitstream


def run(args):
    from .build import TARGETS
    from .toolchain import ToolNotFoundError

    target = TARGETS[args.board]
    command = find_programmer(target)
    if command is None:
        tools = " or ".join(f"{command} ({_HOW_TO_GET[command]})" for command, _, _ in target.programmers)
        variables = " / ".join(variable for _, variable, _ in target.programmers)
        raise ToolNotFoundError(f"no programmer for {target.name} found: install {tools}, or set {variables} to "
                                "its path")
    bitstream = _bitstream(target, args.bitstream)
    command = [part.replace("{bitstream}", str(bitstream)) for part in command]
    print(" ".join(command), file=sys.stderr)
    if args.dry_run:
        return 0
    return subprocess.run(command).returncode
