import json

import numpy as np
import pytest
from tokenizers import Tokenizer as HFBackend
from tokenizers import models, pre_tokenizers

from mmfree.host.hf_import import expected_shapes, hf_intermediate_size, import_hf
from mmfree.host.model import ModelConfig, default_intermediate_size
from mmfree.host.quant import ternarize
from mmfree.host.safetensors_io import bf16_to_float32, float32_to_bf16, load_file, save_file
from mmfree.host.synthetic import hf_config_dict, latent_tensor, write_hf_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore:.*no tokenizer.json:UserWarning")

CONFIG = ModelConfig(vocab_size=300, hidden_size=32, num_layers=2, intermediate_size=default_intermediate_size(32))


def stored_latent(key, shape, dtype, seed=0):
    """The latent tensor as the checkpoint stores it, widened to float32."""
    value = latent_tensor(key, shape, seed)
    if dtype == "bf16":
        return bf16_to_float32(float32_to_bf16(value))
    if dtype == "fp16":
        return value.astype(np.float16).astype(np.float32)
    return value


def edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def edit_weights(folder, change):
    """Rewrite model.safetensors (as F32) with ``change(tensors)`` applied to its dict of arrays."""
    path = folder / "model.safetensors"
    tensors = dict(load_file(path))
    change(tensors)
    save_file(path, tensors)


@pytest.fixture
def checkpoint(tmp_path):
    folder = tmp_path / "ckpt"
    write_hf_checkpoint(folder, CONFIG, dtype="fp32")
    return folder


# -- successful imports ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp32"])
@pytest.mark.parametrize("shards", [1, 3])
def test_import_matches_direct_ternarization(tmp_path, dtype, shards):
    config = ModelConfig(vocab_size=300, hidden_size=48, num_layers=2, intermediate_size=96, norm_eps=1e-5)
    write_hf_checkpoint(tmp_path, config, dtype=dtype, seed=3, shards=shards)
    assert (tmp_path / "model.safetensors.index.json").exists() == (shards > 1)
    model = import_hf(tmp_path)
    assert model.config == config
    latents = {key: stored_latent(key, shape, dtype, seed=3) for key, shape in expected_shapes(config).items()}

    def check_projection(proj, prefix):
        codes, beta = ternarize(latents[prefix + ".weight"], np.float32)
        assert proj.codes.dtype == np.int8 and np.array_equal(proj.codes, codes)
        assert proj.beta == beta
        assert proj.norm.dtype == np.float32 and np.array_equal(proj.norm, latents[prefix + ".norm.weight"])

    for index, layer in enumerate(model.layers):
        p = f"model.layers.{index}."
        for proj in ("i_proj", "f_proj", "g_proj", "o_proj"):
            check_projection(getattr(layer, proj), p + "attn." + proj)
        check_projection(layer.gate_proj, p + "mlp.gate_proj")
        check_projection(layer.down_proj, p + "mlp.down_proj")
        for name, key in (("attn_norm", "attn_norm"), ("g_norm", "attn.g_norm"), ("mlp_norm", "mlp_norm")):
            assert np.array_equal(getattr(layer, name), latents[p + key + ".weight"])
    check_projection(model.lm_head, "lm_head")
    assert np.array_equal(model.embeddings, latents["model.embeddings.weight"])
    assert np.array_equal(model.lower_bounds, latents["model.lower_bounds"])
    assert np.array_equal(model.norm, latents["model.norm.weight"])
    for array in (model.embeddings, model.norm, model.layers[0].i_proj.norm):
        assert array.dtype == np.float32 and array.flags.writeable  # a copy, not a view of the mapped file


def test_sharding_does_not_change_the_model(tmp_path):
    with pytest.warns(UserWarning, match="no tokenizer.json"):
        write_hf_checkpoint(tmp_path / "a", CONFIG, shards=1)
        write_hf_checkpoint(tmp_path / "b", CONFIG, shards=5)
        a, b = import_hf(tmp_path / "a"), import_hf(tmp_path / "b")
    assert np.array_equal(a.lm_head.codes, b.lm_head.codes) and np.array_equal(a.embeddings, b.embeddings)
    assert a.tokenizer == b.tokenizer == {"type": "bytes"}
    assert len(list((tmp_path / "b").glob("model-*-of-00005.safetensors"))) == 5


def test_config_mapping_and_intermediate_default(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["model_type"] == "hgrn_bit" and config["intermediate_size"] is None
    assert hf_intermediate_size(1024) == 2816 and hf_intermediate_size(2048) == 5632
    assert hf_intermediate_size(2560) == 6912 and hf_intermediate_size(1024, hidden_ratio=3) == 2048
    assert all(hf_intermediate_size(h) == default_intermediate_size(h) for h in range(16, 3000, 16))
    assert hf_config_dict(ModelConfig(300, 32, 2, 96))["intermediate_size"] == 96
    with pytest.warns(UserWarning):
        assert import_hf(checkpoint).config.intermediate_size == 256


def tiny_tokenizer_json(size):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{k}": k + 3 for k in range(size - 3)}}
    tok = HFBackend(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok.to_str()


def test_tokenizer_json_becomes_an_hf_spec(tmp_path):
    text = tiny_tokenizer_json(50)
    write_hf_checkpoint(tmp_path, CONFIG, tokenizer_json=text)
    model = import_hf(tmp_path)
    assert model.tokenizer == {"type": "hf", "json": text, "bos_token_id": 1, "eos_token_id": 2}


def test_tokenizer_larger_than_the_model(tmp_path):
    write_hf_checkpoint(tmp_path, CONFIG, tokenizer_json=tiny_tokenizer_json(301))
    with pytest.raises(ValueError, match="tokenizer.json.*301 tokens.*300"):
        import_hf(tmp_path)


def test_tied_head_present_and_equal_is_accepted(checkpoint):
    edit_config(checkpoint, tie_word_embeddings=True)
    edit_weights(checkpoint, lambda t: t.update({"lm_head.weight": t["model.embeddings.weight"]}))
    with pytest.warns(UserWarning):
        model = import_hf(checkpoint)
    codes, _ = ternarize(model.embeddings)
    assert np.array_equal(model.lm_head.codes, codes)


# -- errors ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"model_type": "llama"}, "config.json.*model_type is 'llama', expected 'hgrn_bit'"),
    ({"use_short_conv": True}, "config.json.*use_short_conv: true"),
    ({"expand_ratio": 2}, "config.json.*expand_ratio: 2"),
    ({"use_lower_bound": False}, "config.json.*use_lower_bound: false"),
    ({"use_moe": True}, "config.json.*use_moe: true"),
    ({"hidden_size": 0}, "config.json.*hidden_size must be a positive integer"),
    ({"intermediate_size": 100}, r"gate_proj.weight has shape \(512, 32\), expected \(200, 32\)"),
])
def test_bad_config(checkpoint, changes, message):
    edit_config(checkpoint, **changes)
    with pytest.raises(ValueError, match=message):
        import_hf(checkpoint)


def test_config_missing_or_malformed(tmp_path, checkpoint):
    with pytest.raises(ValueError, match="no config.json"):
        import_hf(tmp_path)
    config = json.loads((checkpoint / "config.json").read_text())
    del config["hidden_size"]
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config.json: missing \['hidden_size'\]"):
        import_hf(checkpoint)
    (checkpoint / "config.json").write_text("{oops")
    with pytest.raises(ValueError, match="config.json: malformed JSON"):
        import_hf(checkpoint)


def test_missing_keys_are_listed(checkpoint):
    gone = ["model.layers.1.attn.f_proj.norm.weight", "lm_head.weight"]
    edit_weights(checkpoint, lambda t: [t.pop(k) for k in gone])
    with pytest.raises(ValueError, match=r"missing keys \(2\): lm_head.weight, model.layers.1.attn.f_proj.norm"):
        import_hf(checkpoint)


def test_unexpected_keys_are_listed(checkpoint):
    extra = "model.layers.0.attn.h_conv1d.weight"
    edit_weights(checkpoint, lambda t: t.update({extra: np.zeros((32, 4), np.float32)}))
    with pytest.raises(ValueError, match=rf"unexpected keys \(1\): {extra}"):
        import_hf(checkpoint)


def test_tied_head_absent_is_unsupported(checkpoint):
    edit_config(checkpoint, tie_word_embeddings=True)
    edit_weights(checkpoint, lambda t: t.pop("lm_head.weight"))
    with pytest.raises(ValueError, match="tie_word_embeddings is true and lm_head.weight is absent.*not supported"):
        import_hf(checkpoint)


def test_tied_head_that_differs(checkpoint):
    edit_config(checkpoint, tie_word_embeddings=True)
    with pytest.raises(ValueError, match="lm_head.weight differs from model.embeddings.weight"):
        import_hf(checkpoint)


@pytest.mark.parametrize("key, value, message", [
    ("lm_head.norm.weight", np.ones(31, np.float32), r"lm_head.norm.weight has shape \(31,\), expected \(32,\)"),
    ("model.layers.0.mlp.gate_proj.weight", np.zeros((512, 33), np.float32),
     r"model.layers.0.mlp.gate_proj.weight has shape \(512, 33\), expected \(512, 32\)"),
    ("model.norm.weight", np.ones(32, np.int32), "model.norm.weight has dtype I32"),
])
def test_wrong_shapes_and_dtypes(checkpoint, key, value, message):
    edit_weights(checkpoint, lambda t: t.update({key: value}))
    with pytest.raises(ValueError, match="model.safetensors: " + message):
        import_hf(checkpoint)


@pytest.mark.parametrize("key", ["model.layers.1.attn.o_proj.weight", "model.layers.0.attn.g_norm.weight",
                                 "model.lower_bounds", "model.embeddings.weight"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_are_reported_with_their_key(checkpoint, key, bad):
    def poison(tensors):
        value = np.array(tensors[key])
        value.flat[5] = bad
        tensors[key] = value

    edit_weights(checkpoint, poison)
    with pytest.raises(ValueError, match=f"{key} contains NaN or Inf"):
        import_hf(checkpoint)


def test_truncated_weights(checkpoint):
    path = checkpoint / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="model.safetensors: truncated"):
        import_hf(checkpoint)


def test_no_weights(checkpoint):
    (checkpoint / "model.safetensors").unlink()
    (checkpoint / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"no model.safetensors or model.safetensors.index.json.*pytorch_model.bin"):
        import_hf(checkpoint)


@pytest.fixture
def sharded(tmp_path):
    folder = tmp_path / "sharded"
    write_hf_checkpoint(folder, CONFIG, shards=2)
    return folder


def edit_index(folder, change):
    path = folder / "model.safetensors.index.json"
    index = json.loads(path.read_text())
    change(index["weight_map"])
    path.write_text(json.dumps(index))


def test_index_names_a_missing_shard(sharded):
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ValueError, match="index.json: shard 'model-00002-of-00002.safetensors' is not a file"):
        import_hf(sharded)


def test_index_and_shard_disagree(sharded):
    edit_index(sharded, lambda m: m.update({"lm_head.weight": "model-00001-of-00002.safetensors"}))
    with pytest.raises(ValueError, match="00002.safetensors: holds 'lm_head.weight', which .* maps to "
                                         "'model-00001-of-00002.safetensors'"):
        import_hf(sharded)


def test_index_lists_a_key_no_shard_holds(sharded):
    edit_index(sharded, lambda m: m.update({"model.extra": "model-00001-of-00002.safetensors"}))
    with pytest.raises(ValueError, match=r"keys not found in their shards: \['model.extra'\]"):
        import_hf(sharded)


def test_malformed_index(sharded):
    (sharded / "model.safetensors.index.json").write_text('{"metadata": {}}')
    with pytest.raises(ValueError, match="index.json: malformed index"):
        import_hf(sharded)
