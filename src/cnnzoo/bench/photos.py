"""The photo benchmark: the accuracy a :class:`~cnnzoo.serve.predictor.Predictor` keeps on Fashion-MNIST pictures
made to look like phone photos (:mod:`cnnzoo.data.photolike`), through the path users take: JPEG files on disk
read by ``Predictor.predict``. Use held-out images (the Fashion-MNIST *test* split) so the score says something.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnzoo.data.photolike import photo_like_jpegs
from cnnzoo.serve.predictor import Predictor

__all__ = ["photo_benchmark"]


def photo_benchmark(
    predictor: Predictor, images: np.ndarray, labels: Sequence[int] | np.ndarray, *, seed: int = 0, size: int = 224
) -> float:
    """Top-1 accuracy of ``predictor`` on :func:`photo_like` renderings of ``images``: each is written as a
    JPEG file and classified by ``predictor.predict`` (the files a user would give)."""
    labels = np.asarray(labels)
    if len(labels) != len(images) or len(labels) == 0:
        raise ValueError(f"{len(images)} images and {len(labels)} labels: give as many of each, at least one")
    with tempfile.TemporaryDirectory(prefix="cnnzoo-photos-") as tmp:
        paths = []
        for i, data in enumerate(photo_like_jpegs(images, seed=seed, size=size)):
            path = Path(tmp) / f"{i:06d}.jpg"
            path.write_bytes(data)
            paths.append(path)
        records = predictor.predict(paths, top_k=1)
    predicted = np.array([r["top"][0]["label"] for r in records])
    return float((predicted == labels).mean())
