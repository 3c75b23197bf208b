"""Sampling, the generation loop and ``mmfree generate`` on the golden model and the float reference."""

import numpy as np
import pytest

from mmfree.host.cli import main
from mmfree.host.container import save_model
from mmfree.host.golden import GoldenModel
from mmfree.host.model import ModelConfig, random_model
from mmfree.host.sampling import generate, sample
from mmfree.host.synthetic import write_hf_checkpoint

ALPHABET = "\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def test_sample_greedy_topk_and_seed():
    logits = np.array([0.1, 3.0, 2.9, -1.0, 3.0])
    assert sample(logits) == 1  # lowest index among ties
    draws = {sample(logits, 1.0, top_k=2, rng=np.random.default_rng(s)) for s in range(50)}
    assert draws == {1, 4}
    a = [sample(logits, 0.7, rng=np.random.default_rng(3)) for _ in range(5)]
    b = [sample(logits, 0.7, rng=np.random.default_rng(3)) for _ in range(5)]
    assert a == b
    with pytest.raises(ValueError):
        sample(logits, -1.0)
    with pytest.raises(ValueError):
        sample(logits, 1.0)
    with pytest.raises(ValueError):
        sample(logits, 1.0, top_k=0, rng=np.random.default_rng())


@pytest.fixture(scope="module")
def chars_model():
    config = ModelConfig(vocab_size=len(ALPHABET), hidden_size=32, num_layers=2, intermediate_size=64)
    return random_model(config, seed=5, tokenizer={"type": "chars", "alphabet": ALPHABET})


def test_generate_is_deterministic_and_matches_stepping(chars_model):
    golden = GoldenModel(chars_model)
    prompt = [5, 6, 7]
    greedy = list(generate(golden, prompt, 10))
    logits, state = golden.forward(prompt)
    expected = []
    for _ in range(10):
        expected.append(int(np.argmax(logits[-1])))
        logits, state = golden.forward([expected[-1]], state)
    assert greedy == expected
    sampled = list(generate(golden, prompt, 10, temperature=1.0, top_k=5, seed=9))
    assert sampled == list(generate(golden, prompt, 10, temperature=1.0, top_k=5, seed=9))
    stop = greedy[2]
    assert list(generate(golden, prompt, 10, stop={stop}))[-1] == stop
    with pytest.raises(ValueError, match="prompt"):
        next(generate(golden, [], 3))


@pytest.mark.parametrize("device", ["golden", "reference"])
def test_cli_generate_from_container(chars_model, tmp_path, capsys, device):
    path = tmp_path / "model.safetensors"
    save_model(chars_model, path)
    assert main(["generate", "--device", device, "--model", str(path), "-n", "12", "--stats", "ROMEO:"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ROMEO:") and len(out.rstrip("\n")) >= len("ROMEO:")
    assert set(out[len("ROMEO:"):].rstrip("\n")) <= set(ALPHABET)
    assert "tokens/s" in err


@pytest.mark.filterwarnings("ignore:.*no tokenizer.json:UserWarning")
def test_cli_generate_from_hf_folder(tmp_path, capsys):
    write_hf_checkpoint(tmp_path, ModelConfig(300, 32, 1, 64), dtype="bf16")
    assert main(["generate", "--model", str(tmp_path), "-n", "5", "--temperature", "0.8", "hi"]) == 0
    assert capsys.readouterr().out.startswith("hi")


def test_cli_generate_reports_bad_model(tmp_path, capsys):
    assert main(["generate", "--model", str(tmp_path / "missing"), "x"]) == 1
    assert "error" in capsys.readouterr().err


def test_cli_imports_only_the_chosen_command(monkeypatch, capsys):
    from mmfree.host import cli
    monkeypatch.setitem(cli.COMMANDS, "broken", ("no_such_module", "a command whose module is missing"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["generate", "--help"])
    assert exit_info.value.code == 0
    assert "--temperature" in capsys.readouterr().out
