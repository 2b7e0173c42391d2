"""Fuzzing the two parsers that read files a user hands cnnzoo: the IDX reader and the image loader.

Hypothesis feeds them random bytes and mutated valid files (bit flips, truncations, insertions, splices).
The only outcomes allowed are a valid result or one of cnnzoo's typed errors
(:class:`~cnnzoo.errors.CnnzooError`) with a one-line message; any other exception is a bug. Each target
is listed in :data:`FUZZ_TARGETS`, which ``docs/reliability.md`` is generated from.

Found and fixed by this file: an IDX header with more dimensions than numpy supports (65 or more with
numpy 2) raised a bare ``ValueError`` from ``reshape``; PIL's warnings about corrupt EXIF data in an image
that still loads reached stderr (a second line next to cnnzoo's output); NaN or infinite pixels in a float
TIFF made numpy warn (and gave arbitrary values). The image loader must not warn.
"""

from __future__ import annotations

import gzip
import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnzoo.data.idx import IDX_DTYPES, parse_idx, read_idx, write_idx
from cnnzoo.errors import CnnzooError, DataCorruptError, IdxFormatError, ImageError
from cnnzoo.predict import load_image

# (id, what is fuzzed, the test that does it): rendered into docs/reliability.md by test_reliability_doc.py
FUZZ_TARGETS = [
    ("fuzz-idx-bytes", "`parse_idx` on random bytes (up to 600, so headers with 0-255 dimensions occur)",
     "test_parse_idx_on_random_bytes"),
    ("fuzz-idx-mutated", "`parse_idx` on valid IDX files of every dtype with bit flips, cuts and insertions",
     "test_parse_idx_on_mutated_valid_files"),
    ("fuzz-idx-files", "`read_idx` on files: raw or gzip-wrapped mutated IDX, and mutated gzip streams",
     "test_read_idx_on_mutated_raw_and_gzip_files"),
    ("fuzz-image-bytes", "`load_image` (what `cnnzoo predict` reads) on random bytes",
     "test_load_image_on_random_bytes"),
    ("fuzz-image-mutated", "`load_image` on PNG, JPEG, GIF, BMP, TIFF (8-bit and float), WebP, PPM, ICO files of "
     "several modes with bit flips, cuts, insertions and splices; no warning may escape",
     "test_load_image_on_mutated_valid_images"),
]  # fmt: skip

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_error(exc: CnnzooError) -> None:
    message = str(exc)
    assert message and "\n" not in message, repr(message)


# ------------------------------------------------------------------------------------------------
# mutations
# ------------------------------------------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` after 1-4 random edits: flip bits, overwrite, insert, delete, truncate or splice."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[at:]
        elif op == "splice":
            chunk = draw(st.binary(min_size=1, max_size=32))
            data[at : at + len(chunk)] = chunk
    return bytes(data)


# ------------------------------------------------------------------------------------------------
# IDX
# ------------------------------------------------------------------------------------------------
def _valid_idx() -> list[bytes]:
    rng = np.random.default_rng(0)
    seeds = [write_idx(np.zeros((), np.uint8)), write_idx(np.zeros(0, np.int16))]
    for dt in IDX_DTYPES.values():
        native = dt.newbyteorder("=")
        seeds.append(write_idx((rng.random((3, 4, 2)) * 100).astype(native)))
    seeds.append(write_idx(rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)))  # an image file, small
    return seeds


IDX_SEEDS = _valid_idx()


def _parse_or_typed_error(data: bytes) -> None:
    try:
        arr = parse_idx(data, name="fuzz.idx")
    except IdxFormatError as exc:
        _check_error(exc)
        return
    assert isinstance(arr, np.ndarray) and arr.dtype.isnative
    assert write_idx(arr) == data  # what is accepted is exactly a valid file


@FUZZ
@given(st.binary(max_size=600))
def test_parse_idx_on_random_bytes(data):
    _parse_or_typed_error(data)


@FUZZ
@given(st.sampled_from(IDX_SEEDS).flatmap(mutated))
def test_parse_idx_on_mutated_valid_files(data):
    _parse_or_typed_error(data)


def test_an_idx_header_with_more_dimensions_than_numpy_supports_is_a_typed_error():
    """The bug fuzzing found: 65 dimensions (numpy 2 allows 64) with an empty payload."""
    data = bytes([0, 0, 0x08, 65]) + bytes(4) + (1).to_bytes(4, "big") * 64
    with pytest.raises(IdxFormatError, match="65 dimensions, more than numpy arrays can have"):
        parse_idx(data, name="deep.idx")


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="cnnzoo-fuzz-") as d:
        yield Path(d)


@FUZZ
@given(st.sampled_from(IDX_SEEDS).flatmap(mutated), st.sampled_from(["raw", "gzip", "gzip-then-mutate"]), st.data())
def test_read_idx_on_mutated_raw_and_gzip_files(scratch, content, wrapping, data):
    if wrapping == "raw":
        blob = content
    elif wrapping == "gzip":
        blob = gzip.compress(content, mtime=0)
    else:
        blob = data.draw(mutated(gzip.compress(content, mtime=0)))
    path = scratch / "file-idx-ubyte"
    path.write_bytes(blob)
    try:
        arr, md5 = read_idx(path)
    except DataCorruptError as exc:  # IdxFormatError or damaged gzip
        _check_error(exc)
        return
    assert isinstance(arr, np.ndarray) and len(md5) == 32


# ------------------------------------------------------------------------------------------------
# images
# ------------------------------------------------------------------------------------------------
def _valid_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    gray = Image.fromarray(rng.integers(0, 256, (12, 17), dtype=np.uint8))
    rgb = Image.fromarray(rng.integers(0, 256, (9, 14, 3), dtype=np.uint8))
    variants = [
        (gray, "PNG", {}),
        (rgb.convert("RGBA"), "PNG", {}),
        (rgb.convert("P"), "PNG", {}),
        (Image.fromarray(np.asarray(gray).astype(np.uint16) * 257), "PNG", {}),
        (gray.convert("1"), "PNG", {}),
        (rgb, "JPEG", {"quality": 80}),
        (gray, "JPEG", {"progressive": True}),
        (rgb.convert("P"), "GIF", {}),
        (rgb, "BMP", {}),
        (gray, "TIFF", {}),
        (rgb, "TIFF", {"compression": "tiff_deflate"}),
        (Image.fromarray(rng.normal(100, 80, (7, 11)).astype(np.float32)), "TIFF", {}),  # mode F
        (rgb, "WEBP", {"lossless": True}),
        (gray, "PPM", {}),
        (rgb.resize((16, 16)), "ICO", {"sizes": [(16, 16)]}),
    ]
    seeds = []
    for image, fmt, options in variants:
        buf = io.BytesIO()
        image.save(buf, format=fmt, **options)
        seeds.append(buf.getvalue())
    return seeds


IMAGE_SEEDS = _valid_images()


def _load_or_typed_error(path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:  # a warning would be a second line on stderr
        warnings.simplefilter("always")
        try:
            img = load_image(path, size=28, in_channels=1)
        except ImageError as exc:
            _check_error(exc)
            img = None
    assert [str(w.message) for w in caught] == []
    assert img is None or (img.pixels.shape == (1, 28, 28) and img.pixels.dtype == torch.uint8)


@FUZZ
@given(st.binary(max_size=400))
def test_load_image_on_random_bytes(scratch, data):
    path = scratch / "random.img"
    path.write_bytes(data)
    _load_or_typed_error(path)


@settings(FUZZ, max_examples=250)
@given(st.sampled_from(IMAGE_SEEDS).flatmap(mutated))
def test_load_image_on_mutated_valid_images(scratch, data):
    path = scratch / "mutated.img"
    path.write_bytes(data)
    _load_or_typed_error(path)


def test_a_float_image_with_nan_and_infinity_loads_without_warnings(scratch):
    """Found by the fuzzer: NaN or infinite pixels of a float TIFF made numpy warn in the cast to uint8."""
    a = np.full((10, 12), 40.0, np.float32)
    a[0, 0], a[1, 1], a[2, 2] = np.nan, np.inf, -np.inf
    Image.fromarray(a).save(scratch / "float.tiff")
    _load_or_typed_error(scratch / "float.tiff")
    assert load_image(scratch / "float.tiff", size=28).pixels.max() < 255


@pytest.mark.parametrize("index", range(len(IMAGE_SEEDS)))
def test_every_unmutated_seed_image_loads(scratch, index):
    """The fuzz seeds themselves are valid images (else the mutations would test nothing)."""
    path = scratch / f"seed-{index}.img"
    path.write_bytes(IMAGE_SEEDS[index])
    assert load_image(path, size=28).pixels.shape == (1, 28, 28)
