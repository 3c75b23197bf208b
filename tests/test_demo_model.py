"""The shipped demo model: it resolves by name, fits the UP5K budget, and the golden model keeps its fidelity.

This is the regression test of the golden model's formats: on the first 6,144 held-out characters (committed in
tests/data) the golden model must agree with the float reference on ≥ 99 % of greedy next-character choices and
stay within 2 % of its cross-entropy, and the float reference must stay under 1.6 nats/char.
"""

from pathlib import Path

import numpy as np
import pytest

from mmfree.host.cli import main
from mmfree.host.golden import GoldenModel
from mmfree.host.models import resolve_model, shipped_models
from mmfree.host.reference import FloatReference
from mmfree.host.tokenizer import make_tokenizer
from mmfree.host.train_cmd import SPRAM_BYTES, budget

EXCERPT = Path(__file__).parent / "data" / "heldout_excerpt.txt"
WINDOW = 256


@pytest.fixture(scope="module")
def demo():
    return resolve_model("demo")


def test_demo_is_shipped_and_fits_the_up5k(demo):
    assert "demo" in shipped_models()
    c = demo.config
    assert (c.vocab_size, c.hidden_size, c.num_layers, c.intermediate_size) == (65, 128, 3, 248)
    assert demo.tokenizer["type"] == "chars" and len(demo.tokenizer["alphabet"]) == 65
    assert sum(row[3] for row in budget(c)) <= SPRAM_BYTES


def cross_entropy(logits, targets):
    z = logits - logits.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(targets)), targets]))


def test_golden_keeps_the_float_reference_fidelity(demo):
    ids = np.array(make_tokenizer(demo.tokenizer).encode(EXCERPT.read_text()))
    reference, golden = FloatReference(demo), GoldenModel(demo)
    agree = count = 0
    ce_ref = ce_gold = 0.0
    for start in range(0, len(ids) - 1, WINDOW):
        window, targets = ids[start:start + WINDOW], ids[start + 1:start + WINDOW + 1]
        window = window[:len(targets)]
        ref_logits, gold_logits = reference.forward(window)[0], golden.forward(window)[0]
        agree += int(np.sum(ref_logits.argmax(1) == gold_logits.argmax(1)))
        count += len(targets)
        ce_ref += cross_entropy(ref_logits, targets) * len(targets)
        ce_gold += cross_entropy(gold_logits, targets) * len(targets)
    ce_ref, ce_gold = ce_ref / count, ce_gold / count
    assert ce_ref <= 1.6
    assert abs(ce_gold / ce_ref - 1) <= 0.02
    assert agree / count >= 0.99, f"greedy agreement {agree / count:.4f}"


def test_demo_command_writes_text(capsys):
    assert main(["generate", "--device", "golden", "--model", "demo", "-n", "80", "ROMEO:"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:")
    words = out[len("ROMEO:"):].split()
    assert len(words) >= 8 and sum(w.strip(",.;:!?'").isalpha() for w in words) >= 0.7 * len(words)
