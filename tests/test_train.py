"""The PyTorch trainer: its forward is the float reference, training is deterministic and resumable, export."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmfree.host import train  # noqa: E402
from mmfree.host.cli import main  # noqa: E402
from mmfree.host.container import load_model, read_metadata, save_model  # noqa: E402
from mmfree.host.model import Layer, ModelConfig  # noqa: E402
from mmfree.host.quant import quantize_activations, ternarize  # noqa: E402
from mmfree.host.reference import FloatReference  # noqa: E402
from mmfree.host.train_cmd import SPRAM_BYTES, budget, load_config  # noqa: E402

_WORDS = ["the ", "king ", "and ", "queen,\n", "ROMEO: ", "thou ", "art ", "my ", "lord; ", "what? ", "no! "]
TEXT = "".join(np.random.default_rng(0).choice(_WORDS, 700))
CORPUS = train.CharCorpus(TEXT)
CONFIG = ModelConfig(vocab_size=CORPUS.vocab_size, hidden_size=16, num_layers=2, intermediate_size=24)
TINY = train.TrainConfig(seq_len=32, batch_size=4, steps=4, lr=3e-3, warmup_steps=2, eval_every=2, eval_windows=2,
                         checkpoint_every=2, log_every=1, scan_chunk=8)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The models here are tiny: intra-op threads only add overhead, and oversubscribe under ``pytest -n``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _trained(steps=3, dtype=torch.float32):
    trainer = train.Trainer(CONFIG, TINY, CORPUS, dtype=dtype)
    for _ in range(steps):
        trainer.train_step()
    return trainer


def _parameters(trainer):
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


def _projections(model):
    return [getattr(layer, p) for layer in model.layers for p in Layer.PROJECTIONS] + [model.lm_head]


def test_linear_recurrence_equals_the_sequential_loop():
    g = torch.Generator().manual_seed(1)
    f = torch.rand(3, 37, 5, generator=g, dtype=torch.float64)
    i = torch.randn(3, 37, 5, generator=g, dtype=torch.float64)
    h0 = torch.randn(3, 5, generator=g, dtype=torch.float64)
    h, last = train.linear_recurrence(f, i, h0, chunk=8)  # 37 is not a multiple of 8: padding
    expected, hidden = [], h0
    for t in range(37):
        hidden = f[:, t] * hidden + i[:, t]
        expected.append(hidden)
    torch.testing.assert_close(h, torch.stack(expected, 1), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(last, hidden, rtol=1e-13, atol=1e-13)


def test_ternarize_equals_the_exporter_ties_included():
    rng = np.random.default_rng(2)
    for w in (np.array([1.0, 3.0], np.float32), np.array([0.5, -1.5, 0.05, 1.0], np.float32),
              np.zeros(4, np.float32), (0.02 * rng.standard_normal((40, 24))).astype(np.float32)):
        codes, beta = train.ternarize(torch.from_numpy(w))
        expected_codes, expected_beta = ternarize(w, np.float32)
        assert beta.item() == expected_beta
        np.testing.assert_array_equal(codes.numpy(), expected_codes)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_forward_equals_float_reference(dtype, tolerance):
    trainer = _trained()
    with torch.no_grad():  # make every norm and lower bound matter
        g = torch.Generator().manual_seed(3)
        for name, p in trainer.model.named_parameters():
            if not name.endswith(".weight") and name != "embeddings":
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    model = trainer.model.export(CORPUS.tokenizer)
    network = trainer.model.to(dtype).eval()
    reference = FloatReference(model, dtype=np.float64 if dtype == torch.float64 else np.float32)
    tokens = CORPUS.heldout[:2 * 41].reshape(2, 41)
    with torch.no_grad():
        logits, state = network(tokens)
        more, _ = network(tokens, state)  # carried state
    for row in range(2):
        expected, expected_state = reference.forward(tokens[row].numpy())
        expected_more, _ = reference.forward(tokens[row].numpy(), expected_state)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(logits[row].numpy(), expected, rtol=0, atol=tolerance * scale)
        np.testing.assert_allclose(state[:, row].numpy(), expected_state, rtol=0,
                                   atol=tolerance * np.abs(expected_state).max())
        np.testing.assert_allclose(more[row].numpy(), expected_more, rtol=0, atol=tolerance * scale)


def test_straight_through_gradients():
    layer = train.TernaryLinear(24, 8, 1e-6).double()
    with torch.no_grad():
        layer.weight.normal_(0, 0.02, generator=torch.Generator().manual_seed(4))
    x = torch.randn(5, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    g = torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    (layer(x) * g).sum().backward()
    # identity through both quantizers: dL/dW = gᵀ · dequantized input
    q, a = quantize_activations(train.rms_norm(x, layer.norm, 1e-6).detach().numpy())
    np.testing.assert_allclose(layer.weight.grad.numpy(), g.numpy().T @ (q * a / 127), rtol=1e-10)

    trainer = train.Trainer(CONFIG, TINY, CORPUS)
    trainer.train_step()
    for name, p in trainer.model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_same_seed_same_run():
    a, b = _trained(), _trained()
    for name, p in _parameters(a).items():
        assert torch.equal(p, _parameters(b)[name]), name
    other = train.Trainer(CONFIG, train.TrainConfig.from_dict({**TINY.to_dict(), "seed": 1}), CORPUS)
    assert not torch.equal(other.model.embeddings, a.model.embeddings)


def test_resume_equals_uninterrupted(tmp_path):
    whole = train.Trainer(CONFIG, TINY, CORPUS)
    whole.run(progress=False)
    half = train.TrainConfig.from_dict({**TINY.to_dict(), "steps": 2})
    train.Trainer(CONFIG, half, CORPUS).run(tmp_path / "ckpt.pt", progress=False)
    resumed = train.Trainer(CONFIG, TINY, CORPUS)
    resumed.load_checkpoint(tmp_path / "ckpt.pt")
    assert resumed.step == 2
    final = resumed.run(progress=False)
    for name, p in _parameters(whole).items():
        assert torch.equal(p, _parameters(resumed)[name]), name
    assert resumed.history["train"] == whole.history["train"]
    assert final == whole.history["heldout"][-1][1]

    other = train.Trainer(CONFIG, train.TrainConfig.from_dict({**TINY.to_dict(), "lr": 1e-3}), CORPUS)
    with pytest.raises(ValueError, match="lr"):
        other.load_checkpoint(tmp_path / "ckpt.pt")


def test_export_round_trip(tmp_path):
    trainer = _trained()
    model = trainer.model.export(CORPUS.tokenizer)
    save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.tokenizer == CORPUS.tokenizer
    for ours, theirs in zip(_projections(model), _projections(loaded)):
        assert ours.beta == theirs.beta
        np.testing.assert_array_equal(ours.codes, theirs.codes)
    tokens = CORPUS.heldout[:50].numpy()
    np.testing.assert_array_equal(FloatReference(model).forward(tokens)[0], FloatReference(loaded).forward(tokens)[0])


def test_cli_train_resume_and_budget(tmp_path, capsys):
    data, out = tmp_path / "text.txt", tmp_path / "run"
    data.write_text(TEXT, encoding="utf-8")
    base = ["train", "--data", str(data), "--config", "tiny", "--out", str(out), "--device", "cpu", "--quiet"]
    assert main(base) == 0
    log = json.loads((out / "log.json").read_text())
    assert log["steps"] == load_config("tiny")["train"]["steps"] and log["history"]["train"]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = read_metadata(out / "model.safetensors")["meta"]
    assert meta["data"]["heldout_start"] == CORPUS.heldout_start and meta["data"]["sha256"] == CORPUS.sha256
    assert main(base) == 1  # refuses to overwrite a run
    assert main(base + ["--resume", "--steps", "8"]) == 0
    assert json.loads((out / "log.json").read_text())["steps"] == 8
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--config", "tiny", "--budget"]) == 0
    assert "| **total** |" in capsys.readouterr().out


def test_shipped_demo_matches_small_config_and_fits():
    from mmfree.host.models import resolve_model

    model = resolve_model("demo")
    shape = load_config("small")["model"]
    assert {k: model.config.to_dict()[k] for k in shape} == shape
    assert model.config.vocab_size == 65 and model.tokenizer["type"] == "chars"
    assert sum(row[3] for row in budget(model.config)) <= SPRAM_BYTES
