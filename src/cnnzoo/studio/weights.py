"""The studio's trained weights: ``GET /api/weights`` lists the named weights (:mod:`cnnzoo.weights`), so a
fresh install with no runs still has models to try; ``POST /api/predict`` takes ``weight=NAME`` where it takes
``run=ID``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cnnzoo.studio.schemas import WeightOut
from cnnzoo.weights import list_weights
from cnnzoo.weights.obtain import describe_sources

__all__ = ["router", "weight_rows"]

router = APIRouter(prefix="/api", tags=["weights"])


def weight_rows() -> list[dict[str, Any]]:
    """Every weight with its figures and whether its file is on this machine (``available``)."""
    weights = list_weights()
    where = describe_sources(weights)
    return [
        {
            "name": w.name,
            "model": w.model,
            "dataset": w.dataset,
            "input_size": w.input_size,
            "classes": list(w.classes),
            "test_acc": w.test_acc,
            "test_acc_mean": w.meta.get("test_acc_mean"),
            "test_acc_std": w.meta.get("test_acc_std"),
            "seeds": len(w.meta.get("seeds", [])),
            "bytes": w.bytes,
            "where": where[w.name],
            "available": where[w.name] != "build or fetch",
        }
        for w in weights
    ]


@router.get(
    "/weights", response_model=list[WeightOut], summary="the trained weights that ship with cnnzoo (and others)"
)
def get_weights() -> list[dict[str, Any]]:
    return weight_rows()
