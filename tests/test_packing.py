"""Ternary packing: every byte value, every tail length, adversarial inputs, and the error messages.

Expected values come from pure-Python transcriptions of docs/formats.md (``ref_*`` below) and from hand-computed
literals, never from the module's own tables.
"""

import numpy as np
import pytest

from mmfree.host.packing import (BITS_PER_WEIGHT, FORMATS, pack, pack_2bit, pack_base3, packed_size, unpack,
                                 unpack_2bit, unpack_base3)

TRITS_PER_BYTE = {"2bit": 4, "base3": 5}
CODE_2BIT = {0: 0b00, 1: 0b01, -1: 0b11}
TRIT_OF_CODE = {0b00: 0, 0b01: 1, 0b11: -1}


def ref_pack(trits, fmt):
    """Byte by byte, straight from the specification; the final group is padded with trit 0."""
    per = TRITS_PER_BYTE[fmt]
    trits = [int(t) for t in trits]
    out = []
    for i in range(0, len(trits), per):
        group = trits[i:i + per] + [0] * (per - len(trits[i:i + per]))
        if fmt == "2bit":
            out.append(sum(CODE_2BIT[t] << (2 * k) for k, t in enumerate(group)))
        else:
            out.append(sum((t + 1) * 3**k for k, t in enumerate(group)))
    return out


def ref_decode_byte(byte, fmt):
    """The trits of one byte (all positions), or None when the byte is invalid anywhere."""
    if fmt == "2bit":
        codes = [(byte >> (2 * k)) & 3 for k in range(4)]
        return None if 0b10 in codes else [TRIT_OF_CODE[c] for c in codes]
    if byte > 242:
        return None
    return [(byte // 3**k) % 3 - 1 for k in range(5)]


def random_trits(rng, n, dtype=np.int8):
    return rng.integers(-1, 2, n).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


# --- constants and sizes -------------------------------------------------------------------------------------------

def test_constants():
    assert FORMATS == ("2bit", "base3")
    assert BITS_PER_WEIGHT == {"2bit": 2.0, "base3": 1.6}
    for fmt in FORMATS:
        assert packed_size(10**6, fmt) * 8 / 10**6 == BITS_PER_WEIGHT[fmt]


@pytest.mark.parametrize("fmt, table", [
    ("2bit", {0: 0, 1: 1, 3: 1, 4: 1, 5: 2, 8: 2, 9: 3, 10**9 + 1: 250_000_001}),
    ("base3", {0: 0, 1: 1, 4: 1, 5: 1, 6: 2, 10: 2, 11: 3, 10**9 + 1: 200_000_001}),
])
def test_packed_size_values(fmt, table):
    for count, size in table.items():
        assert packed_size(count, fmt) == size


def test_packed_size_rejects_bad_arguments():
    with pytest.raises(ValueError, match="non-negative"):
        packed_size(-1, "2bit")
    with pytest.raises(TypeError):
        packed_size(2.5, "base3")
    with pytest.raises(ValueError, match=r"unknown packing format '3bit'.*'2bit', 'base3'"):
        packed_size(4, "3bit")


# --- every byte value ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_every_byte_value(fmt):
    per = TRITS_PER_BYTE[fmt]
    valid = []
    for byte in range(256):
        expected = ref_decode_byte(byte, fmt)
        data = np.array([byte], np.uint8)
        if expected is None:
            with pytest.raises(ValueError, match="offset 0"):
                unpack(data, per, fmt)
            continue
        valid.append(byte)
        trits = unpack(data, per, fmt)
        assert trits.dtype == np.int8
        assert trits.tolist() == expected
        assert pack(trits, fmt).tolist() == [byte]
    assert len(valid) == {"2bit": 81, "base3": 243}[fmt]
    # all valid bytes at once, through the vectorized path
    data = np.array(valid, np.uint8)
    trits = unpack(data, per * len(valid), fmt)
    assert trits.tolist() == [t for byte in valid for t in ref_decode_byte(byte, fmt)]
    np.testing.assert_array_equal(pack(trits, fmt), data)


def test_2bit_invalid_code_in_each_position():
    for k in range(4):
        byte = 0b10 << (2 * k)
        with pytest.raises(ValueError, match=f"offset 0 .*invalid 2-bit code 0b10 in trit position {k}"):
            unpack_2bit(np.array([byte], np.uint8), 4)


@pytest.mark.parametrize("fmt, bad", [("2bit", 0b0110_0001), ("base3", 243), ("base3", 255)])
def test_first_invalid_byte_is_named(rng, fmt, bad):
    data = pack(random_trits(rng, 20_000), fmt)
    data[1234] = bad
    data[3000] = bad
    with pytest.raises(ValueError, match="byte at offset 1234 ") as info:
        unpack(data, 20_000, fmt)
    if fmt == "base3":
        assert f"holds {bad}" in str(info.value)
    else:
        assert "0b01100001" in str(info.value)


# --- every tail length ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("n", range(26))
def test_round_trip_and_padding_every_length(rng, fmt, n):
    trits = random_trits(rng, n)
    data = pack(trits, fmt)
    assert data.dtype == np.uint8 and data.ndim == 1 and data.flags.c_contiguous
    assert data.size == packed_size(n, fmt) == -(-n // TRITS_PER_BYTE[fmt])
    assert data.tolist() == ref_pack(trits, fmt)
    back = unpack(data, n, fmt)
    assert back.dtype == np.int8 and back.shape == (n,)
    np.testing.assert_array_equal(back, trits)
    used = n % TRITS_PER_BYTE[fmt]
    if used:
        last = int(data[-1])
        if fmt == "2bit":
            assert last >> (2 * used) == 0
        else:
            assert [(last // 3**k) % 3 for k in range(used, 5)] == [1] * (5 - used)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 21, 22, 23])
def test_2bit_reader_rejects_nonzero_padding(rng, n):
    data = pack_2bit(random_trits(rng, n))
    for position in range(n % 4, 4):
        for code in (0b01, 0b10, 0b11):
            bad = data.copy()
            bad[-1] |= code << (2 * position)
            with pytest.raises(ValueError, match=f"final byte \\(offset {data.size - 1}.*padding other than code 0b00"):
                unpack_2bit(bad, n)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 9, 21, 24])
def test_base3_reader_rejects_padding_digits_other_than_one(rng, n):
    data = pack_base3(random_trits(rng, n))
    for position in range(n % 5, 5):
        for delta in (-1, 1):  # digit 1 -> 0 or 2
            bad = data.copy()
            bad[-1] = int(bad[-1]) + delta * 3**position
            with pytest.raises(ValueError, match=f"final byte \\(offset {data.size - 1}.*padding other than digit 1"):
                unpack_base3(bad, n)


# --- known vectors -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, trits, expected", [
    ("2bit", [1, 0, -1, 1], [0x71]),               # 01 | 00<<2 | 11<<4 | 01<<6
    ("2bit", [1, 0, -1, 1, 1], [0x71, 0x01]),
    ("2bit", [-1], [0x03]),
    ("2bit", [0, 0, 0, -1, 1], [0xC0, 0x01]),
    ("2bit", [-1] * 4, [0xFF]),
    ("2bit", [1] * 4, [0x55]),
    ("base3", [1, 0, -1, 1, 1], [221]),            # 2 + 1*3 + 0*9 + 2*27 + 2*81
    ("base3", [0] * 5, [121]),
    ("base3", [-1] * 5, [0]),
    ("base3", [1] * 5, [242]),
    ("base3", [-1, 0, 0, 0, 0], [120]),
    ("base3", [0, 0, 0, 0, 1], [202]),
    ("base3", [1], [122]),                         # 2 + 3 + 9 + 27 + 81
    ("base3", [1, 0, -1, 1, 1, -1, 1], [221, 123]),  # 123 = 0 + 2*3 + 1*9 + 1*27 + 1*81
])
def test_known_vectors(fmt, trits, expected):
    assert pack(np.array(trits, np.int8), fmt).tolist() == expected
    assert unpack(np.array(expected, np.uint8), len(trits), fmt).tolist() == trits


# --- adversarial inputs --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, value, body", [
    ("2bit", -1, 0xFF), ("2bit", 0, 0x00), ("2bit", 1, 0x55),
    ("base3", -1, 0), ("base3", 0, 121), ("base3", 1, 242),
])
@pytest.mark.parametrize("n", [100_000, 100_003])
def test_constant_inputs(fmt, value, body, n):
    trits = np.full(n, value, np.int8)
    data = pack(trits, fmt)
    whole = n // TRITS_PER_BYTE[fmt]
    assert np.all(data[:whole] == body)
    assert data[whole:].tolist() == ref_pack(trits[whole * TRITS_PER_BYTE[fmt]:], fmt)
    np.testing.assert_array_equal(unpack(data, n, fmt), trits)


@pytest.mark.parametrize("fmt", FORMATS)
def test_long_random_against_independent_formula(rng, fmt):
    n = 10**6 + 3
    trits = random_trits(rng, n)
    padded = np.zeros(packed_size(n, fmt) * TRITS_PER_BYTE[fmt], np.int64)
    padded[:n] = trits
    groups = padded.reshape(-1, TRITS_PER_BYTE[fmt])
    if fmt == "2bit":
        expected = (np.where(groups < 0, 3, groups) << (2 * np.arange(4))).sum(axis=1)
    else:
        expected = ((groups + 1) * 3 ** np.arange(5)).sum(axis=1)
    data = pack(trits, fmt)
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_array_equal(unpack(data, n, fmt), trits)


@pytest.mark.parametrize("fmt", FORMATS)
def test_strided_and_misaligned_inputs(rng, fmt):
    base = random_trits(rng, 3 * 4001)
    matrix = np.asfortranarray(random_trits(rng, 40 * 37).reshape(40, 37))
    strided = [base[::3], base[::-1], matrix[5]]
    misaligned = [base[1:], base[3:-2]]
    assert not any(view.flags.c_contiguous for view in strided)
    assert all(view.flags.c_contiguous and view.ctypes.data % 4 for view in misaligned)
    for view in strided + misaligned:
        data = pack(view, fmt)
        assert data.tolist() == ref_pack(view, fmt)
        np.testing.assert_array_equal(unpack(data, view.size, fmt), view)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.intp])
def test_other_signed_dtypes(rng, fmt, dtype):
    trits = random_trits(rng, 1003)
    np.testing.assert_array_equal(pack(trits.astype(dtype), fmt), pack(trits, fmt))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint64])
def test_unsigned_dtypes(rng, fmt, dtype):
    trits = rng.integers(0, 2, 1003).astype(dtype)
    np.testing.assert_array_equal(pack(trits, fmt), pack(trits.astype(np.int8), fmt))


@pytest.mark.parametrize("fmt", FORMATS)
def test_python_list_and_input_not_modified(fmt):
    trits = [1, 0, -1, 1, 1, -1]
    assert pack(trits, fmt).tolist() == ref_pack(trits, fmt)
    array = np.array(trits, np.int8)
    pack(array, fmt)
    assert array.tolist() == trits


# --- errors --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("values, index, shown", [
    ([0, 1, 2], 2, "2"), ([0, 0, 0, 0, 0, -2, 5], 5, "-2"), ([127], 0, "127"), ([-128, 1], 0, "-128"),
])
def test_bad_values_name_the_index(fmt, values, index, shown):
    with pytest.raises(ValueError, match=f"index {index} holds {shown}$"):
        pack(np.array(values, np.int8), fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("values, dtype, index", [
    ([1, 0, 257], np.int16, 2),        # 257 would wrap to 1 in int8
    ([0, 255], np.uint8, 1),           # 255 would wrap to -1 in int8
    ([0, 0, 2**32 - 1], np.uint32, 2),
    ([-(2**40)], np.int64, 0),
])
def test_bad_values_in_wide_dtypes_are_not_wrapped(fmt, values, dtype, index):
    with pytest.raises(ValueError, match=f"index {index} holds"):
        pack(np.array(values, dtype), fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("trits", [np.array([0.0, 1.0]), np.array([True, False]), np.array(["1", "0"]), [0.5]])
def test_non_integer_trits(fmt, trits):
    with pytest.raises(TypeError, match="integer dtype"):
        pack(trits, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_trits_must_be_one_dimensional(fmt):
    with pytest.raises(ValueError, match=r"1-D.*shape \(2, 5\)"):
        pack(np.zeros((2, 5), np.int8), fmt)
    with pytest.raises(ValueError, match=r"1-D.*shape \(\)"):
        pack(np.int8(1), fmt)


@pytest.mark.parametrize("fmt, count, expected", [("2bit", 9, 3), ("base3", 11, 3), ("base3", 1, 1)])
def test_data_length_must_match_count(fmt, count, expected):
    with pytest.raises(ValueError, match=f"take {expected} bytes; data has {expected - 1} \\(too short\\)"):
        unpack(np.zeros(expected - 1, np.uint8), count, fmt)
    with pytest.raises(ValueError, match=f"take {expected} bytes; data has {expected + 1} \\(too long\\)"):
        unpack(np.zeros(expected + 1, np.uint8), count, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_data_type_checks(fmt):
    with pytest.raises(TypeError, match="dtype uint8, got int8"):
        unpack(np.zeros(2, np.int8), 5, fmt)
    with pytest.raises(TypeError, match="dtype uint8, got uint16"):
        unpack(np.zeros(2, np.uint16), 5, fmt)
    with pytest.raises(TypeError, match="got list"):
        unpack([0, 0], 5, fmt)
    with pytest.raises(ValueError, match=r"1-D.*shape \(1, 2\)"):
        unpack(np.zeros((1, 2), np.uint8), 5, fmt)
    with pytest.raises(ValueError, match="non-negative"):
        unpack(np.zeros(0, np.uint8), -1, fmt)
    with pytest.raises(TypeError):
        unpack(np.zeros(2, np.uint8), 5.0, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_bytes_like_data_and_empty(rng, fmt):
    trits = random_trits(rng, 37)
    data = pack(trits, fmt)
    for raw in (data.tobytes(), bytearray(data.tobytes()), memoryview(data.tobytes())):
        np.testing.assert_array_equal(unpack(raw, 37, fmt), trits)
    assert pack(np.zeros(0, np.int8), fmt).size == 0
    assert unpack(b"", 0, fmt).shape == (0,)


@pytest.mark.parametrize("fmt", FORMATS)
def test_strided_data(rng, fmt):
    trits = random_trits(rng, 500)
    data = pack(trits, fmt)
    spread = np.zeros(2 * data.size, np.uint8)
    spread[::2] = data
    np.testing.assert_array_equal(unpack(spread[::2], 500, fmt), trits)


def test_dispatch_matches_named_functions(rng):
    trits = random_trits(rng, 101)
    np.testing.assert_array_equal(pack(trits, "2bit"), pack_2bit(trits))
    np.testing.assert_array_equal(pack(trits, "base3"), pack_base3(trits))
    np.testing.assert_array_equal(unpack(pack_2bit(trits), 101, "2bit"), unpack_2bit(pack_2bit(trits), 101))
    np.testing.assert_array_equal(unpack(pack_base3(trits), 101, "base3"), unpack_base3(pack_base3(trits), 101))
    assert pack_2bit(trits).size == 26 and pack_base3(trits).size == 21


@pytest.mark.parametrize("fmt", ["2-bit", "BASE3", "", None])
def test_unknown_format(fmt):
    with pytest.raises(ValueError, match="unknown packing format"):
        pack(np.zeros(4, np.int8), fmt)
    with pytest.raises(ValueError, match="unknown packing format"):
        unpack(np.zeros(1, np.uint8), 4, fmt)
