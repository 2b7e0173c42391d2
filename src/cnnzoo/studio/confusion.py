"""A run's confusion matrix as numbers, and the test pictures behind each of its cells (fastai's
``most_confused``, TensorBoard's missing click): ``GET /api/confusion/{run_id}`` and
``GET /api/confusion/{run_id}/{true}/{predicted}``.

The run's final model (``last.pt``) classifies its own test split once, as ``cnnzoo eval`` does (the run's input
size and normalisation, eval mode); the predictions are kept for the last few runs asked about (keyed by the
checkpoint's modification time and size, so a run still training is classified again). Both routes run a model,
so they take one of the studio's work slots (:mod:`cnnzoo.studio.limits`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import APIRouter, Query

from cnnzoo.base.errors import CnnzooError
from cnnzoo.data import ModelView
from cnnzoo.explain import predictions
from cnnzoo.run import open_run
from cnnzoo.studio.inference import png_data_url
from cnnzoo.studio.runs import NotFoundError, RunIndex, RunsDep
from cnnzoo.train.metrics import confusion_matrix

__all__ = ["CONFUSION_CACHE", "Predictions", "router"]

CONFUSION_CACHE = 4  # runs whose test-set predictions stay in memory (a few hundred kB each)
_SHOWN = 24  # pictures per cell, at most


class Predictions:
    """The test split of a run, and what its final model says of each picture."""

    def __init__(self, path: Path) -> None:
        run = open_run(path, device="cpu")
        config, data = run.config, run.data
        mean, std = data.stats if config.normalize else (None, None)
        side = config.resize or run.model.default_input_size
        self.images, self.labels, self.classes = data.test_images, data.test_labels, list(data.classes)
        self.predicted, self.confidence = predictions(run.model, self.images, ModelView(side, mean, std))
        self.matrix = confusion_matrix(self.predicted, self.labels, len(self.classes))


class _Cache:
    def __init__(self, size: int) -> None:
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, path: Path) -> Predictions:
        try:
            st = (path / "last.pt").stat()
        except OSError:
            raise NotFoundError(f"run {path.name!r} has no checkpoint yet: its confusion matrix comes with its first "
                                "epoch") from None  # fmt: skip
        key = (str(path), st.st_mtime_ns, st.st_size)
        with self._lock:  # one classification at a time: the slots bound the rest
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            try:
                found = Predictions(path)
            except CnnzooError:
                raise
            except (OSError, ValueError, RuntimeError) as exc:
                raise NotFoundError(f"run {path.name!r}: its model or data cannot be read ({exc})") from None
            self._items[key] = found
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return found


_cache = _Cache(CONFUSION_CACHE)
router = APIRouter(prefix="/api", tags=["runs"])


def _predictions(index: RunIndex, run_id: str) -> Predictions:
    return _cache.get(index.path(run_id))


def _thumbnail(image: torch.Tensor) -> str:
    pixels = image.numpy() if image.dim() == 2 else image.permute(1, 2, 0).numpy()
    pixels = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels
    factor = max(1, -(-56 // max(pixels.shape[:2])))  # about 56 px
    return png_data_url(np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1))


@router.get("/confusion/{run_id}", summary="a run's confusion matrix on its test split, as numbers")
def get_confusion(run_id: str, index: RunsDep) -> dict[str, Any]:
    found = _predictions(index, run_id)
    return {"run": run_id, "classes": found.classes, "matrix": found.matrix.tolist()}


@router.get("/confusion/{run_id}/{true}/{predicted}", summary="the test pictures of one confusion-matrix cell")
def get_confusion_cell(
    run_id: str,
    true: int,
    predicted: int,
    index: RunsDep,
    limit: int = Query(_SHOWN, ge=1, le=100, description="how many pictures, the most confident first"),
) -> dict[str, Any]:
    found = _predictions(index, run_id)
    k = len(found.classes)
    if not (0 <= true < k and 0 <= predicted < k):
        raise NotFoundError(f"no cell ({true}, {predicted}): the classes are 0 to {k - 1}")
    chosen = torch.nonzero((found.labels == true) & (found.predicted == predicted)).flatten()
    order = torch.argsort(found.confidence[chosen], descending=True, stable=True)
    picks = chosen[order][:limit].tolist()
    return {
        "run": run_id,
        "true": found.classes[true],
        "predicted": found.classes[predicted],
        "count": int(chosen.numel()),
        "images": [
            {"index": i, "probability": float(found.confidence[i]), "image": _thumbnail(found.images[i])} for i in picks
        ],
    }
