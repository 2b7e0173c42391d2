"""Figures: training curves, confusion matrix, several runs overlaid.

Every figure is a :class:`matplotlib.figure.Figure` drawn by the Agg renderer; pyplot's global state is
never touched, so nothing here needs a display or interferes with a user's own pyplot figures. Files
are written atomically (a viewer refreshing ``curves.png`` mid-run never sees half a PNG).

The live plot for Jupyter, which redraws :func:`curves_figure` in the cell, is :class:`cnnzoo.run.progress.LivePlot`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# No matplotlib.use(): a Figure made without pyplot renders with Agg on savefig by itself, and choosing a
# backend here would switch a notebook's inline backend off for the user's own plt figures.
from matplotlib.figure import Figure
from torch import Tensor

from cnnzoo._version import __version__
from cnnzoo.base.atomic import atomic_write_bytes

__all__ = [
    "MAX_MATRIX_CLASSES",
    "confusion_figure",
    "curves_figure",
    "figure_png",
    "overlay_figure",
    "save_figure",
    "top_confusions",
    "top_confusions_figure",
]

CURVES = (("train_loss", "train loss"), ("train_acc", "train acc"), ("test_acc", "test acc"))


# The PNG text chunk every figure carries: how cnnzoo.base.outputs knows a PNG is cnnzoo's to rewrite.
PNG_METADATA = {"Software": f"cnnzoo {__version__}"}


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """``fig`` as PNG bytes, marked ``Software: cnnzoo <version>`` (see :mod:`cnnzoo.base.outputs`)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata=PNG_METADATA)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Render ``fig`` as PNG and write it atomically."""
    return atomic_write_bytes(path, figure_png(fig, dpi))


def curves_figure(history: Sequence[Mapping[str, Any]], title: str = "", epochs: int | None = None) -> Figure:
    """Train loss, train accuracy, validation accuracy (when the run has a validation split) and test
    accuracy against epoch, on one axes (as ``d2l.Animator``)."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    x = [row["epoch"] for row in history]
    curves = list(CURVES)
    if any(row.get("val_acc") is not None for row in history):
        curves.insert(2, ("val_acc", "val acc"))
    for key, label in curves:
        y = [row.get(key) if row.get(key) is not None else float("nan") for row in history]
        ax.plot(x, y, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    if epochs:
        ax.set_xlim(0.5, max(epochs, 1) + 0.5)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return fig


def overlay_figure(runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> Figure:
    """One panel per curve (train loss, train acc, test acc), one colour per run, labelled by run."""
    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, len(CURVES))
    for ax, (key, label) in zip(axes, CURVES):
        for name, history in runs:
            ax.plot([r["epoch"] for r in history], [r[key] for r in history], marker="o", markersize=3, label=name)
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    axes[-1].legend(loc="best", fontsize="small")
    return fig


MAX_MATRIX_CLASSES = 30  # above this a matrix is unreadable and its figure grows with the square of the classes
TOP_CONFUSIONS = 25  # what is drawn instead: the most frequent (true, predicted) mistakes


def confusion_figure(confusion: Tensor, classes: Sequence[str], title: str = "") -> Figure:
    """The confusion matrix, coloured by row-normalised rate and annotated with counts; for more than
    :data:`MAX_MATRIX_CLASSES` classes, a bar chart of the most frequent mistakes instead (bounded in size
    and time however many classes there are)."""
    if len(classes) > MAX_MATRIX_CLASSES:
        return top_confusions_figure(confusion, classes, title=title)
    counts = confusion.cpu().double()
    rates = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
    k = len(classes)
    fig = Figure(figsize=(1.2 + 0.62 * k, 0.9 + 0.55 * k))
    ax = fig.add_subplot()
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(k), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(k), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, j in (counts > 0).nonzero().tolist():
        color = "white" if rates[i, j] > 0.5 else "black"
        ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=7, color=color)
    if title:
        ax.set_title(title)
    return fig


def top_confusions(confusion: Tensor, classes: Sequence[str], n: int = TOP_CONFUSIONS) -> list[dict[str, Any]]:
    """The ``n`` most frequent mistakes: true class, predicted class, count and share of the true class."""
    counts = confusion.cpu().double()
    totals = counts.sum(dim=1).clamp_min(1)
    off = counts.clone()
    off.fill_diagonal_(0)
    flat = off.flatten()
    k = min(n, int((flat > 0).sum()))
    values, index = flat.topk(k) if k else (flat[:0], flat[:0].long())
    size = counts.shape[1]
    return [
        {
            "true": classes[i // size],
            "predicted": classes[i % size],
            "count": int(v),
            "share": float(v / totals[i // size]),
        }
        for v, i in zip(values.tolist(), index.tolist())
    ]


def top_confusions_figure(confusion: Tensor, classes: Sequence[str], title: str = "") -> Figure:
    """A horizontal bar chart of :func:`top_confusions`: one bar per (true -> predicted) pair."""
    rows = top_confusions(confusion, classes)
    fig = Figure(figsize=(8, 1.2 + 0.3 * max(1, len(rows))))
    ax = fig.add_subplot()
    labels = [f"{r['true']} -> {r['predicted']}" for r in rows]
    ax.barh(range(len(rows)), [r["count"] for r in rows], color="C3")
    ax.set_yticks(range(len(rows)), labels=labels, fontsize=7)
    ax.invert_yaxis()
    for y, r in enumerate(rows):
        ax.text(r["count"], y, f" {r['count']} ({r['share']:.0%} of {r['true']})", va="center", fontsize=7)
    ax.set_xlabel("test images mistaken")
    accuracy = float(confusion.diagonal().sum()) / max(1, int(confusion.sum()))
    heading = f"{len(classes)} classes (too many for a matrix): the {len(rows)} most frequent mistakes"
    ax.set_title(f"{title}\n{heading}" if title else f"accuracy {accuracy:.4f}; {heading}", fontsize=9)
    ax.margins(x=0.3)
    return fig
