"""Cycles per token of a compiled program on the core as built: an ESTIMATE, before any simulation.

The timing model is the sequential core's schedule (docs/core.md, ``hw/core.py``), instruction by instruction: a
BITLINEAR fetches and decodes, runs its passes (the first norm's sum over another slot, ``max|p|`` with the sum of
squares, the second norm's sum unless it reuses the last one's, the quantization, FORGET's copy:
``CoreParams.pass_lanes`` elements per cycle), ``QUANT`` on the scalar unit where no pass hides it, then its matvec
(one column group's ``rows/8`` weight words per cycle plus one hand-off per row group) beside the scale chain, whose
end the drain waits for (``CoreParams.cycles_per_element`` cycles per element through each of
``CoreParams.vector_lanes`` vector units, an element being a row or the GLU's pair of rows, and no shorter than the
matvec).
Its constants (:data:`TIMING`) are calibrated on the demo model's per-instruction trace and checked on another shape
(docs/core.md); :data:`SPREAD` is the range given around the sum. The core's benches measure the real
figure; this one says early whether a model and a core can meet a target.

:func:`roofline` sets the estimate beside the bounds no schedule can beat: the ternary lanes (rows × columns per
cycle), the weight memory's bandwidth (``rows / 8`` words per cycle), and, for weights streamed over the host link,
the link's payload rate.
"""

from .commands import MAX_STREAM_WORDS, Stream
from .compiler import matrix_word_count
from .isa import Epilogue, Opcode, Slot, decode
from .protocol import frame_size

__all__ = ["FAST_SCALAR_TIMING", "PIPELINED_TIMING", "SPREAD", "TIMING", "UART_BITS_PER_BYTE", "estimate_cycles",
           "link_payload_rate", "roofline"]

#: bits on the wire per byte on a UART at 8N1: start, 8 data, stop
UART_BITS_PER_BYTE = 10

#: the core as built, in cycles: an instruction's fetch, decode and shifts; a pass's fill and drain; ``QUANT``; the
#: scale chain with two norms, one norm, or from the rsqrt the last BITLINEAR left (i_proj, g_proj), and its first
#: norm's part (run beside pass B where that norm is over another slot); the drain's last elements after the matvec;
#: EMBED per element (two multiplier limbs) and its row address
TIMING = {"instruction": 20, "pass_fill": 8, "quant": 85, "chain_two_norms": 400, "chain_one_norm": 220,
          "chain_reused": 60, "chain_first_norm": 100, "tail": 25, "embed_per_element": 2, "embed_fixed": 30,
          "config": 7}

#: the pipelined core's constants (``CoreParams.pipelined``: the ULX3S core's register stages and FIFOs lengthen the
#: fetch and the drain's tail). The pass's fill, shared with :data:`TIMING`, refitted from 15 to 8 cycles once the
#: reduction units offer their sums 3 cycles after a pass instead of after a scan for a shift (session 17). With two
#: vector units, FORGET's copy at pass_lanes a beat and a field read per engine word beside a matvec (session 18):
#: ULX3S demo 6,173 cycles per token against 6,117 measured (+0.9 %), its weight-filling random model 9,457 against
#: 9,435 (+0.2 %); iCEBreaker demo 20,612 against 20,809 (−0.9 %), random:V=100,H=192,L=1,I=256,seed=3 12,381
#: against 12,461 (−0.6 %)
PIPELINED_TIMING = dict(TIMING, instruction=44, tail=40)

#: with the fast scalar unit (``CoreParams.fast_scalar``), ``QUANT`` and the scale chain's parts: :data:`TIMING`'s
#: scaled by the ratio of the unit's cycles per operation in the two modes (hw/scalar_unit.py's table), not fitted
FAST_SCALAR_TIMING = {"quant": 27, "chain_two_norms": 160, "chain_one_norm": 95, "chain_reused": 20,
                      "chain_first_norm": 40}

#: the estimate's range around the sum: −/+ this fraction
SPREAD = 0.03


def _beside(back, front):
    """What of BITLINEAR ``front`` the core runs beside BITLINEAR ``back``'s matvec and drain (decoded fields;
    ``hw/core.py``, state DECODE): ``"passes"`` where ``back``'s drain uses slot F and the state only and ``front``'s
    passes do not touch slot F; ``"aux"`` (FORGET's copy into slot F) where ``back``'s drain does not use slot F;
    else, or where either takes the weight stream, ``None``."""
    if back["stream"] or front["stream"]:
        return None
    first_other = front["has_pre"] and front["first"] != front["src"]
    if back["epilogue"] not in (Epilogue.FORGET, Epilogue.STATE):
        return "aux" if front["epilogue"] == Epilogue.FORGET else None
    touches_f = front["src"] == Slot.F or (first_other and front["first"] == Slot.F)
    if front["epilogue"] != Epilogue.FORGET and not touches_f:
        return "passes"
    return None


def estimate_cycles(program, timing=None, spread=SPREAD):
    """ESTIMATE of cycles per token on the core as built (``timing``: :data:`TIMING`, or :data:`PIPELINED_TIMING`
    for a pipelined core, with :data:`FAST_SCALAR_TIMING` for a fast scalar unit, unless given).

    Returns
    -------
    dict
        ``matvec`` (weight words plus one hand-off per row group), ``passes`` (one cycle per beat of every pass:
        ``pass_lanes`` elements of a pass over slots or of FORGET's copy), ``embed``, ``scale`` (the rest: fetch
        and decode, the passes' fill, ``QUANT`` and the scale chain where they are not hidden, the drain's tail, the
        matvec's cycles lent to field reads beside it),
        ``instructions`` (``[pc, cycles]`` per instruction, from its start to the next one's), ``total`` (low, high:
        the sum −/+ ``spread``) and ``bound`` (trits ÷ lanes).
    """
    core = program.core
    t = timing
    if t is None:
        t = dict(PIPELINED_TIMING if core.pipelined else TIMING, **(FAST_SCALAR_TIMING if core.fast_scalar else {}))
    # accumulators always within reduce_bits: GATE's drain sums slot G's squares, o_proj runs no pass over G
    g_summed = 127 * core.max_vector < 1 << (program.formats.reduce_bits - 1)
    per_read = max(4, core.rows // 2)   # 16-bit fields a read brings: an engine word of rows bytes, or a 64-bit one
    matvec = passes = embed = trits = 0
    starts = []
    now = 0          # where the sequencer starts the instruction
    back_end = 0     # where the back end's drain ends (the back end is idle from there)
    back = None      # the fields of the BITLINEAR in the back end
    back_paths = (0, 0)   # where its drain would end behind the matvec, and behind the scale chain
    sums = None   # (slot, first norm, length) of the last second-norm sum and rsqrt, while its slot is unchanged
    g_sums = False   # a GATE drain summed slot G's squares, and no pass over another slot has replaced them
    for word in program.instructions:
        opcode, f = decode(word)
        beside = _beside(back, f) if opcode is Opcode.BITLINEAR and back is not None and now < back_end else None
        if beside is None:
            now = max(now, back_end)
        starts.append(now)
        if opcode is Opcode.BITLINEAR:
            n, rows, epilogue = f["cols"], f["rows"], f["epilogue"]
            beats = -(-n // core.pass_lanes)   # of each pass over slots
            two = bool(f["has_pre"])
            first_other = two and f["first"] != f["src"]
            first_pass = first_other and not (g_sums and f["first"] == Slot.G)
            reused = two and not first_other and sums == (f["src"], f["pre"], n)
            words = -(-rows // core.rows) * (-(-n // core.cols) + 1)
            before = (beats if first_pass else 0) + beats + (beats if two and not reused else 0)   # passes F, B, D
            quant = max(0, t["quant"] - (beats if two and not reused else 0))                   # what D does not hide
            # with two norms over v the chain's first norm part runs after pass B and QUANT, beside pass D
            early_v = two and not reused and not first_other and beside is None
            copied = rows if epilogue == Epilogue.FORGET else 0   # FORGET's copy, pass_lanes elements a beat
            aux = -(-copied // core.pass_lanes)
            chain = t["chain_reused"] if reused else t["chain_two_norms"] if two else t["chain_one_norm"]
            fills = t["pass_fill"] * (1 + first_pass + (two and not reused) + 1)
            aux_end = now + (t["pass_fill"] + aux if aux else 0)
            held = aux_end if beside == "passes" else max(aux_end, back_end)
            quantized = held + t["instruction"] + fills + before + quant   # the back end is due
            # with the first norm over another slot its part of the chain runs beside pass B when the back end is idle
            early = first_other and beside is None
            b_start = held + t["instruction"] + t["pass_fill"] * (1 + first_pass) + (beats if first_pass else 0)
            # passes beside a matvec take its weight memory for their field words, a cycle per engine word read
            # (16-bit fields; the engine's line answers its other parts)
            if beside:
                lent = {"passes": (2 + (two and not reused)) * -(-n // per_read),
                        "aux": -(-copied // per_read)}[beside]
                back_end = max(back_paths[0] + lent, back_paths[1]) + t["tail"]
            chain_start = max(quantized, back_end)
            if early:
                chain_start = max(b_start + t["chain_first_norm"], quantized) - t["chain_first_norm"]
            elif early_v:
                chain_start = (max(b_start + beats + t["quant"] + t["chain_first_norm"], quantized)
                               - t["chain_first_norm"])
            issue = max(quantized + beats, back_end)
            # the drain after the chain, at the vector units' rate, and at least as long as the matvec
            # (an element is a row, the GLU's a gate row and its up row; vector_lanes elements at once)
            c, per_issue = core.cycles_per_element, (2 if epilogue == Epilogue.GLU else 1) * core.vector_lanes
            drained = 0 if epilogue == Epilogue.LOGITS else c * -(-rows // per_issue)
            back_paths = (issue + max(words + (drained and c * min(rows, core.rows) // per_issue), drained),
                          chain_start + chain + drained)
            back_end = max(back_paths) + t["tail"]
            now = issue
            matvec += words
            passes += before + beats + aux
            trits += rows * n
            if two and not reused and not first_other:
                sums = (f["src"], f["pre"], n)
            if not two or first_other or epilogue in (Epilogue.RESIDUAL, Epilogue.GATE, Epilogue.GLU):
                sums = None
            g_sums = g_summed and epilogue == Epilogue.GATE or g_sums and not first_pass
            back = f
        elif opcode is Opcode.EMBED:
            cycles = t["embed_per_element"] * f["length"] + t["embed_fixed"]
            embed += cycles
            now += cycles
            sums = None
        elif opcode is Opcode.CONFIG:
            now += t["config"]
    total = max(now, back_end)
    instructions = [[pc, end - start] for pc, (start, end) in enumerate(zip(starts, starts[1:] + [total]))]
    return {"matvec": matvec, "passes": passes, "embed": embed, "scale": total - matvec - passes - embed,
            "instructions": instructions, "total": (round(total * (1 - spread)), round(total * (1 + spread))),
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
