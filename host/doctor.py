"""``mmfree doctor``: which parts of the toolchain are present, and how to get the missing ones.

Exits with status 1 when a required part is missing, 0 otherwise.
"""

import dataclasses
import json

from . import toolchain

__all__ = ["add_arguments", "run"]

_COLUMNS = ("tool", "status", "version", "path", "how to get it")


def add_arguments(parser):
    parser.add_argument("--json", action="store_true", help="print the findings as JSON instead of a table")


def _row(tool):
    if tool.found:
        status = "found"
    else:
        status = "MISSING" if tool.required else "missing (optional)"
    return (tool.name, status, tool.version or "-", tool.path or "-", "" if tool.found else tool.how_to_get)


def _table(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def run(args):
    tools = toolchain.find_tools()
    missing = [tool.name for tool in tools if tool.required and not tool.found]
    if args.json:
        print(json.dumps([dict(dataclasses.asdict(tool), found=tool.found) for tool in tools], indent=2))
    else:
        print(_table([_COLUMNS, *map(_row, tools)]))
        print()
        print(f"missing required tools: {', '.join(missing)}" if missing else "all required tools found")
    return 1 if missing else 0
