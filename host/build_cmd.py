"""``mmfree build``: a board's bitstream, with its report and manifest (docs/builds.md).

Exits with status 0 when the design fits and meets its clock with the 10 % margin, 1 otherwise (a failed step, a
design that does not fit, or one that misses timing: its bitstream is written but not released).
``--check-manifests`` instead recomputes the gateware hash of every shipped bitstream (CI).
"""

import dataclasses
import json
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    from .build import TARGETS

    parser.add_argument("--board", choices=list(TARGETS), help="the board to build for")
    parser.add_argument("--params", nargs="+", default=[], metavar="NAME=VALUE",
                        help="core parameters other than the board's (fields of CoreParams, e.g. rows=16)")
    parser.add_argument("--clock-mhz", type=float,
                        help="core clock in MHz, if not the board's (e.g. one that the design meets)")
    parser.add_argument("--out", help="build directory (default build/<board>)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    parser.add_argument("--release", action="store_true",
                        help="copy the bitstream and manifest into the package's bitstreams/<board>/ (only a build "
                             "that meets its clock with the margin)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--check-manifests", action="store_true",
                        help="recompute the gateware hash of every shipped bitstream; exit 1 on a mismatch")


_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _core(board, assignments):
    """The board's core parameters with ``NAME=VALUE`` assignments applied (values typed like the defaults)."""
    from .build import board_design

    core = board_design(board).core
    fields = {field.name: field for field in dataclasses.fields(core) if field.name != "name"}
    changes = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"--params takes NAME=VALUE with NAME one of {', '.join(fields)}; got {assignment!r}")
        kind = type(getattr(core, name))
        try:
            changes[name] = _BOOLS[value.lower()] if kind is bool else kind(value)
        except (KeyError, ValueError):
            raise ValueError(f"--params {name}: expected {kind.__name__}, got {value!r}") from None
    return dataclasses.replace(core, **changes)


#: back to the start of the line, and clear it
_REWRITE = "\r\x1b[K"


class _Progress:
    """Step lines on stderr: ``[n/5] step … done in s``; on a terminal an elapsed count while a step runs."""

    def __init__(self, stream=sys.stderr):
        from .build import STEPS

        self.steps, self.stream, self.tty = STEPS, stream, stream.isatty()

    def __call__(self, step, state, seconds):
        head = f"[{self.steps.index(step) + 1}/{len(self.steps)}] {step}"
        if state == "start":
            self.stream.write(f"{head} …" + ("" if self.tty else "\n"))
        elif state == "running" and self.tty:
            self.stream.write(f"{_REWRITE}{head} … {seconds:.0f} s")
        elif state == "done":
            self.stream.write((_REWRITE if self.tty else "") + f"{head}: {seconds:.1f} s\n")
        self.stream.flush()


def _print_report(result):
    report = result.report
    print(f"{report['board']}: bitstream {result.bitstream}, manifest {result.directory / 'manifest.json'}")
    print("utilization:")
    for name, value in report["utilization"].items():
        percent = "" if value["percent"] is None else f"  {value['percent']:5.1f} %"
        print(f"  {name:16} {value['used']:7,} / {value['available']:7,}{percent}")
    if report["fmax"] is None:
        print("timing: nextpnr reported no clock")
    else:
        verdict = "meets" if report["meets_margin"] else "MISSES"
        print(f"timing: Fmax {report['fmax']:.2f} MHz ({report['clock']}) for a {report['clock_mhz']:g} MHz clock: "
              f"margin {report['margin']:+.1%}, {verdict} the required +10 %")
    steps = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in report["steps_s"].items())
    print(f"build time: {report['build_s']:.0f} s ({steps})")
    print(f"gateware hash: {result.manifest['rtlil_sha256']}")


def _check_manifests():
    from .build import BITSTREAMS, check_manifests

    results = check_manifests()
    if not results:
        print(f"no shipped bitstreams under {BITSTREAMS}: nothing to check")
        return 0
    for path, ok, message in results:
        print(f"{'ok' if ok else 'STALE'}  {path}: {message}")
    return 0 if all(ok for _, ok, _ in results) else 1


def run(args):
    from .build import BuildError, build, release

    if args.check_manifests:
        return _check_manifests()
    if args.board is None:
        raise ValueError("--board is required (or --check-manifests)")
    core = _core(args.board, args.params) if args.params else None
    try:
        clk_hz = None if args.clock_mhz is None else round(args.clock_mhz * 1e6)
        result = build(args.board, args.out, core=core, clk_hz=clk_hz, seed=args.seed, progress=_Progress())
    except BuildError as error:
        print(f"mmfree build: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.report, indent=1))
    else:
        _print_report(result)
    if not result.report["meets_margin"]:
        print(f"mmfree build: the design misses its {result.report['clock_mhz']:g} MHz clock with the 10 % margin: "
              "the bitstream is written but will not run reliably", file=sys.stderr)
        return 1
    if args.release:
        print(f"released into {release(result)}")
    return 0
