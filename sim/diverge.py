"""The core bench on a compiled program, and the first instruction at which the core departs from the model.

:func:`run_program` runs the core bench (:mod:`mmfree.sim.benches.core`) on a program and returns the cycles of each
token. The bench can also stop a program after its first ``k`` instructions and compare
every vector memory and the recurrent state with :class:`~mmfree.host.machine.Machine`'s trace at that point; a
bisection over ``k`` finds the first instruction after which they differ, and the bench's message names the slot
and the first differing element. ``mmfree diverge`` is the command-line form.
"""

import json
import tempfile
from pathlib import Path

from ..host.isa import Epilogue, Opcode, decode
from ..hw.core import Core
from .runner import BenchFailure, run_bench

__all__ = ["run_program", "instruction_names", "first_divergence"]


def run_program(program, tokens, run_dir, **params):
    """Run ``tokens`` through ``program`` on the core in Verilator, every result checked against the model
    (``BenchFailure`` otherwise); ``params`` are the bench's others (``temperature``, ``seed``, ``stop``,
    ``corrupt``). Returns the cycles of each token."""
    run_dir = Path(run_dir)
    path, cycles_path = run_dir / "program.safetensors", run_dir / "cycles.json"
    program.save(path)
    run_bench(Core(program.core, program.formats, impl="model"), name="core", test_module="mmfree.sim.benches.core",
              run_dir=run_dir, params={"program": str(path), "tokens": list(tokens), "cycles_path": str(cycles_path),
                                       **params})
    return json.loads(cycles_path.read_text())["cycles"]


def instruction_names(program):
    """A name per instruction: the opcode, and for a BITLINEAR its projection (from the image layout) and epilogue."""
    matrices = [{address: name.removesuffix(" trits") for name, (address, _) in layout.items() if name.endswith(" trits")}
                for layout in (program.layout, program.segment_layout)]  # by the stream field: image or segment
    names = []
    for word in program.instructions:
        opcode, fields = decode(word)
        if opcode is Opcode.BITLINEAR:
            matrix = matrices[fields["stream"]].get(fields["weights"], "BITLINEAR")
            names.append(f"{matrix} ({Epilogue(fields['epilogue']).name})")
        else:
            names.append(opcode.name)
    return names


def _passes(program, token, stop, run_dir, corrupt):
    params = {"corrupt": corrupt} if stop is None else {"corrupt": corrupt, "stop": stop}
    try:
        run_program(program, [token], run_dir, **params)
    except BenchFailure as failure:
        return False, str(failure)
    return True, ""


def first_divergence(program, token, *, corrupt=None, progress=print):
    """Bisect for the first instruction after which the core and the model differ on ``token``.

    Parameters
    ----------
    program : Program
    token : int
    corrupt : (int, int), optional
        ``(word, mask)``: XOR ``mask`` into that weight-image word on the core's side only (a planted fault, to test
        the tool).
    progress : callable

    Returns
    -------
    None when the whole program agrees (slots, state, logits, token); else ``(index, name, message)``: the
    instruction's index and name and the bench's report of the difference.
    """
    names = instruction_names(program)
    last = len(names) - 1 if Opcode(program.instructions[-1] & 0xF) is Opcode.END else len(names)
    with tempfile.TemporaryDirectory() as tmp:
        def check(stop):
            run_dir = Path(tmp) / f"stop_{stop}"
            run_dir.mkdir()
            ok, message = _passes(program, token, stop, run_dir, corrupt)
            progress(f"after {stop if stop is not None else 'all'} instructions: {'agree' if ok else 'differ'}")
            return ok, message

        ok, message = check(None)
        if ok:
            return None
        ok_last, last_message = check(last)
        if ok_last:  # only the logits, the token or the scale differ: the head's own results
            return last - 1, names[last - 1], message
        low, high, reason = 0, last, last_message  # agree after `low` instructions, differ after `high`
        while high - low > 1:
            middle = (low + high) // 2
            ok, message = check(middle)
            if ok:
                low = middle
            else:
                high, reason = middle, message
        return high - 1, names[high - 1], reason
