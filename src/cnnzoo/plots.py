"""Figures: training curves, confusion matrix, several runs overlaid.

Every figure is a :class:`matplotlib.figure.Figure` drawn by the Agg renderer; pyplot's global state is
never touched, so nothing here needs a display or interferes with a user's own pyplot figures. Files
are written atomically (a viewer refreshing ``curves.png`` mid-run never sees half a PNG).

The live plot for Jupyter, which redraws :func:`curves_figure` in the cell, is :class:`cnnzoo.progress.LivePlot`.
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
from cnnzoo.atomic import atomic_write_bytes

__all__ = ["confusion_figure", "curves_figure", "figure_png", "overlay_figure", "save_figure"]

CURVES = (("train_loss", "train loss"), ("train_acc", "train acc"), ("test_acc", "test acc"))


# The PNG text chunk every figure carries: how cnnzoo.outputs knows a PNG is cnnzoo's to rewrite.
PNG_METADATA = {"Software": f"cnnzoo {__version__}"}


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """``fig`` as PNG bytes, marked ``Software: cnnzoo <version>`` (see :mod:`cnnzoo.outputs`)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata=PNG_METADATA)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Render ``fig`` as PNG and write it atomically."""
    return atomic_write_bytes(path, figure_png(fig, dpi))


def curves_figure(history: Sequence[Mapping[str, Any]], title: str = "", epochs: int | None = None) -> Figure:
    """Train loss, train accuracy and test accuracy against epoch, on one axes (as ``d2l.Animator``)."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    x = [row["epoch"] for row in history]
    for key, label in CURVES:
        ax.plot(x, [row[key] for row in history], marker="o", markersize=3, label=label)
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


def confusion_figure(confusion: Tensor, classes: Sequence[str], title: str = "") -> Figure:
    """The confusion matrix, coloured by row-normalised rate and annotated with counts."""
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
    for i in range(k):
        for j in range(k):
            n = int(counts[i, j])
            if n:
                ax.text(
                    j, i, str(n), ha="center", va="center", fontsize=7, color="white" if rates[i, j] > 0.5 else "black"
                )
    if title:
        ax.set_title(title)
    return fig
