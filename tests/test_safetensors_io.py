import json

import numpy as np
import pytest
import safetensors.numpy

from mmfree.host.safetensors_io import (LazyTensor, SafetensorsFile, bf16_to_float32, float32_to_bf16, load_file,
                                        save_file)


def write_raw(path, header, data=b"", header_len=None):
    """A safetensors file from a header (dict or raw bytes) and data bytes, possibly lying about the length."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write((len(text) if header_len is None else header_len).to_bytes(8, "little"))
        f.write(text + data)
    return path


# -- bfloat16 conversions ------------------------------------------------------------------------------------------

KNOWN_BF16 = [(0x0000, 0.0), (0x3F80, 1.0), (0xC000, -2.0), (0x4049, 3.140625), (0x3C00, 2.0 ** -7),
              (0x7F7F, 3.3895313892515355e38), (0x0080, 2.0 ** -126), (0x0001, 2.0 ** -133),
              (0x7F80, np.inf), (0xFF80, -np.inf)]


def test_bf16_widening_known_bit_patterns():
    bits = np.array([b for b, _ in KNOWN_BF16], np.uint16)
    widened = bf16_to_float32(bits)
    assert widened.dtype == np.float32
    assert widened.tolist() == [v for _, v in KNOWN_BF16]
    assert (widened.view(np.uint32) == bits.astype(np.uint32) << 16).all()
    negative_zero, nan = bf16_to_float32(np.array([0x8000, 0x7FC1], np.uint16))
    assert negative_zero == 0 and np.signbit(negative_zero)
    assert np.isnan(nan)


def test_bf16_widening_keeps_shape():
    assert bf16_to_float32(np.zeros((2, 3, 4), np.uint16)).shape == (2, 3, 4)
    assert bf16_to_float32(np.uint16(0x3F80)).shape == ()


def test_bf16_rounding_known_cases():
    cases = [(0x3F800000, 0x3F80), (0x3F808000, 0x3F80),     # 1.0; a tie below an even bf16 rounds down
             (0x3F818000, 0x3F82),                           # a tie below an odd bf16 rounds up to even
             (0x3F808001, 0x3F81), (0x3F807FFF, 0x3F80),     # just above / below the tie
             (0x7F7FC000, 0x7F80), (0xFF7FFFFF, 0xFF80),     # beyond the largest bf16: infinity
             (0x80000000, 0x8000), (0x7F800000, 0x7F80), (0x00008000, 0x0000)]
    x = np.array([b for b, _ in cases], np.uint32).view(np.float32)
    assert float32_to_bf16(x).tolist() == [r for _, r in cases]
    nan = float32_to_bf16(np.array([np.nan, -np.nan, np.float32(np.nan)], np.float32))
    assert np.isnan(bf16_to_float32(nan)).all()


def test_bf16_rounding_is_nearest_even():
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 0x7F7F0000, 100_000, dtype=np.uint32) | rng.integers(0, 2, 100_000, np.uint32) << 31
    x = bits.view(np.float32)
    got = bf16_to_float32(float32_to_bf16(x)).astype(np.float64)
    down = (bits & 0xFFFF0000).view(np.float32).astype(np.float64)
    up = ((bits & 0xFFFF0000) + 0x10000).view(np.float32).astype(np.float64)
    xd = x.astype(np.float64)
    nearer_down = np.abs(xd - down) < np.abs(up - xd)
    tie = np.abs(xd - down) == np.abs(up - xd)
    even_down = ((bits >> 16) & 1) == 0
    expected = np.where(nearer_down | (tie & even_down), down, up)
    assert np.array_equal(got, expected)


# -- round trips and interoperability -------------------------------------------------------------------------------

def test_bf16_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    exact = bf16_to_float32(rng.integers(0, 0x7F80, (7, 5), dtype=np.uint16))
    noisy = rng.standard_normal((3, 4, 5)).astype(np.float32)
    path = save_file_and_path(tmp_path / "a.safetensors", {"exact": exact, "noisy": noisy}, float_dtype="BF16")
    with SafetensorsFile(path) as f:
        assert f.info("exact").dtype == "BF16"
        assert np.array_equal(f.get("exact"), exact)
        assert np.array_equal(f.get("noisy"), bf16_to_float32(float32_to_bf16(noisy)))
        assert np.array_equal(f.get("exact", raw=True), float32_to_bf16(exact))
        assert f.get("exact", raw=True).dtype == np.uint16


def save_file_and_path(path, tensors, **kwargs):
    save_file(path, tensors, **kwargs)
    return path


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.uint8, np.int32, np.int64,
                                   np.uint16, np.bool_])
def test_interoperates_with_safetensors_package(tmp_path, dtype):
    rng = np.random.default_rng(0)
    value = (rng.standard_normal((4, 6)) * 50).astype(dtype)
    tensors = {"x": value, "empty": np.zeros((0, 3), dtype), "scalar": np.array(7, dtype)}
    ours = save_file_and_path(tmp_path / "ours.safetensors", tensors, metadata={"k": "v"})
    theirs = tmp_path / "theirs.safetensors"
    safetensors.numpy.save_file(tensors, str(theirs), metadata={"k": "v"})
    for name, got in safetensors.numpy.load_file(str(ours)).items():
        assert got.dtype == tensors[name].dtype and np.array_equal(got, tensors[name])
    with SafetensorsFile(theirs) as f:
        assert f.metadata == {"k": "v"}
        for name in tensors:
            assert f.get(name).dtype == tensors[name].dtype and np.array_equal(f.get(name), tensors[name])


def test_reads_are_read_only_views_of_the_mapping(tmp_path):
    path = save_file_and_path(tmp_path / "a.safetensors", {"x": np.arange(10, dtype=np.float32)})
    with SafetensorsFile(path) as f:
        x = f.get("x")
    assert not x.flags.writeable and not x.flags.owndata
    assert x.tolist() == list(range(10))


def test_float_dtype_conversion_and_metadata(tmp_path):
    x = np.linspace(-1, 1, 9, dtype=np.float64)
    path = save_file_and_path(tmp_path / "a.safetensors", {"x": x, "i": np.arange(3, dtype=np.int8)},
                              metadata={"format": "pt"}, float_dtype="F16")
    with SafetensorsFile(path) as f:
        assert (f.info("x").dtype, f.info("i").dtype) == ("F16", "I8")
        assert f.metadata == {"format": "pt"}
    assert np.array_equal(load_file(path)["x"], x.astype(np.float16))


def test_header_is_aligned_and_keys_in_data_order(tmp_path):
    path = save_file_and_path(tmp_path / "a.safetensors", {"b": np.zeros(3, np.uint8), "a": np.ones(2, np.float32)})
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    assert (8 + header_len) % 8 == 0
    assert SafetensorsFile(path).keys() == ["b", "a"]


def test_lazy_tensors_are_made_when_written(tmp_path):
    made = []

    def make():
        made.append(1)
        return np.full((2, 2), 3.0, np.float32)

    path = save_file_and_path(tmp_path / "a.safetensors", {"x": LazyTensor((2, 2), np.dtype(np.float32), make)})
    assert made == [1] and load_file(path)["x"].tolist() == [[3, 3], [3, 3]]
    bad = LazyTensor((2, 3), np.dtype(np.float32), make)
    with pytest.raises(ValueError, match="'x'.*declared"):
        save_file(tmp_path / "b.safetensors", {"x": bad})
    assert not list(tmp_path.glob("b.safetensors*"))


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="float_dtype"):
        save_file(tmp_path / "a.safetensors", {}, float_dtype="F8")
    with pytest.raises(ValueError, match="metadata"):
        save_file(tmp_path / "a.safetensors", {}, metadata={"k": 1})
    with pytest.raises(ValueError, match="'c'.*complex"):
        save_file(tmp_path / "a.safetensors", {"c": np.zeros(2, np.complex64)})


# -- errors ---------------------------------------------------------------------------------------------------------

GOOD = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "U8", "shape": [4], "data_offsets": [8, 12]}}


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


@pytest.mark.parametrize("header, data, header_len, message", [
    (GOOD, bytes(12), None, None),
    (GOOD, bytes(11), None, "truncated.*'b' ends at data byte 12"),
    (GOOD, bytes(12), 10_000, "truncated.*header of 10000 bytes"),
    (b'{"a": {"dtype": "F32", ', b"", None, "malformed.*JSON"),
    (b"[1, 2]", b"", None, "malformed.*not an object"),
    (b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {}}', bytes(1), None, "duplicate keys"),
    ({"a": entry("F32", [2], 0, 8), "b": entry("U8", [4], 4, 8)}, bytes(12), None, "'b'.*overlaps"),
    ({"a": entry("U8", [2], 2, 0)}, bytes(2), None, "'a'.*out of order"),
    ({"a": entry("U8", [2], 2, 4)}, bytes(4), None, "gap.*'a'"),
    ({"a": entry("U8", [2], 0, 2)}, bytes(5), None, "3 bytes after the last tensor"),
    ({"a": entry("F8_E4M3", [2], 0, 2)}, bytes(2), None, "'a'.*unsupported dtype 'F8_E4M3'"),
    ({"a": entry("F32", [3], 0, 8)}, bytes(8), None, r"'a'.*8 bytes.*shape \[3\] × F32 needs 12"),
    ({"a": {"dtype": "F32", "shape": [2]}}, bytes(8), None, "'a'.*needs dtype, shape and data_offsets"),
    ({"a": entry("F32", [-2], 0, 8)}, bytes(8), None, "'a'.*shape"),
    ({"__metadata__": {"k": 1}}, b"", None, "__metadata__ must map strings to strings"),
])
def test_reader_errors_name_the_problem_and_file(tmp_path, header, data, header_len, message):
    path = write_raw(tmp_path / "bad.safetensors", header, data, header_len)
    if message is None:
        assert SafetensorsFile(path).keys() == ["a", "b"]
        return
    with pytest.raises(ValueError, match=message) as info:
        SafetensorsFile(path)
    assert "bad.safetensors" in str(info.value)


def test_too_short_for_a_header_length(tmp_path):
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="tiny.safetensors.*truncated"):
        SafetensorsFile(path)


def test_file_truncated_after_writing(tmp_path):
    path = save_file_and_path(tmp_path / "cut.safetensors", {"x": np.zeros(100, np.float32)})
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="cut.safetensors.*truncated.*'x'"):
        load_file(path)


def test_unknown_tensor_name(tmp_path):
    path = save_file_and_path(tmp_path / "a.safetensors", {"x": np.zeros(1, np.float32)})
    with pytest.raises(KeyError, match="'y'"):
        SafetensorsFile(path).get("y")
