"""Fashion-MNIST sources, checksums, the decoded cache, downloads and the `cnnzoo data` command."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from cnnzoo.base.errors import DataCorruptError, DataNotFoundError
from cnnzoo.cli import main
from cnnzoo.data import fashion_mnist as fm
from cnnzoo.data import load_fashion_mnist
from cnnzoo.data.cache import cache_dir
from helpers_http import serve

from conftest import HAVE_REAL_DATA, REAL_DIR, make_arrays, write_dataset


# -- sources ---------------------------------------------------------------------------------
def test_loads_test_made_files_as_uint8_and_int64(fake_fashion):
    ds = load_fashion_mnist(fake_fashion.directory, download=False)
    assert ds.train_images.dtype == torch.uint8 and ds.train_images.shape == (60, 28, 28)
    assert ds.train_labels.dtype == torch.int64 and ds.test_labels.shape == (20,)
    np.testing.assert_array_equal(ds.test_images.numpy(), fake_fashion.arrays["test_images"])
    assert ds.classes == fm.FASHION_MNIST_CLASSES
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    assert ds.verified and ds.source == str(fake_fashion.directory)


def test_raw_files_work_too(fake_fashion, tmp_path):
    write_dataset(tmp_path / "raw", fake_fashion.arrays, gz=False)
    ds = load_fashion_mnist(tmp_path / "raw", download=False)
    np.testing.assert_array_equal(ds.train_images.numpy(), fake_fashion.arrays["train_images"])


def test_torchvision_layout_is_found(fake_fashion, tmp_path):
    write_dataset(tmp_path / "tv" / "FashionMNIST" / "raw", fake_fashion.arrays)
    assert load_fashion_mnist(tmp_path / "tv", download=False).train_images.shape[0] == 60


def test_search_order_env_then_cache(fake_fashion, monkeypatch):
    cache = cache_dir("fashion-mnist")
    other = make_arrays(seed=1)
    write_dataset(cache, other)  # same shapes, different content: checksum would fail if chosen
    monkeypatch.setenv("CNNZOO_DATA", str(fake_fashion.directory))
    assert load_fashion_mnist().source == str(fake_fashion.directory)
    monkeypatch.delenv("CNNZOO_DATA")
    with pytest.raises(DataCorruptError, match="checksum mismatch"):
        load_fashion_mnist()  # now the cache is the first hit, and its content is not the pinned one


def test_system_dir_is_the_last_local_source(fake_fashion, monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIR", fake_fashion.directory)
    assert load_fashion_mnist().source == str(fake_fashion.directory)


def test_explicit_root_is_the_only_place_tried(fake_fashion, monkeypatch, tmp_path):
    monkeypatch.setenv("CNNZOO_DATA", str(fake_fashion.directory))
    with pytest.raises(DataNotFoundError) as info:
        load_fashion_mnist(tmp_path / "empty", download=False)
    assert "root argument" in str(info.value) and "$CNNZOO_DATA" not in str(info.value)


def test_not_found_lists_every_place_and_both_fixes(isolated_data, monkeypatch, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "train-images-idx3-ubyte.gz").write_bytes(b"x")
    monkeypatch.setenv("CNNZOO_DATA", str(partial))
    with pytest.raises(DataNotFoundError) as info:
        load_fashion_mnist()  # download=True, but the mirror is a closed local port
    msg = str(info.value)
    assert "\n" not in msg
    for fragment in (
        str(partial) + " (only 1 of 4 files)",
        str(cache_dir("fashion-mnist")),
        str(fm.SYSTEM_DIR),
        "download failed",
        "apt-get install dataset-fashion-mnist",
        "CNNZOO_DATA",
    ):
        assert fragment in msg
    assert (partial / "train-images-idx3-ubyte.gz").read_bytes() == b"x"  # untouched


# -- verification and the decoded cache ------------------------------------------------------
@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda b: b[: len(b) // 2], "truncated payload"),
        (lambda b: b"\x01" + b[1:], "magic number"),
        (lambda b: b + b"junk", "trailing garbage"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 0xFF]), "checksum mismatch"),
    ],
)
def test_damaged_file_is_named_and_left_alone(fake_fashion, damage, fragment):
    path = fake_fashion.files["test_images"]
    bad = gzip.compress(damage(gzip.decompress(path.read_bytes())))
    path.write_bytes(bad)
    with pytest.raises(DataCorruptError) as info:
        load_fashion_mnist(fake_fashion.directory, download=False)
    assert str(path) in str(info.value) and fragment in str(info.value)
    assert path.read_bytes() == bad


def test_image_label_count_mismatch_is_an_error(fake_fashion, monkeypatch):
    arrays = dict(fake_fashion.arrays, test_labels=fake_fashion.arrays["test_labels"][:-1])
    write_dataset(fake_fashion.directory, arrays)
    # Patch the pinned checksum so only the count check can catch it.
    pinned = tuple(
        fm._File(f.key, f.stem, fm.hashlib.md5(fm.read_maybe_gzip(fake_fashion.files[f.key])).hexdigest(), f.shape)
        for f in fm.FILES
    )
    monkeypatch.setattr(fm, "FILES", pinned)
    with pytest.raises(DataCorruptError, match=r"t10k-labels.*shape"):
        load_fashion_mnist(fake_fashion.directory, download=False)


def test_second_load_comes_from_the_decoded_cache(fake_fashion, monkeypatch):
    first = load_fashion_mnist(fake_fashion.directory, download=False)
    assert list(cache_dir("fashion-mnist").glob("decoded-*.pt"))

    def boom(path):
        raise AssertionError("decoded again")

    monkeypatch.setattr(fm, "read_idx", boom)
    second = load_fashion_mnist(fake_fashion.directory, download=False)
    assert torch.equal(first.train_images, second.train_images)


def test_changed_file_is_verified_again(fake_fashion):
    load_fashion_mnist(fake_fashion.directory, download=False)
    path = fake_fashion.files["train_labels"]
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] ^= 1
    path.write_bytes(gzip.compress(bytes(raw)))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    with pytest.raises(DataCorruptError, match="checksum mismatch"):
        load_fashion_mnist(fake_fashion.directory, download=False)


def test_damaged_cache_file_is_rebuilt(fake_fashion):
    load_fashion_mnist(fake_fashion.directory, download=False)
    (cached,) = cache_dir("fashion-mnist").glob("decoded-*.pt")
    cached.write_bytes(b"not a torch file")
    ds = load_fashion_mnist(fake_fashion.directory, download=False)
    assert ds.train_images.shape == (60, 28, 28)
    assert cached.stat().st_size > 1000


# -- downloads against a local server --------------------------------------------------------
def test_download_into_cache_then_load(fake_fashion, monkeypatch):
    with serve(fake_fashion.directory) as url:
        monkeypatch.setenv("CNNZOO_MIRROR", url)
        ds = load_fashion_mnist()  # nothing local: downloads into the cache
    assert ds.source == str(cache_dir("fashion-mnist"))
    assert sorted(p.name for p in cache_dir("fashion-mnist").iterdir() if p.suffix == ".gz") == sorted(
        f.stem + ".gz" for f in fm.FILES
    )
    assert not list(cache_dir("fashion-mnist").glob("*.part"))


def test_download_dying_half_way_leaves_nothing_that_passes(fake_fashion, tmp_path):
    target = tmp_path / "target"
    with serve(fake_fashion.directory, die_after=100) as url, pytest.raises(DataNotFoundError) as info:
        fm.fetch_fashion_mnist(target, mirrors=[url], progress=False)
    assert "connection closed after 100 of" in str(info.value) or "IncompleteRead" in str(info.value)
    assert list(target.iterdir()) == []  # no final file, no leftover .part


def test_second_mirror_is_used_when_the_first_dies(fake_fashion, tmp_path):
    target = tmp_path / "target"
    with serve(fake_fashion.directory, die_after=10) as bad, serve(fake_fashion.directory) as good:
        fm.fetch_fashion_mnist(target, mirrors=[bad, good], progress=False)
    assert load_fashion_mnist(target, download=False).train_images.shape == (60, 28, 28)


def test_wrong_content_from_mirror_is_rejected(fake_fashion, tmp_path):
    wrong = tmp_path / "wrong"
    write_dataset(wrong, make_arrays(seed=7))
    with serve(wrong) as url, pytest.raises(DataNotFoundError, match="checksum mismatch"):
        fm.fetch_fashion_mnist(tmp_path / "target", mirrors=[url], progress=False)
    assert not list((tmp_path / "target").iterdir())


def test_fetch_never_overwrites_a_users_file(fake_fashion, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    mine = target / "train-images-idx3-ubyte.gz"
    mine.write_bytes(b"my own bytes")
    with serve(fake_fashion.directory) as url, pytest.raises(DataCorruptError, match="left untouched"):
        fm.fetch_fashion_mnist(target, mirrors=[url], progress=False)
    assert mine.read_bytes() == b"my own bytes"


def test_http_404_is_reported(fake_fashion, tmp_path):
    with serve(tmp_path / "empty-mirror") as url, pytest.raises(DataNotFoundError, match="HTTP 404"):
        (tmp_path / "empty-mirror").mkdir()
        fm.fetch_fashion_mnist(tmp_path / "t", mirrors=[url], progress=False)


# -- the CLI ---------------------------------------------------------------------------------
def test_cli_data_prints_source_checksums_and_counts(fake_fashion, capsys):
    assert main(["data", "--root", str(fake_fashion.directory)]) == 0
    out = capsys.readouterr().out
    assert str(fake_fashion.directory) in out and "verified" in out
    assert "T-shirt/top" in out and "Ankle boot" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[-2:] for r in rows] == [["6", "2"]] * 10


def test_cli_data_fetch(fake_fashion, monkeypatch, capsys):
    with serve(fake_fashion.directory) as url:
        monkeypatch.setenv("CNNZOO_MIRROR", url)
        assert main(["data", "--fetch"]) == 0
    assert f"fetched into {cache_dir('fashion-mnist')}" in capsys.readouterr().out


def test_cli_data_missing_is_one_line_exit_2(isolated_data, capsys):
    assert main(["data", "--root", str(isolated_data / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Fashion-MNIST not found") and err.count("\n") == 1


# -- the real dataset ------------------------------------------------------------------------
needs_real = pytest.mark.skipif(not HAVE_REAL_DATA, reason=f"Fashion-MNIST not installed in {REAL_DIR}")


@needs_real
def test_real_dataset_is_found_verified_and_balanced(monkeypatch):
    monkeypatch.delenv("CNNZOO_DATA", raising=False)
    ds = load_fashion_mnist(REAL_DIR, download=False)
    assert ds.verified
    assert ds.train_images.shape == (60000, 28, 28) and ds.test_images.shape == (10000, 28, 28)
    assert ds.class_counts("train") == [6000] * 10
    assert ds.class_counts("test") == [1000] * 10
    mean, std = ds.stats
    assert mean[0] == pytest.approx(0.2860, abs=1e-4) and std[0] == pytest.approx(0.3530, abs=1e-4)


@needs_real
def test_corrupted_real_copy_via_env_is_one_line_exit_2(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(REAL_DIR, copy)
    labels = copy / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[1000] = (raw[1000] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(raw)))
    env = dict(os.environ, CNNZOO_DATA=str(copy), XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "cnnzoo", "data"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {labels}: checksum mismatch")
