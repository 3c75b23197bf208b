"""Ternary matrix-vector unit: ``P`` output rows × ``C`` input columns of int8 × {−1, 0, +1} per cycle.

The unit has no model shape built in. An operation is a sequence of *row groups*; a row group is ``P`` output rows
and takes ``⌈N/C⌉`` beats, the last one marked by ``w.payload.last``. Beat ``b`` of a row group carries the trits
``T[g·P + r, b·C + c]`` (``r < P``, ``c < C``) on ``w`` and the activations ``q[b·C + c]`` on ``a``; at the end of
the group ``o`` offers the ``P`` exact accumulators ``Σ_n T[g·P + r, n] · q[n]``. ``N`` and the number of row groups
are therefore whatever the sequencer streams; the only build-time bound is ``max_len``, the longest ``N`` the
accumulators hold exactly. Columns of a last beat beyond ``N`` must carry a zero trit (the packer pads with trit 0)
or a zero activation; rows beyond the matrix are the caller's to ignore.

Arithmetic (all exact, no rounding, no saturation; int8 −128 inputs included):

* a term ``t · q`` is formed as a ones'-complement operand ``t[0] ? q ^ {8{t[1]}} : {8{t[1]}}`` plus a carry-in
  ``t[1]``: +1 → ``q + 0``, −1 → ``~q + 1``, 0 → ``0 + 0``; the code ``0b10`` (not a trit) → ``−1 + 1 = 0``. The
  operand is one 3-input LUT per bit and stays 8 bits wide (``−(−128)`` needs no ninth bit: its +1 rides on a
  carry), and every carry-in feeds the carry chain of one adder, so no separate negation exists;
* per row, the ``C`` operands go through a tree of ``C − 1`` two-input adders and the accumulator adder, each adder
  taking one of the ``C`` carry-ins at its chain's bottom; every adder is exactly as wide as its value range
  (for ``C = 5``: 9, 9, 10, 11 bits, then the accumulator);
* accumulators are ``acc_width = bit_length(128 · max_len) + 1`` bits, enough for ``|acc| ≤ 128 · max_len``.

Pipeline and flow control: the join of ``w`` and ``a`` feeds one register stage (the first ``⌈levels/2⌉`` tree
levels before it, the rest of the tree and the accumulators after it). A beat is taken when ``w.valid & a.valid``
and stage 1 can load; ``w.ready`` depends on ``a.valid`` and ``a.ready`` on ``w.valid`` (a sink may wait for
``valid``; no ``ready`` here depends on ``o.ready``). The accumulators themselves are the output register: after
the ``last`` beat of a group ``o.valid`` rises and holds with the accumulators until ``o.ready``; the transfer
clears them (synchronous reset of the flip-flops, free on iCE40). Throughput: one beat per cycle within a row group
plus one cycle per row group (the hand-off), when the consumer is ready; while ``o`` waits, the unit stalls.
Latency from the ``last`` beat's transfer to ``o.valid``: 2 cycles, plus the decoders' latency with ``fmt`` (1, or 2
with ``registered_decoders``).

Cost on the iCE40UP5K (``P = 8``, ``C = 5``, ``max_len = 4096``, decoded trits; Yosys ``synth_ice40``, nextpnr
packing; Fmax with every port behind a register): 866 logic cells, 21.7 per lane (8 operand LUTs, 7.8 tree-adder
cells, 4.2 accumulator cells, 1.6 of pipeline flip-flops and control), 55–57 MHz over 5 placement seeds. Per row
this is the floor of an adder design on LUT4 + carry cells: an adder cell's LUT computes only the sum, so every
operand bit is one LUT and every added bit one cell. Sharing column pairs (``q0 ± q1`` once per cycle, each row
choosing among ``{0, ±q0, ±q1, ±(q0+q1), ±(q0−q1)}``) costs more here: the choice has 8 inputs per bit, three LUTs,
against two operand LUTs and one adder cell for the same two lanes; measured 22 % more cells at this shape. Each
accumulator bit fewer saves ``P`` cells (``max_len = 768``: 842); base-3 decoders inside add 29 cells and 8 EBRs.

Weight port: with ``fmt=None`` the ``w`` payload carries decoded trits (from :mod:`mmfree.hw.trit_decoder`'s
decoders, outside this unit). With ``fmt="2bit"`` or ``"base3"`` it carries the packed bytes, ``C / g`` per row
(``g`` = trits per byte), decoded inside by ``P · C / g`` :class:`~mmfree.hw.trit_decoder.TritDecoder` instances in
lockstep (one register stage; base-3 uses one EBR ROM per decoder); byte ``j`` of row ``r`` holds the trits of
columns ``j·g … j·g + g − 1``, as :func:`mmfree.host.packing.pack` writes a row's ``C`` trits. An invalid byte
decodes as the decoder documents (its invalid codes read as trit 0) and sets ``error`` on the row group's output.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .trit_decoder import TRITS_PER_BYTE, TritDecoder, decoder_latency

__all__ = ["acc_width", "weight_layout", "activation_layout", "output_layout", "TernaryMatVec"]


def acc_width(max_len):
    """Accumulator width (signed) for vectors of up to ``max_len`` int8 values: ``|acc| ≤ 128 · max_len``."""
    return (128 * max_len).bit_length() + 1


def weight_layout(rows, cols, fmt=None):
    """Layout of one ``w`` beat.

    Returns
    -------
    data.StructLayout
        ``fmt=None``: ``trits``: ``ArrayLayout(ArrayLayout(signed(2), cols), rows)``, ``trits[r][c]`` the weight of
        row ``r``, column ``c`` of the beat (2-bit two's complement, −1/0/+1); otherwise ``bytes``:
        ``ArrayLayout(ArrayLayout(unsigned(8), cols // g), rows)``, the packed bytes of each row. Then ``last``
        (1 bit): the beat ends its row group.
    """
    if fmt is None:
        beat = {"trits": data.ArrayLayout(data.ArrayLayout(signed(2), cols), rows)}
    else:
        beat = {"bytes": data.ArrayLayout(data.ArrayLayout(unsigned(8), cols // TRITS_PER_BYTE[fmt]), rows)}
    return data.StructLayout({**beat, "last": 1})


def activation_layout(cols):
    """Layout of one ``a`` beat: ``ArrayLayout(signed(8), cols)``, element ``c`` the activation of column ``c``."""
    return data.ArrayLayout(signed(8), cols)


def output_layout(rows, width):
    """Layout of one ``o`` beat: ``acc``: ``ArrayLayout(signed(width), rows)``; ``error``: an invalid weight byte
    was decoded in the row group (always 0 when the weights arrive decoded)."""
    return data.StructLayout({"acc": data.ArrayLayout(signed(width), rows), "error": 1})


def _term_shape(lo, hi):
    return Shape.cast(range(lo, hi + 1))


class TernaryMatVec(wiring.Component):
    """``rows`` × ``cols`` ternary multiply-accumulate lanes with exact accumulators (see the module notes).

    Parameters
    ----------
    rows : int
        ``P``, output rows per row group (≥ 1). UP5K: 8.
    cols : int
        ``C``, input columns per beat (≥ 1). UP5K: 5 (one base-3 byte per row and beat).
    max_len : int
        Longest vector (``N``, in columns) the accumulators hold exactly (≥ 1); sets :attr:`acc_width`.
    fmt : None or {"2bit", "base3"}
        ``None``: ``w`` carries decoded trits. A packing format: ``w`` carries packed bytes, decoded inside;
        ``cols`` must then be a multiple of its trits per byte.
    registered_decoders : bool
        With ``fmt``: the decoders' groups pass a second register (:class:`~mmfree.hw.trit_decoder.TritDecoder`'s
        ``registered``), so no block RAM's output runs into the adder tree.
    decoder_table : {"block", "logic"}
        With ``"base3"``: where each decoder's table lives (:class:`~mmfree.hw.trit_decoder.TritDecoder`'s
        ``table``).

    Attributes
    ----------
    w : In(stream.Signature(weight_layout(rows, cols, fmt)))
    a : In(stream.Signature(activation_layout(cols)))
    o : Out(stream.Signature(output_layout(rows, acc_width)))
    """

    def __init__(self, rows=8, cols=5, max_len=4096, *, fmt=None, registered_decoders=False, decoder_table="block"):
        if not isinstance(registered_decoders, bool):
            raise TypeError(f"registered_decoders must be a bool, got {registered_decoders!r}")
        check_int("rows", rows, 1)
        check_int("cols", cols, 1)
        check_int("max_len", max_len, 1)
        if fmt is not None:
            if not isinstance(fmt, str):
                raise TypeError(f"fmt must be None or a str, got {fmt!r}")
            if fmt not in TRITS_PER_BYTE:
                raise ValueError(f"unknown packing format {fmt!r}; expected None or one of {list(TRITS_PER_BYTE)}")
            if cols % TRITS_PER_BYTE[fmt]:
                raise ValueError(f"cols must be a multiple of {TRITS_PER_BYTE[fmt]} (trits per byte of {fmt!r}) "
                                 f"when the weights arrive packed, got {cols}")
        self._rows, self._cols, self._max_len, self._fmt = rows, cols, max_len, fmt
        self._registered_decoders, self._decoder_table = registered_decoders, decoder_table
        super().__init__({
            "w": In(stream.Signature(weight_layout(rows, cols, fmt))),
            "a": In(stream.Signature(activation_layout(cols))),
            "o": Out(stream.Signature(output_layout(rows, acc_width(max_len)))),
        })

    rows = property(lambda self: self._rows)
    cols = property(lambda self: self._cols)
    max_len = property(lambda self: self._max_len)
    fmt = property(lambda self: self._fmt)
    acc_width = property(lambda self: acc_width(self._max_len))

    @property
    def decode_latency(self):
        """Cycles from a beat's transfer on ``w`` to its decoded trits (0 without ``fmt``)."""
        if self._fmt is None:
            return 0
        return decoder_latency(self._registered_decoders)

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols

        # -- weights: decoded trits, straight from w or through the decoders' register stage --------------------
        w_ready = Signal()
        if self._fmt is None:
            w_valid, w_last, w_error = self.w.valid, self.w.payload.last, C(0, 1)
            trits = [[self.w.payload.trits[r][c] for c in range(cols)] for r in range(rows)]
            m.d.comb += self.w.ready.eq(w_ready)
        else:
            per_byte = TRITS_PER_BYTE[self._fmt]
            decoders = [[TritDecoder(self._fmt, registered=self._registered_decoders, table=self._decoder_table)
                         for _ in range(cols // per_byte)] for _ in range(rows)]
            for r, row in enumerate(decoders):
                for j, decoder in enumerate(row):
                    m.submodules[f"decoder_{r}_{j}"] = decoder
                    m.d.comb += [
                        decoder.i.valid.eq(self.w.valid),
                        decoder.i.payload.eq(self.w.payload.bytes[r][j]),
                        decoder.o.ready.eq(w_ready),
                    ]
            first = decoders[0][0]  # all decoders see the same handshakes, so they move in lockstep
            w_last = self.w.payload.last
            for stage in range(first.latency):  # ``last`` keeps step with the decoders' stages
                w_last, previous = Signal(name=f"w_last_{stage}"), w_last
                with m.If(first.i.ready):
                    m.d.sync += w_last.eq(previous)
            m.d.comb += self.w.ready.eq(first.i.ready)
            w_valid = first.o.valid
            w_error = Cat(decoder.o.payload.error for row in decoders for decoder in row).any()
            trits = [[decoders[r][c // per_byte].o.payload.trits[c % per_byte] for c in range(cols)]
                     for r in range(rows)]

        # -- join of weights and activations; stage 1 loads when empty or when the accumulators take it ---------
        valid1, last1, error1 = Signal(), Signal(), Signal()
        load1 = Signal()
        m.d.comb += [
            load1.eq(~valid1 | ~self.o.valid),
            w_ready.eq(self.a.valid & load1),
            self.a.ready.eq(w_valid & load1),
        ]
        with m.If(load1):
            m.d.sync += [
                valid1.eq(w_valid & self.a.valid),
                last1.eq(w_last),
                error1.eq(w_error),
            ]

        levels = (cols - 1).bit_length()  # adder levels of the tree
        split = (levels + 1) // 2  # levels before the stage-1 register

        for r in range(rows):
            # terms: (value, lo, hi); carry-ins wait in a pool, one per adder
            terms, carries = [], []
            for c in range(cols):
                t = Value.cast(trits[r][c]).as_unsigned()
                q = Value.cast(self.a.payload[c])
                operand = Signal(signed(8), name=f"op_{r}_{c}")
                m.d.comb += operand.eq(Mux(t[0], q.as_unsigned() ^ t[1].replicate(8), t[1].replicate(8)))
                terms.append((operand, -128, 127))
                carries.append(t[1])

            def add_level(terms, carries, stage):
                out = []
                for i in range(0, len(terms) - 1, 2):
                    (x, xlo, xhi), (y, ylo, yhi) = terms[i], terms[i + 1]
                    lo, hi = xlo + ylo, xhi + yhi + 1
                    # keep: stops Yosys (alumacc) merging chained adders into one multi-operand
                    # $macc, which it maps to LUT full adders (a third more LUTs than carry chains)
                    total = Signal(_term_shape(lo, hi), name=f"sum_{r}_{stage}_{i // 2}", attrs={"keep": 1})
                    m.d.comb += total.eq(x + y + carries.pop(0))
                    out.append((total, lo, hi))
                if len(terms) % 2:
                    out.append(terms[-1])
                return out

            for level in range(split):
                terms = add_level(terms, carries, level)
            # the stage-1 register: every term and every carry-in still waiting
            staged = []
            for i, (value, lo, hi) in enumerate(terms):
                reg = Signal(value.shape(), name=f"s1_{r}_{i}")
                with m.If(load1):
                    m.d.sync += reg.eq(value)
                staged.append((reg, lo, hi))
            terms, pending = staged, []
            for i, carry in enumerate(carries):
                reg = Signal(name=f"s1_carry_{r}_{i}")
                with m.If(load1):
                    m.d.sync += reg.eq(carry)
                pending.append(reg)
            carries = pending
            for level in range(split, levels):
                terms = add_level(terms, carries, level)
            (beat_sum, _, _), = terms
            (carry,) = carries

            acc = self.o.payload.acc[r]
            accumulator = Signal(signed(self.acc_width), name=f"acc_{r}")
            m.d.comb += acc.eq(accumulator)
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += accumulator.eq(0)
            with m.Elif(valid1 & ~self.o.valid):
                m.d.sync += accumulator.eq(accumulator + beat_sum + carry)

        error = Signal()
        m.d.comb += self.o.payload.error.eq(error)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [self.o.valid.eq(0), error.eq(0)]
        with m.Elif(valid1 & ~self.o.valid):
            m.d.sync += [self.o.valid.eq(last1), error.eq(error | error1)]

        return m
