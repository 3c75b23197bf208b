"""Import a Hugging Face MMfreeLM (HGRNBit) checkpoint folder into a ternarized :class:`~mmfree.host.model.Model`.

The folder holds ``config.json`` (``model_type: "hgrn_bit"``), the latent weights as ``model.safetensors`` or as
shards listed by ``model.safetensors.index.json`` (BF16, F16 or F32), and optionally ``tokenizer.json``. Every
projection is ternarized on import (absmean, fp32 run dtype) and kept as codes and β; norms, embeddings and
lower bounds become float32. Keys and shapes are those of the reference code (see DESIGN.md).
"""

import json
import math
import os
import warnings

import numpy as np

from .model import BitLinear, Layer, Model, ModelConfig
from .safetensors_io import SafetensorsFile
from .tokenizer import make_tokenizer

__all__ = ["import_hf", "read_hf_config", "hf_intermediate_size", "expected_shapes"]

_SINGLE = "model.safetensors"
_INDEX = "model.safetensors.index.json"
_FLOAT_DTYPES = ("BF16", "F16", "F32")
_ATTN = ("i_proj", "f_proj", "g_proj", "o_proj")


def hf_intermediate_size(hidden_size, hidden_ratio=4):
    """The reference's I when ``intermediate_size`` is null: ``256 · ceil(int(H · hidden_ratio · 2/3) / 256)``."""
    return 256 * math.ceil(int(hidden_size * hidden_ratio * 2 / 3) / 256)


def read_hf_config(folder):
    """Read ``config.json`` of an MMfreeLM folder.

    Returns
    -------
    config : ModelConfig
    hf : dict
        The raw JSON (for token ids and other fields).

    Raises
    ------
    ValueError
        Not an ``hgrn_bit`` config, missing sizes, or a feature the accelerator does not implement.
    """
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise ValueError(f"{folder}: no config.json (not a Hugging Face model folder)")
    try:
        with open(path, encoding="utf-8") as f:
            hf = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: malformed JSON ({e})") from None
    if not isinstance(hf, dict):
        raise ValueError(f"{path}: not a JSON object")
    if hf.get("model_type") != "hgrn_bit":
        raise ValueError(f"{path}: model_type is {hf.get('model_type')!r}, expected 'hgrn_bit' (MMfreeLM)")
    missing = [k for k in ("vocab_size", "hidden_size", "num_hidden_layers") if k not in hf]
    if missing:
        raise ValueError(f"{path}: missing {missing}")
    unsupported = []
    if hf.get("use_short_conv", False):
        unsupported.append("use_short_conv: true (short convolutions are not implemented)")
    if hf.get("expand_ratio", 1) not in (1, None):
        unsupported.append(f"expand_ratio: {hf['expand_ratio']} (only 1 is implemented)")
    if not hf.get("use_lower_bound", True):
        unsupported.append("use_lower_bound: false (the forget-gate lower bounds are part of the implemented model)")
    if hf.get("use_moe", False):
        unsupported.append("use_moe: true (mixture-of-experts layers are not implemented)")
    if unsupported:
        raise ValueError(f"{path}: unsupported configuration: " + "; ".join(unsupported))
    hidden = hf["hidden_size"]
    intermediate = hf.get("intermediate_size")
    if intermediate is None and isinstance(hidden, int):
        ratio = hf.get("hidden_ratio")
        intermediate = hf_intermediate_size(hidden, 4 if ratio is None else ratio)
    try:
        config = ModelConfig(vocab_size=hf["vocab_size"], hidden_size=hidden, num_layers=hf["num_hidden_layers"],
                             intermediate_size=intermediate, norm_eps=hf.get("rms_norm_eps", 1e-6))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return config, hf


def expected_shapes(config):
    """``{checkpoint key: shape}`` of every tensor of an HGRNBit checkpoint of this config."""
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    shapes = {"model.embeddings.weight": (v, h), "model.lower_bounds": (config.num_layers, h)}
    for layer in range(config.num_layers):
        p = f"model.layers.{layer}."
        shapes[p + "attn_norm.weight"] = (h,)
        for proj in _ATTN:
            shapes[p + f"attn.{proj}.weight"] = (h, h)
            shapes[p + f"attn.{proj}.norm.weight"] = (h,)
        shapes[p + "attn.g_norm.weight"] = (h,)
        shapes[p + "mlp_norm.weight"] = (h,)
        shapes[p + "mlp.gate_proj.weight"] = (2 * i, h)
        shapes[p + "mlp.gate_proj.norm.weight"] = (h,)
        shapes[p + "mlp.down_proj.weight"] = (h, i)
        shapes[p + "mlp.down_proj.norm.weight"] = (i,)
    shapes["model.norm.weight"] = (h,)
    shapes["lm_head.weight"] = (v, h)
    shapes["lm_head.norm.weight"] = (h,)
    return shapes


def import_hf(folder):
    """Import an MMfreeLM checkpoint folder.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    Model
        Ternarized (codes int8, β per projection), floats float32, tokenizer spec ``{"type": "hf", ...}`` from
        ``tokenizer.json`` or ``{"type": "bytes"}`` (with a warning) when there is none.

    Raises
    ------
    ValueError
        Naming the file or key: bad config, no weights, truncated or malformed safetensors, missing or unexpected
        keys, wrong shapes or dtypes, NaN/Inf.
    """
    folder = os.fspath(folder)
    config, hf = read_hf_config(folder)
    sources = _open_weights(folder)
    shapes = expected_shapes(config)
    _check_keys(folder, sources, shapes, hf)

    def get(key):
        f = sources[key]
        info = f.info(key)
        if info.dtype not in _FLOAT_DTYPES:
            raise ValueError(f"{f.path}: {key} has dtype {info.dtype}, expected one of {_FLOAT_DTYPES}")
        if info.shape != shapes[key]:
            raise ValueError(f"{f.path}: {key} has shape {info.shape}, expected {shapes[key]}")
        value = f.get(key).astype(np.float32, copy=info.dtype == "F32")  # no views of the mapped file
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{f.path}: {key} contains NaN or Inf")
        return value

    def bitlinear(prefix):
        return BitLinear.from_latent(get(prefix + ".weight"), get(prefix + ".norm.weight"), np.float32)

    layers = []
    for index in range(config.num_layers):
        p = f"model.layers.{index}."
        layers.append(Layer(attn_norm=get(p + "attn_norm.weight"),
                            **{proj: bitlinear(p + "attn." + proj) for proj in _ATTN},
                            g_norm=get(p + "attn.g_norm.weight"), mlp_norm=get(p + "mlp_norm.weight"),
                            gate_proj=bitlinear(p + "mlp.gate_proj"), down_proj=bitlinear(p + "mlp.down_proj")))
    model = Model(config=config, embeddings=get("model.embeddings.weight"), lower_bounds=get("model.lower_bounds"),
                  layers=layers, norm=get("model.norm.weight"), lm_head=bitlinear("lm_head"),
                  tokenizer=_tokenizer_spec(folder, hf, config))
    return model.validate()


def _open_weights(folder):
    """``{key: SafetensorsFile}`` for every tensor of the checkpoint, single file or sharded."""
    single, index = os.path.join(folder, _SINGLE), os.path.join(folder, _INDEX)
    if os.path.isfile(single):
        f = SafetensorsFile(single)
        return {key: f for key in f.keys()}
    if not os.path.isfile(index):
        found = sorted(n for n in os.listdir(folder) if n.endswith((".safetensors", ".bin", ".pt", ".json")))
        raise ValueError(f"{folder}: no {_SINGLE} or {_INDEX} (found {found}; PyTorch .bin checkpoints are "
                         f"not read: convert them to safetensors)")
    try:
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{index}: malformed index, expected JSON with a 'weight_map' ({e!r})") from None
    if not (isinstance(weight_map, dict) and all(isinstance(v, str) for v in weight_map.values())):
        raise ValueError(f"{index}: 'weight_map' must map tensor names to shard file names")
    shards = {}
    for name in sorted(set(weight_map.values())):
        path = os.path.join(folder, name)
        if os.path.basename(name) != name or not os.path.isfile(path):
            raise ValueError(f"{index}: shard {name!r} is not a file in {folder}")
        shards[name] = SafetensorsFile(path)
    sources = {}
    for name, shard in shards.items():
        for key in shard.keys():
            if weight_map.get(key) != name:
                raise ValueError(f"{shard.path}: holds {key!r}, which {_INDEX} maps to {weight_map.get(key)!r}")
            sources[key] = shard
    absent = sorted(set(weight_map) - set(sources))
    if absent:
        raise ValueError(f"{index}: keys not found in their shards: {absent}")
    return sources


def _check_keys(folder, sources, shapes, hf):
    present, expected = set(sources), set(shapes)
    if hf.get("tie_word_embeddings", False):
        if "lm_head.weight" not in present:
            raise ValueError(f"{folder}: tie_word_embeddings is true and lm_head.weight is absent: an LM head tied "
                             f"to the embeddings is not supported (MMfreeLM's head is its own BitLinear)")
        head, embeddings = (sources[k].get(k) for k in ("lm_head.weight", "model.embeddings.weight"))
        if head.shape != embeddings.shape or not np.array_equal(head, embeddings):
            raise ValueError(f"{folder}: tie_word_embeddings is true but lm_head.weight differs from "
                             f"model.embeddings.weight; set it false in config.json to use lm_head.weight")
    missing, unexpected = sorted(expected - present), sorted(present - expected)
    if missing:
        raise ValueError(f"{folder}: missing keys ({len(missing)}): {_listing(missing)}")
    if unexpected:
        raise ValueError(f"{folder}: unexpected keys ({len(unexpected)}): {_listing(unexpected)}")


def _listing(keys, limit=20):
    shown = ", ".join(keys[:limit])
    return shown + (f", … and {len(keys) - limit} more" if len(keys) > limit else "")


def _tokenizer_spec(folder, hf, config):
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(path):
        short = f", but the model has only {config.vocab_size} rows" if config.vocab_size < 256 else ""
        warnings.warn(f"{folder}: no tokenizer.json; the model gets the byte tokenizer (ids 0..255 = UTF-8 "
                      f"bytes{short})", stacklevel=3)
        return {"type": "bytes"}
    with open(path, encoding="utf-8") as f:
        spec = {"type": "hf", "json": f.read(), "bos_token_id": hf.get("bos_token_id"),
                "eos_token_id": hf.get("eos_token_id")}
    try:
        tokenizer = make_tokenizer(spec)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"{path}: the tokenizer has {tokenizer.vocab_size} tokens, the model only "
                         f"{config.vocab_size} embedding rows")
    return spec
