"""The zoo page's API: every registered model, its stages (each with its graph: Inception's paths, residual
shortcuts, dense concatenation, NiN blocks; :mod:`cnnzoo.models.graphs`), and the book's Inception cost table.

Models are built on PyTorch's meta device (:func:`cnnzoo.models.registry.meta_model`): shapes, parameters and MACs
without memory or arithmetic. Results are cached per registry content (a test or a user may register models
after the app starts), so the page is instant after the first visit.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query

from cnnzoo.models.graphs import block_graph
from cnnzoo.models.inspection import LayerRow, inception_cost_table, models_table, shape_trace, summary
from cnnzoo.models.references import BOOK_TRACES, D2L_FIGURES, PUBLIC_FIGURES, reference_key
from cnnzoo.models.registry import get_model_info, list_models, meta_model
from cnnzoo.studio.schemas import CostRowOut, ModelDetailOut, ModelOut

__all__ = ["model_detail", "model_rows", "router"]

router = APIRouter(prefix="/api", tags=["zoo"])


@functools.lru_cache(maxsize=4)
def _table(names: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    return tuple(vars(row) for row in models_table(list(names)))


def model_rows() -> list[dict[str, Any]]:
    """:func:`cnnzoo.models.inspection.models_table` as plain rows (cached)."""
    return [dict(r) for r in _table(tuple(list_models()))]


def _layer(row: LayerRow) -> dict[str, Any]:
    shape = list(row.output_shape[1:]) if row.output_shape else None  # per image: without the batch of one
    return {"name": row.name, "type": row.type, "output_shape": shape, "params": row.params, "macs": row.macs}


@functools.lru_cache(maxsize=64)
def _detail(name: str, builder: object) -> dict[str, Any]:
    model = meta_model(name)
    found = summary(model, None, depth=2)
    stages: list[dict[str, Any]] = []
    for row in found.rows:
        if row.depth == 1:
            stages.append({**_layer(row), "children": [], "graph": block_graph(model.get_submodule(row.name))})
        elif stages:
            stages[-1]["children"].append(_layer(row))
    return {
        "input_shape": list(found.input_shape[1:]),
        "trainable_params": found.trainable_params,
        "stages": stages,
    }


def model_detail(name: str) -> dict[str, Any]:
    """A model's row and its stages (top-level children) with their layers, per image (cached).

    An unknown name raises :class:`~cnnzoo.base.errors.UnknownModelError` (404)."""
    info = get_model_info(name)
    row = next((r for r in model_rows() if r["name"] == name), None)
    if row is None:  # registered after the table was cached
        row = dict(_table((name,))[0])
    return {**row, **_detail(name, info.builder), "book": book_ties(name, info.family, info.description)}


def book_ties(name: str, family: str, description: str) -> dict[str, Any]:
    """The book's section of ``name`` (from its description, ``(D2L 7.4)``), the accuracy the book printed for it,
    the public Fashion-MNIST table's figure for its family, and the book's shape trace beside the live one."""
    key = reference_key(name, family)
    section = re.search(r"D2L (\d+\.\d+)", description)
    public = PUBLIC_FIGURES.get(key)
    return {
        "section": section.group(1) if section else None,
        "figures": [vars(f) for f in D2L_FIGURES.get(key, ())],
        "public": None if public is None else {"architecture": public.architecture, "test_acc": public.test_acc},
        "trace": book_trace(name),
    }


@functools.lru_cache(maxsize=64)
def book_trace(name: str) -> dict[str, Any]:
    """The shape trace the book printed for ``name`` (None where it printed none) beside cnnzoo's live one, at the
    side the book traces it at (else the side it trains it at, else the model's own)."""
    info = get_model_info(name)
    side, printed = BOOK_TRACES.get(name, (None, None))
    if side is None:
        side = info.book_training.input_size if info.book_training is not None else info.default_input_size
    live = shape_trace(meta_model(name), side).splitlines()
    return {"side": side, "printed": list(printed) if printed is not None else None, "live": live}


@router.get("/models", response_model=list[ModelOut], summary="every registered model")
def get_models() -> list[dict[str, Any]]:
    return model_rows()


@router.get("/models/{name}", response_model=ModelDetailOut, summary="one model's stages, shapes, parameters, MACs")
def get_model(name: str) -> dict[str, Any]:
    return model_detail(name)


@functools.lru_cache(maxsize=8)
def _costs(side: int) -> list[dict[str, Any]]:
    return [vars(r) for r in inception_cost_table(side)]


@router.get("/inception-cost", response_model=list[CostRowOut], summary="the book's Inception cost table")
def get_inception_cost(
    side: Annotated[int, Query(ge=1, le=512, description="input side")] = 28,
) -> list[dict[str, Any]]:
    return _costs(side)
