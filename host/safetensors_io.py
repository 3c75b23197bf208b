"""Reading and writing safetensors files with NumPy alone, bfloat16 included.

The format: an 8-byte little-endian header length N, N bytes of JSON header (``{name: {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {str: str}}``, padded with spaces), then the raw little-endian
tensor data; offsets are relative to the start of the data and cover it without gaps or overlaps.

NumPy has no bfloat16: BF16 tensors are read as their uint16 bit patterns and widened to float32 exactly
(:func:`bf16_to_float32`); writing rounds float32 to nearest, ties to even (:func:`float32_to_bf16`). Files are
memory-mapped: tensors other than BF16 are read-only views of the mapping, not copies.
"""

import json
import mmap
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["DTYPES", "TensorInfo", "LazyTensor", "SafetensorsFile", "load_file", "save_file",
           "bf16_to_float32", "float32_to_bf16"]

#: safetensors dtype name -> NumPy storage dtype (BF16 is stored as its uint16 bit pattern)
DTYPES = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
}
_NUMPY_TO_NAME = {np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8",
                  np.dtype(np.uint16): "U16", np.dtype(np.int16): "I16", np.dtype(np.float16): "F16",
                  np.dtype(np.uint32): "U32", np.dtype(np.int32): "I32", np.dtype(np.float32): "F32",
                  np.dtype(np.uint64): "U64", np.dtype(np.int64): "I64", np.dtype(np.float64): "F64"}
_FLOAT_NAMES = ("BF16", "F16", "F32", "F64")
_ALIGN = 8


def bf16_to_float32(bits):
    """Widen bfloat16 bit patterns (uint16, any shape) to float32 exactly: the bits become the high half."""
    wide = np.asarray(bits, dtype=np.uint16).astype(np.uint32)
    wide <<= 16
    return wide.view(np.float32)


def float32_to_bf16(x):
    """Round float32 (any shape) to bfloat16 bit patterns (uint16): nearest, ties to even; NaN stays NaN."""
    x = np.asarray(x, dtype=np.float32)
    u = x.reshape(-1).view(np.uint32)
    rounded = (u >> 16) & np.uint32(1)
    rounded += np.uint32(0x7FFF)
    rounded += u
    rounded >>= 16
    bits = rounded.astype(np.uint16)
    nan = np.isnan(x.reshape(-1))
    bits[nan] = (u[nan] >> 16).astype(np.uint16) | np.uint16(0x0040)
    return bits.reshape(x.shape)


@dataclass(frozen=True)
class TensorInfo:
    """Header entry of one tensor: safetensors dtype name, shape, and byte range in the data section."""

    dtype: str
    shape: tuple
    begin: int
    end: int


@dataclass(frozen=True)
class LazyTensor:
    """A tensor for :func:`save_file` made only when it is written, so large files need one tensor in memory.

    Attributes
    ----------
    shape : tuple of int
    dtype : numpy dtype
        The dtype of what ``make`` returns (before any ``float_dtype`` conversion).
    make : callable
        ``make() -> ndarray`` of exactly ``shape`` and ``dtype``.
    """

    shape: tuple
    dtype: np.dtype
    make: Callable


class SafetensorsFile:
    """A memory-mapped safetensors file, checked on open.

    Parameters
    ----------
    path : str or os.PathLike

    Raises
    ------
    ValueError
        Naming the file: truncated (header or data beyond the file's size), malformed JSON header, bad entry,
        unsupported dtype, shape × dtype size mismatch, offsets out of order, overlapping or leaving gaps.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise ValueError(f"{self.path}: truncated safetensors file ({size} bytes, no header length)")
            header_len = int.from_bytes(f.read(8), "little")
            if header_len > size - 8:
                raise ValueError(f"{self.path}: truncated safetensors file (header of {header_len} bytes, "
                                 f"file has {size - 8} bytes after the length)")
            raw = f.read(header_len)
            self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._data_start = 8 + header_len
        self.metadata, self._infos = _parse_header(raw, self.path, size - self._data_start)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Drop this object's reference to the mapping (arrays already returned keep it alive)."""
        self._mmap = None

    def keys(self):
        """Tensor names, in the order of their data in the file."""
        return list(self._infos)

    def __contains__(self, name):
        return name in self._infos

    def info(self, name):
        """The :class:`TensorInfo` of ``name``."""
        try:
            return self._infos[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor {name!r}") from None

    def get(self, name, raw=False):
        """One tensor as an ndarray of its shape.

        BF16 is widened to a new float32 array unless ``raw`` (then its uint16 bit patterns); every other dtype
        is a read-only view of the mapping in its NumPy dtype (native byte order on little-endian hosts).
        """
        if self._mmap is None:
            raise ValueError(f"{self.path}: file is closed")
        info = self.info(name)
        dtype = DTYPES[info.dtype]
        count = (info.end - info.begin) // dtype.itemsize
        array = np.frombuffer(self._mmap, dtype=dtype, count=count,
                              offset=self._data_start + info.begin).reshape(info.shape)
        if info.dtype == "BF16" and not raw:
            return bf16_to_float32(array)
        return array


def _parse_header(raw, path, data_size):
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: malformed safetensors JSON header ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: malformed safetensors header (a JSON {type(header).__name__}, not an object)")
    metadata = header.pop("__metadata__", None) or {}
    if not (isinstance(metadata, dict) and all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in metadata.items())):
        raise ValueError(f"{path}: __metadata__ must map strings to strings")
    infos = {name: _parse_entry(name, entry, path) for name, entry in header.items()}
    infos = dict(sorted(infos.items(), key=lambda item: (item[1].begin, item[1].end)))
    position = 0
    for name, info in infos.items():
        if info.end > data_size:
            raise ValueError(f"{path}: truncated safetensors file: tensor {name!r} ends at data byte {info.end}, "
                             f"the data section has {data_size} bytes")
        if info.begin < position:
            raise ValueError(f"{path}: tensor {name!r} data [{info.begin}, {info.end}) overlaps the previous tensor "
                             f"(which ends at {position})")
        if info.begin > position:
            raise ValueError(f"{path}: gap in the data section before tensor {name!r} (bytes {position}..{info.begin})")
        position = info.end
    if position != data_size:
        raise ValueError(f"{path}: {data_size - position} bytes after the last tensor's data")
    return dict(metadata), infos


def _unique_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})}")
    return dict(pairs)


def _parse_entry(name, entry, path):
    if not (isinstance(entry, dict) and {"dtype", "shape", "data_offsets"} <= set(entry)):
        raise ValueError(f"{path}: tensor {name!r}: header entry needs dtype, shape and data_offsets, got {entry!r}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPES:
        raise ValueError(f"{path}: tensor {name!r}: unsupported dtype {dtype!r} (supported: {', '.join(DTYPES)})")
    if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
        raise ValueError(f"{path}: tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise ValueError(f"{path}: tensor {name!r}: data_offsets must be two non-negative integers, got {offsets!r}")
    begin, end = offsets
    if end < begin:
        raise ValueError(f"{path}: tensor {name!r}: data_offsets out of order ({begin} > {end})")
    expected = int(np.prod(shape, dtype=np.int64)) * DTYPES[dtype].itemsize
    if end - begin != expected:
        raise ValueError(f"{path}: tensor {name!r}: {end - begin} bytes of data, but shape {shape} × {dtype} "
                         f"needs {expected}")
    return TensorInfo(dtype, tuple(shape), begin, end)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_file(path):
    """Every tensor of a safetensors file as ``{name: ndarray}`` (BF16 widened to float32), plus nothing else."""
    with SafetensorsFile(path) as f:
        return {name: f.get(name) for name in f.keys()}


def save_file(path, tensors, metadata=None, float_dtype=None):
    """Write a safetensors file, one tensor at a time.

    Parameters
    ----------
    path : str or os.PathLike
    tensors : mapping of str to ndarray or LazyTensor
        Written in this order; any NumPy dtype in :data:`DTYPES` (written little-endian).
    metadata : mapping of str to str, optional
        Stored as ``__metadata__``.
    float_dtype : {None, "BF16", "F16", "F32", "F64"}
        Convert every floating-point tensor to this dtype on write (BF16 rounds to nearest, ties to even);
        None keeps each tensor's own dtype.

    The file is written under a temporary name and then renamed over ``path``, so arrays still mapped from an
    older file of that name stay valid.
    """
    if float_dtype is not None and float_dtype not in _FLOAT_NAMES:
        raise ValueError(f"float_dtype must be one of {_FLOAT_NAMES} or None, not {float_dtype!r}")
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError("safetensors metadata must map strings to strings")
    header, names, position = {}, {}, 0
    for name, tensor in tensors.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved and cannot name a tensor")
        shape, dtype = (tuple(tensor.shape), np.dtype(tensor.dtype))
        stored = _stored_name(name, dtype, float_dtype)
        size = int(np.prod(shape, dtype=np.int64)) * DTYPES[stored].itemsize
        header[name] = {"dtype": stored, "shape": [int(d) for d in shape], "data_offsets": [position, position + size]}
        names[name] = stored
        position += size
    if metadata:
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % _ALIGN)
    path = os.fspath(path)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as f:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text)
            for name, tensor in tensors.items():
                f.write(_encode(name, tensor, names[name]).data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _stored_name(name, dtype, float_dtype):
    dtype = dtype.newbyteorder("<")
    if dtype not in _NUMPY_TO_NAME:
        raise ValueError(f"tensor {name!r}: NumPy dtype {dtype} has no safetensors equivalent")
    stored = _NUMPY_TO_NAME[dtype]
    if float_dtype is not None and stored in _FLOAT_NAMES:
        return float_dtype
    return stored


def _encode(name, tensor, stored):
    array = np.asarray(tensor.make() if isinstance(tensor, LazyTensor) else tensor)
    if array.shape != tuple(tensor.shape) or array.dtype != np.dtype(tensor.dtype):
        raise ValueError(f"tensor {name!r}: made {array.dtype}{array.shape}, declared {np.dtype(tensor.dtype)}"
                         f"{tuple(tensor.shape)}")
    if stored == "BF16":
        return float32_to_bf16(array.astype(np.float32, copy=False))
    return np.ascontiguousarray(array, dtype=DTYPES[stored])
