# amaranth: UnusedElaboratable=no

"""Bench of :class:`mmfree.hw.vector_unit.VectorUnit` against the golden model.

Two kinds of checks:

- per operation, every result against the golden model's lines for it (``GoldenModel.to_fixed`` and the
  ``SigmoidTable``/``round_shift``/``saturate`` expressions of ``GoldenModel.mlgru``, ``glu`` and
  ``residual_add``), on random and adversarial elements: accumulators at both ends of their range, zero and
  unit mantissas, shifts at both ends of the shift field (beyond where the golden model's int64 arithmetic is exact
  the reference is the same formula in Python integers, checked equal to the golden one where both apply),
  rounding ties (and a tie half an LSB beyond the saturation limit), ``z`` and ``h`` exactly on σ segment
  boundaries, at 0, at the table's end and saturated, the state at saturation, ``1 − lb`` = 1 (``lb = 0``) and
  → 0 (``lb → 1``), ``1 − f`` = 0 and 1;
- whole passes as the core will run them, against ``GoldenModel.mlgru``, ``glu`` and ``residual_add`` themselves
  (their projections stubbed to return chosen accumulators and scales): FORGET, then STATE fed with the unit's own
  ``1 − f`` and state, then GATE with the unit's ``h``, token after token; the GLU with a g and a u row per
  element; the residual add.

Every stream has random gaps (junk on the payload while not valid) and random back-pressure; the stream rules are
checked every cycle.

Parameters (:func:`mmfree.sim.benches.params`): ``formats`` (VectorUnit constructor arguments; default its
defaults), ``cycles_per_element`` (default 1), ``per_op`` (random elements per operation, default 250).
"""

import random

import cocotb
import cocotb.utils
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from mmfree.host.fixed import Scalar, SigmoidTable, round_shift, saturate
from mmfree.host.golden import Formats, GoldenModel
from mmfree.hw.vector_unit import VectorOp, VectorUnit

from . import params
from .streams import Sink, Source, reset

P = params()
UNIT = VectorUnit(**P.get("formats", {}), cycles_per_element=P.get("cycles_per_element", 1),
                  sigmoid_table=P.get("sigmoid_table", "block"))
FORMATS = Formats(**{name: getattr(UNIT, name) for name in VectorUnit.FORMAT_FIELDS})
F = FORMATS
TABLE = SigmoidTable(F.gate_frac, F.sigmoid_segment_bits, F.sigmoid_range)
IN_LAYOUT = UNIT.i.payload.shape()
IN_BITS = IN_LAYOUT.size
OUT_BITS = UNIT.out_bits
ONE = 1 << F.gate_frac
ACC_MIN, ACC_MAX = -(1 << (UNIT.acc_bits - 1)), (1 << (UNIT.acc_bits - 1)) - 1
SHIFT_MIN, SHIFT_MAX = -(1 << (UNIT.shift_bits - 1)), (1 << (UNIT.shift_bits - 1)) - 1
MANT_MAX = (1 << F.scalar_bits) - 1
TIMEOUT = {"timeout_time": 100, "timeout_unit": "ms"}
OPS = list(VectorOp)


def limits(bits):
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


# -- the reference ----------------------------------------------------------------------------------------------

def exact_to_fixed(acc, mant, shift, bits):
    """``sat(round(acc·mant·2^-shift))`` in Python integers (ties up)."""
    value, shift = int(acc) * int(mant), int(shift)
    value = (value + (1 << (shift - 1))) >> shift if shift > 0 else value << -shift
    low, high = limits(bits)
    return min(max(value, low), high)


def to_fixed(acc, mant, shift, bits):
    """``GoldenModel.to_fixed`` of each element with the scale ``Scalar(mant, −shift)`` (frac 0), where its int64
    arithmetic is exact; the same formula in Python integers elsewhere."""
    acc, mant, shift = (np.asarray(v, dtype=np.int64) for v in (acc, mant, shift))
    product = np.abs(acc * mant)
    length = np.frexp(product.astype(np.float64))[1] + 1
    safe = (shift <= 62) & ((shift >= 0) | (length - shift <= 62))
    result = np.array([exact_to_fixed(a, m, s, bits) for a, m, s in zip(acc, mant, shift)], dtype=np.int64)
    if safe.any():
        scales = [Scalar(int(m), -int(s), F.scalar_bits) for m, s in zip(mant[safe], shift[safe])]
        golden = GoldenModel.to_fixed(acc[safe][:, None], scales, 0, bits)[:, 0]
        assert (golden == result[safe]).all(), "the Python-integer reference disagrees with the golden model"
        result[safe] = golden
    return result


def reference(elements):
    """The results the unit must give for ``elements`` (dicts), in order: (data, last) per emitted element."""
    n = len(elements)
    col = {key: np.array([e[key] for e in elements], dtype=np.int64) for key in ("acc", "mant", "shift", "a", "b")}
    op = np.array([e["op"].value for e in elements])
    data = np.zeros(n, dtype=np.int64)
    acc, a, b = col["acc"], col["a"], col["b"]
    z = to_fixed(acc, col["mant"], col["shift"], F.act_bits)
    af, sf, g = F.act_frac, F.state_frac, F.gate_frac

    def where(*ops):
        return np.isin(op, [o.value for o in ops])

    sel = where(VectorOp.SCALE)
    data[sel] = z[sel]
    sel = where(VectorOp.RESIDUAL)
    data[sel] = saturate(a[sel] + to_fixed(acc[sel], col["mant"][sel], col["shift"][sel], F.residual_bits),
                         F.residual_bits)
    sel = where(VectorOp.FORGET)
    # GoldenModel.mlgru: one_minus_f = round_shift(one_minus_lb · complement(z_f), gate_frac)
    data[sel] = round_shift(a[sel] * TABLE.complement(z[sel], af), g)
    sel = where(VectorOp.INPUT, VectorOp.STATE)
    # inject = round_shift(silu(z_i) · one_minus_f, gate_frac + act_frac − state_frac)
    inject = round_shift(TABLE.silu(z[sel], af) * a[sel], g + af - sf)
    # hidden = saturate(round_shift(forget · hidden, gate_frac) + inject, state_bits), forget = 2^g − one_minus_f
    state = saturate(round_shift((ONE - a[sel]) * b[sel], g) + inject, F.state_bits)
    data[sel] = np.where(op[sel] == VectorOp.STATE.value, state, inject)
    sel = where(VectorOp.GATE)
    # gated = round_shift(acc_g · silu(h, state_frac), gated_shift)
    data[sel] = round_shift(acc[sel] * TABLE.silu(b[sel], sf), F.gated_shift)
    sel = where(VectorOp.GLU)
    # glu: round_shift(silu(z_g) · up, glu_shift), up in b
    data[sel] = round_shift(TABLE.silu(z[sel], af) * b[sel], F.glu_shift)
    return [(int(data[i]), elements[i]["last"]) for i in range(n)]


# -- the elements -----------------------------------------------------------------------------------------------

def pack(element):
    raw = 0
    for name, field in IN_LAYOUT:
        value = element[name]
        value = value.value if isinstance(value, VectorOp) else value
        raw |= (value & ((1 << field.width) - 1)) << field.offset
    return raw


def decode(raw):
    data = raw & ((1 << OUT_BITS) - 1)
    return data - (1 << OUT_BITS) if data >> (OUT_BITS - 1) else data, raw >> OUT_BITS & 1


def boundaries(frac, bits):
    """σ segment boundaries and their neighbours, 0, the table's end, the range's ends, in Q.frac of ``bits``."""
    sub = frac - F.sigmoid_segment_bits
    low, high = limits(bits)
    values = {0, 1, -1, low, high, low + 1, high - 1}
    for k in range(F.sigmoid_range * (1 << F.sigmoid_segment_bits) + 2):
        for d in (-1, 0, 1, 1 << max(sub - 1, 0)):
            values |= {(k << sub) + d, -(k << sub) - d}
    return sorted(v for v in values if low <= v <= high)


Z_EDGES = boundaries(F.act_frac, F.act_bits)
H_EDGES = boundaries(F.state_frac, F.state_bits)


class Elements:
    """Random and adversarial operands, drawn with the bench's seed."""

    def __init__(self, rng):
        self.rng = rng

    def pick(self, *choices):
        """One of ``choices`` (callables are called)."""
        choice = choices[self.rng.integers(len(choices))]
        return int(choice() if callable(choice) else choice)

    def log_uniform(self, bits):
        return int(self.rng.choice([-1, 1])) * int(2 ** self.rng.uniform(0, bits - 1))

    def acc(self):
        return self.pick(ACC_MIN, ACC_MAX, 0, 1, -1, lambda: self.rng.integers(ACC_MIN, ACC_MAX, endpoint=True),
                         lambda: self.log_uniform(UNIT.acc_bits), lambda: self.log_uniform(UNIT.acc_bits))

    def mant(self):
        top = 1 << (F.scalar_bits - 1)
        return self.pick(0, 1, MANT_MAX, top, 3 << (F.scalar_bits - 2), lambda: self.rng.integers(top, MANT_MAX),
                         lambda: self.rng.integers(top, MANT_MAX), lambda: self.rng.integers(0, MANT_MAX))

    def scale(self, acc, target_bits):
        """(mant, shift): extremes, random, or aimed so that ``acc·mant·2^-shift`` has about ``target_bits``."""
        mant = self.mant()
        length = (abs(acc) * mant).bit_length()
        aimed = lambda: min(max(length - target_bits + int(self.rng.integers(-3, 4)), SHIFT_MIN), SHIFT_MAX)
        shift = self.pick(SHIFT_MIN, SHIFT_MAX, 0, -1, 1, lambda: self.rng.integers(SHIFT_MIN, SHIFT_MAX),
                          aimed, aimed, aimed, aimed, aimed, aimed)
        return mant, shift

    def limit_tie(self, bits):
        """acc, mant, shift with ``acc·mant·2^-shift = ±(2^(bits−1) − 1/2)``: rounds (up) past the positive limit,
        onto the negative one; from ``2^bits − 1 = (2^(bits/2) − 1)(2^(bits/2) + 1)``; None where that does not
        fit the fields."""
        half = bits // 2
        acc, mant = (1 << half) + 1, (1 << half) - 1
        if bits % 2 or acc > ACC_MAX or mant > MANT_MAX:
            return None
        j = int(self.rng.integers(0, 3))
        if acc << j > ACC_MAX:
            j = 0
        return int(self.rng.choice([-1, 1])) * (acc << j), mant, 1 + j

    def z_operands(self):
        """acc, mant, shift for an op that takes σ of ``z = to_fixed(acc)``: exactly on a σ segment boundary (or
        its neighbours, 0, the table's end, the ends of the range), aimed at σ's interesting range, or anywhere."""
        kind = self.rng.integers(4)
        if kind < 2:
            # z = edge exactly: acc = edge / 2^j (j > 0 only for edges beyond the accumulator's range, all
            # multiples of 2^j), mant = 2^k, shift = k − j
            edge = self.pick(*Z_EDGES)
            j = max(0, abs(edge).bit_length() - (UNIT.acc_bits - 1))
            k = 0 if kind == 0 else int(self.rng.integers(0, F.scalar_bits))
            return edge >> j, 1 << k, k - j
        acc = self.acc()
        target = int(self.rng.integers(F.act_frac - 4, F.act_bits + 3))
        return (acc, *self.scale(acc, target))

    def one_minus(self):
        """``1 − lb`` or ``1 − f`` in Q0.g: 1 (lb = 0), → 0 (lb → 1), 0, random."""
        return self.pick(ONE, ONE - 1, ONE - 2, 0, 1, 2, 17, lambda: self.rng.integers(0, ONE, endpoint=True),
                         lambda: self.rng.integers(0, ONE, endpoint=True))

    def state(self):
        low, high = limits(F.state_bits)
        return self.pick(low, high, 0, lambda: self.pick(*H_EDGES), lambda: self.rng.integers(low, high),
                         lambda: self.log_uniform(F.state_bits), lambda: self.log_uniform(F.state_bits))

    def element(self, op):
        """One element of operation ``op``."""
        e = {"op": op, "last": int(self.rng.integers(2)), "acc": self.acc(), "mant": self.mant(),
             "shift": int(self.rng.integers(SHIFT_MIN, SHIFT_MAX, endpoint=True)),
             "a": int(self.rng.integers(*limits(UNIT.a_bits))), "b": int(self.rng.integers(*limits(F.state_bits)))}
        if op in (VectorOp.SCALE, VectorOp.RESIDUAL):
            target = F.act_bits if op is VectorOp.SCALE else F.residual_bits
            e["mant"], e["shift"] = self.scale(e["acc"], target + int(self.rng.integers(-8, 3)))
            tie = self.limit_tie(target)
            if tie is not None and self.rng.random() < 0.1:
                e["acc"], e["mant"], e["shift"] = tie
            if op is VectorOp.RESIDUAL:
                low, high = limits(F.residual_bits)
                e["a"] = self.pick(low, high, 0, -1, lambda: self.rng.integers(low, high),
                                   lambda: self.log_uniform(F.residual_bits))
        if op in (VectorOp.FORGET, VectorOp.INPUT, VectorOp.STATE, VectorOp.GLU):
            e["acc"], e["mant"], e["shift"] = self.z_operands()
        if op in (VectorOp.FORGET, VectorOp.INPUT, VectorOp.STATE):
            e["a"] = self.one_minus()
        if op in (VectorOp.STATE, VectorOp.GATE):
            e["b"] = self.state()
        if op is VectorOp.GLU:
            e["b"] = self.acc()
        return e


# -- driving the unit -------------------------------------------------------------------------------------------

async def run(dut, elements, *, p_gap, p_stall):
    """Stream ``elements`` through the unit; returns its results [(data, last)] and the cycles the sink took."""
    count = len(elements)
    source = Source(dut, "i", dut.clk, p_gap=p_gap, junk_bits=IN_BITS)
    sink = Sink(dut, "o", dut.clk, p_stall=p_stall)
    sending = cocotb.start_soon(source.send([pack(e) for e in elements]))
    start = cocotb.utils.get_sim_time("ns")
    received = await sink.receive(count, max_cycles=20 * len(elements) + 100)
    cycles = round((cocotb.utils.get_sim_time("ns") - start) / 10)
    await sending
    await RisingEdge(dut.clk)
    for _ in range(UNIT.latency + 2):
        await ReadOnly()
        assert not dut.o__valid.value, "o.valid without input"
        await RisingEdge(dut.clk)
    return [decode(raw) for raw in received], cycles


def describe(e):
    return ", ".join(f"{k}={e[k].name if k == 'op' else e[k]}" for k in ("op", "acc", "mant", "shift", "a", "b"))


async def check(dut, elements, *, p_gap, p_stall):
    received, cycles = await run(dut, elements, p_gap=p_gap, p_stall=p_stall)
    expected = reference(elements)
    for index, (e, got, want) in enumerate(zip(elements, received, expected)):
        assert got == want, f"result {index} of {len(elements)} ({describe(e)}): got (data, last) {got}, " \
                            f"expected {want}"
    return cycles


def rng():
    return np.random.default_rng(random.getrandbits(64))


@cocotb.test(**TIMEOUT)
async def each_operation(dut):
    """Every operation on random and adversarial operands, a block per operation, under gaps and back-pressure."""
    await reset(dut)
    make = Elements(rng())
    for op in OPS:
        elements = [make.element(op) for _ in range(P.get("per_op", 250))]
        await check(dut, elements, p_gap=0.3, p_stall=0.3)


@cocotb.test(**TIMEOUT)
async def mixed_operations(dut):
    """Operations interleaved at random, element by element, in segments of light to heavy gaps and stalls."""
    await reset(dut)
    make = Elements(rng())
    for p_gap, p_stall in [(0.0, 0.5), (0.5, 0.0), (0.5, 0.5), (0.1, 0.9), (0.9, 0.1)]:
        ops = [random.choice(OPS) for _ in range(150)]
        await check(dut, [make.element(op) for op in ops], p_gap=p_gap, p_stall=p_stall)


@cocotb.test(**TIMEOUT)
async def full_throughput(dut):
    """Without gaps or stalls: one element every cycles_per_element cycles, results after the latency."""
    await reset(dut)
    make = Elements(rng())
    elements = [make.element(op) for op in [VectorOp.STATE, VectorOp.RESIDUAL, VectorOp.GLU, VectorOp.GATE] * 45]
    cycles = await check(dut, elements, p_gap=0, p_stall=0)
    # one element every cycles_per_element cycles: the first may wait for phase 0, none is taken sooner
    period = UNIT.cycles_per_element
    assert period * (len(elements) - 1) + UNIT.latency <= cycles <= period * len(elements) + UNIT.latency, \
        f"{len(elements)} elements took {cycles} cycles"


# -- whole passes against the golden model's own functions ------------------------------------------------------

class Stub:
    """A GoldenModel whose projections return chosen accumulators and scales, and capture their inputs."""

    def __init__(self, one_minus_lb=None, residual_frac=0):
        self.model = object.__new__(GoldenModel)
        self.model.formats = FORMATS
        self.model.sigmoid = TABLE
        self.model.one_minus_lb = [one_minus_lb]
        self.model.residual_unit = Scalar.from_int(1, F.scalar_bits)
        self.model.residual_frac = residual_frac
        self.model.layers = [{name: name for name in ("f", "i", "g", "o", "gate", "down")}]
        self.model.bitlinear = self.bitlinear
        self.outputs, self.inputs = {}, {}

    def bitlinear(self, proj, v, units=None, first=None):
        self.inputs[proj] = v
        return self.outputs.get(proj, (v, units))


def random_scale(rng, value):
    """A golden-style scale (normalized 16-bit mantissa) near ``value``."""
    return Scalar.from_float(float(value * 2 ** rng.uniform(-1, 1)), F.scalar_bits)


def shift_of(scale, frac):
    return -(scale.exp + frac)


def accumulators(rng, shape, peak=127 * 300):
    peak = min(peak, ACC_MAX)
    acc = rng.integers(-peak, peak, shape, endpoint=True)
    flat = acc.reshape(-1)
    flat[rng.integers(0, flat.size, max(flat.size // 32, 1))] = rng.choice([ACC_MIN, ACC_MAX, 0])
    return acc


@cocotb.test(**TIMEOUT)
async def golden_mlgru(dut):
    """FORGET → STATE → GATE passes, token after token, each fed the unit's own results, against
    ``GoldenModel.mlgru`` (its state and the o_proj input); INPUT against the same i."""
    await reset(dut)
    r = rng()
    hidden, tokens = 48, 4
    lb = np.concatenate([[0.0, 0.5, 1 - 1e-6, 1 - 1e-3], r.uniform(0, 1, hidden - 4)])
    one_minus_lb = np.round(np.ldexp(1.0 - lb, F.gate_frac)).astype(np.int64)
    stub = Stub(one_minus_lb)
    acc = {name: accumulators(r, (tokens, hidden)) for name in "fig"}
    scales = {name: [random_scale(r, s) for _ in range(tokens)] for name, s in
              [("f", 2.0 ** -9), ("i", 2.0 ** -8), ("g", 2.0 ** -12)]}
    stub.outputs = {name: (acc[name], scales[name]) for name in "fig"}
    low, high = limits(F.state_bits)
    state = r.integers(low >> 5, high >> 5, (1, hidden), endpoint=True)
    state[0, :4] = [high, low, 0, high]
    start = state.copy()
    gated = stub.model.mlgru(0, np.zeros((tokens, 1)), state)  # the stub's o_proj returns its input
    assert gated[0] is stub.inputs["o"]

    h = start[0].tolist()
    for t in range(tokens):
        def elements(op, name, a=None, b=None):
            s = scales[name]
            return [{"op": op, "last": int(j == hidden - 1), "acc": int(acc[name][t, j]), "mant": s[t].mant,
                     "shift": shift_of(s[t], F.act_frac), "a": 0 if a is None else int(a[j]),
                     "b": 0 if b is None else int(b[j])} for j in range(hidden)]

        received, _ = await run(dut, elements(VectorOp.FORGET, "f", a=one_minus_lb), p_gap=0.3, p_stall=0.3)
        one_minus_f = [d for d, _ in received]
        received, _ = await run(dut, elements(VectorOp.INPUT, "i", a=one_minus_f), p_gap=0.3, p_stall=0.3)
        inject = [d for d, _ in received]
        received, _ = await run(dut, elements(VectorOp.STATE, "i", a=one_minus_f, b=h), p_gap=0.3, p_stall=0.3)
        # STATE is INPUT fused with the recurrence: h = sat(rs(f·h_prev, g) + i), with the unit's own i
        forget = ONE - np.array(one_minus_f)
        recurrence = saturate(round_shift(forget * np.array(h), F.gate_frac) + np.array(inject), F.state_bits)
        h = [d for d, _ in received]
        assert h == recurrence.tolist(), f"token {t}: STATE differs from the recurrence over INPUT's i"
        assert [last for _, last in received] == [0] * (hidden - 1) + [1]
        received, _ = await run(dut, elements(VectorOp.GATE, "g", b=h), p_gap=0.3, p_stall=0.3)
        got = [d for d, _ in received]
        assert got == gated[0][t].tolist(), f"token {t}: o_proj input differs from GoldenModel.mlgru's:\n" \
                                            f"got      {got}\nexpected {gated[0][t].tolist()}"
    assert h == state[0].tolist(), f"state after {tokens} tokens differs from GoldenModel.mlgru's:\n" \
                                   f"got      {h}\nexpected {state[0].tolist()}"


@cocotb.test(**TIMEOUT)
async def golden_glu(dut):
    """The GLU pass, a g and a u row per element, against ``GoldenModel.glu`` (the input of down_proj)."""
    await reset(dut)
    r = rng()
    inner, tokens = 96, 3
    stub = Stub()
    acc = accumulators(r, (tokens, 2 * inner))
    scales = [random_scale(r, 2.0 ** -10) for _ in range(tokens)]
    stub.outputs = {"gate": (acc, scales)}
    expected = stub.model.glu(0, np.zeros((tokens, 1)))[0]
    for t in range(tokens):
        s = scales[t]
        elements = [{"op": VectorOp.GLU, "last": int(j == inner - 1), "acc": int(acc[t, j]), "mant": s.mant,
                     "shift": shift_of(s, F.act_frac), "a": 0, "b": int(acc[t, inner + j])} for j in range(inner)]
        received, _ = await run(dut, elements, p_gap=0.3, p_stall=0.3)
        assert [d for d, _ in received] == expected[t].tolist(), f"token {t}: down_proj input differs"
        assert [last for _, last in received] == [0] * (inner - 1) + [1]


@cocotb.test(**TIMEOUT)
async def golden_residual_add(dut):
    """RESIDUAL against ``GoldenModel.residual_add``, residual stream at and near saturation."""
    await reset(dut)
    r = rng()
    width, tokens, frac = 64, 4, 19
    stub = Stub(residual_frac=frac)
    low, high = limits(F.residual_bits)
    x = r.integers(low, high, (tokens, width), endpoint=True)
    x[:, :4] = [high, low, high - 5, 0]
    acc = accumulators(r, (tokens, width), peak=ACC_MAX)
    scales = [random_scale(r, 2.0 ** e) for e in (-10, -4, -19, 2)]
    expected = stub.model.residual_add(x, acc, scales)
    for t in range(tokens):
        elements = [{"op": VectorOp.RESIDUAL, "last": 0, "acc": int(acc[t, j]), "mant": scales[t].mant,
                     "shift": shift_of(scales[t], frac), "a": int(x[t, j]), "b": 0} for j in range(width)]
        received, _ = await run(dut, elements, p_gap=0.3, p_stall=0.3)
        assert [d for d, _ in received] == expected[t].tolist(), f"token {t}: residual stream differs"
