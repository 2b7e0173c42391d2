"""The IDX parser: valid files round-trip, every malformation is a typed one-line error."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cnnzoo.base.errors import DataCorruptError, IdxFormatError
from cnnzoo.data.idx import IDX_DTYPES, parse_idx, read_idx, write_idx


def test_header_fields_are_read():
    data = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    arr = parse_idx(data)
    assert arr.dtype == np.uint8
    assert arr.shape == (2, 3)
    assert arr.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_big_endian_payload():
    data = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + (258).to_bytes(4, "big") + (-1).to_bytes(4, "big", signed=True)
    assert parse_idx(data).tolist() == [258, -1]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "only 0 bytes"),
        (bytes([1, 0, 8, 1, 0, 0, 0, 0]), "magic number"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 0]), "unknown IDX dtype code 0x07"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 1]), "truncated header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]), "truncated payload (2 of 5 bytes"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3]), "1 bytes of trailing garbage"),
    ],
)
def test_malformed_bytes_raise_typed_one_line_errors(data, fragment):
    with pytest.raises(IdxFormatError) as info:
        parse_idx(data, name="f.idx")
    message = str(info.value)
    assert fragment in message
    assert message.startswith("f.idx: ")
    assert "\n" not in message


def test_read_idx_handles_gzip_and_raw_and_reports_md5_of_content(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    content = write_idx(arr)
    raw, gz = tmp_path / "a", tmp_path / "b.gz"
    raw.write_bytes(content)
    gz.write_bytes(gzip.compress(content, mtime=0))
    (a, md5_a), (b, md5_b) = read_idx(raw), read_idx(gz)
    np.testing.assert_array_equal(a, arr)
    np.testing.assert_array_equal(b, arr)
    assert md5_a == md5_b  # checksums are of the uncompressed content


def test_gzip_detected_by_content_not_name(tmp_path):
    content = write_idx(np.zeros(3, dtype=np.uint8))
    odd = tmp_path / "labels-without-gz-suffix"
    odd.write_bytes(gzip.compress(content))
    assert read_idx(odd)[0].tolist() == [0, 0, 0]


def test_truncated_gzip_is_corrupt_not_a_crash(tmp_path):
    blob = gzip.compress(write_idx(np.arange(5000, dtype=np.int32)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataCorruptError, match="damaged gzip data"):
        read_idx(cut)


def test_write_idx_rejects_unsupported_dtype():
    with pytest.raises(ValueError, match="cannot store"):
        write_idx(np.zeros(2, dtype=np.uint16))


_dtypes = st.sampled_from([dt.newbyteorder("=") for dt in IDX_DTYPES.values()])


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(dtype=_dtypes, shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)))
def test_round_trip_over_random_shapes_and_dtypes(arr):
    out = parse_idx(write_idx(arr))
    assert out.dtype == arr.dtype
    assert out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)  # NaNs compare equal here


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_parse_or_raise_idx_format_error(data):
    try:
        arr = parse_idx(data)
    except IdxFormatError:
        return
    assert write_idx(arr) == data  # anything accepted re-encodes to the same bytes
