"""Power ESTIMATE of a token workload: switching activity from a SAIF file times per-resource energies, plus static
power, by Monte Carlo over the coefficients' ranges.

The method (docs/power.md):

1. :func:`parse_saif` reads a SAIF file (Verilator's ``--trace-saif``: per net bit ``T0``, ``T1`` and the toggle count
   ``TC`` over the ``DURATION``); ``Saif`` objects subtract, so that a run of N tokens minus a run of none leaves the
   tokens' activity.
2. :func:`activity` classifies the nets with the Verilog the SAIF was simulated from (Amaranth's emitted Verilog):
   a module holding a memory array and at most :data:`MEMORY_REGISTERS` registers is a memory model (its internals are
   not counted; its accesses are: cycles with ``cs`` high for a 16K × 16 single-port RAM, cycles with ``r_en`` high, or
   every cycle, for reads of a block RAM, cycles with a ``write__en`` bit high for writes); a module with an output
   ``product`` or ``acc`` and a ``*`` is a multiplier (the ``Mac16`` model): the toggles of its operand registers
   count; the nets of every other module count as flip-flop outputs (assigned with ``<=`` in a clocked block) or
   combinational nets, inputs and renamed nets (a child's output, a plain copy) excluded, so that each net is counted
   once, in the module that drives it. The approximation: RTL nets are not
   the placed design's nets (a LUT tree stands behind one RTL net of a shifter; synthesis merges others), zero-delay
   simulation has no glitches, and block RAMs are counted at ``⌈width · depth / 4096⌉`` blocks.
3. :func:`estimate_power`: per token, the activity times the energies of ``host/data/power_coefficients.json``
   (value, low, high and source for each); per cycle, the clock network and every flip-flop's clock load; static
   and PLL power from measurements and datasheets. Each coefficient is drawn from two triangles, (low, value) and
   (value, high), with equal weight (its median is its value); the result is P10/P50/P90 of the FPGA's power, the
   board's, pJ per ternary MAC and tokens per joule, always labelled ESTIMATE with the coefficients' version.
4. :func:`calibrate` predicts the published UP5K measurements the coefficients come from (and those held out).
"""

import json
import math
import re
from dataclasses import dataclass, fields
from importlib import resources

import numpy as np

__all__ = ["Activity", "Saif", "SaifError", "activity", "calibrate", "estimate_power", "load_coefficients",
           "parse_saif", "parse_verilog", "read_saif"]

#: fields of every coefficient
RANGE_FIELDS = ("value", "low", "high", "source")
#: coefficients every family needs
FAMILY_KEYS = ("static_mw", "pll_mw", "hfosc_mw", "clock_pj", "ff_clock_pj", "ff_toggle_pj", "lc_toggle_pj",
               "ebr_read_pj", "ebr_write_pj", "spram_access_pj", "dsp_input_toggle_pj", "io_toggle_pj")
#: coefficients every board needs (besides ``parts``, each a coefficient in mW)
BOARD_KEYS = ("rail_factor_core", "rail_factor_io")
#: activity counted per token → the coefficient (pJ per event) that prices it on the core rail
EVENT_ENERGY = {"ff_toggles": "ff_toggle_pj", "lc_toggles": "lc_toggle_pj", "ebr_reads": "ebr_read_pj",
                "ebr_writes": "ebr_write_pj", "spram_accesses": "spram_access_pj",
                "dsp_input_toggles": "dsp_input_toggle_pj"}
#: a module with a memory array and at most this many registers is a memory model
MEMORY_REGISTERS = 4
#: bits of one block RAM (iCE40 SB_RAM40_4K) for the block count of a memory
EBR_BITS = 4096
#: the iCE40 single-port RAM's shape (depth, width)
SPRAM_SHAPE = (16384, 16)
#: the percentiles reported
PERCENTILES = (10, 50, 90)


# --- coefficients ----------------------------------------------------------------------------------------------------

def load_coefficients(path=None):
    """The coefficient data (default: the packaged ``host/data/power_coefficients.json``), checked.

    Raises
    ------
    ValueError
        A field missing (named with its path), ``low ≤ value ≤ high`` violated, or no ``version``.
    """
    if path is None:
        text = (resources.files("mmfree.host") / "data" / "power_coefficients.json").read_text()
    else:
        with open(path) as f:
            text = f.read()
    data = json.loads(text)
    if "version" not in data:
        raise ValueError("power coefficients: no 'version' field")
    for family, entry in data.get("families", {}).items():
        for key in FAMILY_KEYS:
            _check_range(f"families.{family}.{key}", entry.get(key))
    for board, entry in data.get("boards", {}).items():
        if entry.get("family") not in data.get("families", {}):
            raise ValueError(f"power coefficients: boards.{board}.family names no family of the file")
        for key in BOARD_KEYS:
            _check_range(f"boards.{board}.{key}", entry.get(key))
        for key, part in entry.get("parts", {}).items():
            _check_range(f"boards.{board}.parts.{key}", part)
    return data


def _check_range(where, entry):
    if not isinstance(entry, dict):
        raise ValueError(f"power coefficients: {where} is missing")
    for name in RANGE_FIELDS:
        if name not in entry:
            raise ValueError(f"power coefficients: {where} has no '{name}' field")
    if not entry["low"] <= entry["value"] <= entry["high"]:
        raise ValueError(f"power coefficients: {where} needs low ≤ value ≤ high, got {entry['low']}, "
                         f"{entry['value']}, {entry['high']}")


def _draw(entry, rng, n):
    """``n`` samples of a coefficient whose median is its value: half from a triangle over (low, value), half from
    one over (value, high), each peaking at the value (a one-sided range gives the value for that half)."""
    value, low, high = (float(entry[key]) for key in ("value", "low", "high"))
    below = low + (value - low) * np.sqrt(rng.random(n))
    above = high - (high - value) * np.sqrt(rng.random(n))
    return np.where(rng.random(n) < 0.5, below, above)


# --- SAIF ------------------------------------------------------------------------------------------------------------

class SaifError(ValueError):
    """The text is not a SAIF file this reader understands; the message says where."""


@dataclass(frozen=True)
class Saif:
    """Switching activity: ``nets`` maps (instance path, net bit name) to (T0, T1, TC), times in ``timescale_s``
    seconds, over ``duration`` time units. ``a - b`` is the activity of ``a`` beyond ``b`` (a net that ``b`` lacks
    counts from zero)."""

    timescale_s: float
    duration: int
    nets: dict

    def __sub__(self, other):
        if self.timescale_s != other.timescale_s:
            raise SaifError("the two SAIF files have different timescales")
        nets = {key: tuple(a - b for a, b in zip(value, other.nets.get(key, (0, 0, 0))))
                for key, value in self.nets.items()}
        return Saif(self.timescale_s, self.duration - other.duration, nets)


_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "ps": 1e-12, "fs": 1e-15}
# one net entry, e.g. `(name\[3\] (T0 5) (T1 7) (TZ 0) (TX 0) (TB 0) (TC 2))`, or one token
_SAIF_TOKENS = re.compile(r"""\(\s*((?:[^\s()\\]|\\.)+)((?:\s*\(\s*T[01ZXBC]\s+\d+\s*\))+)\s*\)
                              |(?P<open>\()|(?P<close>\))|(?P<atom>"[^"]*"|(?:[^\s()\\]|\\.)+)""", re.VERBOSE)
_COMMENT = re.compile(r"^\s*//.*$", re.MULTILINE)
_SAIF_TIMES = re.compile(r"\(\s*(T[01ZXBC])\s+(\d+)\s*\)")


def _unescape(name):
    return re.sub(r"\\(.)", r"\1", name)


def parse_saif(text):
    """A :class:`Saif` from the text of a SAIF file (SAIF 2.0 backward, as Verilator writes it; ``PORT`` sections are
    read like ``NET``, other sections skipped).

    Raises
    ------
    SaifError
        Unbalanced parentheses, no ``SAIFILE``, ``TIMESCALE`` or ``DURATION``, a net outside an instance, or an
        entry without ``T0``, ``T1`` or ``TC``.
    """
    text = _COMMENT.sub("", text)
    stack, path, nets = [], [], {}  # stack: [head, atoms] per open list; path: instance names
    header, roots = {}, []
    position = 0
    for match in _SAIF_TOKENS.finditer(text):
        if text[position:match.start()].strip():
            raise SaifError(f"SAIF: cannot read {text[position:match.start()].strip()[:40]!r}")
        position = match.end()
        if match.group(1):
            if not stack or stack[-1][0] not in ("NET", "PORT") or not path:
                raise SaifError(f"SAIF: net entry {match.group(1)!r} outside an instance's NET section")
            times = dict((kind, int(n)) for kind, n in _SAIF_TIMES.findall(match.group(2)))
            if not {"T0", "T1", "TC"} <= times.keys():
                raise SaifError(f"SAIF: net {match.group(1)!r} lacks T0, T1 or TC")
            nets[(tuple(path), _unescape(match.group(1)))] = (times["T0"], times["T1"], times["TC"])
        elif match.group("open"):
            if stack and stack[-1][0] == "INSTANCE" and len(stack[-1][1]) and len(path) < _depth(stack):
                path.append(_unescape(stack[-1][1][-1].strip('"')))
            stack.append([None, []])
        elif match.group("close"):
            if not stack:
                raise SaifError("SAIF: unbalanced ')'")
            head, atoms = stack.pop()
            if head == "INSTANCE" and len(path) > _depth(stack):
                path.pop()
            elif head in ("TIMESCALE", "DURATION") and len(stack) == 1:
                header[head] = " ".join(atoms)
        else:
            if not stack:
                raise SaifError(f"SAIF: {match.group('atom')!r} outside any list")
            frame = stack[-1]
            if frame[0] is None:
                frame[0] = match.group("atom")
                if len(stack) == 1:
                    roots.append(frame[0])
            else:
                frame[1].append(match.group("atom"))
    if text[position:].strip():
        raise SaifError(f"SAIF: cannot read {text[position:].strip()[:40]!r}")
    if stack:
        raise SaifError("SAIF: unbalanced '(' (the file ends inside a list)")
    if roots != ["SAIFILE"]:
        raise SaifError(f"SAIF: expected one (SAIFILE …) list, found {roots or 'none'}")
    for key in ("TIMESCALE", "DURATION"):
        if key not in header:
            raise SaifError(f"SAIF: no {key} in the SAIFILE header")
    scale = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([munpf]?s)\s*", header["TIMESCALE"])
    if not scale:
        raise SaifError(f"SAIF: cannot read TIMESCALE {header['TIMESCALE']!r}")
    if not header["DURATION"].strip().isdigit():
        raise SaifError(f"SAIF: cannot read DURATION {header['DURATION']!r}")
    return Saif(float(scale.group(1)) * _UNITS[scale.group(2)], int(header["DURATION"]), nets)


def _depth(stack):
    """Instances open below the top of ``stack``."""
    return sum(1 for head, _ in stack if head == "INSTANCE")


def read_saif(path):
    """:func:`parse_saif` of a file."""
    with open(path) as f:
        return parse_saif(f.read())


# --- classification --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Module:
    """What :func:`activity` needs of a Verilog module: ``inputs``, ``outputs``, ``registers`` (names assigned with
    ``<=``), ``arrays`` (width, depth of each memory array), ``multiplier`` (has a ``*``), ``children`` (instance →
    module) and ``wiring``: nets that are another net under a new name (a child's output, a plain copy, slice or
    concatenation), counted where they are driven."""

    inputs: frozenset
    outputs: frozenset
    registers: frozenset
    arrays: tuple
    multiplier: bool
    children: dict
    wiring: frozenset

    @property
    def kind(self):
        """``"spram"``, ``"ebr"``, ``"dsp"`` (a primitive's model) or ``"logic"``."""
        if self.arrays and len(self.registers) <= MEMORY_REGISTERS:
            return "spram" if self.arrays[0][::-1] == SPRAM_SHAPE else "ebr"
        if self.multiplier and self.outputs & {"product", "acc"}:
            return "dsp"
        return "logic"


_NAME = r"(\\\S+|[A-Za-z_][\w$]*)"
_MODULE = re.compile(rf"^module\s+{_NAME}\s*\((.*?)^endmodule", re.MULTILINE | re.DOTALL)
_PORT = re.compile(rf"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?(?:\[[^\]]*\]\s*)?{_NAME}\s*;",
                   re.MULTILINE)
_REGISTER = re.compile(rf"^\s*{_NAME}\s*(?:\[[^\]]*\])?\s*<=", re.MULTILINE)
_ARRAY = re.compile(rf"^\s*reg\s+(?:signed\s+)?\[(\d+):(\d+)\]\s*{_NAME}\s*\[(\d+):(\d+)\]\s*;", re.MULTILINE)
_INSTANCE = re.compile(rf"^\s*{_NAME}\s+{_NAME}\s*\((.*?)\);", re.MULTILINE | re.DOTALL)
_CONNECTION = re.compile(rf"\.{_NAME}\s*\(\s*{_NAME}\s*(?:\[[^\]]*\])?\s*\)")
_ASSIGN = re.compile(rf"^\s*assign\s+{_NAME}\s*(?:\[[^\]]*\])?\s*=\s*([^;]*);", re.MULTILINE)
_WIRING = re.compile(r"[\s{},\w$\\\[\]:']*")
_MULTIPLY = re.compile(r"^\s*assign\s.*[^*/(]\s\*\s[^*]", re.MULTILINE)


def parse_verilog(text):
    """(top module name, {module name: :class:`Module`}) of a Verilog file as Yosys writes Amaranth's designs."""
    bodies = {name.lstrip("\\"): body for name, body in _MODULE.findall(text)}
    if not bodies:
        raise ValueError("Verilog: no module found")
    strip = lambda name: name.lstrip("\\")
    ports, instances = {}, {}
    for name, body in bodies.items():
        ports[name] = {direction: frozenset(strip(port) for d, port in _PORT.findall(body) if d == direction)
                       for direction in ("input", "output")}
        instances[name] = [(strip(mod), strip(inst), connections) for mod, inst, connections
                           in _INSTANCE.findall(body) if strip(mod) in bodies]
    modules = {}
    for name, body in bodies.items():
        arrays = _ARRAY.findall(body)
        registers = frozenset(map(strip, _REGISTER.findall(body))) - {strip(array) for _, _, array, _, _ in arrays}
        copies = {strip(lhs) for lhs, rhs in _ASSIGN.findall(body) if _WIRING.fullmatch(rhs)}
        driven = {strip(net) for mod, _, connections in instances[name]
                  for port, net in _CONNECTION.findall(connections) if strip(port) in ports[mod]["output"]}
        modules[name] = Module(ports[name]["input"], ports[name]["output"], registers,
                               tuple((int(hi) - int(lo) + 1, abs(int(d1) - int(d0)) + 1)
                                     for hi, lo, _, d1, d0 in arrays),
                               bool(_MULTIPLY.search(body)), {inst: mod for mod, inst, _ in instances[name]},
                               frozenset(copies | driven))
    instantiated = {child for module in modules.values() for child in module.children.values()}
    tops = [name for name in modules if name not in instantiated]
    if len(tops) != 1:
        raise ValueError(f"Verilog: expected one top module, found {tops}")
    return tops[0], modules


@dataclass(frozen=True)
class Activity:
    """Events of a workload: ``cycles``, ``ff_bits`` (flip-flops clocked every cycle), and the counts priced by
    :data:`EVENT_ENERGY` and ``io_toggles``. Memory counts are per block."""

    cycles: float = 0
    ff_bits: int = 0
    ff_toggles: float = 0
    lc_toggles: float = 0
    ebr_reads: float = 0
    ebr_writes: float = 0
    spram_accesses: float = 0
    dsp_input_toggles: float = 0
    io_toggles: float = 0

    def per(self, n):
        """The counts divided by ``n`` (``ff_bits`` kept)."""
        return Activity(**{f.name: getattr(self, f.name) if f.name == "ff_bits" else getattr(self, f.name) / n
                           for f in fields(self)})


def activity(saif, verilog, *, cycle_units=1, pins=("uart_rx", "uart_tx")):
    """The :class:`Activity` of ``saif`` (a :class:`Saif`), its nets classified with ``verilog`` (the text the
    simulation was built from; see the module docstring).

    Parameters
    ----------
    cycle_units : float
        SAIF time units per clock cycle (1 for a simulation that dumps once per cycle at time = cycle).
    pins : sequence of str
        Top-level ports that are FPGA pins (their toggles are I/O toggles).

    Raises
    ------
    ValueError
        An instance of the SAIF is not in the Verilog's hierarchy.
    """
    top, modules = parse_verilog(verilog)
    cycles = saif.duration / cycle_units
    counts = {f.name: 0 for f in fields(Activity) if f.name != "cycles"}
    scopes = {}
    for (path, net), (_, t1, tc) in saif.nets.items():
        scopes.setdefault(path, {})[net] = (t1, tc)
    for path, nets in scopes.items():
        if top not in path:
            continue  # the simulator's wrapper around the top (Verilator's TOP)
        names = path[path.index(top):]
        module = modules[top]
        for name in names[1:]:
            if name not in module.children:
                raise ValueError(f"SAIF instance {'/'.join(names)} is not in the Verilog hierarchy of {top}")
            module = modules[module.children[name]]
        _count(module, nets, cycle_units, cycles, counts, pins if len(names) == 1 else ())
    return Activity(cycles=cycles, **counts)


def _count(module, nets, cycle_units, cycles, counts, pins):
    """Add one instance's events to ``counts``."""
    base = {net: net.split("[")[0] for net in nets}
    high = lambda prefix: max((t1 for net, (t1, _) in nets.items() if base[net] == prefix), default=None)
    kind = module.kind
    if kind == "spram":
        counts["spram_accesses"] += (high("cs") or 0) / cycle_units
    elif kind == "ebr":
        blocks = max(1, math.ceil(module.arrays[0][0] * module.arrays[0][1] / EBR_BITS))
        enable = high("r_en")
        counts["ebr_reads"] += blocks * (cycles if enable is None else enable / cycle_units)
        counts["ebr_writes"] += blocks * (high("write__en") or 0) / cycle_units
    elif kind == "dsp":  # the operand registers: the multiplier switches when they change
        operands = module.registers - module.outputs
        counts["dsp_input_toggles"] += sum(tc for net, (_, tc) in nets.items() if base[net] in operands)
    else:
        for width, depth in module.arrays:  # a table inside logic: read every cycle
            counts["ebr_reads"] += max(1, math.ceil(width * depth / EBR_BITS)) * cycles
        for net, (_, tc) in nets.items():
            name = base[net]
            if name in pins:
                counts["io_toggles"] += tc
            elif name in module.inputs or name in module.wiring or name == "clk":
                continue
            elif name in module.registers:
                counts["ff_bits"] += 1
                counts["ff_toggles"] += tc
            else:
                counts["lc_toggles"] += tc


# --- the estimate ----------------------------------------------------------------------------------------------------

def _percentiles(samples):
    return {f"p{p}": float(v) for p, v in zip(PERCENTILES, np.percentile(samples, PERCENTILES))}


def _event_pj(draws, counts):
    """Energy in pJ of ``counts`` (a mapping with :data:`EVENT_ENERGY`'s keys) under coefficient ``draws``."""
    return sum(counts.get(event, 0) * draws[key] for event, key in EVENT_ENERGY.items())


def estimate_power(per_token, *, board, clock_hz, cycles_per_token, macs_per_token, coefficients=None,
                   samples=20000, seed=0):
    """ESTIMATE of the power of generating tokens back to back.

    Parameters
    ----------
    per_token : Activity
        Events per token (``ff_bits`` as in the design).
    board : str
        A board of the coefficient file (its family, regulators and other parts).
    clock_hz : float
    cycles_per_token : float
        Measured or estimated; tokens/s = ``clock_hz / cycles_per_token``.
    macs_per_token : int
        Ternary multiply-accumulates per token.
    coefficients : dict, optional
        :func:`load_coefficients`'s data (default: the packaged file).
    samples, seed : int
        Monte Carlo draws and seed.

    Returns
    -------
    dict
        ``label`` ("ESTIMATE"), ``version``, ``method``, ``tokens_per_s``; P10/P50/P90 of ``fpga_mw`` (core, PLL and
        I/O rails), ``board_mw`` (from the board's input), ``pj_per_mac`` (FPGA energy per ternary MAC),
        ``tokens_per_j_fpga`` and ``tokens_per_j_board``; ``breakdown_mw``: each part at the coefficients' values.

    Raises
    ------
    ValueError
        Unknown board.
    """
    data = coefficients or load_coefficients()
    if board not in data["boards"]:
        raise ValueError(f"no power coefficients for board {board!r}; known: {', '.join(sorted(data['boards']))}")
    entry = data["boards"][board]
    family = data["families"][entry["family"]]
    rng = np.random.default_rng(seed)
    draws = {key: _draw(family[key], rng, samples) for key in FAMILY_KEYS}
    draws.update({key: _draw(entry[key], rng, samples) for key in BOARD_KEYS})
    parts = sum(_draw(part, rng, samples) for part in entry["parts"].values())
    nominal = {key: family[key]["value"] for key in FAMILY_KEYS}

    tokens_per_s = clock_hz / cycles_per_token

    def parts_mw(c):
        """(core-rail parts, I/O rail) in mW under coefficients ``c``."""
        core = {"static": c["static_mw"], "pll": c["pll_mw"], "clock network": clock_hz * c["clock_pj"] * 1e-9,
                "flip-flop clocks": clock_hz * per_token.ff_bits * c["ff_clock_pj"] * 1e-9}
        for event, key in EVENT_ENERGY.items():
            core[event.replace("_", " ")] = tokens_per_s * getattr(per_token, event) * c[key] * 1e-9
        return core, tokens_per_s * per_token.io_toggles * c["io_toggle_pj"] * 1e-9

    core, io = parts_mw(draws)
    core_mw = sum(core.values())
    fpga = core_mw + io
    board_mw = parts + draws["rail_factor_core"] * core_mw + draws["rail_factor_io"] * io
    breakdown, io_nominal = parts_mw(nominal)
    return {"label": "ESTIMATE", "version": data["version"], "board": board, "family": entry["family"],
            "method": "static and PLL power measured/datasheet; dynamic = SAIF switching activity x per-resource "
                      "energies (host/power.py, docs/power.md); Monte Carlo over each coefficient's (low, value, "
                      f"high), median at the value, {samples} draws",
            "clock_hz": clock_hz, "cycles_per_token": cycles_per_token, "tokens_per_s": tokens_per_s,
            "macs_per_token": macs_per_token,
            "fpga_mw": _percentiles(fpga), "board_mw": _percentiles(board_mw),
            "pj_per_mac": _percentiles(fpga * 1e9 / (tokens_per_s * macs_per_token)),
            "tokens_per_j_fpga": _percentiles(tokens_per_s / (fpga * 1e-3)),
            "tokens_per_j_board": _percentiles(tokens_per_s / (board_mw * 1e-3)),
            "breakdown_mw": {**{k: float(v) for k, v in breakdown.items()}, "i/o": float(io_nominal),
                             "rest of the board": sum(part["value"] for part in entry["parts"].values())}}


def calibrate(coefficients=None, samples=20000, seed=0):
    """The model's prediction of each published measurement in the coefficient file's ``calibration`` cases.

    Returns
    -------
    list of dict
        Per case: ``name``, ``role`` (what it was fitted to, or held out), ``measured_mw``, ``nominal_mw`` (every
        coefficient at its value) and its ``ratio`` to the measurement, P10/P50/P90 of the prediction
        (``predicted_mw``) and ``within`` (measured inside P10 … P90).
    """
    data = coefficients or load_coefficients()
    cal = data["calibration"]
    family = data["families"][cal["family"]]
    rng = np.random.default_rng(seed)
    draws = {key: _draw(family[key], rng, samples) for key in FAMILY_KEYS}
    nominal = {key: family[key]["value"] for key in FAMILY_KEYS}

    def predict(c, case):
        counts = case.get("per_cycle", {})
        per_cycle = c["clock_pj"] + counts.get("ff_bits", 0) * c["ff_clock_pj"] + _event_pj(c, counts)
        return c["static_mw"] + case.get("hfosc", False) * c["hfosc_mw"] + case["clock_hz"] * per_cycle * 1e-9

    rows = []
    for case in cal["cases"]:
        measured = case["measured_ua"] * cal["rail_v"] * 1e-3
        p = _percentiles(predict(draws, case))
        rows.append({"name": case["name"], "role": case["role"], "measured_mw": measured,
                     "nominal_mw": predict(nominal, case), "ratio": predict(nominal, case) / measured,
                     "predicted_mw": p, "within": p["p10"] <= measured <= p["p90"]})
    return rows


def main(argv=None):
    """``python -m mmfree.host.power``: the ESTIMATE of a workload SAIF, or the calibration table."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mmfree.host.power", description=main.__doc__)
    parser.add_argument("--calibrate", action="store_true", help="print the calibration cases and exit")
    parser.add_argument("--verilog", help="the Verilog the SAIF was simulated from")
    parser.add_argument("--saif", help="SAIF of the workload")
    parser.add_argument("--base-saif", help="SAIF of the same run without the tokens, subtracted")
    parser.add_argument("--tokens", type=int, default=1, help="tokens the workload (less the base) ran")
    parser.add_argument("--cycles-per-token", type=float, help="cycles per token (measured)")
    parser.add_argument("--cycle-units", type=float, default=1, help="SAIF time units per clock cycle")
    parser.add_argument("--macs-per-token", type=int, help="ternary MACs per token")
    parser.add_argument("--board", default="icebreaker")
    parser.add_argument("--clock-hz", type=float, default=30e6)
    args = parser.parse_args(argv)
    if args.calibrate:
        print(json.dumps(calibrate(), indent=1))
        return 0
    if not (args.verilog and args.saif and args.cycles_per_token and args.macs_per_token):
        parser.error("give --verilog, --saif, --cycles-per-token and --macs-per-token (or --calibrate)")
    saif = read_saif(args.saif)
    if args.base_saif:
        saif = saif - read_saif(args.base_saif)
    with open(args.verilog) as f:
        per_token = activity(saif, f.read(), cycle_units=args.cycle_units).per(args.tokens)
    report = estimate_power(per_token, board=args.board, clock_hz=args.clock_hz,
                            cycles_per_token=args.cycles_per_token, macs_per_token=args.macs_per_token)
    print(json.dumps({"activity_per_token": per_token.__dict__, **report}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
