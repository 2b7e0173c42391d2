"""The epoch scrubber's API: the snapshots a run keeps (:mod:`cnnzoo.run.snapshots`) and its first layer's filters
after each of them. The prediction, Grad-CAM and feature maps of a picture at an epoch come from
``POST /api/predict`` with ``epoch`` (:mod:`cnnzoo.studio.inference`), through the same model cache."""

from __future__ import annotations

from typing import Any

import torch
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from cnnzoo.explain.activations import first_conv_filters
from cnnzoo.run.snapshots import list_snapshots
from cnnzoo.studio.inference import ModelsDep, feature_grid, png_data_url, snapshot_epochs
from cnnzoo.studio.runs import RunsDep, clean
from cnnzoo.studio.schemas import FiltersOut, SnapshotsOut

__all__ = ["MAX_FILTERS", "filters_record", "router"]

MAX_FILTERS = 64  # filters drawn, at most

router = APIRouter(prefix="/api", tags=["runs"])


@router.get("/runs/{run_id}/snapshots", response_model=SnapshotsOut, summary="the epoch snapshots a run keeps")
def get_snapshots(run_id: str, index: RunsDep) -> dict[str, Any]:
    detail = index.detail(run_id)
    found = list_snapshots(index.path(run_id))
    return clean({"run": run_id, "classes": detail["classes"], "epochs": detail.get("epochs"),
                  "snapshots": [s.to_dict() for s in found]})  # fmt: skip


def filters_record(model: torch.nn.Module) -> dict[str, Any]:
    """The first convolution's filters as an image: the first input channel of each kernel, each scaled from its
    own lowest to its own highest weight (3-channel kernels too: one channel shows how the filter is shaped)."""
    name = next(n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d))
    weights = first_conv_filters(model)
    grid, shown, values = feature_grid(weights[:, 0], limit=MAX_FILTERS)
    return {"layer": name, "shape": list(weights.shape), "shown": shown, "image": png_data_url(grid), "values": values}


@router.get(
    "/runs/{run_id}/snapshots/{epoch}/filters",
    response_model=FiltersOut,
    summary="the first layer's filters after an epoch",
    responses={404: {}},
)
async def get_filters(run_id: str, epoch: int, index: RunsDep, models: ModelsDep) -> dict[str, Any]:
    snapshot_epochs(index, run_id, epoch)
    path = index.path(run_id)

    def work() -> dict[str, Any]:
        predictor, lock = models.get(path, epoch)
        with lock:
            return filters_record(predictor.model)

    return {"run": run_id, "epoch": epoch, **await run_in_threadpool(work)}
