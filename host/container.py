"""The packed-model container: one ``.safetensors`` file holding a whole ternarized model.

Tensors (named after the :class:`~mmfree.host.model.Model` attributes):

- ``{p}.codes`` (U8, 1-D) for every projection ``p`` (``layers.{l}.{i,f,g,o,gate,down}_proj``, ``lm_head``): its
  ternary codes flattened row-major and packed with :func:`mmfree.host.packing.pack`;
- ``{p}.norm`` (F32, in) — the projection's RMSNorm weight;
- ``layers.{l}.{attn_norm,g_norm,mlp_norm}`` (F32, H), ``norm`` (F32, H), ``embeddings`` (F32, V×H),
  ``lower_bounds`` (F32, L×H).

``__metadata__["mmfree"]`` is a JSON object: ``format`` ("mmfree-model"), ``format_version`` (1), ``config``
(:meth:`ModelConfig.to_dict`), ``tokenizer`` (spec), ``packing`` ("2bit" or "base3"), ``projections``
(``{p: {"shape": [out, in], "beta": β}}``, β written as the shortest decimal that reads back to the same float64)
and ``meta`` (free-form, e.g. a model card). A round trip is exact: codes, β and every float bit for bit.
"""

import json
import os

import numpy as np

from .model import BitLinear, Layer, Model, ModelConfig
from .packing import FORMATS, pack, unpack
from .safetensors_io import SafetensorsFile, save_file

__all__ = ["FORMAT", "FORMAT_VERSION", "METADATA_KEY", "save_model", "load_model", "read_metadata"]

FORMAT = "mmfree-model"
FORMAT_VERSION = 1
#: the ``__metadata__`` entry that holds the container's JSON
METADATA_KEY = "mmfree"
_LAYER_NORMS = ("attn_norm", "g_norm", "mlp_norm")


def _projections(model):
    """``[(name, BitLinear)]`` of every projection, in file order."""
    items = [(f"layers.{index}.{proj}", getattr(layer, proj))
             for index, layer in enumerate(model.layers) for proj in Layer.PROJECTIONS]
    return items + [("lm_head", model.lm_head)]


def save_model(model, path, packing="base3", meta=None):
    """Write ``model`` as a container file.

    Parameters
    ----------
    model : Model
        Validated before writing.
    path : str or os.PathLike
    packing : {"2bit", "base3"}
    meta : dict, optional
        Free-form JSON-serializable metadata (model card, provenance); read back with :func:`read_metadata`.
    """
    if packing not in FORMATS:
        raise ValueError(f"unknown packing format {packing!r}; expected one of {FORMATS}")
    model.validate()
    tensors, projections = {}, {}
    for name, proj in _projections(model):
        tensors[f"{name}.codes"] = pack(proj.codes.reshape(-1), packing)
        tensors[f"{name}.norm"] = proj.norm
        projections[name] = {"shape": list(proj.shape), "beta": float(proj.beta)}
    for index, layer in enumerate(model.layers):
        for norm in _LAYER_NORMS:
            tensors[f"layers.{index}.{norm}"] = getattr(layer, norm)
    tensors.update(norm=model.norm, embeddings=model.embeddings, lower_bounds=model.lower_bounds)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config.to_dict(),
              "tokenizer": model.tokenizer, "generation": model.generation, "packing": packing,
              "projections": projections, "meta": meta or {}}
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"container metadata is not JSON-serializable ({e})") from None
    save_file(path, tensors, metadata={METADATA_KEY: text})


def read_metadata(path):
    """The container's metadata JSON as a dict (``config``, ``tokenizer``, ``packing``, ``projections``, ``meta``…).

    Raises
    ------
    ValueError
        Not a safetensors file, not an mmfree-model container, or an unsupported format version.
    """
    with SafetensorsFile(path) as f:
        return _metadata(f)


def _metadata(f):
    if METADATA_KEY not in f.metadata:
        raise ValueError(f"{f.path}: not an {FORMAT} container (no {METADATA_KEY!r} entry in the safetensors "
                         f"metadata; a Hugging Face checkpoint folder is read with import_hf)")
    try:
        header = json.loads(f.metadata[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f"{f.path}: malformed {FORMAT} metadata JSON ({e})") from None
    found = header.get("format") if isinstance(header, dict) else None
    if found != FORMAT:
        raise ValueError(f"{f.path}: metadata format is {found!r}, expected {FORMAT!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{f.path}: {FORMAT} format version {header.get('format_version')!r} is not supported "
                         f"(this version of mmfree reads version {FORMAT_VERSION})")
    missing = [k for k in ("config", "tokenizer", "packing", "projections") if k not in header]
    if missing:
        raise ValueError(f"{f.path}: {FORMAT} metadata lacks {missing}")
    return header


def load_model(path):
    """Read a container file written by :func:`save_model`.

    Returns
    -------
    Model
        Codes int8, β as stored, floats float32 (copies, not views of the file), tokenizer spec as stored.

    Raises
    ------
    ValueError
        Naming the file and, where it applies, the tensor: not a container, wrong format version, bad metadata,
        missing or unexpected tensors, wrong dtype or shape, corrupted packed data.
    """
    path = os.fspath(path)
    with SafetensorsFile(path) as f:
        header = _metadata(f)
        try:
            config = ModelConfig.from_dict(header["config"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: bad config in metadata ({e})") from None
        packing = header["packing"]
        if packing not in FORMATS:
            raise ValueError(f"{path}: unknown packing format {packing!r} (expected one of {FORMATS})")
        h, i, v, n_layers = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_layers
        shapes = {"lm_head": (v, h)}
        for index in range(n_layers):
            shapes.update({f"layers.{index}.{p}": (h, h) for p in ("i_proj", "f_proj", "g_proj", "o_proj")})
            shapes.update({f"layers.{index}.gate_proj": (2 * i, h), f"layers.{index}.down_proj": (h, i)})
        floats = {"norm": (h,), "embeddings": (v, h), "lower_bounds": (n_layers, h)}
        floats.update({f"layers.{index}.{norm}": (h,) for index in range(n_layers) for norm in _LAYER_NORMS})
        floats.update({f"{name}.norm": (shape[1],) for name, shape in shapes.items()})
        expected = set(floats) | {f"{name}.codes" for name in shapes}
        missing, unexpected = sorted(expected - set(f.keys())), sorted(set(f.keys()) - expected)
        if missing:
            raise ValueError(f"{path}: missing tensors {missing}")
        if unexpected:
            raise ValueError(f"{path}: unexpected tensors {unexpected}")

        def get_float(name):
            info = f.info(name)
            if info.dtype != "F32" or info.shape != floats[name]:
                raise ValueError(f"{path}: tensor {name!r} is {info.dtype}{list(info.shape)}, "
                                 f"expected F32{list(floats[name])}")
            return np.array(f.get(name))

        def bitlinear(name):
            info = f.info(f"{name}.codes")
            if info.dtype != "U8" or len(info.shape) != 1:
                raise ValueError(f"{path}: tensor {name + '.codes'!r} is {info.dtype}{list(info.shape)}, "
                                 f"expected 1-D U8 packed codes")
            entry = header["projections"].get(name)
            if not isinstance(entry, dict) or entry.get("shape") != list(shapes[name]):
                raise ValueError(f"{path}: metadata for projection {name!r} is {entry!r}, expected shape "
                                 f"{list(shapes[name])} and beta")
            beta = entry.get("beta")
            if isinstance(beta, bool) or not isinstance(beta, (int, float)):
                raise ValueError(f"{path}: projection {name!r}: beta {beta!r} is not a number")
            try:
                codes = unpack(f.get(f"{name}.codes"), shapes[name][0] * shapes[name][1], packing)
            except ValueError as e:
                raise ValueError(f"{path}: tensor {name + '.codes'!r}: corrupted packed data: {e}") from None
            return BitLinear(codes.reshape(shapes[name]), float(beta), get_float(f"{name}.norm"))

        layers = [Layer(**{norm: get_float(f"layers.{index}.{norm}") for norm in _LAYER_NORMS},
                        **{p: bitlinear(f"layers.{index}.{p}") for p in Layer.PROJECTIONS})
                  for index in range(n_layers)]
        model = Model(config=config, embeddings=get_float("embeddings"), lower_bounds=get_float("lower_bounds"),
                      layers=layers, norm=get_float("norm"), lm_head=bitlinear("lm_head"),
                      tokenizer=header["tokenizer"], generation=header.get("generation", {}))
    if not isinstance(model.generation, dict):
        raise ValueError(f"{path}: generation defaults must be a JSON object")
    try:
        return model.validate()
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
