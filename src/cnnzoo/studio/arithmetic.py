"""The convolution's arithmetic on *Try it*: click a pixel of a layer's feature maps and see how it was computed.

``POST /api/arithmetic`` takes the picture and the model as ``POST /api/predict`` does (``run`` or ``weight``, and
``epoch`` for a run's snapshot), with ``layer`` (a unit's name; default the first convolution), ``channel``, ``y``
and ``x`` (default the middle of channel 0). It answers with the units a learner can choose from, the chosen one's
feature maps (the first 16 channels and where each is drawn, so a click maps back to a value) and the arithmetic
of the value: :func:`cnnzoo.explain.arithmetic.explain_value`, whose ``total`` equals the forward pass's ``value``
to float32 rounding. One forward pass a request, hooked; the picture is decoded and normalised once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from starlette.concurrency import run_in_threadpool

from cnnzoo.base.errors import ConfigError
from cnnzoo.explain.arithmetic import Unit, explain_value, trace_units
from cnnzoo.studio.inference import (
    MAX_STAGE_CHANNELS,
    ModelsDep,
    ModelUploadDep,
    feature_grid,
    grid_layout,
    png_data_url,
    prepare_upload,
    sniff,
    upload_route,
)
from cnnzoo.studio.runs import NotFoundError, clean
from cnnzoo.studio.schemas import ArithmeticOut

__all__ = ["CLICK_SIDE", "arithmetic_of", "router"]

router = APIRouter(prefix="/api", tags=["try it"])
CLICK_SIDE = 120  # each map drawn at least this many pixels wide: a 24x24 map's pixels are 5 screen pixels


def _chosen(units: list[Unit], layer: str | None) -> Unit:
    if not units:
        raise ConfigError("this network has no convolution, pooling or residual block to write out")
    if layer is None or not layer.strip():
        return next((u for u in units if u.kind == "conv"), units[0])
    found = next((u for u in units if u.name == layer), None)
    if found is None:
        raise NotFoundError(f"no layer {layer[:80]!r} to write out: choose one of the layers this answer lists")
    return found


def arithmetic_of(units: list[Unit], layer: str | None, channel: int, y: int | None, x: int | None) -> dict[str, Any]:
    """The answer of ``POST /api/arithmetic`` for traced ``units``: the list, the chosen unit's maps, the value."""
    unit = _chosen(units, layer)
    c, h, w = unit.output.shape
    y = h // 2 if y is None else y
    x = w // 2 if x is None else x
    grid, shown, values = feature_grid(unit.output, MAX_STAGE_CHANNELS, CLICK_SIDE)
    return clean({
        "layers": [{"name": u.name, "kind": u.kind, "label": u.label, "shape": list(u.output.shape)} for u in units],
        "layer": {"name": unit.name, "kind": unit.kind, "label": unit.label, "shape": [c, h, w],
                  "image": png_data_url(grid), "layout": grid_layout(shown, h, w, CLICK_SIDE), "values": values},
        "arithmetic": explain_value(unit, channel, y, x),
    })  # fmt: skip


@upload_route(router, "/arithmetic", ArithmeticOut, "how one value of a layer's maps was computed, with its numbers")
async def post_arithmetic(
    upload: ModelUploadDep,
    models: ModelsDep,
    layer: Annotated[str | None, Form(description="a name from this answer's layers (default: the first conv)")] = None,
    channel: Annotated[int, Form(description="the output channel")] = 0,
    y: Annotated[int | None, Form(description="the row (default: the middle)")] = None,
    x: Annotated[int | None, Form(description="the column (default: the middle)")] = None,
) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        sniff(upload.data)
        predictor, lock = models.get(upload.source, upload.epoch)
        with lock:
            prepared = prepare_upload(predictor, upload.data, upload.name)
            units = trace_units(predictor.model, predictor.model_input(prepared.pixels.unsqueeze(0)))
        return arithmetic_of(units, layer, channel, y, x)

    return {"run": upload.label, "epoch": upload.epoch, **await run_in_threadpool(work)}
