import json
import math

import numpy as np
import pytest

import mmfree.host.models as models
from mmfree.host.container import METADATA_KEY, load_model, read_metadata, save_model
from mmfree.host.hf_import import import_hf
from mmfree.host.model import Layer, ModelConfig, random_model
from mmfree.host.models import resolve_model, shipped_models
from mmfree.host.safetensors_io import SafetensorsFile, load_file, save_file
from mmfree.host.synthetic import write_hf_checkpoint

# V·H, H·H, 2I·H and H·I are not multiples of 4 or 5, so both formats pad their final byte
CONFIG = ModelConfig(vocab_size=301, hidden_size=34, num_layers=2, intermediate_size=57, norm_eps=1e-5)
CHARS = {"type": "chars", "alphabet": "abcdefgh ", "eos_token_id": 3}


def bits(array):
    return np.asarray(array).view(np.uint32 if array.dtype == np.float32 else np.uint8)


def assert_models_identical(a, b):
    assert a.config == b.config and a.tokenizer == b.tokenizer
    for name in ("embeddings", "lower_bounds", "norm"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == np.float32 and np.array_equal(bits(x), bits(y)), name
    projections = [(a.lm_head, b.lm_head)]
    for la, lb in zip(a.layers, b.layers, strict=True):
        for norm in ("attn_norm", "g_norm", "mlp_norm"):
            assert np.array_equal(bits(getattr(la, norm)), bits(getattr(lb, norm)))
        projections += [(getattr(la, p), getattr(lb, p)) for p in Layer.PROJECTIONS]
    for pa, pb in projections:
        assert pb.codes.dtype == np.int8 and pb.codes.shape == pa.codes.shape
        assert np.array_equal(pa.codes, pb.codes)
        assert isinstance(pb.beta, float) and pa.beta == pb.beta
        assert np.array_equal(bits(pa.norm), bits(pb.norm))


@pytest.fixture
def model():
    return random_model(CONFIG, seed=5, tokenizer=CHARS)


@pytest.mark.parametrize("packing", ["2bit", "base3"])
def test_round_trip_is_bit_exact(tmp_path, model, packing):
    model.lm_head.beta = 0.1 / math.pi          # a float64 that no float32 equals
    model.norm[3] = np.float32(-0.0)
    model.embeddings[0, 0] = np.float32(1e-45)  # subnormal
    path = tmp_path / "m.safetensors"
    save_model(model, path, packing=packing, meta={"card": {"name": "test", "trained_on": ["x"]}})
    loaded = load_model(path)
    assert_models_identical(model, loaded)
    assert np.signbit(loaded.norm[3])
    meta = read_metadata(path)
    assert (meta["format"], meta["format_version"], meta["packing"]) == ("mmfree-model", 1, packing)
    assert meta["meta"] == {"card": {"name": "test", "trained_on": ["x"]}}
    assert meta["projections"]["layers.1.gate_proj"]["shape"] == [114, 34]


def test_packed_sizes(tmp_path, model):
    sizes = {}
    for packing in ("2bit", "base3"):
        save_model(model, tmp_path / f"{packing}.safetensors", packing=packing)
        with SafetensorsFile(tmp_path / f"{packing}.safetensors") as f:
            sizes[packing] = f.info("lm_head.codes")
    assert sizes["2bit"].shape == (math.ceil(301 * 34 / 4),) and sizes["2bit"].dtype == "U8"
    assert sizes["base3"].shape == (math.ceil(301 * 34 / 5),)


def test_hf_import_then_container(tmp_path):
    with pytest.warns(UserWarning, match="no tokenizer.json"):
        write_hf_checkpoint(tmp_path / "hf", ModelConfig(300, 32, 2, 256))
        imported = import_hf(tmp_path / "hf")
    save_model(imported, tmp_path / "m.safetensors")
    assert_models_identical(imported, load_model(tmp_path / "m.safetensors"))


def test_save_rejects_bad_arguments(tmp_path, model):
    with pytest.raises(ValueError, match="unknown packing format '3bit'"):
        save_model(model, tmp_path / "m.safetensors", packing="3bit")
    with pytest.raises(ValueError, match="not JSON-serializable"):
        save_model(model, tmp_path / "m.safetensors", meta={"x": object()})
    model.layers[1].f_proj.codes[0, 0] = 2
    with pytest.raises(ValueError, match=r"layers.1.f_proj: codes must be int8 trits"):
        save_model(model, tmp_path / "m.safetensors")


# -- errors ---------------------------------------------------------------------------------------------------------

def rewrite(path, change_tensors=None, change_meta=None):
    """Rewrite a container with its tensors and/or its metadata JSON changed."""
    with SafetensorsFile(path) as f:
        meta = json.loads(f.metadata[METADATA_KEY])
    tensors = dict(load_file(path))
    if change_tensors:
        change_tensors(tensors)
    if change_meta:
        change_meta(meta)
    save_file(path, tensors, metadata={METADATA_KEY: json.dumps(meta)})


@pytest.fixture
def container(tmp_path, model):
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    return path


def test_not_a_container(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file(path, {"x": np.zeros(3, np.float32)}, metadata={"format": "pt"})
    with pytest.raises(ValueError, match="other.safetensors: not an mmfree-model container"):
        load_model(path)
    path.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(ValueError, match="other.safetensors: truncated"):
        load_model(path)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format_version=2), "format version 2 is not supported.*reads version 1"),
    (lambda m: m.update(format="something"), "metadata format is 'something', expected 'mmfree-model'"),
    (lambda m: m.pop("projections"), r"metadata lacks \['projections'\]"),
    (lambda m: m.update(packing="4bit"), "unknown packing format '4bit'"),
    (lambda m: m["config"].update(hidden_size=-1), "bad config in metadata.*hidden_size"),
    (lambda m: m["projections"].pop("layers.0.o_proj"), "metadata for projection 'layers.0.o_proj' is None"),
    (lambda m: m["projections"]["lm_head"].update(beta="x"), "projection 'lm_head': beta 'x' is not a number"),
    (lambda m: m["projections"]["lm_head"].update(beta=-1.0), "lm_head: β must be positive"),
])
def test_bad_metadata(container, change, message):
    rewrite(container, change_meta=change)
    with pytest.raises(ValueError, match="m.safetensors: .*" + message):
        load_model(container)


def test_malformed_metadata_json(container):
    save_file(container, dict(load_file(container)), metadata={METADATA_KEY: "{broken"})
    with pytest.raises(ValueError, match="m.safetensors: malformed mmfree-model metadata JSON"):
        load_model(container)


def test_missing_and_unexpected_tensors(container):
    rewrite(container, change_tensors=lambda t: (t.pop("layers.1.g_norm"), t.pop("lm_head.codes")))
    with pytest.raises(ValueError, match=r"missing tensors \['layers.1.g_norm', 'lm_head.codes'\]"):
        load_model(container)
    rewrite(container, change_tensors=lambda t: t.update({"layers.1.g_norm": np.ones(34, np.float32),
                                                          "lm_head.codes": np.zeros(2047, np.uint8),
                                                          "extra": np.zeros(1, np.uint8)}))
    with pytest.raises(ValueError, match=r"unexpected tensors \['extra'\]"):
        load_model(container)


@pytest.mark.parametrize("name, value, message", [
    ("layers.0.i_proj.codes", np.full(232, 255, np.uint8),
     "'layers.0.i_proj.codes': corrupted packed data.*offset 0 holds 255"),
    ("layers.0.i_proj.codes", np.zeros(230, np.uint8), "'layers.0.i_proj.codes': corrupted packed data.*too short"),
    ("lm_head.codes", np.zeros((2, 1024), np.uint8), "'lm_head.codes' is U8\\[2, 1024\\], expected 1-D U8"),
    ("norm", np.ones(34, np.float64), r"'norm' is F64\[34\], expected F32\[34\]"),
    ("embeddings", np.ones((301, 33), np.float32), r"'embeddings' is F32\[301, 33\], expected F32\[301, 34\]"),
    ("layers.1.down_proj.norm", np.ones(34, np.float32), r"'layers.1.down_proj.norm' is F32\[34\], expected F32\[57\]"),
    ("lower_bounds", np.full((2, 34), np.nan, np.float32), "lower_bounds: contains NaN"),
])
def test_bad_tensors(container, name, value, message):
    rewrite(container, change_tensors=lambda t: t.update({name: value}))
    with pytest.raises(ValueError, match="m.safetensors: .*" + message):
        load_model(container)


# -- resolver -------------------------------------------------------------------------------------------------------

def test_resolve_paths(tmp_path, container, model):
    assert_models_identical(model, resolve_model(container))
    assert_models_identical(model, resolve_model(str(container)))
    folder = tmp_path / "packed"
    folder.mkdir()
    save_model(model, folder / "model.safetensors")
    assert_models_identical(model, resolve_model(folder))
    with pytest.warns(UserWarning):
        write_hf_checkpoint(tmp_path / "hf", ModelConfig(300, 32, 2, 256))
        assert resolve_model(tmp_path / "hf").config == ModelConfig(300, 32, 2, 256)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: folder has neither config.json .* nor model.safetensors"):
        resolve_model(tmp_path / "empty")


def test_random_spec():
    model = resolve_model("random:V=50,H=40,L=2,I=72,seed=3")
    assert model.config == ModelConfig(50, 40, 2, 72)
    assert_models_identical(model, random_model(ModelConfig(50, 40, 2, 72), seed=3))
    assert_models_identical(resolve_model("random:I=72,L=2,H=40,V=50"), random_model(ModelConfig(50, 40, 2, 72)))
    for spec, message in [("random:V=50,H=40,L=2", "needs I as well"), ("random:V=50,H=40,L=2,I=x", "'I=x'"),
                          ("random:V=50,H=40,L=2,I=72,T=1", "'T=1'"), ("random:V=5,V=6,H=4,L=1,I=8", "'V=6'"),
                          ("random:V=0,H=40,L=2,I=72", "vocab_size must be a positive integer")]:
        with pytest.raises(ValueError, match=message):
            resolve_model(spec)


def test_shipped_models(tmp_path, monkeypatch, model):
    assert isinstance(shipped_models(), list)
    (tmp_path / "models" / "demo").mkdir(parents=True)
    (tmp_path / "models" / "notes").mkdir()
    save_model(model, tmp_path / "models" / "demo" / "model.safetensors")
    monkeypatch.setattr(models, "_models_root", lambda: tmp_path / "models")
    assert shipped_models() == ["demo"]
    assert_models_identical(model, resolve_model("demo"))
    with pytest.raises(ValueError, match="no model 'dmeo'.*shipped: demo"):
        resolve_model("dmeo")
