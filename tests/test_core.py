# amaranth: UnusedElaboratable=no

"""The core runs compiled programs bit-exactly against the instruction-level model, in Verilator."""

from dataclasses import replace

import pytest

from mmfree.host.compiler import CORES, compile_model
from mmfree.host.hf_import import import_hf
from mmfree.host.model import ModelConfig, random_model
from mmfree.host.models import resolve_model
from mmfree.host.synthetic import write_hf_checkpoint
from mmfree.sim.diverge import run_program


def test_demo_model(tmp_path):
    program = compile_model(resolve_model("demo"))
    cycles = run_program(program, [ord(c) - 32 for c in "RO"], tmp_path)
    assert all(c > 0 for c in cycles)


def test_demo_model_samples_like_the_golden_sampler(tmp_path):
    program = compile_model(resolve_model("demo"))
    run_program(program, [ord(c) - 32 for c in "ROMEO"], tmp_path, temperature=0.8, seed=12345)


@pytest.mark.filterwarnings("ignore:.*no tokenizer.json")
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_imported_hf_model(temperature, tmp_path):
    config = ModelConfig(vocab_size=50, hidden_size=40, num_layers=2, intermediate_size=72)
    write_hf_checkpoint(tmp_path / "hf", config, dtype="bf16", seed=3)
    program = compile_model(import_hf(tmp_path / "hf"), replace(CORES["icebreaker"], name="test"))
    run_program(program, [1, 49, 0, 7], tmp_path, temperature=temperature, seed=7)


def test_ulx3s_core_on_a_model_that_fills_its_weight_memory(tmp_path):
    """The ULX3S-85F core's 40 K-word weight memory (block RAM, 16-bit addresses), nearly full: 40,816 words with the
    matrices aligned to its 64 rows' eight words, the matrices above word 16,384 as well."""
    model = random_model(ModelConfig(vocab_size=65, hidden_size=256, num_layers=3, intermediate_size=208), seed=5)
    program = compile_model(model, CORES["ulx3s-85f"])
    assert CORES["icebreaker"].weight_words < len(program.image) <= CORES["ulx3s-85f"].weight_words
    run_program(program, [1, 64, 30], tmp_path)


def test_ulx3s_core_samples_like_the_golden_sampler(tmp_path):
    """The pipelined core's sampler (its noise table in logic, k through registers) against the golden sampler."""
    program = compile_model(resolve_model("demo"), CORES["ulx3s-85f"])
    run_program(program, [ord(c) - 32 for c in "JULIET"], tmp_path, temperature=0.7, seed=2024)


def test_two_pass_lanes_on_odd_lengths(tmp_path):
    """Passes of two elements per beat on vectors whose last beat is not a plain pair: I = 83 (odd: the last beat's
    second lane is padding) and H = 46 (the last beat completes a q-buffer word of five and carries its second byte
    into the next)."""
    model = random_model(ModelConfig(vocab_size=37, hidden_size=46, num_layers=1, intermediate_size=83), seed=11)
    program = compile_model(model, replace(CORES["ulx3s-85f"], name="test2", pass_lanes=2))
    run_program(program, [3, 36, 0], tmp_path)


@pytest.mark.parametrize("hidden, intermediate", [(48, 89), (47, 90)])
def test_four_pass_lanes_on_ragged_lengths(hidden, intermediate, tmp_path):
    """Passes of four elements per beat (the ULX3S core's) on vectors whose last beat has 0 … 3 lanes of padding: H = 48 (a full last
    beat that completes a q-buffer word of five and carries three bytes into the next), I = 89 (three lanes of
    padding); H = 47 (one, and two bytes carried), I = 90 (two)."""
    model = random_model(ModelConfig(vocab_size=37, hidden_size=hidden, num_layers=1,
                                     intermediate_size=intermediate), seed=13)
    program = compile_model(model, replace(CORES["ulx3s-85f"], name="test4", pass_lanes=4))
    run_program(program, [3, 36, 0], tmp_path)
