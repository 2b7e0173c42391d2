"""The bad-input catalogue for bounded data work (issue 13): huge or bombed IDX files, folder trees with
loops, pipes and runs in them, images that pad to gigantic squares.

Each case is checked as in ``test_bad_inputs.py`` (exit 2, one ``error:`` line with every fragment, nothing
in the scratch directory changed). The scratch snapshot here reads neither FIFOs (opening one blocks) nor
whole sparse terabyte files, and records links as links.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import test_bad_inputs
from test_bad_inputs import Case, _both, _copy_run, _dataset, _files, check_case
from test_bounded_data import gzip_bomb, idx_header, png_bytes, sparse_file, time_limit, tiny_png


# ------------------------------------------------------------------------------------------------
# what the scratch directory holds
# ------------------------------------------------------------------------------------------------
def _replace(make):
    """Damage for :func:`_dataset`: the first file read (train images) replaced by ``make(path)``."""

    def damage(path: Path) -> None:
        path.unlink()
        make(path)

    return damage


def _claims_1e12(path: Path) -> None:
    sparse_file(path, idx_header((1_000_000, 1000, 1000)), 16 + 10**12)


def _sparse_tail(path: Path) -> None:
    sparse_file(path, idx_header((20, 28, 28)), 10**11)


def _bomb(path: Path) -> None:
    gzip_bomb(path, idx_header((20, 28, 28)), 200 * 2**20)


def _bomb_claims_1e12(path: Path) -> None:
    gzip_bomb(path, idx_header((1_000_000, 1000, 1000)), 2**20)


def _bad_labels(d: Path, run: Path | None) -> None:
    _dataset(gz=False)(d, run)
    labels = (np.arange(20) % 10).astype(np.uint8)
    labels[5] = 200
    (d / "data" / "train-labels-idx1-ubyte").write_bytes(idx_header(labels.shape) + labels.tobytes())


def _folder(*classes: str, n: int = 2):
    def setup(d: Path, run: Path | None) -> None:
        for c in classes:
            for i in range(n):
                tiny_png(d / "imgs" / c / f"{i}.png", value=40 * i + 10)

    return setup


def _link(name: str, target: str):
    def setup(d: Path, run: Path | None) -> None:
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, d / name)

    return setup


def _fifo(name: str):
    def setup(d: Path, run: Path | None) -> None:
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(d / name)

    return setup


def _a_run(name: str):
    def setup(d: Path, run: Path | None) -> None:
        (d / name).mkdir(parents=True)
        (d / name / "config.json").write_text("{}\n")
        (d / name / "metrics.jsonl").write_text("")
        tiny_png(d / name / "curves.png")

    return setup


def _strip(name: str, width: int):
    return _files(**{name: lambda: png_bytes(width, 1)})


CASES = [
    # -- IDX files --------------------------------------------------------------------------------
    Case("idx-header-claims-1e12", "bounded data", "an IDX header claiming 10^12 items (a sparse terabyte file)",
         "data --root data", ("train-images-idx3-ubyte: its header claims shape (1000000, 1000, 1000)",
                              "over the 94080032-byte limit", "replace it"),
         "Replace the file with the official one; cnnzoo read 16 bytes of it.",
         setup=_dataset(_replace(_claims_1e12), gz=False), data="real"),
    Case("idx-sparse-tail", "bounded data", "a raw IDX file far longer than its header says (sparse, 100 GB)",
         "data --root data", ("train-images-idx3-ubyte:", "bytes of trailing garbage after shape (20, 28, 28)"),
         "Replace the file; its size is checked before its payload is read.",
         setup=_dataset(_replace(_sparse_tail), gz=False), data="real"),
    Case("idx-gzip-bomb", "bounded data", "a gzip bomb: a small .gz that decompresses far past its header's size",
         "data --root data", ("train-images-idx3-ubyte.gz: trailing garbage after shape (20, 28, 28)", "gzip bomb",
                              "replace it"),
         "Do not trust the file; fetch the official one.",
         setup=_dataset(_replace(_bomb)), data="real"),
    Case("idx-gzip-header-1e12", "bounded data", "a .gz whose IDX header claims 10^12 items",
         "data --root data", ("train-images-idx3-ubyte.gz: its header claims shape (1000000, 1000, 1000)",
                              "over the"), "Replace the file with the official one.",
         setup=_dataset(_replace(_bomb_claims_1e12)), data="real"),
    Case("idx-labels-out-of-range", "bounded data", "an IDX label file with labels outside 0..9",
         "data --root data", ("train-labels-idx1-ubyte: labels outside 0..9 (found 0..200)", "replace it"),
         "Replace the label file with the official one.", setup=_bad_labels, data="real"),
    # -- folders ----------------------------------------------------------------------------------
    Case("folder-only-parent-links", "bounded data", "a class folder holding nothing but two `..` links",
         "train lenet_bn --dataset folder:imgs --epochs 1", ("class folder", "imgs/loop has no images"),
         "Put images in the class folder or remove it; links to folders already scanned are skipped, never looped.",
         setup=_both(_folder("cat", "dog"), _link("imgs/loop/up1", ".."), _link("imgs/loop/up2", "..")),
         data="real"),
    Case("folder-only-fifo", "bounded data", "a class folder whose only `.png` is a FIFO (named pipe)",
         "train lenet_bn --dataset folder:imgs --epochs 1", ("imgs/pipe has no images",),
         "Put real image files there; FIFOs, sockets and devices are skipped without being opened.",
         setup=_both(_folder("cat", "dog"), _fifo("imgs/pipe/frame.png")), data="real"),
    Case("folder-only-broken-links", "bounded data", "a class folder of links to images that do not exist",
         "train lenet_bn --dataset folder:imgs --epochs 1", ("imgs/gone has no images",),
         "Restore the link targets or remove the folder.",
         setup=_both(_folder("cat", "dog"), _link("imgs/gone/0.png", "/nonexistent/0.png")), data="real"),
    Case("folder-class-is-link-to-root", "bounded data", "a class folder that is a link to the dataset folder",
         "train lenet_bn --dataset folder:imgs --epochs 1", ("class folder", "imgs/all is the same directory as",
                                                             "remove the link"),
         "Remove the link: every class must be a folder of its own.",
         setup=_both(_folder("cat", "dog"), _link("imgs/all", ".")), data="real"),
    Case("folder-class-is-link-to-class", "bounded data", "two class folders that are one directory (a link)",
         "train lenet_bn --dataset folder:imgs --epochs 1", ("imgs/kitty is the same directory as", "cat"),
         "Remove the link, or copy the images if the class is really another one.",
         setup=_both(_folder("cat", "dog"), _link("imgs/kitty", "cat")), data="real"),
    Case("folder-runs-are-not-a-class", "bounded data", "training from inside the image folder: `runs/` beside one "
         "class", "train lenet_bn --dataset folder:imgs --epochs 1", ("only one class folder (cat)",),
         "Add a second class; cnnzoo's own runs/ is never taken for a class.",
         setup=_both(_folder("cat"), _a_run("imgs/runs/lenet_bn-1")), data="real"),
    Case("folder-strip-image", "bounded data", "a 40,000,000x1 image in a class folder (pads to a huge square)",
         "train lenet_bn --dataset folder:imgs --epochs 1",
         ("strip.png: 40000000x1 pads to a 40000000x40000000 square", "over the 100-megapixel limit"),
         "Crop the image to a sensible aspect ratio, or remove it.",
         setup=_both(_folder("cat", "dog"), _strip("imgs__cat__strip_DOT_png", 40_000_000)), data="real"),
    # -- images for predict -----------------------------------------------------------------------
    Case("image-strip", "bounded data", "a 40,000,000x1 image to classify", "predict run strip.png",
         ("strip.png: 40000000x1 pads to a 40000000x40000000 square", "crop it"),
         "Crop the picture first; cnnzoo pads to a square before resizing.",
         setup=_both(_copy_run, _strip("strip_DOT_png", 40_000_000)), run=True),
    Case("image-fifo", "bounded data", "a FIFO (named pipe) given as the image", "predict run pipe.png",
         ("pipe.png is a FIFO (named pipe), not an image file",), "Give a regular image file.",
         setup=_both(_copy_run, _fifo("pipe.png")), run=True),
]  # fmt: skip


# ------------------------------------------------------------------------------------------------
# the check
# ------------------------------------------------------------------------------------------------
def safe_snapshot(root: Path) -> dict[str, tuple]:
    """Like ``test_bad_inputs.snapshot``, but links stay links, FIFOs are never opened and big files are
    hashed at their ends only (a sparse terabyte cannot be read in a test)."""
    state = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = p.relative_to(root).as_posix()
        if stat.S_ISLNK(st.st_mode):
            state[rel] = ("link", os.readlink(p))
        elif stat.S_ISDIR(st.st_mode):
            state[rel + "/"] = ("dir", st.st_mode)
        elif not stat.S_ISREG(st.st_mode):
            state[rel] = ("special", st.st_mode, st.st_mtime_ns)
        else:
            state[rel] = (_ends_hash(p, st.st_size), st.st_size, st.st_mode, st.st_mtime_ns)
    return state


def _ends_hash(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(size - (1 << 20))
            h.update(f.read())
    return h.hexdigest()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_data_is_one_line_exit_2_and_changes_nothing(case, request, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(test_bad_inputs, "snapshot", safe_snapshot)
    with time_limit(60):  # a loop or a blocking open fails the case instead of hanging the suite
        check_case(case, request, tmp_path, monkeypatch, capsys)


def test_the_catalogue_is_well_formed():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 12
    assert not set(ids) & {c.id for c in test_bad_inputs.CASES}
    for c in CASES:
        assert c.expect and all(c.expect) and c.todo.endswith("."), c.id
