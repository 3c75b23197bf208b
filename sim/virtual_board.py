"""The virtual board: a board top simulated cycle-accurately by Verilator, its link served on a local socket.

The same host code that talks to a board over a serial port talks to the virtual board over TCP: bytes written to
the socket enter the device, bytes the device sends come back. The simulation loop is C++ (``virtual_board.cpp``,
compiled with the Verilator model), so no Python runs per cycle.

Two link modes, chosen by the top's ports:

- **fast** (``rx``/``tx``: 8-bit ``lib.stream`` ports): bytes enter behind the UART PHY, one per cycle at most;
- **uart** (``uart_rx``/``uart_tx`` pins): the loop drives and samples the pins bit by bit at ``clocks_per_bit``,
  through the device's real PHY.

An optional ``idle`` output (1 while the device has nothing to do) lets the loop sleep while no byte is waiting.
Builds are cached in ``cache_dir("vboard", <hash>)`` by the Verilog, the mode and the harness source; the first
build of a design takes about a minute (progress is reported through ``progress``).
"""

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from ..host import toolchain
from .runner import emit_verilog

__all__ = ["VirtualBoard", "VirtualBoardError", "Session"]

_BUILD_ARGS = ("-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "unique")


class VirtualBoardError(RuntimeError):
    """The virtual board could not be built or started; the message has the end of its log."""


class VirtualBoard:
    """A board top in Verilator behind a TCP socket on 127.0.0.1.

    Parameters
    ----------
    design : amaranth.lib.wiring.Component
        The top: ``rx``/``tx`` byte streams (fast mode) or ``uart_rx``/``uart_tx`` pins (uart mode), optionally
        ``idle``; its clock domain ``sync`` (``clk``, ``rst``).
    name : str
        Names the Verilog top and the build.
    clocks_per_bit : int, optional
        uart mode: the PHY's clocks per bit (required with uart pins).
    """

    def __init__(self, design, *, name, clocks_per_bit=None):
        members = design.signature.members
        if "uart_rx" in members and "uart_tx" in members:
            if not isinstance(clocks_per_bit, int) or clocks_per_bit < 4:
                raise ValueError(f"a top with uart pins needs clocks_per_bit ≥ 4, got {clocks_per_bit!r}")
            self.mode = "uart"
        elif "rx" in members and "tx" in members:
            self.mode = "fast"
        else:
            raise ValueError("the top needs rx/tx byte streams (fast mode) or uart_rx/uart_tx pins (uart mode)")
        self.design, self.name, self.clocks_per_bit = design, name, clocks_per_bit
        self.has_idle = "idle" in members

    def build(self, progress=print):
        """The simulator executable, built now unless cached; ``progress`` (a print-like function, or None) hears
        about a build."""
        top = f"{self.name}_top"
        text = emit_verilog(self.design, top)
        harness = resources.files(__package__).joinpath("virtual_board.cpp").read_text()
        defines = [f"-DVBOARD_UART={self.clocks_per_bit}"] if self.mode == "uart" else []
        defines += ["-DVBOARD_HAS_IDLE"] if self.has_idle else []
        env = toolchain.verilator_env()
        key = hashlib.sha256(json.dumps([text, harness, defines, _BUILD_ARGS,
                                         toolchain.find_verilator().version]).encode()).hexdigest()[:32]
        cache = toolchain.cache_dir("vboard")
        binary = cache / key / "vboard"
        if binary.is_file():
            return binary
        if progress:
            progress(f"building the virtual board {self.name} ({self.mode} link) with Verilator; "
                     "this takes about a minute the first time")
        scratch = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=cache))
        try:
            (scratch / f"{top}.v").write_text(text)
            (scratch / "main.cpp").write_text(harness)
            command = [str(toolchain.find_verilator().bin_dir / "verilator"), "--cc", "--exe", "--build",
                       "-j", str(os.cpu_count() or 1), *_BUILD_ARGS, "--top-module", top, "--prefix", "Vtop",
                       "-o", "vboard", "-CFLAGS", " ".join(["-O2", *defines]), f"{top}.v", "main.cpp"]
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
    def serve(self, *, max_cycles=0, progress=print, seed=1):
        """Build (if needed) and start the simulator; yields a :class:`Session` whose ``port`` to connect to.

        The simulator serves one connection and stops when it closes; ``Session.stats`` then holds the simulated
        cycles and the wall time.
        """
        binary = self.build(progress)
        process = subprocess.Popen([str(binary), "--port", "0", "--max-cycles", str(max_cycles),
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
        """Wait for the simulator to end (after its connection closed) and read its statistics."""
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        for line in out.splitlines():
            if line.startswith("CYCLES "):
                _, cycles, _, seconds = line.split()
                self.stats = {"cycles": int(cycles), "seconds": float(seconds),
                              "cycles_per_second": int(cycles) / max(float(seconds), 1e-9)}
        return self.stats

