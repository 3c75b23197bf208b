"""Runs a cocotb bench over an Amaranth design in Verilator, with a shared build cache.

:func:`run_bench` emits the design as Verilog (top ``<name>_top``), builds it with Verilator through
``cocotb_tools.runner`` unless an identical build is cached, runs the bench module with a fresh seed, and raises
when any of its cocotb tests fails. Pytest tests call it; it works outside pytest too. Memories that Amaranth would
start at zero start with random words, so that read-before-write bugs show.

Builds are cached in ``cache_dir("verilator", <key>)`` (``~/.cache/mmfree/verilator/`` unless ``$MMFREE_CACHE``
says otherwise), keyed by a hash of the Verilog, the build flags and the Verilator and cocotb installations. A
file lock per key and an atomic rename let parallel pytest workers share the cache: one builds, the others wait
and reuse. Delete the directory to drop the cache.

Environment variables:

- ``MMFREE_WAVES``: ``1`` or ``vcd`` records ``dump.vcd`` in the run directory, ``fst`` records ``dump.fst``
  (FST needs the lz4 and zlib development files: ``apt-get install liblz4-dev zlib1g-dev``);
- ``COCOTB_RANDOM_SEED``: replays a run; the seed seeds Python's ``random`` in the bench and Verilator's random
  initial values (``+verilator+seed``);
- ``MMFREE_CACHE``: where the cache lives.
"""

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import cocotb_tools.config
from amaranth.back import verilog
from cocotb_tools.runner import get_runner

from ..host import toolchain
from .benches import PARAMS_ENV

__all__ = ["BUILD_ARGS", "PLUSARGS", "BenchError", "BenchFailure", "BenchRun", "emit_verilog", "run_bench"]

#: Verilator build flags of every bench: warnings are not fatal, and X values (variables without an initial value,
#: explicit X assignments) become values drawn at start-up
BUILD_ARGS = ("-Wno-fatal", "--x-assign", "unique", "--x-initial", "unique")
#: simulator flags of every run: those values are random (and +verilator+seed picks them)
PLUSARGS = ("+verilator+rand+reset+2",)

# Amaranth gives every memory initial contents, zeros when none were asked for, which Yosys writes as an `initial`
# block assigning each word. `_random_init` turns a block of zeros only into a loop that fills each word from
# $urandom (seeded by +verilator+seed). Verilator's own random reset would give every word the same value.
_ZERO_INIT = re.compile(r"^ *initial begin\n((?: *\S+ ?\[\d+\] = \d+'h0+;\n)+) *end\n", re.MULTILINE)
_ZERO_WORD = re.compile(r" *(\S+ ?)\[(\d+)\] = (\d+)'h0+;")

_WAVES = {"": None, "0": None, "1": "vcd", "vcd": "vcd", "fst": "fst"}


class BenchError(RuntimeError):
    """The bench could not run: the build failed or the simulator ended without results."""


class BenchFailure(AssertionError):
    """At least one cocotb test of the bench failed; the message names each with its reason."""


@dataclass(frozen=True)
class BenchRun:
    """A bench run that passed.

    Attributes
    ----------
    seed : int
        Its random seed (``COCOTB_RANDOM_SEED`` replays it).
    run_dir : Path
        Where it ran: the results XML and any waveform.
    waves : Path or None
        The waveform file, when recorded.
    """
    seed: int
    run_dir: Path
    waves: "Path | None"


def _random_init(block):
    words = _ZERO_WORD.findall(block[1])
    memory, _, width = words[0]
    if any(word[0] != memory for word in words) or [int(word[1]) for word in words] != list(range(len(words))):
        return block[0]
    value = "{" + ", ".join(["$urandom"] * -(-int(width) // 32)) + "}"
    return f"  initial for (int i = 0; i < {len(words)}; i++) {memory}[i] = {width}'({value});\n"


def emit_verilog(design, top, *, ports=None, random_memories=True):
    """Verilog of ``design`` with top module ``top``; with ``random_memories``, memories that Amaranth would start at
    zero start with random words (``$urandom``, seeded by ``+verilator+seed``)."""
    text = verilog.convert(design, name=top, ports=ports, emit_src=False)
    return _ZERO_INIT.sub(_random_init, text) if random_memories else text


@contextlib.contextmanager
def _environ(overrides):
    # cocotb's Verilator runner finds `verilator` on this process's PATH and copies this process's environment
    # into its subprocesses, where $WAVES and $COCOTB_RANDOM_SEED override its `waves` and `seed` arguments.
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _locked(path):
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _waves_format(waves):
    if waves is None:
        waves = os.environ.get("MMFREE_WAVES", "").lower()
    elif waves is True:
        waves = "vcd"
    elif waves is False:
        waves = ""
    if waves not in _WAVES:
        raise ValueError(f"waves must be a bool, 'vcd' or 'fst' (or $MMFREE_WAVES 0, 1, vcd, fst), got {waves!r}")
    return _WAVES[waves]


def _build(verilog_text, top, build_args, waves):
    """The directory of a Verilator build of ``verilog_text``: cached, or built now."""
    env = toolchain.verilator_env()
    key = hashlib.sha256(json.dumps({
        "verilog": verilog_text,
        "top": top,
        "build_args": build_args,
        "waves": waves,
        "verilator": [env["VERILATOR_ROOT"], toolchain.find_verilator().version],
        "cocotb": [str(cocotb_tools.config.libs_dir), importlib.metadata.version("cocotb")],
    }).encode()).hexdigest()[:32]
    cache = toolchain.cache_dir("verilator")
    build_dir = cache / key
    if (build_dir / top).is_file():
        return build_dir
    with _locked(cache / f"{key}.lock"):
        if (build_dir / top).is_file():
            return build_dir
        shutil.rmtree(build_dir, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".tmp", dir=cache))
        try:
            source = scratch / f"{top}.v"
            source.write_text(verilog_text)
            log = scratch / "build.log"
            try:
                with _environ({**env, "WAVES": "1" if waves else "0"}):
                    get_runner("verilator").build(
                        sources=[source], hdl_toplevel=top, build_dir=scratch, build_args=build_args,
                        waves=bool(waves), log_file=log)
            except RuntimeError as error:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.exists() else ""
                hint = "\nFST waveforms need: apt-get install liblz4-dev zlib1g-dev" if waves == "fst" else ""
                raise BenchError(f"Verilator build of {top} failed ({error}); end of its log:\n{tail}{hint}") \
                    from None
            os.rename(scratch, build_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return build_dir


def _failures(results):
    """(number of tests, one text per failed or errored test) from a cocotb results XML file."""
    cases = list(ElementTree.parse(results).getroot().iter("testcase"))
    failures = []
    for case in cases:
        for outcome in [*case.findall("failure"), *case.findall("error")]:
            detail = (outcome.text or "").strip() or outcome.get("message", "")
            failures.append(f"{case.get('classname')}.{case.get('name')}:\n{detail}")
    return len(cases), failures


def run_bench(design, *, name, test_module, params=None, ports=None, build_args=(), random_memories=True,
              waves=None, seed=None, run_dir=None):
    """Build ``design`` with Verilator (or reuse a cached build) and run a cocotb bench module on it.

    Parameters
    ----------
    design : amaranth.lib.wiring.Component or Elaboratable
        The unit under test, elaborated without a platform.
    name : str
        Names the Verilog top ``<name>_top``; a Verilog identifier.
    test_module : str
        Dotted name of the cocotb test module, e.g. ``"mmfree.sim.benches.trit_decoder"``.
    params : dict, optional
        JSON-serialisable parameters; the bench reads them with :func:`mmfree.sim.benches.params`.
    ports : optional
        Ports for :func:`amaranth.back.verilog.convert`; only for designs that are not components.
    build_args : sequence of str
        Verilator flags beyond :data:`BUILD_ARGS`.
    random_memories : bool
        Fill memories whose initial contents are all zero (Amaranth's default) with random words instead, as a
        RAM that the bitstream does not load (iCE40 SPRAM) starts.
    waves : bool or {"vcd", "fst"}, optional
        Record a waveform; ``True`` means VCD. Default: ``$MMFREE_WAVES``.
    seed : int, optional
        Random seed. Default: ``$COCOTB_RANDOM_SEED``, else a fresh one.
    run_dir : path-like, optional
        Where to run (pytest's ``tmp_path`` is a good choice). Default: a new temporary directory.

    Returns
    -------
    BenchRun

    Raises
    ------
    BenchFailure
        A cocotb test failed; the message has each failure, the seed and the run directory.
    BenchError
        The build failed, or the simulator ended without writing results.
    mmfree.host.toolchain.ToolNotFoundError
        Verilator or a tool it needs is missing.
    """
    __tracebackhide__ = True  # pytest shows the message, not this function
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"name must be a Verilog identifier, got {name!r}")
    top = f"{name}_top"
    waves = _waves_format(waves)
    build_args = [*BUILD_ARGS, *build_args, *(["--trace-fst"] if waves == "fst" else [])]
    verilog_text = emit_verilog(design, top, ports=ports, random_memories=random_memories)
    build_dir = _build(verilog_text, top, build_args, waves)

    if seed is None:
        seed = os.environ.get("COCOTB_RANDOM_SEED") or random.SystemRandom().randrange(1, 2**31)
    seed = int(seed)
    run_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix=f"mmfree-{name}-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    results = run_dir / "results.xml"
    waves_file = run_dir / f"dump.{waves}" if waves else None
    print(f"bench {name}: seed {seed}, run directory {run_dir}" + (f", waves {waves_file}" if waves else ""),
          flush=True)

    with _environ({"WAVES": "1" if waves else "0", "COCOTB_RANDOM_SEED": str(seed)}):
        try:
            get_runner("verilator").test(
                test_module=test_module, hdl_toplevel=top, hdl_toplevel_lang="verilog", build_dir=build_dir,
                test_dir=run_dir, results_xml=str(results), seed=seed, waves=bool(waves),
                plusargs=[*PLUSARGS, f"+verilator+seed+{seed}"],
                extra_env={PARAMS_ENV: json.dumps(params or {})})
        except (SystemExit, RuntimeError):
            pass  # failing tests (under pytest the runner exits) or a crashed simulator: the results file tells

    replay = f"seed {seed} (replay: COCOTB_RANDOM_SEED={seed}), run directory {run_dir}"
    if not results.is_file():
        raise BenchError(f"bench {name}: the simulator ended without writing results (its output says why); {replay}")
    count, failures = _failures(results)
    if count == 0:
        raise BenchError(f"bench {name}: no cocotb test ran from {test_module}; {replay}")
    if failures:
        raise BenchFailure(f"bench {name}: {len(failures)} of {count} cocotb tests failed; {replay}\n\n"
                           + "\n\n".join(failures))
    return BenchRun(seed=seed, run_dir=run_dir, waves=waves_file)
