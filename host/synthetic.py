"""Random HGRNBit checkpoints in exactly the Hugging Face MMfreeLM format, for tests and benchmarks.

The latent weights have a trained checkpoint's statistics, not its function: projections ~ N(0, 0.02²),
embeddings ~ N(0, 0.02²) (the reference's ``initializer_range``), norm weights 1 + N(0, 0.1²), lower bounds
~ N(0, 1). Each tensor has its own random stream (from ``seed`` and its key), so the weights do not depend on
the dtype's rounding order or on the sharding, and a shard is written one tensor at a time.
"""

import glob
import json
import os
import zlib

import numpy as np

from .hf_import import expected_shapes, hf_intermediate_size
from .safetensors_io import LazyTensor, save_file

__all__ = ["write_hf_checkpoint", "hf_config_dict", "latent_tensor"]

_DTYPES = {"bf16": ("BF16", "bfloat16"), "fp16": ("F16", "float16"), "fp32": ("F32", "float32")}


def hf_config_dict(config, dtype="bf16"):
    """The ``config.json`` contents the reference code writes for a :class:`~mmfree.host.model.ModelConfig`.

    ``intermediate_size`` is written as null when it equals the reference default for H (as in the released
    checkpoints).
    """
    default = config.intermediate_size == hf_intermediate_size(config.hidden_size)
    return {
        "architectures": ["HGRNBitForCausalLM"], "model_type": "hgrn_bit", "attn_mode": "fused_recurrent",
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers, "num_heads": 1, "expand_ratio": 1,
        "use_short_conv": False, "conv_size": 4, "share_conv_kernel": True, "use_lower_bound": True,
        "hidden_ratio": 4, "intermediate_size": None if default else config.intermediate_size,
        "hidden_act": "swish", "max_position_embeddings": 2048, "rms_norm_eps": config.norm_eps,
        "use_cache": True, "pad_token_id": None, "bos_token_id": 1, "eos_token_id": 2,
        "tie_word_embeddings": False, "initializer_range": 0.02, "fuse_cross_entropy": True,
        "torch_dtype": _DTYPES[dtype][1],
    }


def latent_tensor(key, shape, seed=0):
    """The float32 latent tensor ``key`` of shape ``shape`` that :func:`write_hf_checkpoint` draws (before rounding)."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    value = rng.standard_normal(shape, dtype=np.float32)
    if key.endswith("norm.weight"):
        value *= np.float32(0.1)
        value += np.float32(1)
    elif key != "model.lower_bounds":
        value *= np.float32(0.02)
    return value


def write_hf_checkpoint(folder, config, dtype="bf16", seed=0, shards=1, tokenizer_json=None):
    """Write a random MMfreeLM checkpoint folder.

    Parameters
    ----------
    folder : str or os.PathLike
        Created if needed; gets ``config.json``, ``model.safetensors`` (``shards == 1``) or
        ``model-0000k-of-0000n.safetensors`` plus ``model.safetensors.index.json``, and ``tokenizer.json``
        when ``tokenizer_json`` is given. Weight files and a ``tokenizer.json`` already there are removed first.
    config : ModelConfig
    dtype : {"bf16", "fp16", "fp32"}
        Storage dtype of every tensor (bf16 rounds to nearest even).
    seed : int
    shards : int
        Number of weight files; tensors are split into contiguous groups of about equal size.
    tokenizer_json : str, optional
        Text of a ``tokenizer.json``.

    Returns
    -------
    list of str
        Paths of the weight files written.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {list(_DTYPES)}, not {dtype!r}")
    shapes = expected_shapes(config)
    if not (isinstance(shards, int) and 1 <= shards <= len(shapes)):
        raise ValueError(f"shards must be an integer from 1 to {len(shapes)}, not {shards!r}")
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    for stale in glob.glob(os.path.join(glob.escape(folder), "model*.safetensors*")) + [
            os.path.join(folder, "tokenizer.json")]:
        if os.path.isfile(stale):
            os.remove(stale)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_config_dict(config, dtype), f, indent=2)
    if tokenizer_json is not None:
        with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(tokenizer_json)

    def lazy(key, shape):
        return LazyTensor(shape, np.dtype(np.float32), lambda: latent_tensor(key, shape, seed))

    groups = _split(list(shapes.items()), shards)
    names = (["model.safetensors"] if shards == 1
             else [f"model-{k + 1:05d}-of-{shards:05d}.safetensors" for k in range(shards)])
    paths = []
    for name, keys in zip(names, groups):
        path = os.path.join(folder, name)
        save_file(path, {key: lazy(key, shapes[key]) for key in keys}, metadata={"format": "pt"},
                  float_dtype=_DTYPES[dtype][0])
        paths.append(path)
    if shards > 1:
        itemsize = 4 if dtype == "fp32" else 2
        index = {"metadata": {"total_size": sum(int(np.prod(s)) * itemsize for s in shapes.values())},
                 "weight_map": {key: name for name, keys in zip(names, groups) for key in keys}}
        with open(os.path.join(folder, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
            json.dump(index, f, indent=2)
    return paths


def _split(items, parts):
    """Split ``[(key, shape)]`` into ``parts`` non-empty contiguous groups of about equal element count."""
    ends = np.cumsum([float(np.prod(shape)) for _, shape in items])
    bounds = [0]
    for k in range(1, parts):
        cut = int(np.searchsorted(ends, ends[-1] * k / parts)) + 1
        bounds.append(min(max(cut, bounds[-1] + 1), len(items) - (parts - k)))
    bounds.append(len(items))
    return [[key for key, _ in items[a:b]] for a, b in zip(bounds, bounds[1:])]
