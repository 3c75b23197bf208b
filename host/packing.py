"""Packing of ternary weights into bytes: the format the trit decoders of the gateware read.

Two formats, both over a flat 1-D sequence of trits in {-1, 0, +1} (callers flatten matrices row-major):

- ``"2bit"``: 4 trits per byte, trit ``k`` of each group in bits ``[2k+1:2k]``; codes 0 → ``0b00``, +1 → ``0b01``,
  −1 → ``0b11``; ``0b10`` is invalid.
- ``"base3"``: 5 trits per byte, ``byte = Σ_k (t_k + 1)·3^k`` (trit 0 is the least significant digit); bytes
  243–255 are invalid.

The final byte is padded with trit 0. Readers are strict: invalid codes, nonzero padding and a byte count other
than :func:`packed_size` raise ``ValueError``. ``docs/formats.md`` is the exact specification.
"""

import operator

import numpy as np

__all__ = ["FORMATS", "BITS_PER_WEIGHT", "TRITS_PER_BYTE", "packed_size", "pack", "unpack",
           "pack_2bit", "unpack_2bit", "pack_base3", "unpack_base3"]

#: names of the packing formats
FORMATS = ("2bit", "base3")
#: storage cost of one trit, in bits
BITS_PER_WEIGHT = {"2bit": 2.0, "base3": 1.6}

#: packing format → trits per byte
TRITS_PER_BYTE = {"2bit": 4, "base3": 5}
_MAX_BASE3_BYTE = 3**5 - 1

# Decode tables, indexed by byte value. 2-bit: four int8 trits per byte, viewed as one little-endian uint32 so that
# a gather writes trit k to byte k; the invalid code 0b10 decodes to 2, a marker unpack_2bit looks for.
# base3: five int8 trits per byte; rows 243-255 are never read (unpack_base3 rejects those bytes first).
_byte = np.arange(256)
_DECODE_2BIT = np.array([0, 1, 2, -1], np.int8)[(_byte[:, None] >> (2 * np.arange(4))) & 3].view("<u4").ravel()
_DECODE_BASE3 = ((_byte[:, None] // 3 ** np.arange(5)) % 3 - 1).astype(np.int8)
del _byte


def _check_fmt(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"unknown packing format {fmt!r}; expected one of {FORMATS}")


def _check_count(count):
    count = operator.index(count)
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    return count


def packed_size(count, fmt):
    """Number of bytes that ``count`` trits take in format ``fmt``.

    Parameters
    ----------
    count : int
        Number of trits, ``>= 0``.
    fmt : {"2bit", "base3"}

    Returns
    -------
    int
        ``ceil(count / 4)`` for ``"2bit"``, ``ceil(count / 5)`` for ``"base3"``.
    """
    _check_fmt(fmt)
    return -(-_check_count(count) // TRITS_PER_BYTE[fmt])


def _as_trits(trits):
    """Validate trits and return them as a C-contiguous 1-D int8 array (the input itself when it already is one)."""
    t = np.asarray(trits)
    if t.dtype.kind not in "iu":
        raise TypeError(f"trits must have an integer dtype, got {t.dtype}")
    if t.ndim != 1:
        raise ValueError(f"trits must be a 1-D array (flatten matrices row-major), got shape {t.shape}")
    if t.size and (t.min() < -1 or t.max() > 1):
        index = int(np.flatnonzero((t < -1) | (t > 1))[0])
        raise ValueError(f"trits must be -1, 0 or +1; index {index} holds {t[index]}")
    return np.ascontiguousarray(t, dtype=np.int8)


def _pack_groups(trits, fmt, kernel):
    """Pack whole groups with ``kernel(group_trits, out)`` and the padded final group, if any, the same way."""
    t = _as_trits(trits)
    per_byte = TRITS_PER_BYTE[fmt]
    whole, rest = divmod(t.size, per_byte)
    out = np.empty(packed_size(t.size, fmt), np.uint8)
    kernel(t[: whole * per_byte], out[:whole])
    if rest:
        tail = np.zeros(per_byte, np.int8)
        tail[:rest] = t[whole * per_byte:]
        kernel(tail, out[whole:])
    return out


def _pack_2bit_kernel(t, out):
    # The low two bits of an int8 trit are its code (0 -> 00, 1 -> 01, -1 = 0xFF -> 11). Four trits form one
    # little-endian uint32 with code k at bit 8k; multiplying by 2^24 + 2^18 + 2^12 + 2^6 moves code k to bit
    # 24 + 2k. The other partial products land on distinct even bit pairs, so nothing carries into bits 24..31.
    x = t.view("<u4") & 0x03030303
    x *= 0x01041040
    np.right_shift(x, 24, out=out, casting="unsafe")


def _pack_base3_kernel(t, out):
    # Horner in uint8: Σ t_k·3^k + 121 taken mod 256 (the int8 -1 reads as 255) is the exact byte, since the true
    # value Σ (t_k + 1)·3^k lies in 0..242.
    mod256 = t.view(np.uint8).reshape(-1, 5)
    out[...] = mod256[:, 4]
    for k in (3, 2, 1, 0):
        out *= 3
        out += mod256[:, k]
    out += 121


def pack_2bit(trits):
    """Pack trits 4 per byte as 2-bit codes.

    Parameters
    ----------
    trits : array_like of int, shape (n,)
        Values in {-1, 0, +1}, any integer dtype, any strides.

    Returns
    -------
    ndarray of uint8, shape (ceil(n / 4),)
        Trit ``4i + k`` in bits ``[2k+1:2k]`` of byte ``i`` (trit 0 in the least significant bits), coded
        0 → ``0b00``, +1 → ``0b01``, −1 → ``0b11``. Unused positions of the final byte hold ``0b00``.

    Raises
    ------
    TypeError
        ``trits`` does not have an integer dtype.
    ValueError
        ``trits`` is not 1-D, or holds a value outside {-1, 0, +1} (the first such index is named).
    """
    return _pack_groups(trits, "2bit", _pack_2bit_kernel)


def pack_base3(trits):
    """Pack trits 5 per byte as base-3 digits.

    Parameters
    ----------
    trits : array_like of int, shape (n,)
        Values in {-1, 0, +1}, any integer dtype, any strides.

    Returns
    -------
    ndarray of uint8, shape (ceil(n / 5),)
        Byte ``i`` is ``Σ_{k=0..4} (t[5i + k] + 1)·3^k`` (trit 0 is the least significant digit), in 0..242. Unused
        digits of the final byte are 1 (trit 0).

    Raises
    ------
    TypeError
        ``trits`` does not have an integer dtype.
    ValueError
        ``trits`` is not 1-D, or holds a value outside {-1, 0, +1} (the first such index is named).
    """
    return _pack_groups(trits, "base3", _pack_base3_kernel)


def _as_packed(data, count, fmt):
    """Validate packed bytes and their length for ``count`` trits; return them as a 1-D uint8 array."""
    count = _check_count(count)
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = np.frombuffer(data, np.uint8)
    elif not isinstance(data, np.ndarray):
        raise TypeError(f"data must be a uint8 ndarray or a bytes-like object, got {type(data).__name__}")
    if data.dtype != np.uint8:
        raise TypeError(f"data must have dtype uint8, got {data.dtype}")
    if data.ndim != 1:
        raise ValueError(f"data must be a 1-D array, got shape {data.shape}")
    expected = packed_size(count, fmt)
    if data.size != expected:
        which = "short" if data.size < expected else "long"
        raise ValueError(f"{count} trits in {fmt!r} format take {expected} bytes; data has {data.size} (too {which})")
    return count, data


def _check_padding(data, decoded, count, fmt, pad):
    if decoded[count:].any():
        last = data.size - 1
        value = f"{data[last]:#010b}" if fmt == "2bit" else f"{data[last]}"
        raise ValueError(f"final byte (offset {last}, value {value}) has padding other than {pad} "
                         f"in its unused positions {count % TRITS_PER_BYTE[fmt]}..{TRITS_PER_BYTE[fmt] - 1}")


def unpack_2bit(data, count):
    """Unpack ``count`` trits stored 4 per byte as 2-bit codes (the inverse of :func:`pack_2bit`).

    Parameters
    ----------
    data : ndarray of uint8, shape (ceil(count / 4),), or bytes-like
        Trit ``4i + k`` in bits ``[2k+1:2k]`` of byte ``i``; codes ``0b00`` → 0, ``0b01`` → +1, ``0b11`` → −1.
    count : int
        Number of trits to return.

    Returns
    -------
    ndarray of int8, shape (count,)
        Values in {-1, 0, +1}.

    Raises
    ------
    TypeError
        ``data`` is neither a uint8 array nor bytes-like, or ``count`` is not an integer.
    ValueError
        ``data`` is not 1-D or does not hold exactly ``ceil(count / 4)`` bytes; a used position holds the invalid
        code ``0b10`` (the first such byte offset is named); an unused position of the final byte is not ``0b00``.
    """
    count, data = _as_packed(data, count, "2bit")
    decoded = np.take(_DECODE_2BIT, data).view(np.int8)
    trits = decoded[:count]
    if count and trits.max() > 1:
        index = int(np.flatnonzero(trits > 1)[0])
        offset = index // 4
        raise ValueError(f"byte at offset {offset} (value {data[offset]:#010b}) holds the invalid 2-bit code 0b10 "
                         f"in trit position {index % 4}")
    _check_padding(data, decoded, count, "2bit", "code 0b00")
    return trits


def unpack_base3(data, count):
    """Unpack ``count`` trits stored 5 per byte as base-3 digits (the inverse of :func:`pack_base3`).

    Parameters
    ----------
    data : ndarray of uint8, shape (ceil(count / 5),), or bytes-like
        Bytes in 0..242; trit ``5i + k`` is digit ``k`` of byte ``i`` minus 1, digit ``k = (byte // 3^k) % 3``.
    count : int
        Number of trits to return.

    Returns
    -------
    ndarray of int8, shape (count,)
        Values in {-1, 0, +1}.

    Raises
    ------
    TypeError
        ``data`` is neither a uint8 array nor bytes-like, or ``count`` is not an integer.
    ValueError
        ``data`` is not 1-D or does not hold exactly ``ceil(count / 5)`` bytes; a byte is above 242 (the first
        such offset and its value are named); an unused digit of the final byte is not 1 (trit 0).
    """
    count, data = _as_packed(data, count, "base3")
    if data.size and data.max() > _MAX_BASE3_BYTE:
        offset = int(np.flatnonzero(data > _MAX_BASE3_BYTE)[0])
        raise ValueError(f"byte at offset {offset} holds {data[offset]}; base-3 bytes must be 0..{_MAX_BASE3_BYTE}")
    decoded = np.take(_DECODE_BASE3, data, axis=0).reshape(-1)
    _check_padding(data, decoded, count, "base3", "digit 1 (trit 0)")
    return decoded[:count]


_PACK = {"2bit": pack_2bit, "base3": pack_base3}
_UNPACK = {"2bit": unpack_2bit, "base3": unpack_base3}


def pack(trits, fmt):
    """Pack trits in format ``fmt``: :func:`pack_2bit` or :func:`pack_base3`.

    Parameters
    ----------
    trits : array_like of int, shape (n,)
        Values in {-1, 0, +1}.
    fmt : {"2bit", "base3"}

    Returns
    -------
    ndarray of uint8, shape (packed_size(n, fmt),)
    """
    _check_fmt(fmt)
    return _PACK[fmt](trits)


def unpack(data, count, fmt):
    """Unpack ``count`` trits in format ``fmt``: :func:`unpack_2bit` or :func:`unpack_base3`.

    Parameters
    ----------
    data : ndarray of uint8, shape (packed_size(count, fmt),), or bytes-like
    count : int
    fmt : {"2bit", "base3"}

    Returns
    -------
    ndarray of int8, shape (count,)
    """
    _check_fmt(fmt)
    return _UNPACK[fmt](data, count)
