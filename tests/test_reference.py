"""Float reference: quantizers, lower bounds, and teacher-forced vs recurrent equivalence."""

import numpy as np
import pytest

from mmfree.host.model import ModelConfig, random_model
from mmfree.host.quant import quantize_activations, round_half_away, ternarize
from mmfree.host.reference import FloatReference

CONFIG = ModelConfig(vocab_size=97, hidden_size=32, num_layers=3, intermediate_size=48)


def test_round_half_away_from_zero():
    assert round_half_away(np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49])).tolist() == [1, 2, 3, -1, -3, 0]


def test_ternarize_absmean_ties_to_even():
    codes, beta = ternarize(np.array([0.5, -1.5, 0.05, 1.0]))
    assert beta == pytest.approx(0.7625)
    assert codes.tolist() == [1, -1, 0, 1]
    # w/β = [0.5, 1.5]: ties to even gives 0 and 2 → clamped to 1
    codes, beta = ternarize(np.array([1.0, 3.0]))
    assert beta == 2.0 and codes.tolist() == [0, 1]
    codes, beta = ternarize(np.zeros(4))
    assert beta == pytest.approx(1e-5) and codes.tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="NaN"):
        ternarize(np.array([1.0, np.nan]))


def test_quantize_activations_absmax():
    q, a = quantize_activations(np.array([[1.0, -0.5, 0.25, 2.0]]))
    assert a.item() == 2.0
    assert q.tolist() == [[64, -32, 16, 127]]  # 63.5 → 64, half away from zero
    q, a = quantize_activations(np.zeros((1, 3)))
    assert a.item() == 1e-5 and q.tolist() == [[0, 0, 0]]


def test_lower_bounds_start_at_zero_and_rise():
    model = random_model(CONFIG, seed=3)
    lb = model.lower_bound_values()
    assert np.all(lb[0] == 0)
    assert np.all(np.diff(lb, axis=0) > 0)
    assert np.all(lb < 1)


def test_teacher_forced_equals_recurrent_decoding():
    model = random_model(CONFIG, seed=4)
    ref = FloatReference(model)
    tokens = np.random.default_rng(0).integers(0, CONFIG.vocab_size, 12)
    logits, state = ref.forward(tokens)
    step_state = None
    for t, token in enumerate(tokens):
        step_logits, step_state = ref.forward([token], step_state)
        np.testing.assert_allclose(step_logits[0], logits[t], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(step_state, state, rtol=1e-12)


def test_bad_tokens_rejected():
    ref = FloatReference(random_model(CONFIG))
    with pytest.raises(ValueError, match="token ids"):
        ref.forward([CONFIG.vocab_size])
    with pytest.raises(ValueError, match="non-empty"):
        ref.forward([])
