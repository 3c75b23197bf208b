"""Find a model from a short spec: a shipped model's name, a container file, or a Hugging Face MMfreeLM folder.

Shipped models are package data: ``mmfree/host/models/<name>/model.safetensors`` (a container file).
"""

import os
from importlib import resources

from .container import load_model
from .hf_import import import_hf

__all__ = ["shipped_models", "resolve_model"]

_CONTAINER = "model.safetensors"


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
        In this order: an existing file (a container); an existing folder with ``config.json`` (imported with
        :func:`~mmfree.host.hf_import.import_hf`) or with a container ``model.safetensors``; the name of a shipped
        model (see :func:`shipped_models`).

    Returns
    -------
    Model

    Raises
    ------
    ValueError
        Nothing of that name (listing the shipped models), or the errors of the loader.
    """
    path = os.fspath(spec)
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
