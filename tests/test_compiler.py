"""The compiler, the instruction encoding and the instruction-level machine.

A compiled program run by :class:`Machine` (which reads only the program: instructions and weight-image words)
must equal the golden model bit for bit — accumulators, scales and recurrent state, token by token — on the shipped
demo model and on an imported HF-format random model, for both trit formats.
"""

from dataclasses import replace

import numpy as np
import pytest

from mmfree.host.compiler import CORES, FitError, compile_model, matrix_words, pack_words
from mmfree.host.golden import GoldenModel
from mmfree.host.hf_import import import_hf
from mmfree.host.isa import FIELDS, INSTRUCTION_BITS, Opcode, decode, encode
from mmfree.host.machine import Machine, matrix_from_words, unpack_words
from mmfree.host.model import ModelConfig, random_model
from mmfree.host.models import resolve_model
from mmfree.host.synthetic import write_hf_checkpoint

UP5K = CORES["icebreaker"]


def assert_machine_equals_golden(model, core, tokens):
    program = compile_model(model, core)
    machine, golden = Machine(program), GoldenModel(model)
    acc, scales, state = golden.forward_int(np.array(tokens))
    for t, token in enumerate(tokens):
        got_acc, got_scales = machine.run(token)
        np.testing.assert_array_equal(got_acc[0], acc[t], err_msg=f"token {t}: logits accumulators")
        assert got_scales[0] == scales[t], f"token {t}: head scale"
    for layer in range(model.config.num_layers):
        np.testing.assert_array_equal(machine.state[layer], state[layer], err_msg=f"layer {layer} state")
    return program


def test_demo_model_runs_bit_exact_from_its_program():
    demo = resolve_model("demo")
    rng = np.random.default_rng(1)
    program = assert_machine_equals_golden(demo, UP5K, [0, 64, *rng.integers(0, 65, 10).tolist()])
    assert len(program.image) <= UP5K.weight_words
    assert len(program.instructions) == 1 + 1 + 6 * 3 + 1 + 1


@pytest.mark.filterwarnings("ignore:.*no tokenizer.json")
@pytest.mark.parametrize("fmt", ["base3", "2bit"])
def test_imported_hf_model_runs_bit_exact(tmp_path, fmt):
    config = ModelConfig(vocab_size=50, hidden_size=40, num_layers=2, intermediate_size=72)
    write_hf_checkpoint(tmp_path, config, dtype="bf16", seed=3)
    model = import_hf(tmp_path)
    core = replace(UP5K, name="test", trit_format=fmt, rows=16)
    assert_machine_equals_golden(model, core, [1, 49, 0, 7, 7, 23])


def test_matrix_layout_round_trips_and_pads_with_zero_trits():
    rng = np.random.default_rng(0)
    for rows, cols, lanes, fmt in [(13, 11, 8, "base3"), (16, 10, 8, "base3"), (5, 9, 8, "2bit"), (40, 7, 16, "base3")]:
        trits = rng.integers(-1, 2, (rows, cols)).astype(np.int8)
        words = matrix_words(trits, lanes, fmt)
        per_byte = 5 if fmt == "base3" else 4
        assert len(words) == -(-rows // lanes) * -(-cols // per_byte) * lanes // 8
        np.testing.assert_array_equal(matrix_from_words(words, rows, cols, lanes, fmt), trits)
    # byte b of a word is row b of the group; base-3 digit k is column k: row 1 = [+1, 0, 0, 0, 0] → 2 + 3+9+27+81
    trits = np.zeros((2, 5), dtype=np.int8)
    trits[1, 0] = 1
    word = int(matrix_words(trits, 8, "base3")[0])
    assert word & 0xFF == 121 and (word >> 8) & 0xFF == 122 and word >> 16 == int.from_bytes(bytes([121] * 6), "little")
    with pytest.raises(ValueError, match="multiple of 8"):
        replace(UP5K, rows=4)


def test_pack_words_is_little_endian_and_checks_range():
    words = pack_words([1, -1, 2, 3], 16)
    assert len(words) == 1 and int(words[0]) == 0x0003_0002_FFFF_0001
    values = np.random.default_rng(0).integers(-(1 << 19), 1 << 19, 100)
    np.testing.assert_array_equal(unpack_words(pack_words(values, 20), 100, 20), values)
    with pytest.raises(ValueError, match="do not fit 16 bits"):
        pack_words([1 << 16], 16)


def test_instruction_encoding_round_trips_and_rejects_bad_fields():
    rng = np.random.default_rng(0)
    for opcode, fields in FIELDS.items():
        for _ in range(50):
            values = {f.name: int(rng.integers(-(1 << (f.bits - 1)), 1 << (f.bits - 1))) if f.signed
                      else int(rng.integers(0, 1 << f.bits)) for f in fields}
            word = encode(opcode, **values)
            assert 0 <= word < 1 << INSTRUCTION_BITS
            assert decode(word) == (opcode, values)
    with pytest.raises(ValueError, match="field rows = 65536 does not fit unsigned 16 bits"):
        encode(Opcode.BITLINEAR, **{f.name: 0 for f in FIELDS[Opcode.BITLINEAR]} | {"rows": 1 << 16})
    with pytest.raises(TypeError, match="EMBED needs field length"):
        encode(Opcode.EMBED, table=0, row_words=1, exps=0, tokens=2)
    with pytest.raises(TypeError, match="END has no field rows"):
        encode(Opcode.END, rows=1)
    with pytest.raises(ValueError, match="unknown opcode 9"):
        decode(9)
    with pytest.raises(ValueError, match="bits set above its fields"):
        decode(int(Opcode.END) | 1 << 100)


def test_a_model_that_does_not_fit_says_what_and_by_how_much():
    big = random_model(ModelConfig(vocab_size=65, hidden_size=128, num_layers=4, intermediate_size=248), seed=0)
    with pytest.raises(FitError) as error:
        compile_model(big, UP5K)
    message = str(error.value)
    assert "weight memory (64-bit words): needs 20," in message and "the icebreaker core has 16,384" in message
    assert "recurrent state words L·H: needs 512" not in message  # 4 × 128 = 512 fits exactly
    wide = random_model(ModelConfig(vocab_size=10, hidden_size=320, num_layers=1, intermediate_size=64), seed=0)
    with pytest.raises(FitError, match=r"vector length H: needs 320, the icebreaker core has 256 \(64 over\)"):
        compile_model(wide, UP5K)


def test_machine_trace_shows_every_instruction():
    demo = resolve_model("demo")
    program = compile_model(demo, UP5K)
    machine = Machine(program, trace=True)
    machine.run(3)
    assert [op for op, _, _, _ in machine.trace] == [decode(w)[0] for w in program.instructions[:-1]]
    with pytest.raises(ValueError, match=r"token id 65 is outside the model's vocabulary \(0 … 64\)"):
        machine.run(65)


def test_program_save_load_round_trip(tmp_path):
    program = compile_model(resolve_model("demo"), UP5K)
    program.save(tmp_path / "demo.prog")
    loaded = type(program).load(tmp_path / "demo.prog")
    assert loaded.instructions == program.instructions and loaded.core == program.core
    assert loaded.formats == program.formats and loaded.layout == program.layout
    np.testing.assert_array_equal(loaded.image, program.image)
    (tmp_path / "other").write_bytes(b"not a program")
    with pytest.raises(ValueError):
        type(program).load(tmp_path / "other")


def test_compile_command(tmp_path, capsys):
    from mmfree.host.cli import main
    from mmfree.host.container import save_model

    assert main(["compile", "--model", "demo", "--out", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "fits the icebreaker core" in out and "16,193 of 16,384 words" in out
    assert "cycles per token: ESTIMATE 19,994–21,230 (1.63–1.73 ×" in out
    big = random_model(ModelConfig(vocab_size=65, hidden_size=128, num_layers=4, intermediate_size=248), seed=0)
    save_model(big, tmp_path / "big.safetensors")
    assert main(["compile", "--model", str(tmp_path / "big.safetensors")]) == 1
    assert "weight memory (64-bit words): needs 20," in capsys.readouterr().err


def test_cycle_estimate_follows_the_core_as_built():
    """The schedule model of host/estimate.py on the demo: its matvec words, its passes (which ones each BITLINEAR
    runs), and its total near the core bench's measured 21,092 cycles per token (docs/core.md)."""
    from mmfree.host.estimate import TIMING, estimate_cycles

    program = compile_model(resolve_model("demo"), UP5K)
    e = estimate_cycles(program)
    row_groups = 3 * (4 * 16 + 62 + 16) + 9
    assert e["matvec"] == len(program.image) - sum(w for name, (_, w) in program.layout.items()
                                                   if not name.endswith("trits")) + row_groups
    # per layer f: B, D, C, 1 − lb; i, g: B, C (f's sums reused); o: B, D, C (g's drain summed G); gate: B, D, C;
    # down: B, C of 248
    assert e["passes"] == 3 * (4 * 128 + 2 * 256 + 3 * 128 + 3 * 128 + 2 * 248) + 3 * 128
    assert e["embed"] == TIMING["embed_per_element"] * 128 + TIMING["embed_fixed"]
    spent = dict(e["instructions"])
    assert sum(spent.values()) == e["matvec"] + e["passes"] + e["embed"] + e["scale"]
    # an instruction's span runs from its start to the next one's: i_proj's passes start beside f_proj's matvec
    # (and g_proj's beside i_proj's), so i_proj's span is less than its own passes and matvec in a row; layer 1
    # f_proj's copy into slot F starts beside layer 0 down_proj's matvec, so down_proj's span is less than its matvec
    assert spent[3] < 2 * (128 + TIMING["pass_fill"]) + TIMING["quant"] + 16 * 27
    assert spent[7] < 16 * 51
    low, high = e["total"]
    assert low <= 21_092 <= high and high - low < 0.07 * 21_092
    assert e["bound"] == 490_624 / 40
    with pytest.raises(KeyError):
        estimate_cycles(program, timing={})




@pytest.mark.parametrize("changes, match", [
    ({"vector_lanes": 3}, "vector_lanes must be 1 or 2, not 3"),
    ({"vector_lanes": 0}, "vector_lanes must be 1 or 2, not 0"),
    ({"vector_lanes": 2, "pass_lanes": 1}, r"vector_lanes \(2\) needs pass_lanes ≥ vector_lanes, not 1"),
    ({"pass_lanes": 8}, "pass_lanes must be 1, 2 or 4, not 8"),
])
def test_core_params_reject_bad_lanes(changes, match):
    with pytest.raises(ValueError, match=match):
        replace(UP5K, **changes)
