"""The compiler: a model and a core configuration in, a program and a weight image out.

The weight image is what the core's weight memory holds, as 64-bit words (on the UP5K: the four SPRAMs read
together, bank ``b`` holding bits ``16b … 16b + 15``). Its layout (docs/isa.md):

- a matrix: row groups of :attr:`CoreParams.rows` rows; per row group, ``rows/8`` words per group of columns, byte
  ``b`` of them holding row ``rows·r + b``'s trits of those columns in the core's trit format (base-3: 5 trits per byte,
  2-bit: 4). Rows and columns are padded with trit 0. The matvec reads the ``rows/8`` words of a column group at
  once, so a matrix starts on a multiple of ``rows/8`` words (zero words before it where needed).
- vectors (norm constants ``c`` and ``pre``, ``1 − lb`` per layer, embedding rows, embedding exponents): integers of
  a fixed width packed low bits first into consecutive words, each vector from a word boundary.

Everything the core needs per projection but a vector (addresses, sizes, scalars) is in the BITLINEAR instruction.
A model that does not fit raises :class:`FitError` before anything runs, saying what does not fit and by how much.
"""

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from .golden import Formats, GoldenModel
from .isa import INSTRUCTION_BITS, Epilogue, Opcode, Slot, decode, encode
from .packing import TRITS_PER_BYTE, pack
from .safetensors_io import SafetensorsFile, save_file

__all__ = ["CoreParams", "CORES", "FitError", "Program", "compile_model", "pack_words"]

WORD_BITS = 64


class FitError(ValueError):
    """The model does not fit the core: the message names every limit it exceeds and by how much."""


@dataclass(frozen=True)
class CoreParams:
    """What a core configuration can hold (one bitstream per board runs any model within these).

    Parameters
    ----------
    name : str
    rows : int
        Output rows per matvec cycle, a multiple of 8: a column group of a row group is ``rows / 8`` consecutive
        64-bit words (one on the UP5K: 4 SPRAMs × 2 bytes).
    trit_format : {"base3", "2bit"}
        How the weight memory stores trits (base-3: 5 per byte, 1.6 bits/weight; 2-bit: 4 per byte).
    weight_words : int
        64-bit words of weight memory.
    max_vector : int
        Longest vector the vector memory holds (H and I).
    state_words : int
        Recurrent-state words (L·H).
    acc_bits : int
        Accumulator width: inputs of up to ``⌊(2^(acc_bits−1) − 1)/127⌋`` columns.
    program_instructions : int
        Program memory, in instructions.
    weight_stream : bool
        The core takes matrices and embedding rows from a weight stream (the link's STREAM command) as well as from
        its weight memory: models larger than the weight memory run, at the link's pace.
    pipelined : bool
        Extra register stages on paths that an ECP5 clock above ~60 MHz does not reach otherwise: the weight
        memory's request and word (read latency 4 instead of 1), the decoders' trit groups, and the fields read from
        the image and the reduction unit's input, each through a FIFO of 3 (:mod:`mmfree.hw.stream_fifo`). A matter
        of timing alone: not in INFO, and ignored when cores are compared.
    cycles_per_element : int
        The vector unit's cycles per element, so the drain's: 2 on the UP5K (a multiplier shared over two cycles),
        1 where multipliers are plenty (the ECP5). Like ``pipelined``, a matter of speed alone.
    decoder_table : {"block", "logic"}
        Where the base-3 decoders' tables live (:class:`~mmfree.hw.trit_decoder.TritDecoder`): a block RAM each, or
        LUTs where block RAM is scarcer. A matter of resources alone, like ``pipelined``.
    pass_lanes : {1, 2, 4}
        Elements per cycle of the passes over slots (a BITLINEAR's norms and quantization): each lane takes a pass
        datapath lane, a reduction unit and a quantizer lane, and the vector memories hold that many elements to a
        word. Like ``pipelined``, a matter of speed alone.
    vector_lanes : {1, 2}
        Vector units side by side in the drain, each taking an element per ``cycles_per_element`` cycles: 2 halves
        the epilogues' time where multipliers are plenty (the ECP5). Needs ``pass_lanes ≥ vector_lanes`` (the
        slots' words hold the pair; GATE's sum of squares takes a reduction unit per lane). A matter of speed alone.
    fast_scalar : bool
        The scalar unit normalizes four bits per cycle and divides a quotient bit per cycle
        (:class:`~mmfree.hw.scalar_unit.ScalarUnit` ``fast``): a BITLINEAR's scale chain in ~160 cycles instead of ~400,
        for ~420 LUT4 more on the ECP5, where its carry chains allow it. A matter of speed alone.
    """

    name: str
    rows: int = 8
    trit_format: str = "base3"
    weight_words: int = 16384
    max_vector: int = 256
    state_words: int = 512
    acc_bits: int = 16
    program_instructions: int = 32
    weight_stream: bool = False
    pipelined: bool = field(default=False, compare=False)
    decoder_table: str = field(default="block", compare=False)
    cycles_per_element: int = field(default=2, compare=False)
    pass_lanes: int = field(default=1, compare=False)
    vector_lanes: int = field(default=1, compare=False)
    fast_scalar: bool = field(default=False, compare=False)

    def __post_init__(self):
        if self.trit_format not in ("base3", "2bit"):
            raise ValueError(f"trit_format must be 'base3' or '2bit', not {self.trit_format!r}")
        if not isinstance(self.cycles_per_element, int) or self.cycles_per_element < 1:
            raise ValueError(f"cycles_per_element must be an int ≥ 1, not {self.cycles_per_element!r}")
        if self.pass_lanes not in (1, 2, 4):
            raise ValueError(f"pass_lanes must be 1, 2 or 4, not {self.pass_lanes!r}")
        if self.vector_lanes not in (1, 2):
            raise ValueError(f"vector_lanes must be 1 or 2, not {self.vector_lanes!r}")
        if self.pass_lanes < self.vector_lanes:
            raise ValueError(f"vector_lanes ({self.vector_lanes}) needs pass_lanes ≥ vector_lanes, not "
                             f"{self.pass_lanes}")
        if self.decoder_table not in ("block", "logic"):
            raise ValueError(f"decoder_table must be 'block' or 'logic', not {self.decoder_table!r}")
        if self.rows <= 0 or self.rows % 8:
            raise ValueError(f"rows must be a positive multiple of 8 (a row group is whole 64-bit words), "
                             f"not {self.rows}")

    @property
    def cols(self):
        """Columns per matvec cycle: trits per byte of the trit format."""
        return TRITS_PER_BYTE[self.trit_format]

    @property
    def max_cols(self):
        return ((1 << (self.acc_bits - 1)) - 1) // 127


#: version of the saved program format (:meth:`Program.save`)
PROGRAM_VERSION = 2

#: the configurations of the boards' cores
CORES = {
    "icebreaker": CoreParams("icebreaker"),
    # the ECP5-85F's block RAM: 40 K weight words (1.6 M trits) read eight at once (64 rows: 320 ternary MACs per
    # cycle; the 64 decoders' tables in LUTs, as the DP16KD left are too few), deeper state and program, two vector
    # units of one element per cycle, passes of four and the fast scalar unit on its plentiful multipliers and LUTs
    "ulx3s-85f": CoreParams("ulx3s-85f", rows=64, weight_words=40960, state_words=2048, program_instructions=64,
                            pipelined=True, decoder_table="logic", cycles_per_element=1, pass_lanes=4,
                            vector_lanes=2, fast_scalar=True),
    # the virtual board's core for real checkpoint shapes (V = 32000, H = 1024, I = 2816, up to 24 layers, the
    # weights streamed over the link); no board has its memories
    "large": CoreParams("large", max_vector=32768, state_words=32768, acc_bits=20, program_instructions=256,
                        weight_stream=True),
}


@dataclass
class Program:
    """A compiled model: ``instructions`` (ints, :mod:`mmfree.host.isa`), the weight ``image`` (uint64 words, loaded
    into the weight memory), the ``core`` and ``formats`` it was compiled for, ``layout`` (item → (first word, words))
    for read-back and reports, and for a streamed program the ``segment`` (uint64 words) that its streamed
    instructions address, with its ``segment_layout``: the host sends each token's part of it (:meth:`pass_words`)
    over the link."""

    instructions: list
    image: np.ndarray
    core: CoreParams
    formats: Formats
    layout: dict = field(default_factory=dict)
    segment: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="<u8"))
    segment_layout: dict = field(default_factory=dict)

    def _streamed_reads(self, token):
        """(first word, words) of the segment for each streamed read of a token's run, in the core's order."""
        reads = []
        for word in self.instructions:
            opcode, f = decode(word)
            if opcode is Opcode.EMBED and f["stream"]:
                reads += [(f["exps"] + token // 4, 1), (f["table"] + token * f["row_words"], f["row_words"])]
            elif opcode is Opcode.BITLINEAR and f["stream"]:
                reads.append((f["weights"], matrix_word_count(f["rows"], f["cols"], self.core)))
        return reads

    @property
    def pass_length(self):
        """Words streamed per token (0 for a program with nothing streamed)."""
        return sum(count for _, count in self._streamed_reads(0))

    def pass_words(self, token):
        """The words the core takes from the weight stream while it runs ``token`` (uint64), in order."""
        reads = self._streamed_reads(token)
        if not reads:
            return np.zeros(0, dtype="<u8")
        return np.concatenate([self.segment[first:first + count] for first, count in reads])

    def save(self, path):
        """Write the program as a safetensors file: ``image`` (U64 words), ``instructions`` (bytes, little-endian,
        ``INSTRUCTION_BITS / 8`` per instruction) and JSON metadata (core, formats, layout, version)."""
        size = INSTRUCTION_BITS // 8
        code = np.frombuffer(b"".join(word.to_bytes(size, "little") for word in self.instructions), dtype=np.uint8)
        save_file(path, {"image": self.image.astype("<u8"), "segment": self.segment.astype("<u8"),
                         "instructions": code}, metadata={
            "format": "mmfree-program", "version": str(PROGRAM_VERSION), "core": json.dumps(asdict(self.core)),
            "formats": json.dumps(asdict(self.formats)), "layout": json.dumps(self.layout),
            "segment_layout": json.dumps(self.segment_layout)})

    @classmethod
    def load(cls, path):
        """Read a program written by :meth:`save` (``ValueError`` for another file or version)."""
        with SafetensorsFile(path) as f:
            meta = f.metadata or {}
            if meta.get("format") != "mmfree-program" or meta.get("version") != str(PROGRAM_VERSION):
                raise ValueError(f"{path} is not an mmfree program of version {PROGRAM_VERSION}")
            image, segment = f.get("image").copy(), f.get("segment").copy()
            code = f.get("instructions").tobytes()
        size = INSTRUCTION_BITS // 8
        instructions = [int.from_bytes(code[i:i + size], "little") for i in range(0, len(code), size)]
        layout, segment_layout = ({name: tuple(value) for name, value in json.loads(meta[key]).items()}
                                  for key in ("layout", "segment_layout"))
        return cls(instructions, image, CoreParams(**json.loads(meta["core"])),
                   Formats(**json.loads(meta["formats"])), layout, segment, segment_layout)

    def memory_table(self):
        """Markdown table of the weight image, item by item, against the core's weight memory."""
        lines = ["| item | words | bytes |", "|---|---:|---:|"]
        lines += [f"| {name} | {words:,} | {8 * words:,} |" for name, (_, words) in self.layout.items()]
        used, total = len(self.image), self.core.weight_words
        lines += [f"| **total** | **{used:,}** | **{8 * used:,}** |",
                  f"| weight memory ({self.core.name}) | {total:,} | {8 * total:,} |"]
        if self.segment_layout:
            streamed = self.pass_length
            lines += [f"| streamed per token (of a {len(self.segment):,}-word segment) | {streamed:,} | "
                      f"{8 * streamed:,} |"]
        return "\n".join(lines)


def pack_words(values, bits):
    """Integers of ``bits`` bits (two's complement if negative) packed low bits first into uint64 words."""
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    if values.size and (values.min() < -(1 << (bits - 1)) or values.max() >= 1 << bits):
        raise ValueError(f"values do not fit {bits} bits")
    masked = (values & ((1 << bits) - 1)).astype(np.uint64)
    stream = ((masked[:, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8).reshape(-1)
    stream = np.concatenate([stream, np.zeros(-len(stream) % WORD_BITS, dtype=np.uint8)])
    return np.packbits(stream, bitorder="little").view("<u8")


def matrix_word_count(rows, cols, core):
    """Weight words of a ``rows`` × ``cols`` matrix on ``core``: one per row group and column group per 8 rows."""
    return -(-rows // core.rows) * -(-cols // core.cols) * core.rows // 8


def matrix_words(trits, rows, fmt):
    """A ternary matrix (out × in, int8) as weight words: row groups of ``rows``, ``rows/8`` words per column group."""
    cols = TRITS_PER_BYTE[fmt]
    out_features, in_features = trits.shape
    padded = np.zeros((-(-out_features // rows) * rows, -(-in_features // cols) * cols), dtype=np.int8)
    padded[:out_features, :in_features] = trits
    data = pack(padded.reshape(-1), fmt).reshape(-1, rows, padded.shape[1] // cols)  # (row groups, rows, col groups)
    return np.ascontiguousarray(data.transpose(0, 2, 1)).reshape(-1).view("<u8")


class _Image:
    """The weight image under construction: items appended word-aligned, identical items stored once."""

    def __init__(self):
        self.chunks, self.words, self.layout, self._seen = [], 0, {}, {}

    def add(self, name, words, align=1):
        """Append ``words`` at a multiple of ``align`` words (zero words between); returns the first word's
        address."""
        key = words.tobytes()
        if key in self._seen and self._seen[key] % align == 0:
            return self._seen[key]
        if self.words % align:
            self.chunks.append(np.zeros(-self.words % align, dtype="<u8"))
            self.words += len(self.chunks[-1])
        address = self.words
        self.chunks.append(words)
        self.words += len(words)
        self.layout[name] = (address, len(words))
        self._seen[key] = address
        return address

    def array(self):
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype="<u8")


def _check_fit(model, core, formats, image_words, program_length, stream):
    c = model.config
    problems = []

    def limit(what, need, have):
        if need > have:
            problems.append(f"{what}: needs {need:,}, the {core.name} core has {have:,} ({need - have:,} over)")

    limit("weight memory (64-bit words)", image_words, core.weight_words)
    if image_words > core.weight_words and core.weight_stream and not stream:
        problems.append("the core can stream the matrices and embedding rows over the link instead: compile with "
                        "stream=True (mmfree compile --stream)")
    limit("vector length H", c.hidden_size, core.max_vector)
    limit("vector length I", c.intermediate_size, core.max_vector)
    limit("vocabulary V (the logits memory)", c.vocab_size, core.max_vector)
    limit(f"matrix columns ({core.acc_bits}-bit accumulators)", max(c.hidden_size, c.intermediate_size),
          core.max_cols)
    limit("recurrent state words L·H", c.num_layers * c.hidden_size, core.state_words)
    limit("program (instructions)", program_length, core.program_instructions)
    if formats.gate_frac + 1 > 16 or formats.const_bits > 16:
        problems.append("formats: 1 − lb and norm constants must fit 16 bits")
    if problems:
        raise FitError(f"model V={c.vocab_size} H={c.hidden_size} L={c.num_layers} I={c.intermediate_size} does not "
                       f"fit the {core.name} core:\n  " + "\n  ".join(problems))


def _scalar_fields(name, scalar):
    return {f"{name}_mant": scalar.mant, f"{name}_exp": scalar.exp}


def compile_model(model, core=CORES["icebreaker"], formats=Formats(), *, stream=False):
    """Compile ``model`` (:class:`~mmfree.host.model.Model`) for ``core``; returns a :class:`Program`.

    With ``stream``, the ternary matrices and the embedding rows (with their exponents) go to the program's stream
    segment rather than its image: the host sends each token's words over the link while the core runs
    (``core.weight_stream`` must be set), and only the norm constants and ``1 − lb`` stay in the weight memory.

    Raises
    ------
    FitError
        The model exceeds the core's weight memory, vector length, accumulator width, state or program memory.
    ValueError
        ``stream`` for a core without a weight stream.
    """
    if stream and not core.weight_stream:
        raise ValueError(f"the {core.name} core has no weight stream: compile with stream=False")
    golden = GoldenModel(model, formats)
    c = model.config
    image = _Image()
    segment = _Image() if stream else image

    def vector(name, values, bits=16):
        return image.add(name, pack_words(values, bits))

    def bitlinear(name, proj, epilogue, src=Slot.X, first=Slot.X, layer=0, aux=0, interleave=False):
        codes = proj.trits.astype(np.int8)
        if interleave:  # g_j, u_j, g_{j+1}, …: the GLU drain sees each pair together
            half = codes.shape[0] // 2
            codes = np.stack([codes[:half], codes[half:]], axis=1).reshape(codes.shape)
        fields = {
            "epilogue": epilogue, "src": src, "first": first, "layer": layer, "aux": aux,
            "weights": segment.add(f"{name} trits", matrix_words(codes, core.rows, core.trit_format),
                                   align=core.rows // 8),
            "rows": codes.shape[0], "cols": codes.shape[1], "col_groups": -(-codes.shape[1] // core.cols),
            "consts": vector(f"{name} c", proj.combined, formats.const_bits),
            "has_pre": int(proj.pre is not None), "pre_shift": proj.pre_shift, "pre_exp": proj.pre_exp,
            "pre": 0 if proj.pre is None else vector(f"{name} pre", proj.pre, formats.const_bits),
            **_scalar_fields("constant", proj.constant), **_scalar_fields("inv_n", proj.inv_n),
            "stream": int(stream),
        }
        return encode(Opcode.BITLINEAR, **fields)

    mants = np.stack([m for m, _ in golden.embeddings])
    row_words = len(pack_words(mants[0], formats.embed_bits))
    table = segment.add("embedding", np.concatenate([pack_words(row, formats.embed_bits) for row in mants]))
    exps = segment.add("embedding exponents", pack_words([e for _, e in golden.embeddings], 16))
    program = [encode(Opcode.EMBED, table=table, row_words=row_words, exps=exps, length=c.hidden_size,
                      tokens=c.vocab_size, stream=int(stream))]
    for index, layer in enumerate(golden.layers):
        lb = vector(f"layer {index} 1 − lb", golden.one_minus_lb[index], formats.gate_frac + 1)
        program += [
            bitlinear(f"layer {index} f_proj", layer["f"], Epilogue.FORGET, layer=index, aux=lb),
            bitlinear(f"layer {index} i_proj", layer["i"], Epilogue.STATE, layer=index),
            bitlinear(f"layer {index} g_proj", layer["g"], Epilogue.GATE, layer=index),
            bitlinear(f"layer {index} o_proj", layer["o"], Epilogue.RESIDUAL, src=Slot.V, first=Slot.G),
            bitlinear(f"layer {index} gate_proj", layer["gate"], Epilogue.GLU, interleave=True),
            bitlinear(f"layer {index} down_proj", layer["down"], Epilogue.RESIDUAL, src=Slot.V, first=Slot.V),
        ]
    program.append(bitlinear("lm_head", golden.head, Epilogue.LOGITS))
    program.append(encode(Opcode.END))
    words = image.array()
    streamed = Program(program, words, core, formats, image.layout, segment.array() if stream else
                       np.zeros(0, dtype="<u8"), segment.layout if stream else {})
    config = encode(Opcode.CONFIG, residual_frac=golden.residual_frac, **_scalar_fields("eps", golden.eps),
                    **_scalar_fields("unit", golden.residual_unit), pass_words=streamed.pass_length)
    streamed.instructions = [config, *program]
    _check_fit(model, core, formats, len(words), len(streamed.instructions), stream)
    return streamed
