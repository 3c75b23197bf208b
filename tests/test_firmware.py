"""The micro-engine's firmware against the golden arithmetic, routine by routine and whole programs against Machine.

The firmware runs on the cycle-exact simulator of the engine (host/micro.py); the gateware is checked against that
simulator in tests/test_micro_engine.py.
"""

import numpy as np
import pytest

from mmfree.host.compiler import CORES, compile_model
from mmfree.host.firmware import Firmware, Pa, Sp, spaces
from mmfree.host.fixed import Scalar, rsqrt_scalar
from mmfree.host.golden import Arithmetic, Formats, Projection
from mmfree.host.isa import Slot
from mmfree.host.isa import decode as decode_instruction
from mmfree.host.machine import Machine
from mmfree.host.micro import Assembler, CMode, MicroError, MicroMachine, Op, Space, Stream, decode, encode
from mmfree.host.micro_core import MicroCore
from mmfree.host.models import resolve_model

FORMATS = Formats()
FIRMWARE = Firmware(FORMATS, tests=True)
ARITH = Arithmetic(FORMATS, Scalar.from_float(1e-6, FORMATS.scalar_bits), 20)


def machine():
    return MicroMachine(FIRMWARE.words, spaces(CORES["icebreaker"], FORMATS), FORMATS)


def run(m, routine, params):
    for slot, value in params.items():
        m.load(Sp.P, [value], slot)
    return m.run(FIRMWARE.entries[f"{routine}_test"])


def scale_params(scale, frac):
    return {Pa.MANT: scale.mant, Pa.SHIFT: -(scale.exp + frac)}


def random_scale(rng):
    return Scalar.from_float(float(10 ** rng.uniform(-12, 3)), FORMATS.scalar_bits)


def accumulators(rng, n, trial):
    """Random accumulators, with adversarial vectors among them (all ±max, zeros, alternating extremes)."""
    limit = 1 << 15
    kind = trial % 6
    if kind == 0:
        return np.full(n, limit - 1)
    if kind == 1:
        return np.full(n, -limit)
    if kind == 2:
        return np.zeros(n, dtype=np.int64)
    if kind == 3:
        return np.where(np.arange(n) % 2, limit - 1, -limit)
    return rng.integers(-limit, limit, n) if kind == 4 else rng.integers(-300, 300, n)


TRIALS = 24


@pytest.mark.parametrize("trial", range(TRIALS))
def test_epilogues_equal_the_golden_arithmetic(trial):
    rng = np.random.default_rng(trial)
    f, n = FORMATS, 128
    acc, s = accumulators(rng, n, trial), random_scale(rng)
    one_minus_lb = rng.integers(0, (1 << f.gate_frac) + 1, n)
    one_minus_lb[:2] = (0, 1 << f.gate_frac)

    m = machine()
    m.load(Sp.ACC, acc)
    m.load(Sp.WU, one_minus_lb, 100)
    run(m, "forget", {Pa.N: n, Pa.BASE: 100, **scale_params(s, f.act_frac)})
    one_minus_f = ARITH.forget(acc[None], [s], one_minus_lb)[0]
    assert (m.read(Sp.F, n) == one_minus_f).all()

    h = rng.integers(-(1 << 31), 1 << 31, n)
    h[:2] = (-(1 << 31), (1 << 31) - 1)
    m = machine()
    m.load(Sp.ACC, acc)
    m.load(Sp.F, one_minus_f)
    m.load(Sp.H, h, 128)
    run(m, "state", {Pa.N: n, Pa.BASE: 128, **scale_params(s, f.act_frac)})
    h_new = ARITH.recurrence(acc[None], [s], one_minus_f[None], h)[-1]
    assert (m.read(Sp.H, n, 128) == h_new).all()

    m = machine()
    m.load(Sp.ACC, acc)
    m.load(Sp.H, h_new, 128)
    run(m, "gate", {Pa.N: n, Pa.BASE: 128})
    gated, _ = ARITH.gate(acc[None], [s], h_new[None])
    assert (m.read(Sp.V, n) == gated[0]).all()
    assert m.read(Sp.P, 1, Pa.MAXOUT)[0] == np.abs(gated).max()

    x = rng.integers(-(1 << 31), 1 << 31, n)
    m = machine()
    m.load(Sp.ACC, acc)
    m.load(Sp.X, x)
    run(m, "residual", {Pa.N: n, **scale_params(s, 20)})
    assert (m.read(Sp.X, n) == ARITH.residual_add(x[None], acc[None], [s])[0]).all()

    pairs = accumulators(rng, 248, trial + 1)
    m = machine()
    m.load(Sp.ACCE, pairs[0::2])
    m.load(Sp.ACCO, pairs[1::2])
    run(m, "glu", {Pa.N: 124, **scale_params(s, f.act_frac)})
    product, _ = ARITH.glu_product(np.concatenate([pairs[0::2], pairs[1::2]])[None], [s])
    assert (m.read(Sp.V, 124) == product[0]).all()


@pytest.mark.parametrize("trial", range(TRIALS))
def test_the_bitlinear_passes_equal_the_golden_quantizer_and_sums(trial):
    rng = np.random.default_rng(100 + trial)
    n = 128
    bits = 8 + trial if trial < 20 else 31
    v = rng.integers(-(1 << bits), 1 << bits, n)
    if trial % 4 == 0:
        v[rng.integers(0, n)] = -(1 << bits)
    c, pre = rng.integers(-(1 << 15), 1 << 15, n), rng.integers(-(1 << 15), 1 << 15, n)
    if trial % 5 == 0:
        c[:] = -(1 << 15)
    pre_shift = int(np.abs(pre).max()).bit_length()
    proj = Projection(trits=np.zeros((1, n), np.float32), combined=c, constant=Scalar(1 << 15, 0, 16),
                      inv_n=Scalar(1 << 15, 0, 16), pre=pre, pre_shift=pre_shift)
    m = machine()
    m.load(Sp.X, v)
    m.load(Sp.WS, c, 200)
    m.load(Sp.WS, pre, 400)
    run(m, "stats_x", {Pa.N: n, Pa.BASE: 200, Pa.BASE2: 400, Pa.PRESHIFT: pre_shift,
                       Pa.MAXSRC: int(np.abs(v).max()), Pa.DO_SUM_A: 1, Pa.DO_SUM_U: 1})
    run(m, "quantize", {Pa.BASE: 0})
    q, peak, k = ARITH.quantize(proj, v[None])
    sums, _ = ARITH.sum_of_squares(v[None])
    u = np.right_shift(np.right_shift(v, k[0]) * pre, pre_shift)
    p = m.read(Sp.P, len(Pa))
    assert (p[Pa.K], p[Pa.MAXP], p[Pa.SUM_A], p[Pa.SUM_U]) == (k[0], peak[0], sums[0], (u * u).sum())
    assert (m.read(Sp.Q, n) == q[0]).all()


def scalars(rng, count):
    """Random scalars over a wide range, zeros, and pairs close in exponent."""
    out = []
    for t in range(count):
        if t % 20 == 0:
            out.append(Scalar(0, 0, 16))
        else:
            out.append(Scalar.from_float(float(10 ** rng.uniform(-30, 30)), 16))
    return out


def test_scalar_routines_equal_the_golden_scalar():
    rng = np.random.default_rng(7)
    xs, ys = scalars(rng, 600), scalars(rng, 600)
    for t, (x, y) in enumerate(zip(xs, ys)):
        if t % 3 == 0 and x.mant:
            y = Scalar(int(rng.integers(1 << 15, 1 << 16)), x.exp + int(rng.integers(-19, 20)), 16)
        for routine, want in (("smul", x * y), ("sadd", x + y), ("srsqrt", rsqrt_scalar(x))):
            m = machine()
            run(m, routine, {Pa.SCALE: x.mant, Pa.SCALE_E: x.exp, Pa.TMP_A: y.mant, Pa.TMP_A_E: y.exp})
            got = tuple(m.read(Sp.P, 2, Pa.SCALE))
            assert got == (want.mant, want.exp), (routine, x, y)


@pytest.mark.parametrize("two_norms", [0, 1])
def test_the_scale_chain_equals_the_golden_bitlinear_scale(two_norms):
    rng = np.random.default_rng(11 + two_norms)
    sc = lambda value: Scalar.from_float(value, 16)  # noqa: E731
    for _ in range(150):
        sum_a, sum_u = (int(rng.integers(0, 1 << 44)) for _ in range(2))
        ka, ku, kv = int(rng.integers(0, 20)), int(rng.integers(-20, 30)), int(rng.integers(0, 17))
        unit_first, unit_src = sc(10 ** rng.uniform(-9, 2)), sc(10 ** rng.uniform(-12, 2))
        inv_n, eps, constant = sc(1 / 128), sc(1e-6), sc(10 ** rng.uniform(-5, 1))
        max_p = int(rng.integers(0, 1 << 32))
        a = Scalar.from_int(sum_a, 16) * inv_n * (unit_first * unit_first).scaled(2 * ka)
        if two_norms:
            b = Scalar.from_int(sum_u, 16) * inv_n * (unit_src * unit_src).scaled(2 * ku)
            denominator = b + eps * (a + eps)
        else:
            denominator = a + eps
        want = constant * Scalar.normalize(max_p, kv, 16) * unit_src * rsqrt_scalar(denominator)
        m = machine()
        run(m, "chain", {Pa.SUM_A_C: sum_a, Pa.KA2: 2 * ka, Pa.UNIT_FIRST: unit_first.mant,
                         Pa.UNIT_FIRST_E: unit_first.exp, Pa.INV_N: inv_n.mant, Pa.INV_N_E: inv_n.exp,
                         Pa.EPS: eps.mant, Pa.EPS_E: eps.exp, Pa.TWO_NORMS: two_norms, Pa.SUM_U_C: sum_u,
                         Pa.KU2: 2 * ku, Pa.UNIT_SRC: unit_src.mant, Pa.UNIT_SRC_E: unit_src.exp, Pa.MAXP_C: max_p,
                         Pa.KV: kv, Pa.CONSTANT: constant.mant, Pa.CONSTANT_E: constant.exp, Pa.CHAIN_REUSE: 0})
        assert tuple(m.read(Sp.P, 2, Pa.SCALE)) == (want.mant, want.exp)


@pytest.mark.parametrize("spec, tokens", [("demo", 6), ("random:V=100,H=192,L=1,I=256,seed=3", 4),
                                          ("random:V=40,H=64,L=2,I=96,seed=8", 4)])
def test_whole_programs_equal_machine_token_by_token(spec, tokens):
    """Slots X and F, every layer's state, the head's accumulators and scale and the token, after every token."""
    model = resolve_model(spec)
    program = compile_model(model, CORES["icebreaker"])
    core, ref = MicroCore(program), Machine(program)
    token, h = 0, model.config.hidden_size
    for _ in range(tokens):
        acc, scales = ref.run(token)
        answer, cycles = core.run(token)
        assert answer == int(np.argmax(acc[0]))
        assert (core.slot(Sp.X, h) == ref.slots[Slot.X][0][0]).all()
        assert (core.slot(Sp.F, h) == ref.slots[Slot.F][0][0]).all()
        for layer, state in ref.state.items():
            assert (core.slot(Sp.H, h, layer * h) == state).all()
        assert (core.slot(Sp.ACC, acc.shape[1]) == acc[0]).all()
        assert tuple(core.slot(Sp.P, 2, Pa.LOGIT_SCALE)) == (scales[0].mant, scales[0].exp)
        assert cycles > core.matvec_cycles // (tokens + 1)
        token = answer


def test_reading_the_accumulators_while_the_matvec_runs_is_a_fault():
    program = compile_model(resolve_model("demo"), CORES["icebreaker"])
    core = MicroCore(program)
    weights = next(f["weights"] for op, f in map(decode_instruction, program.instructions) if "weights" in f)
    a = Assembler()
    a.ld(2, 0, space=Sp.P, imm=0)
    a.st(0, 2, space=Sp.IO, imm=0)
    a.lis(2, imm=8, sh=0)
    a.st(0, 2, space=Sp.IO, imm=1)
    a.st(0, 2, space=Sp.IO, imm=2)
    a.st(0, 0, space=Sp.IO, imm=3)
    a.ld(3, 0, space=Sp.ACC, imm=0)
    a.halt()
    core.engine = MicroMachine(a.assemble(), core.engine.spaces, FORMATS)
    core.engine.load(Sp.P, [weights])
    with pytest.raises(MicroError, match="while the matvec runs"):
        core.engine.run()


def test_vector_stream_rules():
    space_map = {0: Space("a", 32, 16), 1: Space("b", 16, 16), 2: Space("d", 32, 16)}
    a = Assembler()
    a.lis(1, imm=4, sh=0)
    a.vstream(0, which=Stream.A, space=0, imm=0, reg=0)
    a.vstream(0, which=Stream.B, space=0, imm=2, reg=0)      # a second read of space 0 at another address
    a.vstream(0, which=Stream.D, space=2, imm=0, reg=0)
    a.vmsr(0, 1, 0, s=0, bits=0, cmode=CMode.NONE, absa=0, maxr=0)
    a.halt()
    with pytest.raises(MicroError, match="two read streams"):
        MicroMachine(a.assemble(), space_map).run()
    a = Assembler()
    a.lis(1, imm=4, sh=0)
    a.lis(2, imm=3, sh=0)
    a.vstream(0, which=Stream.A, space=0, imm=0, reg=0)
    a.vstream(2, which=Stream.B, space=0, imm=0, reg=1)
    a.vstream(0, which=Stream.D, space=0, imm=2, reg=0)      # writes ahead of what A still reads
    a.vmsr(0, 1, 0, s=0, bits=0, cmode=CMode.NONE, absa=0, maxr=0)
    a.halt()
    with pytest.raises(MicroError, match="overlaps"):
        MicroMachine(a.assemble(), space_map).run()


def test_vector_operations_compute_and_take_n_plus_latency_cycles():
    space_map = {0: Space("a", 32, 16), 1: Space("b", 16, 16, signed=False), 2: Space("d", 40, 16)}
    m_words = Assembler()
    m_words.lis(1, imm=5, sh=0)
    m_words.lis(3, imm=0, sh=0)
    m_words.vstream(0, which=Stream.A, space=0, imm=0, reg=0)
    m_words.vstream(0, which=Stream.B, space=1, imm=0, reg=0)
    m_words.vstream(0, which=Stream.C, space=0, imm=0, reg=0)
    m_words.vstream(0, which=Stream.D, space=2, imm=0, reg=0)
    m_words.vmsr(3, 1, 0, s=2, bits=12, cmode=CMode.SIGN, absa=1, maxr=1)
    m_words.halt()
    m = MicroMachine(m_words.assemble(), space_map)
    a_vals, b_vals = [-7, 100, -3000, 5, 0], [3, 65535, 7, 1, 9]
    m.load(0, a_vals)
    m.load(1, b_vals)
    cycles = m.run()
    want = []
    for x, y in zip(a_vals, b_vals):
        v = min(max((abs(x) * y + 2) >> 2, -2048), 2047)
        want.append(-v if x < 0 else v)
    assert list(m.read(2, 5)) == want
    assert m.regs[3] == max(abs(v) for v in want)
    assert cycles == 2 + 4 + (5 + 5) + 1


def test_encode_decode_round_trip_of_the_vector_operations():
    for op in (Op.VSTREAM, Op.VMSR, Op.VMSF, Op.VMAC, Op.VSIG):
        fields = {Op.VSTREAM: dict(which=3, space=15, imm=-512, reg=0),
                  Op.VMSR: dict(s=-64, bits=48, cmode=2, absa=1, maxr=1),
                  Op.VMSF: dict(s=63, bits=0, cmode=1, absa=0, maxr=0),
                  Op.VMAC: {}, Op.VSIG: dict(mode=2, frac=24)}[op]
        assert decode(encode(op, 7, 6, 5, **fields)) == (op, 7, 6, 5, fields)


def test_the_firmware_needs_an_even_scalar_width():
    with pytest.raises(ValueError, match="even scalar_bits"):
        Firmware(Formats(scalar_bits=15))
