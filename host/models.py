"""Find a model from a short spec: a shipped model's name, a container file, a Hugging Face MMfreeLM folder, or a
random model of a given shape.

Shipped models are package data: ``mmfree/host/models/<name>/model.safetensors`` (a container file). A random model
(:func:`~mmfree.host.model.random_model`, for benchmarks of a shape) is ``random:V=65,H=256,L=3,I=208[,seed=5]``.
"""

import os
from importlib import resources

from .container import load_model
from .hf_import import import_hf
from .model import ModelConfig, random_model

__all__ = ["shipped_models", "resolve_model"]

_CONTAINER = "model.safetensors"
#: the keys of a random model's spec and the ModelConfig fields they set
_RANDOM_KEYS = {"V": "vocab_size", "H": "hidden_size", "L": "num_layers", "I": "intermediate_size"}


def _models_root():
    return resources.files("mmfree.host") / "models"


def shipped_models():
    """Names of the models shipped with the package, sorted."""
    root = _models_root()
    if not root.is_dir():
        return []
    return sorted(entry.name for entry in root.iterdir() if (entry / _CONTAINER).is_file())


def resolve_model(spec):
    """Load the model ``spec`` names.

    Parameters
    ----------
    spec : str or os.PathLike
        In this order: ``random:V=…,H=…,L=…,I=…[,seed=…]`` (a random model of that shape, seed 0 unless given); an
        existing file (a container); an existing folder with ``config.json`` (imported with
        :func:`~mmfree.host.hf_import.import_hf`) or with a container ``model.safetensors``; the name of a shipped
        model (see :func:`shipped_models`).

    Returns
    -------
    Model

    Raises
    ------
    ValueError
        Nothing of that name (listing the shipped models), a malformed random spec, or the errors of the loader.
    """
    path = os.fspath(spec)
    if path.startswith("random:"):
        return _random(path)
    if os.path.isfile(path):
        return load_model(path)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "config.json")):
            return import_hf(path)
        if os.path.isfile(os.path.join(path, _CONTAINER)):
            return load_model(os.path.join(path, _CONTAINER))
        raise ValueError(f"{path}: folder has neither config.json (a Hugging Face MMfreeLM checkpoint) nor "
                         f"{_CONTAINER} (an mmfree-model container)")
    names = shipped_models()
    if path in names:
        with resources.as_file(_models_root() / path / _CONTAINER) as file:
            return load_model(file)
    raise ValueError(f"no model {path!r}: not a file, not a folder, and not a shipped model "
                     f"(shipped: {', '.join(names) if names else 'none'})")


def _random(spec):
    fields = {}
    for item in spec.removeprefix("random:").split(","):
        key, _, value = item.partition("=")
        if key not in (*_RANDOM_KEYS, "seed") or not value.isdigit() or key in fields:
            raise ValueError(f"{spec!r}: a random model is random:V=…,H=…,L=…,I=…[,seed=…] with positive integers; "
                             f"{item!r} is not one of those")
        fields[key] = int(value)
    missing = [key for key in _RANDOM_KEYS if key not in fields]
    if missing:
        raise ValueError(f"{spec!r}: a random model needs {', '.join(missing)} as well")
    config = ModelConfig(**{_RANDOM_KEYS[key]: fields[key] for key in _RANDOM_KEYS})
    return random_model(config, seed=fields.get("seed", 0))
