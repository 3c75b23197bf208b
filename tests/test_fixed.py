"""The golden model's integer primitives, against exact Python-integer and float definitions."""

import math
from fractions import Fraction

import numpy as np
import pytest

from mmfree.host.fixed import Scalar, SigmoidTable, bit_length, round_shift, rsqrt, rsqrt_scalar, saturate


def test_round_shift_ties_up_and_left_shifts():
    x = np.array([5, 6, 7, -5, -6, -7, 0, 3], dtype=np.int64)
    # x / 4: 1.25 1.5 1.75 -1.25 -1.5 -1.75 0 0.75 → ties go to +inf
    assert round_shift(x, 2).tolist() == [1, 2, 2, -1, -1, -2, 0, 1]
    assert round_shift(x, 0).tolist() == x.tolist()
    assert round_shift(x, -3).tolist() == (x * 8).tolist()
    shifts = np.array([0, 1, 2, 3, 4, 5, 6, -1])
    expected = [math.floor(Fraction(int(v)) * Fraction(2) ** -int(s) + Fraction(1, 2)) for v, s in zip(x, shifts)]
    assert round_shift(x, shifts).tolist() == expected


def test_round_shift_random_against_fractions():
    rng = np.random.default_rng(1)
    x = rng.integers(-2**40, 2**40, 2000)
    s = rng.integers(-8, 30, 2000)
    expected = [math.floor(Fraction(int(v), 1) * Fraction(2) ** -int(k) + Fraction(1, 2)) for v, k in zip(x, s)]
    assert round_shift(x, s).tolist() == expected


def test_saturate():
    assert saturate(np.array([-200, -128, 0, 127, 200]), 8).tolist() == [-128, -128, 0, 127, 127]


def test_bit_length_exact_near_powers_of_two():
    values = [0, 1, 2, 3]
    for k in range(2, 63):
        values += [2**k - 1, 2**k, 2**k + 1]
    got = bit_length(np.array(values, dtype=np.int64)).tolist()
    assert got == [v.bit_length() for v in values]


@pytest.mark.parametrize("bits", [8, 16, 24])
def test_scalar_normalize_rounds_to_nearest(bits):
    rng = np.random.default_rng(bits)
    for mant in rng.integers(1, 2**62, 500).tolist() + [2**bits - 1, 2**(bits + 3) - 1, 1]:
        s = Scalar.normalize(mant, 0, bits)
        assert s.mant.bit_length() == bits
        assert abs(Fraction(s.mant) * Fraction(2) ** s.exp - mant) <= Fraction(2) ** s.exp / 2


def test_scalar_from_float_and_multiply():
    bits = 16
    for value in [1.0, 0.1, 3.3e-5, 1234.5678, 2.0**-40]:
        s = Scalar.from_float(value, bits)
        assert abs(float(s) - value) <= value * 2.0**-bits
    a, b = Scalar.from_float(0.3, bits), Scalar.from_float(7.1, bits)
    assert abs(float(a * b) - float(a) * float(b)) <= float(a) * float(b) * 2.0**-bits
    assert float(Scalar.from_float(0.0, bits)) == 0.0
    with pytest.raises(ValueError):
        Scalar.from_float(-1.0, bits)
    with pytest.raises(ValueError):
        Scalar.from_float(float("nan"), bits)


@pytest.mark.parametrize("bits", [12, 16])
def test_rsqrt_accuracy(bits):
    rng = np.random.default_rng(bits)
    values = [1, 2, 3, 4, 2**20, 2**44 - 1] + rng.integers(1, 2**50, 2000).tolist()
    for v in values:
        r = float(rsqrt(v, bits))
        assert abs(r * math.sqrt(v) - 1) < 2.0 ** -(bits - 1), v
    assert float(rsqrt(0, bits)) == 0.0


def test_rsqrt_is_the_documented_integer_algorithm():
    bits = 16
    for v in [5, 12345, 2**33 + 7, 2**45 + 12345]:
        shift = max(0, v.bit_length() - 2 * bits)
        shift += shift & 1
        r = math.isqrt((1 << (4 * bits)) // (v >> shift))
        assert rsqrt(v, bits) == Scalar.normalize(r, -2 * bits - shift // 2, bits)


def test_sigmoid_table_tracks_float_sigmoid():
    table = SigmoidTable(frac=24, segment_bits=4, z_range=16)
    z_frac = 10
    z = np.arange(-32 * 2**z_frac, 32 * 2**z_frac, 7, dtype=np.int64)
    zf = z / 2**z_frac
    sig = table.sigmoid(z, z_frac) / 2**24
    exact = 1 / (1 + np.exp(-zf))
    assert np.max(np.abs(sig - exact)) < 2e-4
    comp = table.complement(z, z_frac) / 2**24
    exact_comp = 1 / (1 + np.exp(zf))
    inside = np.abs(zf) < 10
    # σ(−z) keeps its relative accuracy where σ(z) → 1: the point of computing 1 − f directly
    assert np.max(np.abs(comp - exact_comp)[inside] / exact_comp[inside]) < 3e-3
    assert np.all(table.sigmoid(z, z_frac) + table.complement(z, z_frac) == 2**24)
    silu = table.silu(z, z_frac) / 2**z_frac
    assert np.max(np.abs(silu - zf * exact)) < 4e-3


def test_scalar_add_is_rounded_exact_sum():
    bits = 16
    rng = np.random.default_rng(7)
    for _ in range(300):
        a = Scalar.normalize(int(rng.integers(1, 2**40)), int(rng.integers(-60, 10)), bits)
        b = Scalar.normalize(int(rng.integers(1, 2**40)), int(rng.integers(-60, 10)), bits)
        exact = Fraction(a.mant) * Fraction(2) ** a.exp + Fraction(b.mant) * Fraction(2) ** b.exp
        s = a + b
        assert abs(Fraction(s.mant) * Fraction(2) ** s.exp - exact) <= Fraction(2) ** s.exp / 2
    zero = Scalar(0, 0, bits)
    assert zero + a == a and a + zero == a


def test_rsqrt_scalar_odd_and_even_exponents():
    for value in [3.0e-7, 1.0, 2.0, 1234.5, 2.0**-31]:
        s = Scalar.from_float(value, 16)
        assert abs(float(rsqrt_scalar(s)) * math.sqrt(float(s)) - 1) < 2.0**-14
