"""Random folder trees for the folder loader (issue 13): it succeeds or raises a CnnzooError, quickly.

Each example builds a tree of nested folders, links (to a parent, a sibling, a file, nothing), FIFOs, empty
files, random bytes named ``.png`` and tiny valid PNGs of odd sizes and modes, then loads it with
``load_dataset("folder:...")``. A loop, a blocking open of a FIFO or an uncaught exception fails the test:
each example runs under a 5 s alarm (:func:`test_bounded_data.time_limit`).
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_bounded_data import time_limit

from cnnzoo.base.errors import CnnzooError
from cnnzoo.data import load_dataset

NAMES = st.sampled_from(["a", "b", "c", "train", "test", "val", "runs", ".hidden", "x.png", "y.jpg", "z.txt"])
MODES = st.sampled_from(["L", "1", "P", "RGB", "RGBA", "LA", "I;16"])
KINDS = st.sampled_from(["dir", "dir", "png", "png", "png", "junk", "empty", "fifo", "up", "sibling", "filelink",
                         "missing", "text"])  # fmt: skip

ENTRY = st.tuples(
    st.integers(0, 50),  # which existing folder holds it (modulo their number)
    NAMES,
    KINDS,
    st.tuples(st.integers(1, 20), st.integers(1, 20)),
    MODES,
    st.binary(max_size=64),
)


def _png(path: Path, size: tuple[int, int], mode: str) -> None:
    img = Image.new("L", size, 90).convert(mode) if mode != "I;16" else Image.new("I;16", size, 3000)
    img.save(path, format="PNG")


def _make(parent: Path, name: str, kind: str, size, mode, junk: bytes, dirs: list[Path], files: list[Path]) -> None:
    path = parent / (name if kind in ("dir", "up", "sibling") else f"{name}.{kind}.png")
    if path.exists() or path.is_symlink():
        return
    if kind == "dir":
        path.mkdir()
        dirs.append(path)
    elif kind == "png":
        _png(path, size, mode)
        files.append(path)
    elif kind == "junk":
        path.write_bytes(junk)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.with_suffix(".txt").write_text("notes")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "up":
        os.symlink("..", path)
    elif kind == "sibling":
        os.symlink(os.path.relpath(dirs[len(dirs) // 2], parent), path)
    elif kind == "filelink" and files:
        os.symlink(files[-1], path)
    elif kind == "missing":
        os.symlink(parent / "nothing-here.png", path)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(ENTRY, max_size=25))
def test_random_trees_load_or_fail_with_one_cnnzoo_error(entries):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "imgs"
        root.mkdir()
        dirs, files = [root], []
        for c in ("cat", "dog"):  # a loadable start, that the random entries then complicate
            _make(root, c, "dir", (1, 1), "L", b"", dirs, files)
            _make(root / c, "seed", "png", (9, 7), "L", b"", dirs, files)
        for where, name, kind, size, mode, junk in entries:
            _make(dirs[where % len(dirs)], name, kind, size, mode, junk, dirs, files)
        old = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        try:
            with time_limit(5), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = load_dataset(f"folder:{root}", image_size=8, progress=False)
            assert ds.num_classes >= 2 and len(ds.train_labels) == len(ds.train_images)
            assert int(ds.train_labels.max()) < ds.num_classes
            event("loaded")
        except CnnzooError as exc:
            assert "\n" not in str(exc)
            event(f"{type(exc).__name__}: {re.sub(r'/[^ ]*', '<path>', str(exc))[:50]}")
        finally:
            if old is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = old
