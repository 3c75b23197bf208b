"""Cycles per token of a compiled program on the planned core: an ESTIMATE, before any simulation.

The timing model is docs/core.md's: a BITLINEAR costs its matvec (one cycle per row group and column group, the
weight memory's bandwidth, plus the array's one-cycle hand-off per row group, as
:class:`~mmfree.hw.matvec_engine.MatvecEngine` measures in its bench), a quantize pass of one cycle per input element, and a fixed per-instruction overhead
(pipeline fill, the drain's tail, the part of the scale chain the accumulator FIFO does not hide) given as a range;
EMBED costs one cycle per element. The core's benches measure the real figure; this one says early whether a model
and a core can meet a target.
"""

from .isa import Opcode, decode

__all__ = ["OVERHEAD_RANGE", "estimate_cycles"]

#: per-BITLINEAR overhead in cycles, low and high (docs/core.md)
OVERHEAD_RANGE = (40, 80)


def estimate_cycles(program, overhead=OVERHEAD_RANGE):
    """ESTIMATE of cycles per token: a dict with ``matvec``, ``quantize``, ``embed``, ``overhead`` (low, high),
    ``total`` (low, high) and ``bound`` (the weight-memory bound: trits ÷ (rows × columns per cycle))."""
    core = program.core
    matvec = quantize = embed = ops = trits = 0
    for word in program.instructions:
        opcode, f = decode(word)
        if opcode is Opcode.BITLINEAR:
            matvec += -(-f["rows"] // core.rows) * (-(-f["cols"] // core.cols) + 1)
            quantize += f["cols"]
            trits += f["rows"] * f["cols"]
            ops += 1
        elif opcode is Opcode.EMBED:
            embed += f["length"]
    fixed = matvec + quantize + embed
    return {"matvec": matvec, "quantize": quantize, "embed": embed,
            "overhead": (ops * overhead[0], ops * overhead[1]),
            "total": (fixed + ops * overhead[0], fixed + ops * overhead[1]),
            "bound": trits / (core.rows * core.cols)}
