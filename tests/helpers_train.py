"""Test helpers for the training engine and its CLI (used in-process and by subprocess bootstraps).

* :func:`blocks_dataset`: a tiny, learnable Fashion-MNIST stand-in. Class ``k`` is a bright 6x4 block at
  a class-specific place on a dim noisy background (a light object on a dark background, like the real
  data), so a small network separates the classes in an epoch or two.
* :func:`register_test_models`: ``tiny_test_net`` (conv, BatchNorm, dropout: exercises buffers and the
  dropout RNG) and ``slow_test_net`` (the same, sleeping in every forward so a subprocess can be
  interrupted mid-epoch reliably).
* :func:`run_cli`: run ``cnnzoo`` in a subprocess with the fake data and test models installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnzoo.data import ImageDataset
from cnnzoo.models.registry import list_models, register_model

TESTS_DIR = Path(__file__).resolve().parent
CLASSES = [f"class{k}" for k in range(10)]
TEST_MODELS = ("tiny_test_net", "slow_test_net")


def block_position(k: int) -> tuple[int, int]:
    return 3 + (k // 5) * 13, 2 + (k % 5) * 5


def blocks_images(labels: np.ndarray, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    images = rng.integers(0, 50, (len(labels), size, size), dtype=np.uint8)
    for i, k in enumerate(labels):
        r, c = block_position(int(k))
        images[i, r : r + 6, c : c + 4] = rng.integers(190, 256, (6, 4), dtype=np.uint8)
    return images


def blocks_dataset(n_train: int = 512, n_test: int = 256, seed: int = 0) -> ImageDataset:
    rng = np.random.default_rng(seed)
    train_labels = np.arange(n_train) % 10
    test_labels = np.arange(n_test) % 10
    rng.shuffle(train_labels)
    return ImageDataset(
        name="blocks",
        train_images=torch.from_numpy(blocks_images(train_labels, rng)),
        train_labels=torch.from_numpy(train_labels.astype(np.int64)),
        test_images=torch.from_numpy(blocks_images(test_labels, rng)),
        test_labels=torch.from_numpy(test_labels.astype(np.int64)),
        classes=list(CLASSES),
        source="test-made blocks",
    )


class _Sleep(nn.Module):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            time.sleep(self.seconds)
        return x


def _tiny(num_classes: int, in_channels: int, sleep: float = 0.0, width: int = 8) -> nn.Sequential:
    layers: list[nn.Module] = [_Sleep(sleep)] if sleep else []
    return nn.Sequential(
        *layers,
        nn.Conv2d(in_channels, width, kernel_size=5, stride=2),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(width * 6 * 6, num_classes),
    )


def register_test_models() -> None:
    """Register the test networks once per process (the registry refuses duplicates)."""
    if "tiny_test_net" in list_models():
        return

    @register_model("tiny_test_net", input_size=28, min_input_size=28, max_input_size=28, family="tests")
    def tiny_test_net(*, num_classes: int = 10, in_channels: int = 1, width: int = 8) -> nn.Module:
        """A 3k-parameter conv net with BatchNorm and dropout, for engine mechanics (``width``: its channels)."""
        return _tiny(num_classes, in_channels, width=width)

    @register_model("slow_test_net", input_size=28, min_input_size=28, max_input_size=28, family="tests")
    def slow_test_net(*, num_classes: int = 10, in_channels: int = 1) -> nn.Module:
        """tiny_test_net sleeping 40 ms per training forward, so a run can be interrupted mid-epoch."""
        return _tiny(num_classes, in_channels, sleep=0.04)


def unregister_test_models() -> None:
    """Undo :func:`register_test_models`: other tests enumerate the registry and must not see these."""
    from cnnzoo.models import registry

    for name in TEST_MODELS:
        registry._REGISTRY.pop(name, None)


def install_fake_data(n_train: int = 512, n_test: int = 256) -> None:
    """Make ``cnnzoo.data.load_fashion_mnist`` return :func:`blocks_dataset` (the CLI looks it up per call)."""
    import cnnzoo.data

    data = blocks_dataset(n_train, n_test)
    cnnzoo.data.load_fashion_mnist = lambda root=None, download=True: data


_BOOT = """
import sys
sys.path.insert(0, {tests!r})
import helpers_train
helpers_train.register_test_models()
helpers_train.install_fake_data({n_train}, {n_test})
from cnnzoo.cli import main
raise SystemExit(main())  # as the cnnzoo program runs it: its own command line (sys.argv[1:])
"""


def cli_command(*args: str, n_train: int = 512, n_test: int = 256) -> list[str]:
    boot = _BOOT.format(tests=str(TESTS_DIR), n_train=n_train, n_test=n_test)
    return [sys.executable, "-c", boot, *args]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("CNNZOO_DATA", None)
    return env


def start_cli(*args: str, cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        cli_command(*args, **kw),
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_cli(*args: str, cwd: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_command(*args, **kw), cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout
    )


def wait_for_rows(run_dir: Path, rows: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``metrics.jsonl`` until it has ``rows`` lines (the checkpoint is written before it)."""
    deadline = time.monotonic() + timeout
    path = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= rows:
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"training exited ({proc.returncode}) before epoch {rows}:\n{out}\n{err}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no epoch {rows} within {timeout} s")


def cli_in_forked_child(argv: list[str], cwd: str, log: str, n_train: int = 512, n_test: int = 256) -> None:
    """A ``multiprocessing`` target for the forkserver: the CLI with the fake data and test models installed,
    stdout and stderr appended to ``log``, the exit status as the process's.

    The forkserver imports torch and cnnzoo once (``set_forkserver_preload``) and forks each child from
    there, so a child starts in milliseconds rather than the 2-3 s of a fresh interpreter: what lets a test
    SIGKILL training runs at random moments dozens of times within its time budget.
    """
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.chdir(cwd)
    register_test_models()
    install_fake_data(n_train, n_test)
    from cnnzoo.cli import main

    status = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
