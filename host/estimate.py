"""Cycles per token of a compiled program on the planned core: an ESTIMATE, before any simulation.

The timing model is docs/core.md's: a BITLINEAR costs its matvec (one cycle per row group and column group, the
weight memory's bandwidth, plus the array's one-cycle hand-off per row group, as
:class:`~mmfree.hw.matvec_engine.MatvecEngine` measures in its bench), a quantize pass of one cycle per input element, and a fixed per-instruction overhead
(pipeline fill, the drain's tail, the part of the scale chain the accumulator FIFO does not hide) given as a range;
EMBED costs one cycle per element. The core's benches measure the real figure; this one says early whether a model
and a core can meet a target.

:func:`roofline` sets the estimate beside the bounds no schedule can beat: the ternary lanes (rows × columns per
cycle), the weight memory's bandwidth (``rows / 8`` words per cycle), and, for weights streamed over the host link,
the link's payload rate.
"""

from .commands import MAX_STREAM_WORDS, Stream
from .compiler import matrix_word_count
from .isa import Opcode, decode
from .protocol import frame_size

__all__ = ["OVERHEAD_RANGE", "UART_BITS_PER_BYTE", "estimate_cycles", "link_payload_rate", "roofline"]

#: bits on the wire per byte on a UART at 8N1: start, 8 data, stop
UART_BITS_PER_BYTE = 10

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


def link_payload_rate(baud, words=MAX_STREAM_WORDS):
    """Weight bytes per second the host link carries at ``baud`` (8N1) in STREAM frames of ``words`` words each.

    Returns
    -------
    rate : float
        Payload bytes/s: ``baud / 10`` bytes/s on the wire times the frame's share of weight bytes.
    efficiency : float
        Weight bytes ÷ frame bytes (docs/protocol.md: a 7-byte header and a 2-byte CRC around a STREAM payload of a
        1-byte count and ``8 · words`` weight bytes).
    """
    data = 8 * words
    efficiency = data / frame_size(len(Stream([0] * words).encode()))
    return baud / UART_BITS_PER_BYTE * efficiency, efficiency


def roofline(program, clk_hz, baud):
    """Bounds on cycles per token of ``program`` on its core at ``clk_hz`` and a UART link at ``baud``.

    Returns
    -------
    dict
        ``macs`` (ternary multiply-accumulates per token, unpadded), ``lanes`` (MACs per cycle) and
        ``lanes_cycles``; ``matrix_words`` (padded weight words per token), ``words_per_cycle`` and
        ``memory_cycles``; ``streamed_bytes`` (what streaming the weights would send per token: the matrices, one
        embedding row and its exponent word, the norm constants staying resident), ``link_bytes_per_s``,
        ``link_efficiency`` and ``link_cycles``; ``resident`` and ``streamed``: the name of the binding bound in
        each mode.
    """
    core = program.core
    macs = words = embed_words = 0
    for word in program.instructions:
        opcode, f = decode(word)
        if opcode is Opcode.BITLINEAR:
            macs += f["rows"] * f["cols"]
            words += matrix_word_count(f["rows"], f["cols"], core)
        elif opcode is Opcode.EMBED:
            embed_words = f["row_words"] + 1
    rate, efficiency = link_payload_rate(baud)
    streamed = 8 * (words + embed_words)
    bounds = {"lanes_cycles": macs / (core.rows * core.cols), "memory_cycles": words / (core.rows // 8),
              "link_cycles": streamed / rate * clk_hz}
    resident = max(("lanes_cycles", "memory_cycles"), key=bounds.get)
    return {"macs": macs, "lanes": core.rows * core.cols, "matrix_words": words, "words_per_cycle": core.rows // 8,
            "streamed_bytes": streamed, "link_bytes_per_s": rate, "link_efficiency": efficiency, **bounds,
            "resident": resident.removesuffix("_cycles"),
            "streamed": max((resident, "link_cycles"), key=bounds.get).removesuffix("_cycles")}
