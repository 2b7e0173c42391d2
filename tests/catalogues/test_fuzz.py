"""Fuzzing the two parsers that read files a user hands cnnzoo: the IDX reader and the image loader.

Hypothesis feeds them random bytes and mutated valid files (bit flips, truncations, insertions, splices).
The only outcomes allowed are a valid result or one of cnnzoo's typed errors
(:class:`~cnnzoo.base.errors.CnnzooError`) with a one-line message; any other exception is a bug. Each target
is listed in :data:`FUZZ_TARGETS`, which ``docs/reliability.md`` is generated from.

Found and fixed by this file: an IDX header with more dimensions than numpy supports (65 or more with
numpy 2) raised a bare ``ValueError`` from ``reshape``; PIL's warnings about corrupt EXIF data in an image
that still loads reached stderr (a second line next to cnnzoo's output); NaN or infinite pixels in a float
TIFF made numpy warn (and gave arbitrary values). The image loader must not warn.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnzoo.base.errors import CnnzooError, DataCorruptError, IdxFormatError, ImageError
from cnnzoo.data.idx import IDX_DTYPES, parse_idx, read_idx, write_idx
from cnnzoo.data.pictures import load_image

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
    ("fuzz-json-readers", "every reader of a run's JSON files and of a leaderboard (the run layer, the studio's run "
     "pages, `plot`, `leaderboard --redraw`, output claims) on random text and on random JSON of any type and "
     "nesting", "test_json_readers_on_random_text_and_json"),
    ("fuzz-studio-routes", "the studio's routes on random run ids, file and model names, query values, and "
     "`POST /api/predict` forms with random fields and bytes: no 5xx but the 503 of a full queue",
     "test_studio_routes_on_random_requests"),
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


# ------------------------------------------------------------------------------------------------
# the JSON readers and the studio's routes (issue 21)
# ------------------------------------------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=40,
)
KEYS = ["config", "model", "data", "environment", "epochs", "rows", "epoch", "test_acc", "val_acc", "format",
        "written_by", "classes", "name", "started", "state", "runs", "macs", "dataset"]  # fmt: skip
LIKELY = st.recursive(  # JSON shaped like cnnzoo's own, to reach past the first type check
    st.none() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.sampled_from(["", "x", "cnnzoo-leaderboard/1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    max_leaves=30,
)
DOCUMENTS = st.one_of(
    st.text(max_size=300),
    JSON.map(lambda v: json.dumps(v, allow_nan=True)),
    LIKELY.map(lambda v: json.dumps(v, allow_nan=True)),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
)


@settings(FUZZ, max_examples=150)
@given(config=DOCUMENTS, metrics=st.lists(DOCUMENTS, max_size=3), live=DOCUMENTS, board=DOCUMENTS)
def test_json_readers_on_random_text_and_json(scratch, config, metrics, live, board):
    from cnnzoo.base.errors import ConfigError, MetricsFileError
    from cnnzoo.base.outputs import is_cnnzoo_output
    from cnnzoo.leaderboard.board import load_rows
    from cnnzoo.run.live import read_live
    from cnnzoo.studio.runs import NotFoundError, RunIndex
    from cnnzoo.train.metrics import read_metrics

    run = scratch / "runs" / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(config)
    (run / "metrics.jsonl").write_text("\n".join(metrics) + "\n")
    (run / "live.json").write_text(live)
    (run / "per_class.csv").write_text(config)
    (scratch / "board.json").write_text(board)
    live_record = read_live(run)
    assert live_record is None or isinstance(live_record, dict)
    try:
        read_metrics(run)
    except MetricsFileError as exc:
        _check_error(exc)
    index = RunIndex(scratch / "runs")
    for view in (index.summary, index.detail, index.metrics):
        try:
            json.dumps(view("run"), allow_nan=False)  # what the route sends must be JSON
        except (MetricsFileError, NotFoundError) as exc:
            _check_error(exc)
    try:
        load_rows(scratch / "board.json")
    except ConfigError as exc:
        _check_error(exc)
    assert is_cnnzoo_output(scratch / "board.json", "json") in (True, False)


@pytest.fixture(scope="module")
def studio_client(tmp_path_factory, trained_run):
    from fastapi.testclient import TestClient

    from cnnzoo.studio import create_app

    root = tmp_path_factory.mktemp("fuzz-studio") / "runs"
    root.mkdir()
    shutil.copytree(trained_run, root / "lenet_bn-done")
    with TestClient(create_app(root), base_url="http://127.0.0.1") as client:
        yield client


SOME_NAMES = ["lenet_bn-done", "..", "%2e%2e", "lenet", "vgg11", "config.json", "per_class.csv", "", "a/b", "weight:x"]
NAMES = st.one_of(st.text(max_size=40), st.sampled_from(SOME_NAMES))


ROUTES = ["/api/runs/{a}", "/api/runs/{a}/metrics", "/api/runs/{a}/files/{b}", "/api/models/{a}",
          "/api/inception-cost?side={a}", "/{a}", "/api/weights?{a}={b}"]  # fmt: skip


@settings(FUZZ, max_examples=100)
@given(
    route=st.sampled_from(ROUTES),
    a=NAMES,
    b=NAMES,
    form=st.dictionaries(st.sampled_from(["run", "weight", "top_k", "target", "other"]), NAMES, max_size=4),
    upload=st.binary(max_size=300),
)
def test_studio_routes_on_random_requests(studio_client, route, a, b, form, upload):
    from urllib.parse import quote

    path = route.format(a=quote(a, safe=""), b=quote(b, safe=""))
    answer = studio_client.get(path)
    assert answer.status_code < 500 or answer.status_code == 503, (path, answer.status_code, answer.text[:200])
    answer = studio_client.post("/api/predict", data=form, files={"file": ("x.png", upload)})
    assert answer.status_code < 500 or answer.status_code == 503, (form, answer.status_code, answer.text[:200])
    if answer.status_code >= 400:
        assert list(answer.json()) == ["error"] and "\n" not in answer.json()["error"], answer.text[:200]
