"""The core at instruction level: runs a compiled :class:`~mmfree.host.compiler.Program` one token at a time.

It reads everything from the program — the instructions, the weight image words and, for a streamed program, the
words of each token's pass over the weight stream (taken in the core's order), decoded the way the core's sequencer
and matvec decode them — and computes with :class:`~mmfree.host.golden.Arithmetic`, so equality with
:class:`~mmfree.host.golden.GoldenModel` on the same model checks the compiler (layout, constants, program), and
the core's benches can compare the gateware with it instruction by instruction: the vector slots, the recurrent
state and the logits are readable after every instruction (:attr:`trace`).
"""

import numpy as np

from .compiler import matrix_word_count
from .fixed import Scalar
from .golden import Arithmetic, Projection
from .isa import Epilogue, Opcode, Slot, decode
from .packing import TRITS_PER_BYTE, unpack

__all__ = ["Machine", "unpack_words", "matrix_from_words"]


def unpack_words(words, count, bits, signed=True):
    """The first ``count`` integers of ``bits`` bits packed low bits first in uint64 ``words`` (int64 array)."""
    stream = np.unpackbits(np.ascontiguousarray(words, dtype="<u8").view(np.uint8), bitorder="little")
    fields = stream[:count * bits].reshape(count, bits).astype(np.int64)
    values = (fields << np.arange(bits, dtype=np.int64)).sum(axis=1)
    if signed:
        values = np.where(values >> (bits - 1), values - (1 << bits), values)
    return values


def matrix_from_words(words, rows, cols, lanes, fmt):
    """The ternary matrix (rows × cols, int8) that :func:`~mmfree.host.compiler.matrix_words` laid out."""
    per_byte = TRITS_PER_BYTE[fmt]
    groups, col_groups = -(-rows // lanes), -(-cols // per_byte)
    data = np.ascontiguousarray(words, dtype="<u8").view(np.uint8).reshape(groups, col_groups, lanes)
    trits = unpack(np.ascontiguousarray(data.transpose(0, 2, 1)).reshape(-1), groups * lanes * col_groups * per_byte,
                   fmt)
    return trits.reshape(groups * lanes, col_groups * per_byte)[:rows, :cols]


class Machine:
    """Runs ``program`` token by token; the recurrent state persists between tokens until :meth:`reset`.

    Attributes
    ----------
    slots : dict
        :class:`~mmfree.host.isa.Slot` → (vector, units), vectors int64 of shape (1, n).
    state : dict
        layer → recurrent state (int64, H), Q.state_frac.
    logits : (ndarray, list of Scalar)
        The head's accumulators (1, V) and output scale after the last token.
    trace : list or None
        With ``trace=True``: per instruction, (opcode, fields, copy of the slots and state) of the last token.
    """

    def __init__(self, program, trace=False):
        self.program = program
        self.core, self.formats = program.core, program.formats
        self.instructions = [decode(word) for word in program.instructions]
        self.image = program.image
        self.keep_trace = trace
        self.arith = None
        self.reset()

    def reset(self):
        """Zero the recurrent state."""
        self.state = {}
        self.slots = {}
        self.logits = None
        self.trace = [] if self.keep_trace else None

    def _words(self, address, count, streamed=False):
        if streamed:
            words = self._stream[self._taken:self._taken + count]
            if len(words) < count:
                raise ValueError(f"the run takes more than the {len(self._stream)} words streamed to it")
            self._taken += count
            return words
        if address + count > len(self.image):
            raise ValueError(f"program reads words {address}…{address + count - 1} beyond the image "
                             f"({len(self.image)} words)")
        return self.image[address:address + count]

    def _vector(self, address, count, bits, signed=True, streamed=False):
        return unpack_words(self._words(address, -(-count * bits // 64), streamed), count, bits, signed)

    def _projection(self, f):
        rows, cols, lanes = f["rows"], f["cols"], self.core.rows
        words = self._words(f["weights"], matrix_word_count(rows, cols, self.core), f["stream"])
        trits = matrix_from_words(words, rows, cols, lanes, self.core.trit_format)
        bits, cbits = self.formats.scalar_bits, self.formats.const_bits
        pre = {}
        if f["has_pre"]:
            pre = {"pre": self._vector(f["pre"], cols, cbits), "pre_exp": f["pre_exp"], "pre_shift": f["pre_shift"]}
        return Projection(trits=trits.astype(np.float32), combined=self._vector(f["consts"], cols, cbits),
                          constant=Scalar(f["constant_mant"], f["constant_exp"], bits),
                          inv_n=Scalar(f["inv_n_mant"], f["inv_n_exp"], bits), **pre)

    def run(self, token, stream=None):
        """Run the program for one token id; returns the head's (accumulators (1, V), [scale]).

        ``stream``: the words the run takes from the weight stream (uint64; default: the program's
        :meth:`~mmfree.host.compiler.Program.pass_words` for the token); ``ValueError`` unless it takes them all.
        """
        self._stream = self.program.pass_words(token) if stream is None else np.asarray(stream, dtype="<u8")
        self._taken = 0
        if self.keep_trace:
            self.trace = []
        for opcode, f in self.instructions:
            if opcode is Opcode.END:
                break
            getattr(self, f"_{opcode.name.lower()}")(f, token)
            if self.keep_trace:
                self.trace.append((opcode, f, {k: (v.copy(), u) for k, (v, u) in self.slots.items()},
                                   {k: v.copy() for k, v in self.state.items()}))
        if self.logits is None:
            raise ValueError("the program ended without a LOGITS epilogue")
        if self._taken != len(self._stream):
            raise ValueError(f"the run took {self._taken} of the {len(self._stream)} words streamed to it")
        return self.logits

    def _config(self, f, token):
        bits = self.formats.scalar_bits
        self.arith = Arithmetic(self.formats, Scalar(f["eps_mant"], f["eps_exp"], bits), f["residual_frac"])
        self.unit = Scalar(f["unit_mant"], f["unit_exp"], bits)

    def _embed(self, f, token):
        if not 0 <= token < f["tokens"]:
            raise ValueError(f"token id {token} is outside the model's vocabulary (0 … {f['tokens'] - 1})")
        h, bits = f["length"], self.formats.embed_bits
        exp = int(self._vector(f["exps"] + token // 4, 4, 16, streamed=f["stream"])[token % 4])
        row = self._vector(f["table"] + token * f["row_words"], h, bits, streamed=f["stream"])
        x = self.arith.embed_row(row, exp)
        self.slots[Slot.X] = (x[None, :], [self.unit])

    def _bitlinear(self, f, token):
        arith, proj = self.arith, self._projection(f)
        v, units = self.slots[Slot(f["src"])]
        first = None if f["first"] == f["src"] else self.slots[Slot(f["first"])]
        acc, scales = arith.bitlinear(proj, v, units, first)
        layer = f["layer"]
        epilogue = Epilogue(f["epilogue"])
        if epilogue is Epilogue.FORGET:
            one_minus_lb = self._vector(f["aux"], f["rows"], self.formats.gate_frac + 1, signed=False)
            self.slots[Slot.F] = (arith.forget(acc, scales, one_minus_lb), None)
        elif epilogue is Epilogue.STATE:
            hidden = self.state.get(layer, np.zeros(f["rows"], dtype=np.int64))
            self.state[layer] = arith.recurrence(acc, scales, self.slots[Slot.F][0], hidden)[-1]
        elif epilogue is Epilogue.GATE:
            self.slots[Slot.V] = arith.gate(acc, scales, self.state[layer][None, :])
            self.slots[Slot.G] = (acc, scales)
        elif epilogue is Epilogue.RESIDUAL:
            x, units = self.slots[Slot.X]
            self.slots[Slot.X] = (arith.residual_add(x, acc, scales), units)
        elif epilogue is Epilogue.GLU:
            pairs = acc.reshape(acc.shape[0], -1, 2)  # g_j, u_j interleaved
            self.slots[Slot.V] = arith.glu_product(np.concatenate([pairs[..., 0], pairs[..., 1]], axis=-1), scales)
        else:
            self.logits = (acc, scales)
