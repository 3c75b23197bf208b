"""The core's instruction set: opcodes, fields and their encoding (docs/isa.md is the prose form).

An instruction is :data:`INSTRUCTION_BITS` wide: the opcode in the low :data:`OPCODE_BITS` bits, then the opcode's
fields in the order of :data:`FIELDS`, each a two's-complement (``signed``) or plain unsigned integer, low bits
first. Unused high bits are zero. This table is the contract between the compiler (host) and the sequencer
(gateware builds its ``lib.data`` layouts from it).
"""

import enum

__all__ = ["Opcode", "Epilogue", "Slot", "Field", "FIELDS", "INSTRUCTION_BITS", "OPCODE_BITS", "encode", "decode",
           "field_offset"]

INSTRUCTION_BITS = 256
OPCODE_BITS = 4


class Opcode(enum.IntEnum):
    """What an instruction does (docs/isa.md)."""
    CONFIG = 0
    EMBED = 1
    BITLINEAR = 2
    END = 3


class Epilogue(enum.IntEnum):
    """What the drain of a BITLINEAR does with each output (``GoldenModel`` method in brackets)."""
    FORGET = 0    #: 1 − f of the layer into slot F (``forget``)
    STATE = 1     #: the layer's recurrent state from slot F (``recurrence``)
    GATE = 2      #: o_proj's input into slot V, the accumulators and scale into slot G (``gate``)
    RESIDUAL = 3  #: residual add into slot X (``residual_add``)
    GLU = 4       #: down_proj's input into slot V, g and u rows interleaved (``glu_product``)
    LOGITS = 5    #: the head: accumulators and scale kept for argmax / sampling and read-back


class Slot(enum.IntEnum):
    """Vectors in vector memory (the recurrent state is per layer, apart from these)."""
    X = 0  #: the residual stream
    V = 1  #: the input of o_proj or down_proj
    G = 2  #: g_proj's accumulators (the first norm of o_proj is over them)
    F = 3  #: 1 − f of the current layer


class Field:
    """One field of an instruction: ``name``, width in ``bits``, ``signed`` or not."""

    def __init__(self, name, bits, signed=False):
        self.name, self.bits, self.signed = name, bits, signed

    def check(self, value):
        low, high = (-(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1) if self.signed else (0, (1 << self.bits) - 1)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"field {self.name} must be an int, not {type(value).__name__}")
        if not low <= value <= high:
            raise ValueError(f"field {self.name} = {value} does not fit {'signed' if self.signed else 'unsigned'} "
                             f"{self.bits} bits ({low} … {high})")
        return int(value) & ((1 << self.bits) - 1)

    def extract(self, raw):
        if self.signed and raw >> (self.bits - 1):
            return raw - (1 << self.bits)
        return raw


def _scalar(name):
    """A :class:`~mmfree.host.fixed.Scalar` as two fields: ``<name>_mant`` (16 bits) and ``<name>_exp`` (signed 12)."""
    return [Field(f"{name}_mant", 16), Field(f"{name}_exp", 12, signed=True)]


#: the fields of each opcode, in encoding order (addresses are word addresses of the weight image, or of the stream
#: segment where the instruction's ``stream`` is 1: docs/isa.md, "Weight streaming")
FIELDS = {
    Opcode.CONFIG: [
        Field("residual_frac", 8, signed=True),  # fraction bits of the residual stream
        *_scalar("eps"),                         # the norms' ε
        *_scalar("unit"),                        # value of one LSB of the residual stream
        Field("pass_words", 24),                 # words streamed per token (0: nothing streams)
    ],
    Opcode.EMBED: [
        Field("table", 24),      # first word of the embedding rows (one row per token, each from a word boundary)
        Field("row_words", 12),  # words per row
        Field("exps", 24),       # first word of the rows' exponents (int16, four per word)
        Field("length", 16),     # H
        Field("tokens", 20),     # V: token ids at or above it are rejected
        Field("stream", 1),      # the row and its exponent word arrive on the weight stream
    ],
    Opcode.BITLINEAR: [
        Field("epilogue", 3),
        Field("src", 2),         # Slot of the input v
        Field("first", 2),       # Slot whose mean square is the first norm's (src for a one-norm projection)
        Field("layer", 8),       # the layer whose state (STATE, GATE) and 1 − lb (FORGET) the epilogue uses
        Field("weights", 24),    # first word of the matrix
        Field("rows", 16),
        Field("cols", 16),
        Field("consts", 20),     # first word of c (int16, four per word)
        Field("has_pre", 1),
        Field("pre", 20),        # first word of pre (int16, four per word), if has_pre
        Field("pre_shift", 5),
        Field("pre_exp", 8, signed=True),
        Field("aux", 20),        # FORGET: first word of the layer's 1 − lb (uint16 Q0.gate_frac, four per word)
        *_scalar("constant"),    # β/127 times c's exponent
        *_scalar("inv_n"),       # 1/cols
        Field("stream", 1),      # the matrix arrives on the weight stream
        Field("col_groups", 16),  # ⌈cols / columns per weight byte⌉: the matvec's column groups (the core divides not)
    ],
    Opcode.END: [],
}

for _opcode, _fields in FIELDS.items():
    assert OPCODE_BITS + sum(f.bits for f in _fields) <= INSTRUCTION_BITS, _opcode


def field_offset(opcode, name):
    """Bit offset of field ``name`` in an ``opcode`` instruction."""
    offset = OPCODE_BITS
    for field in FIELDS[Opcode(opcode)]:
        if field.name == name:
            return offset
        offset += field.bits
    raise KeyError(f"{Opcode(opcode).name} has no field {name}")


def encode(opcode, **values):
    """One instruction as an int: ``opcode`` and every one of its fields by name (``TypeError``/``ValueError``
    name a missing, unknown or out-of-range field)."""
    opcode = Opcode(opcode)
    names = [f.name for f in FIELDS[opcode]]
    unknown = set(values) - set(names)
    if unknown:
        raise TypeError(f"{opcode.name} has no field {', '.join(sorted(unknown))}")
    missing = [name for name in names if name not in values]
    if missing:
        raise TypeError(f"{opcode.name} needs field {', '.join(missing)}")
    word, offset = int(opcode), OPCODE_BITS
    for field in FIELDS[opcode]:
        word |= field.check(values[field.name]) << offset
        offset += field.bits
    return word


def decode(word):
    """``(Opcode, {field: value})`` of an encoded instruction; ``ValueError`` for an unknown opcode or set unused
    bits."""
    if not 0 <= word < 1 << INSTRUCTION_BITS:
        raise ValueError(f"an instruction is {INSTRUCTION_BITS} bits")
    try:
        opcode = Opcode(word & ((1 << OPCODE_BITS) - 1))
    except ValueError:
        raise ValueError(f"unknown opcode {word & ((1 << OPCODE_BITS) - 1)}") from None
    values, offset = {}, OPCODE_BITS
    for field in FIELDS[opcode]:
        values[field.name] = field.extract((word >> offset) & ((1 << field.bits) - 1))
        offset += field.bits
    if word >> offset:
        raise ValueError(f"{opcode.name} instruction has bits set above its fields (bit {offset} up)")
    return opcode, values
