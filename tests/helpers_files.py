"""Files the tests make, shared by several test folders: IDX datasets where torchvision looks, pictures of the fake
classes, and a Python run under a memory cap."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from cnnzoo.data.idx import write_idx
from helpers_train import blocks_images

SRC = Path(__file__).resolve().parents[1] / "src"


def write_mnist_raw(root: Path, tv_class: str, arrays: dict[str, np.ndarray]) -> Path:
    """The four uncompressed IDX files where torchvision's MNIST/KMNIST look: ``root/<Class>/raw/``."""
    raw = root / tv_class / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    stems = {
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    }
    for key, stem in stems.items():
        (raw / stem).write_bytes(write_idx(arrays[key]))
    return raw


def save(tmp_path, name, image: Image.Image, **kw):
    path = tmp_path / name
    image.save(path, **kw)
    return path


def block_picture(k: int, *, scale: int, dark_on_light: bool, mode: str) -> Image.Image:
    """A big rendering of a class-``k`` blocks image, as a user might photograph it."""
    a = blocks_images(np.array([k]), np.random.default_rng(k))[0]
    a = np.kron(a, np.ones((scale, scale), np.uint8))
    if dark_on_light:
        a = 255 - a
    return Image.fromarray(a).convert(mode)


def picture_folder(directory, classes=(0, 3, 7, 9)):
    directory.mkdir()
    for k in classes:
        save(directory, f"class{k}.png", block_picture(k, scale=4, dark_on_light=k % 2 == 1, mode="L"))
    (directory / "notes.txt").write_text("not a picture")  # skipped: not an image suffix
    return directory


def run_limited(code: str, *, headroom_mb: int = 300, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python after ``import cnnzoo`` under an address-space cap and a timeout.

    The cap is the process's size after its imports plus ``headroom_mb``; ``code`` prints what the test checks.
    """
    prologue = textwrap.dedent(
        f"""
        import resource, sys
        import cnnzoo, cnnzoo.data, cnnzoo.data.pictures, torch
        def _vm():
            for line in open("/proc/self/status"):
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
        cap = _vm() + {headroom_mb} * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", prologue + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def made_up_row(model: str = "resnet18", *, family: str = "resnet", dataset: str = "fashion-mnist", acc=0.9) -> dict:
    return {
        "model": model,
        "name": model.split(":")[0],
        "kwargs": {},
        "family": family,
        "dataset": dataset,
        "input_size": 32,
        "params": 11_178_378,
        "macs": 35_400_000,
        "recipe": "fast",
        "setting": "momentum lr 0.05",
        "epochs_planned": 3,
        "budget_minutes": None,
        "seeds": [0, 1],
        "runs": [{"seed": s, "epochs": 3, "test_acc": acc, "stopped_by_budget": False} for s in (0, 1)],
        "test_acc_mean": acc,
        "test_acc_std": 0.001,
        "test_acc_best": acc,
        "train_seconds_mean": 276.0,
        "train_seconds_std": 3.0,
        "images_per_sec_mean": 653.0,
        "device": "cpu (2 threads)",
        "precision": "fp32",
        "provenance": {
            "command": "cnnzoo leaderboard resnet18@32",
            "date": "2025-01-01 00:00 UTC",
            "machine": "a CPU",
            "platform": "Linux",
            "python": "3.12",
            "torch": "2.x",
            "cnnzoo": "0.x",
            "device": "cpu (2 threads), fp32, NCHW",
        },
    }
