"""Bounded work and integrity in the data layer (issue 13): every input fails fast, in bounded memory.

Memory cases run in a subprocess whose address space is capped (``RLIMIT_AS``) a few hundred MB above what
it uses after its imports, so a regression that allocates what a header claims crashes (MemoryError) instead
of passing. Time cases run under a timeout (a subprocess's, or :func:`time_limit`'s alarm), so a regression
that loops or blocks fails instead of hanging the suite.
"""

from __future__ import annotations

import gzip
import os
import signal
import struct
import subprocess
import time
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from PIL import Image

from cnnzoo.base.errors import CnnzooError, DataCorruptError, DataError, DataNotFoundError, IdxFormatError, ImageError
from cnnzoo.cli import main
from cnnzoo.data import datasets as ds_mod
from cnnzoo.data import fashion_mnist as fm
from cnnzoo.data import load_dataset, load_fashion_mnist
from cnnzoo.data.cache import cache_dir
from cnnzoo.data.idx import read_idx, read_maybe_gzip
from cnnzoo.data.pictures import load_image
from helpers_files import run_limited
from helpers_http import slow_server

SRC = Path(__file__).resolve().parents[2] / "src"


# ------------------------------------------------------------------------------------------------
# helpers (also used by test_bad_inputs_data.py and test_fuzz_folders.py)
# ------------------------------------------------------------------------------------------------
def idx_header(shape: tuple[int, ...], code: int = 0x08) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def sparse_file(path: Path, head: bytes, size: int) -> None:
    """``head`` then zeros up to ``size`` bytes, sparse: nothing but the head is on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(head)
        f.truncate(size)


def gzip_bomb(path: Path, head: bytes, zeros: int) -> None:
    """A gzip file of ``head`` and ``zeros`` zero bytes (about 1/1000 of that on disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip container
    chunk = bytes(1 << 22)
    with path.open("wb") as f:
        f.write(z.compress(head))
        left = zeros
        while left > 0:
            f.write(z.compress(chunk[: min(left, len(chunk))]))
            left -= len(chunk)
        f.write(z.flush())


def png_bytes(width: int, height: int, value: int = 0) -> bytes:
    """A complete grayscale PNG of ``width`` x ``height`` (small on disk when uniform), written directly."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + bytes([value]) * width
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def tiny_png(path: Path, size: tuple[int, int] = (12, 10), value: int = 80, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode in ("L", "1", "P") else (value,) * len(mode)).save(path)


@contextmanager
def time_limit(seconds: float):
    """Raise TimeoutError in the main thread after ``seconds`` (interrupts a blocking open of a FIFO too)."""

    def alarm(signum, frame):
        raise TimeoutError(f"took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _expect_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for f in fragments:
        assert f in result.stdout, out
    return result.stdout


_CATCH = """
from cnnzoo.base.errors import CnnzooError
try:
    {call}
    print("NO ERROR")
except CnnzooError as exc:
    print(type(exc).__name__, exc)
"""


# ------------------------------------------------------------------------------------------------
# IDX files: sizes checked from the header before anything is allocated
# ------------------------------------------------------------------------------------------------
def test_header_claiming_1e12_items_fails_without_reading_or_allocating(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    sparse_file(path, idx_header((1_000_000, 1000, 1000)), 16 + 10**12)  # a sparse terabyte
    code = _CATCH.format(call=f"cnnzoo.data.idx.read_idx({str(path)!r})")
    start = time.monotonic()
    out = _expect_error(run_limited(code), "IdxFormatError", "over the", "limit")
    assert time.monotonic() - start < 30, out


def test_sparse_raw_file_larger_than_its_header_fails_from_its_size(tmp_path):
    path = tmp_path / "labels"
    sparse_file(path, idx_header((20,)), 10**11)  # 100 GB on paper, one block on disk
    code = _CATCH.format(call=f"cnnzoo.data.idx.read_idx({str(path)!r})")
    _expect_error(run_limited(code), "IdxFormatError", "bytes of trailing garbage")


def test_truncated_raw_file_fails_from_its_size(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(idx_header((10, 28, 28)) + bytes(100))
    with pytest.raises(IdxFormatError, match=r"truncated payload \(100 of 7840 bytes"):
        read_idx(path)


def test_gzip_bomb_stops_at_the_size_its_header_says(tmp_path):
    path = tmp_path / "bomb.gz"
    gzip_bomb(path, idx_header((10, 28, 28)), 400 * 2**20)  # 400 MB of zeros, under 1 MB on disk
    assert path.stat().st_size < 2**20
    code = _CATCH.format(call=f"cnnzoo.data.idx.read_idx({str(path)!r})")
    _expect_error(run_limited(code, headroom_mb=200), "IdxFormatError", "trailing garbage", "gzip bomb")


def test_gzip_header_claiming_1e12_items_fails_at_the_header(tmp_path):
    path = tmp_path / "bomb.gz"
    gzip_bomb(path, idx_header((1_000_000, 1000, 1000)), 2**20)
    with pytest.raises(IdxFormatError, match=r"over the .*-byte limit"):
        read_idx(path)


def test_read_maybe_gzip_is_bounded_too(tmp_path):
    path = tmp_path / "bomb.gz"
    gzip_bomb(path, b"", 400 * 2**20)
    code = _CATCH.format(call=f"cnnzoo.data.idx.read_maybe_gzip({str(path)!r}, limit=50 * 2**20)")
    _expect_error(run_limited(code, headroom_mb=200), "DataCorruptError", f"more than {50 * 2**20} bytes")
    with pytest.raises(DataCorruptError, match="more than 1000 bytes"):
        read_maybe_gzip(path, limit=1000)


def test_valid_files_still_round_trip_with_their_md5(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    content = idx_header(a.shape) + a.tobytes()
    (tmp_path / "x").write_bytes(content)
    (tmp_path / "x.gz").write_bytes(gzip.compress(content))
    for name in ("x", "x.gz"):
        array, md5 = read_idx(tmp_path / name)
        assert (array == a).all() and len(md5) == 32


def test_bomb_in_root_is_one_line_for_cnnzoo_data(fake_fashion, tmp_path, capsys):
    gzip_bomb(fake_fashion.files["train_images"], idx_header((60, 28, 28)), 300 * 2**20)
    assert main(["data", "--root", str(fake_fashion.directory)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train-images-idx3-ubyte.gz: trailing garbage" in err


def test_labels_outside_the_classes_are_refused(fake_fashion):
    bad = fake_fashion.arrays["train_labels"].copy()
    bad[3] = 12
    fake_fashion.files["train_labels"].write_bytes(gzip.compress(idx_header(bad.shape) + bad.tobytes()))
    with pytest.raises(DataCorruptError, match=r"train-labels-idx1-ubyte.gz: labels outside 0\.\.9 \(found 0\.\.12\)"):
        load_fashion_mnist(fake_fashion.directory, download=False)


# ------------------------------------------------------------------------------------------------
# the decoded cache carries a digest; `cnnzoo data` says how the content was verified
# ------------------------------------------------------------------------------------------------
def _tamper_cache(directory: Path) -> None:
    (cached,) = directory.glob("decoded-*.pt")
    blob = torch.load(cached, weights_only=True)
    images = blob["tensors"]["train_images"] if "train_images" in blob["tensors"] else blob["tensors"]["images"]
    images[0].fill_(7)  # pixels changed on disk, digest left as it was
    torch.save(blob, cached)


def test_cache_with_changed_pixels_is_decoded_again(fake_fashion, monkeypatch, capsys):
    assert main(["data", "--root", str(fake_fashion.directory)]) == 0
    assert "checked now" in capsys.readouterr().out
    assert main(["data", "--root", str(fake_fashion.directory)]) == 0
    assert "verified (decoded cache, digest checked)" in capsys.readouterr().out
    _tamper_cache(cache_dir("fashion-mnist"))
    decoded = []
    original = fm._decode_and_verify
    monkeypatch.setattr(fm, "_decode_and_verify", lambda files: decoded.append(1) or original(files))
    ds = load_fashion_mnist(fake_fashion.directory, download=False)
    assert decoded == [1] and ds.extra["verified_by"].endswith("checked now")
    assert (ds.train_images.numpy() == fake_fashion.arrays["train_images"]).all()


def test_folder_cache_with_changed_pixels_is_decoded_again(isolated_data, tmp_path, monkeypatch):
    for c in ("a", "b"):
        for i in range(3):
            tiny_png(tmp_path / "imgs" / c / f"{i}.png", value=40 * i + (100 if c == "b" else 0))
    first = load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=8)
    (folder_cache,) = cache_dir("folders").iterdir()
    _tamper_cache(folder_cache)
    decoded = []
    original = ds_mod._decode_folder
    monkeypatch.setattr(ds_mod, "_decode_folder", lambda *a: decoded.append(1) or original(*a))
    again = load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=8)
    assert decoded == [1] and torch.equal(first.train_images, again.train_images)


# ------------------------------------------------------------------------------------------------
# downloads: a deadline, a minimum rate, a size limit, and the .part file gone on every exit
# ------------------------------------------------------------------------------------------------
def _fetch_fails(target: Path, url: str, timeout: float = 5.0) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(DataNotFoundError) as info:
        fm.fetch_fashion_mnist(target, mirrors=[url], timeout=timeout, progress=False)
    assert "\n" not in str(info.value)
    assert not list(target.glob("*.part")) and not list(target.iterdir())
    return str(info.value), time.monotonic() - start


def test_trickling_mirror_is_abandoned_under_the_minimum_rate(isolated_data, tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "RATE_WINDOW", 1.0)
    monkeypatch.setattr(fm, "MIN_RATE", 100)
    with slow_server(gap=0.3) as url, time_limit(20):
        message, took = _fetch_fails(tmp_path / "dl", url)
    assert "under the minimum rate of 100 bytes/s" in message and took < 10


def test_download_past_its_deadline_is_abandoned(isolated_data, tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "DOWNLOAD_DEADLINE", 1.0)
    monkeypatch.setattr(fm, "MIN_RATE", 1)
    with slow_server(length=10**6, piece=100, gap=0.05) as url, time_limit(20):
        message, took = _fetch_fails(tmp_path / "dl", url)
    assert "abandoned after 1 s (the download deadline)" in message and took < 8


def test_stalled_mirror_times_out(isolated_data, tmp_path):
    with slow_server(gap=30) as url, time_limit(20):
        message, took = _fetch_fails(tmp_path / "dl", url, timeout=0.5)
    assert "timed out" in message and took < 8


def test_oversized_download_is_refused(isolated_data, tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "MAX_DOWNLOAD_BYTES", 500)
    with slow_server(length=10**9, piece=4096, gap=0) as url, time_limit(20):
        message, _ = _fetch_fails(tmp_path / "dl", url)
    assert "announces 1000000000 bytes, over the 500-byte limit" in message


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, RuntimeError])
def test_part_file_is_removed_on_every_exit(isolated_data, tmp_path, monkeypatch, exc):
    seen = []
    target = tmp_path / "dl"

    def stream(url, out, timeout, progress, label):
        out.write(b"half a file")
        out.flush()
        seen.extend(target.glob("*.part"))
        raise exc()

    monkeypatch.setattr(fm, "_stream", stream)
    with pytest.raises(exc):
        fm.fetch_fashion_mnist(target, mirrors=["http://127.0.0.1:9/"], progress=False)
    assert seen and not list(target.iterdir())


def test_malformed_mirror_is_one_line(isolated_data, tmp_path):
    with pytest.raises(DataNotFoundError, match="could not download"):
        fm.fetch_fashion_mnist(tmp_path / "dl", mirrors=["not-a-url/"], progress=False)
    assert not list((tmp_path / "dl").iterdir())


# ------------------------------------------------------------------------------------------------
# images: limited after padding to a square
# ------------------------------------------------------------------------------------------------
def test_a_strip_image_is_refused_before_it_is_padded(tmp_path):
    path = tmp_path / "strip.png"
    path.write_bytes(png_bytes(40_000_000, 1))
    assert path.stat().st_size < 200_000
    code = _CATCH.format(call=f"cnnzoo.data.pictures.load_image({str(path)!r}, size=28)")
    _expect_error(
        run_limited(code, headroom_mb=400),
        "ImageError",
        "strip.png: 40000000x1 pads to a 40000000x40000000 square",
    )


def test_a_strip_image_in_a_folder_is_refused(isolated_data, tmp_path):
    for c in ("a", "b"):
        tiny_png(tmp_path / "imgs" / c / "ok.png")
    (tmp_path / "imgs" / "a" / "strip.png").write_bytes(png_bytes(20_000, 1))
    with (
        pytest.raises(DataError, match=r"strip.png: 20000x1 pads to a 20000x20000 square"),
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setattr("cnnzoo.data.pictures.MAX_SQUARE_PIXELS", 10**8 // 4)
        load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=8)


def test_fifo_given_to_predict_is_refused_without_opening_it(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with time_limit(10), pytest.raises(ImageError, match=r"pipe.png is a FIFO \(named pipe\), not an image file"):
        load_image(tmp_path / "pipe.png", size=28)


# ------------------------------------------------------------------------------------------------
# folder scanning: no loops, no duplicates, no special files, no run directories, a bounded count
# ------------------------------------------------------------------------------------------------
def _two_classes(root: Path, n: int = 3) -> None:
    for c in ("cat", "dog"):
        for i in range(n):
            tiny_png(root / c / f"{i}.png", value=30 * i + (120 if c == "dog" else 0))


def _load_quietly(root: Path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(f"folder:{root}", image_size=8, **kw)
    return ds, [str(w.message) for w in caught]


def test_two_parent_links_in_a_class_folder_do_not_loop(tmp_path):
    root = tmp_path / "imgs"
    _two_classes(root)
    os.symlink("..", root / "cat" / "up1")
    os.symlink("..", root / "cat" / "up2")
    env = f"import os; os.environ['XDG_CACHE_HOME'] = {str(tmp_path / 'cache')!r}\n"
    code = env + _CATCH.format(
        call=f"d = cnnzoo.data.load_dataset('folder:{root}', image_size=8); print(d.class_counts('train'), "
        "d.class_counts('test'))"
    )
    start = time.monotonic()
    out = _expect_error(run_limited(code, headroom_mb=400, timeout=60), "[2, 2] [1, 1]")
    assert time.monotonic() - start < 30, out


def test_parent_link_does_not_duplicate_or_mislabel(isolated_data, tmp_path):
    root = tmp_path / "imgs"
    _two_classes(root, n=4)
    os.symlink("..", root / "cat" / "up")
    os.symlink("../dog", root / "cat" / "sibling")
    os.symlink(str(tmp_path), root / "dog" / "grandparent")
    with time_limit(20):
        ds, messages = _load_quietly(root, val_fraction=0.25)
    assert ds.class_counts("train") == [3, 3] and ds.class_counts("test") == [1, 1]
    assert any("a link to a folder already scanned" in m for m in messages)
    assert any("a link to a folder that holds the dataset" in m for m in messages)


def test_a_linked_folder_elsewhere_is_still_read_once(isolated_data, tmp_path):
    root = tmp_path / "imgs"
    _two_classes(root)
    for i in range(2):
        tiny_png(tmp_path / "more" / f"{i}.png", value=200)
    os.symlink(str(tmp_path / "more"), root / "cat" / "more")
    os.symlink(str(tmp_path / "more"), root / "cat" / "more-again")
    ds, _ = _load_quietly(root, val_fraction=0.2)
    assert sum(ds.class_counts("train")) + sum(ds.class_counts("test")) == 8


def test_special_files_are_skipped_never_opened(isolated_data, tmp_path):
    root = tmp_path / "imgs"
    _two_classes(root)
    os.mkfifo(root / "cat" / "pipe.png")
    os.symlink("missing.png", root / "dog" / "broken.png")
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "dog" / "s.png"))
    try:
        with time_limit(20):
            ds, messages = _load_quietly(root)
    finally:
        sock.close()
    assert sum(ds.class_counts("train")) + sum(ds.class_counts("test")) == 6
    text = " ".join(messages)
    assert "pipe.png (a FIFO)" in text and "broken.png (a broken link)" in text and "s.png (a socket)" in text


def test_run_directories_are_not_classes(isolated_data, tmp_path):
    root = tmp_path / "imgs"
    _two_classes(root)
    for run in (root / "runs" / "lenet-1", root / "cat" / "oops-run"):
        run.mkdir(parents=True)
        (run / "config.json").write_text("{}")
        (run / "metrics.jsonl").write_text("")
        tiny_png(run / "curves.png")
    (root / "lenet-2").mkdir()
    (root / "lenet-2" / "config.json").write_text("{}")
    (root / "lenet-2" / "last.pt").write_bytes(b"x")
    ds, messages = _load_quietly(root)
    assert ds.classes == ["cat", "dog"] and sum(ds.class_counts("train")) + sum(ds.class_counts("test")) == 6
    assert any("cnnzoo runs, not a class" in m for m in messages)
    assert any("oops-run (a cnnzoo run directory)" in m for m in messages)


def test_class_folder_linking_to_another_class_is_refused(isolated_data, tmp_path):
    root = tmp_path / "imgs"
    _two_classes(root)
    os.symlink("cat", root / "kitty")
    with pytest.raises(DataError, match=r"class folder .*kitty is the same directory as"):
        load_dataset(f"folder:{root}")


def test_class_folder_linking_to_the_root_is_refused(isolated_data, tmp_path):
    root = tmp_path / "imgs"
    _two_classes(root)
    os.symlink(".", root / "all")
    with pytest.raises(DataError, match=r"class folder .*all is the same directory as"):
        load_dataset(f"folder:{root}")


def test_scan_is_bounded_in_files(isolated_data, tmp_path, monkeypatch):
    root = tmp_path / "imgs"
    _two_classes(root, n=10)
    monkeypatch.setattr(ds_mod, "MAX_SCAN_ENTRIES", 12)
    with pytest.raises(DataError, match="more than 12 files and folders under it"):
        load_dataset(f"folder:{root}")


def test_order_of_a_plain_tree_is_os_walks(isolated_data, tmp_path):
    root = tmp_path / "imgs"
    for rel in ("a/2.png", "a/x/1.png", "a/x/y/0.png", "a/z/5.png", "a/1.png", "b/0.png", "b/w/0.png"):
        tiny_png(root / rel)
    listing = ds_mod._list_folder(root)
    walked = []
    for c in ("a", "b"):
        for here, dirs, names in os.walk(root / c):
            dirs.sort()
            walked += [Path(here) / n for n in sorted(names)]
    assert [p for p, _ in listing.files] == walked


def test_errors_are_cnnzoo_errors_only(isolated_data, tmp_path):
    """A class folder holding nothing but links and pipes is a one-line DataError, not a hang or a crash."""
    root = tmp_path / "imgs"
    _two_classes(root)
    (root / "empty").mkdir()
    os.symlink("..", root / "empty" / "up")
    os.mkfifo(root / "empty" / "p.png")
    with time_limit(20), pytest.raises(CnnzooError, match=r"class folder .*empty has no images"):
        load_dataset(f"folder:{root}")


def test_a_torchvision_download_past_its_deadline_is_abandoned_and_leaves_nothing(isolated_data, monkeypatch):
    """MNIST, KMNIST and CIFAR-10 come through torchvision's downloader, which has no deadline of its own."""
    monkeypatch.setattr(fm, "DOWNLOAD_DEADLINE", 1.0)
    root = isolated_data / "mnist-root"
    with slow_server(length=10**6, piece=100, gap=0.05) as url:
        monkeypatch.setattr(tvd.MNIST, "mirrors", [url])
        start = time.monotonic()
        with pytest.raises(DataNotFoundError, match="download failed: the download took longer than 1 s"):
            load_dataset("mnist", root=root)
        took = time.monotonic() - start
    assert took < 8
    assert [p for p in root.rglob("*") if p.is_file()] == []  # no partial .gz left to be mistaken for data
