"""Integer arithmetic primitives of the golden model: rounding shifts, the scalar float, rsqrt, the σ table.

Everything here is exact integer arithmetic, so the gateware can reproduce it bit for bit. Vector operations take
int64 NumPy arrays; per-vector scalars are Python ints (once per vector, so speed does not matter, and Python
ints cannot overflow).
"""

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["round_shift", "saturate", "bit_length", "Scalar", "rsqrt", "rsqrt_scalar", "SigmoidTable"]


def round_shift(x, shift):
    """``x · 2^-shift`` rounded to nearest, ties towards +∞ (add half, arithmetic shift right).

    ``shift`` may be an int or an array broadcastable to ``x``; where it is ≤ 0 the value is shifted left exactly.
    """
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    right = np.maximum(shift, 0)
    half = np.where(right > 0, np.left_shift(np.int64(1), np.maximum(right - 1, 0)), 0)
    return np.left_shift(np.right_shift(x + half, right), np.maximum(-shift, 0))


def saturate(x, bits):
    """Clamp to the signed ``bits``-bit range."""
    limit = 1 << (bits - 1)
    return np.clip(x, -limit, limit - 1)


def bit_length(x):
    """Element-wise bit length of non-negative int64 values (0 for 0)."""
    x = np.asarray(x, dtype=np.int64)
    _, b = np.frexp(x.astype(np.float64))
    b = b.astype(np.int64)
    # float64 rounding can push values just below a power of two up by one bit
    too_long = (b > 0) & (np.right_shift(x, np.maximum(b - 1, 0)) == 0)
    return b - too_long


@dataclass(frozen=True)
class Scalar:
    """A non-negative scalar ``mant · 2^exp`` with ``mant`` normalized to exactly ``bits`` bits (or zero).

    The per-vector scale factors of the accelerator (output scales, rsqrt results, constants) use this format;
    every operation rounds to nearest, ties up.
    """

    mant: int
    exp: int
    bits: int

    @classmethod
    def normalize(cls, mant, exp, bits):
        if mant < 0:
            raise ValueError("Scalar is non-negative")
        if mant == 0:
            return cls(0, 0, bits)
        excess = mant.bit_length() - bits
        if excess > 0:
            mant = (mant + (1 << (excess - 1))) >> excess
            exp += excess
            if mant >> bits:
                mant >>= 1
                exp += 1
        else:
            mant <<= -excess
            exp += excess
        return cls(mant, exp, bits)

    @classmethod
    def from_float(cls, value, bits):
        """Round a non-negative float to ``bits`` significant bits."""
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"Scalar needs a finite non-negative value, not {value!r}")
        if value == 0:
            return cls(0, 0, bits)
        frac, exp = math.frexp(value)
        return cls.normalize(round(frac * (1 << (bits + 1))), exp - bits - 1, bits)

    @classmethod
    def from_int(cls, value, bits):
        return cls.normalize(int(value), 0, bits)

    def __mul__(self, other):
        return Scalar.normalize(self.mant * other.mant, self.exp + other.exp, self.bits)

    def __add__(self, other):
        """The exact sum, rounded once to ``bits`` bits."""
        if not other.mant or not self.mant:
            return self if self.mant else other
        low = min(self.exp, other.exp)
        # an addend below half an ulp of the other cannot change the rounded sum
        if abs(self.exp - other.exp) > self.bits + 1:
            return self if self.exp > other.exp else other
        return Scalar.normalize((self.mant << (self.exp - low)) + (other.mant << (other.exp - low)), low, self.bits)

    def scaled(self, power):
        """Multiply by ``2^power`` (exact)."""
        return Scalar(self.mant, self.exp + power if self.mant else 0, self.bits)

    def __float__(self):
        return math.ldexp(self.mant, self.exp)


def rsqrt_scalar(value):
    """``1/sqrt(value)`` of a :class:`Scalar`: :func:`rsqrt` of its mantissa (doubled if its exponent is odd)."""
    mant, exp = value.mant, value.exp
    if exp & 1:
        mant, exp = mant << 1, exp - 1
    return rsqrt(mant, value.bits).scaled(-(exp // 2))


def rsqrt(value, bits):
    """``1/sqrt(value)`` of a positive integer as a :class:`Scalar`.

    Method: shift ``value`` right by an even amount ``s`` (floor) so that it fits ``2·bits`` bits, giving ``v``;
    ``r = isqrt(⌊2^(4·bits) / v⌋)`` (both exact, bit-serial in the gateware); the result is
    ``r · 2^(-2·bits - s/2)`` rounded to ``bits`` bits. ``value == 0`` gives zero.
    """
    value = int(value)
    if value <= 0:
        return Scalar(0, 0, bits)
    shift = max(0, value.bit_length() - 2 * bits)
    shift += shift & 1
    r = math.isqrt((1 << (4 * bits)) // (value >> shift))
    return Scalar.normalize(r, -2 * bits - shift // 2, bits)


class SigmoidTable:
    """Piecewise-linear ``σ(−z)`` for ``z ≥ 0``, from which σ and SiLU are built.

    Parameters
    ----------
    frac : int
        Fractional bits of the table values (σ outputs are in Q0.frac).
    segment_bits : int
        Segments are ``2^-segment_bits`` wide.
    z_range : int
        The table covers ``0 ≤ z < z_range``; beyond it ``σ(−z)`` is taken as the last entry.

    The table holds ``E[k] = round(σ(−k · 2^-segment_bits) · 2^frac)`` for ``k = 0 … z_range · 2^segment_bits``.
    """

    def __init__(self, frac, segment_bits, z_range):
        self.frac = frac
        self.segment_bits = segment_bits
        self.z_range = z_range
        k = np.arange(z_range * (1 << segment_bits) + 1, dtype=np.float64)
        self.entries = np.round(np.ldexp(1.0 / (1.0 + np.exp(k / (1 << segment_bits))), frac)).astype(np.int64)

    def neg(self, z, z_frac):
        """``σ(−|z|)`` in Q0.frac for ``z`` in Q.z_frac (int64 array); requires ``z_frac ≥ segment_bits``."""
        sub = z_frac - self.segment_bits
        mag = np.abs(z)
        index = np.right_shift(mag, sub)
        inside = index < len(self.entries) - 1
        index = np.where(inside, index, len(self.entries) - 2)
        rem = np.where(inside, mag & ((1 << sub) - 1), 1 << sub)
        lo, hi = self.entries[index], self.entries[index + 1]
        return lo - round_shift((lo - hi) * rem, sub)

    def sigmoid(self, z, z_frac):
        """``σ(z)`` in Q0.frac."""
        e = self.neg(z, z_frac)
        return np.where(z >= 0, (1 << self.frac) - e, e)

    def complement(self, z, z_frac):
        """``1 − σ(z) = σ(−z)`` in Q0.frac, computed directly (exact where σ(z) is close to 1)."""
        e = self.neg(z, z_frac)
        return np.where(z >= 0, e, (1 << self.frac) - e)

    def silu(self, z, z_frac):
        """``z · σ(z)`` in the format of ``z``."""
        return round_shift(z * self.sigmoid(z, z_frac), self.frac)
