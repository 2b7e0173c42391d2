"""Shared fixtures. Each block is owned by the module group named in its header."""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnzoo.data import fashion_mnist as fm
from cnnzoo.data.idx import write_idx

# Under pytest-xdist each worker gets one intra-op thread (and so do the CLI subprocesses tests start):
# two workers x two threads on two cores oversubscribe the CPU, and many-small-op models then run
# tens of times slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture
def one_thread():
    """One intra-op thread for the test. On a shared 2-core machine two OpenMP threads wait for each other at the
    end of every op, and a network of many small ops (ResNet-152 at 32x32) runs ~50x slower as soon as another
    process takes a core; one thread is at worst ~2x slower. Results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------
# data layer: small IDX datasets made by the tests, isolated from the user's cache and the system copy
# ------------------------------------------------------------------------------------------------
REAL_DIR = fm.SYSTEM_DIR
HAVE_REAL_DATA = fm._files_in(REAL_DIR) is not None


@dataclass
class FakeFashion:
    """A tiny Fashion-MNIST look-alike whose pinned checksums the loader is patched to expect."""

    directory: Path
    arrays: dict[str, np.ndarray]
    files: dict[str, Path]


def make_arrays(n_train: int = 60, n_test: int = 20, size: int = 28, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }


def write_dataset(directory: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for f in fm.FILES:
        content = write_idx(arrays[f.key])
        path = directory / (f.stem + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(content) if gz else content)
        paths[f.key] = path
    return paths


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """No $CNNZOO_DATA, a private cache, no system copy, no mirror but a closed local port."""
    monkeypatch.delenv("CNNZOO_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("CNNZOO_MIRROR", "http://127.0.0.1:9/")
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "no-system-copy")
    return tmp_path


@pytest.fixture
def fake_fashion(isolated_data, monkeypatch) -> FakeFashion:
    """A tiny dataset in ``tmp/fake`` with the loader's pinned MD5s and shapes patched to match it."""
    arrays = make_arrays()
    directory = isolated_data / "fake"
    files = write_dataset(directory, arrays)
    pinned = tuple(
        fm._File(f.key, f.stem, hashlib.md5(write_idx(arrays[f.key])).hexdigest(), arrays[f.key].shape)
        for f in fm.FILES
    )
    monkeypatch.setattr(fm, "FILES", pinned)
    return FakeFashion(directory, arrays, files)


# ------------------------------------------------------------------------------------------------
# training engine and its CLI (issue 4): test-made data, test models, a trained run to evaluate
# ------------------------------------------------------------------------------------------------
import helpers_train  # noqa: E402  (tests/ is on sys.path: pytest's rootdir conftest import)


@pytest.fixture(scope="session")
def blocks():
    """A 512/256-image dataset whose classes a tiny net separates in an epoch or two."""
    return helpers_train.blocks_dataset()


@pytest.fixture
def test_models():
    """``tiny_test_net`` and ``slow_test_net`` in the registry for one test only (others count the registry)."""
    helpers_train.register_test_models()
    yield
    helpers_train.unregister_test_models()


@pytest.fixture
def fake_train_data(monkeypatch, blocks):
    """``cnnzoo.data.load_fashion_mnist`` returns :func:`helpers_train.blocks_dataset` (for ``main(argv)``)."""
    import cnnzoo.data

    monkeypatch.setattr(cnnzoo.data, "load_fashion_mnist", lambda root=None, download=True: blocks)
    return blocks


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, blocks):
    """A finished 3-epoch lenet_bn run on the blocks data (read-only: copy it before changing it)."""
    import cnnzoo.data
    from cnnzoo.cli import main

    out = tmp_path_factory.mktemp("trained") / "run"
    original = cnnzoo.data.load_fashion_mnist
    cnnzoo.data.load_fashion_mnist = lambda root=None, download=True: blocks
    try:
        argv = ["train", "lenet_bn", "--epochs", "3", "--batch-size", "64", "--lr", "0.2", "--augment", "none"]
        assert main([*argv, "--quiet", "--out", str(out)]) == 0
    finally:
        cnnzoo.data.load_fashion_mnist = original
    return out


# ------------------------------------------------------------------------------------------------
# the fast tier: `make check` runs `-m "not slow and not killloop"`; tests/slow_tests.txt lists the slow ones
# ------------------------------------------------------------------------------------------------
SLOW_TESTS = Path(__file__).with_name("slow_tests.txt")


def slow_test_ids() -> set[str]:
    """The node ids tests/slow_tests.txt lists (comments and blank lines skipped)."""
    lines = SLOW_TESTS.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def pytest_collection_modifyitems(config, items):
    slow = slow_test_ids()
    for item in items:
        path, _, name = item.nodeid.partition("::")
        # a node id, a test with all its parameters, or a whole file (whose module fixture is the slow part)
        if {item.nodeid, f"{path}::{name.split('[', 1)[0]}", path} & slow:
            item.add_marker(pytest.mark.slow)
