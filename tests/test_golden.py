"""Golden model: exactness of its integer steps, recurrent consistency, and fidelity to the float reference."""

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from mmfree.host.golden import Formats, GoldenModel
from mmfree.host.model import ModelConfig, random_model
from mmfree.host.reference import FloatReference

CONFIG = ModelConfig(vocab_size=120, hidden_size=64, num_layers=2, intermediate_size=96)


@pytest.fixture(scope="module")
def model():
    return random_model(CONFIG, seed=11)


@pytest.fixture(scope="module")
def golden(model):
    return GoldenModel(model)


def test_quantizer_follows_its_definition_and_tracks_exact_rounding(golden):
    proj = golden.layers[0]["i"]
    f = golden.formats
    rng = np.random.default_rng(5)
    rows = np.concatenate([
        rng.integers(-2**31, 2**31, (20, CONFIG.hidden_size)),
        rng.integers(-3, 4, (5, CONFIG.hidden_size)),
        np.full((1, CONFIG.hidden_size), -2**31), np.full((1, CONFIG.hidden_size), 2**31 - 1),
        np.zeros((1, CONFIG.hidden_size), dtype=np.int64),
    ])
    q, peak, shifts = golden.quantize(proj, rows)
    near = 0
    for row, qrow, m, cut in zip(rows, q, peak.tolist(), shifts.tolist()):
        # v is cut to reduce_bits first: its least floor shift that fits reduce_bits signed bits
        assert cut == max(0, max(abs(int(v)) for v in row).bit_length() - (f.reduce_bits - 1))
        limit = (1 << (f.reduce_bits - 1)) - 1
        p = [min(limit, (int(v) + (1 << (cut - 1))) >> cut if cut else int(v)) * int(c)
             for v, c in zip(row, proj.combined)]
        assert m == max(abs(v) for v in p)
        k = m.bit_length() - f.quant_bits
        scaled = [(abs(v) + (1 << (k - 1))) >> k if k > 0 else abs(v) << -k for v in p]
        top = max((m + (1 << (k - 1))) >> k if k > 0 else m << -k, 1)
        recip = ((127 << f.recip_shift) + top // 2) // top
        expected = [int(math.copysign(min(127, (a * recip + (1 << (f.recip_shift - 1))) >> f.recip_shift), v))
                    if v else 0 for a, v in zip(scaled, p)]
        assert qrow.tolist() == expected
        if m:
            exact = [int(math.copysign(math.floor(Fraction(127 * abs(v), m) + Fraction(1, 2)), v)) if v else 0
                     for v in p]
            assert max(abs(a - b) for a, b in zip(expected, exact)) <= 1
            near += sum(a != b for a, b in zip(expected, exact))
    # the reciprocal differs from exact rounding only next to ties
    assert near <= 0.01 * q.size


def test_accumulators_are_exact_integer_products(golden, model):
    proj = golden.layers[1]["gate"]
    rng = np.random.default_rng(6)
    v = rng.integers(-2**20, 2**20, (8, CONFIG.hidden_size))
    acc, scales = golden.bitlinear(proj, v, [golden.residual_unit] * len(v))
    q, _, _ = golden.quantize(proj, v)
    assert np.array_equal(acc, q @ model.layers[1].gate_proj.codes.astype(np.int64).T)
    assert len(scales) == 8 and all(s.mant > 0 for s in scales)


def test_teacher_forced_equals_recurrent_bit_exactly(golden):
    tokens = np.random.default_rng(1).integers(0, CONFIG.vocab_size, 16)
    acc, scales, state = golden.forward_int(tokens)
    step_state = None
    for t, token in enumerate(tokens):
        step_acc, step_scales, step_state = golden.forward_int([token], step_state)
        assert np.array_equal(step_acc[0], acc[t])
        assert step_scales[0] == scales[t]
    assert np.array_equal(step_state, state)


def test_tracks_float_reference(model, golden):
    tokens = np.random.default_rng(2).integers(0, CONFIG.vocab_size, 48)
    ref_logits, ref_state = FloatReference(model).forward(tokens)
    gold_logits, gold_state = golden.forward(tokens)
    cos = np.sum(ref_logits * gold_logits, 1) / np.linalg.norm(ref_logits, axis=1) / np.linalg.norm(gold_logits, axis=1)
    assert cos.min() > 0.999
    h = golden.state_values(gold_state)
    assert np.max(np.abs(h - ref_state)) < 0.05 * np.max(np.abs(ref_state))


def test_extreme_inputs_saturate_without_overflow(model):
    big = random_model(CONFIG, seed=11)
    big.embeddings = model.embeddings * 1e6
    big.embeddings[3] = 0.0
    golden = GoldenModel(big)
    f = golden.formats
    x = golden.embed([0, 3])
    assert np.all(np.abs(x) <= 2**(f.residual_bits - 1))
    assert np.all(x[1] == 0)
    with np.errstate(all="raise"):
        acc, scales, state = golden.forward_int([0, 3, 5])
    assert np.all(np.abs(state) <= 2**(f.state_bits - 1))
    assert all(math.isfinite(float(s)) for s in scales)
    # an all-zero input vector quantizes to zeros and gets a zero scale
    q, peak, _ = golden.quantize(golden.head, np.zeros((1, CONFIG.hidden_size), dtype=np.int64))
    assert not q.any() and peak[0] == 0


def test_formats_are_checked(model):
    with pytest.raises(ValueError, match="sigmoid_segment_bits"):
        GoldenModel(model, replace(Formats(), act_frac=2))


def test_to_fixed_is_exact_for_extreme_scales():
    from mmfree.host.fixed import Scalar
    acc = np.array([[0, 1, -1, 3, -2**20, 2**20]], dtype=np.int64)
    for exp in [-200, -80, -40, -20, 0, 10, 30, 60, 200]:
        scale = Scalar(40000, exp, 16)
        got = GoldenModel.to_fixed(acc, [scale], 16, 28)
        exact = [max(-2**27, min(2**27 - 1, math.floor(Fraction(int(a) * 40000) * Fraction(2) ** (exp + 16)
                                                         + Fraction(1, 2)))) for a in acc[0]]
        assert got[0].tolist() == exact, exp
