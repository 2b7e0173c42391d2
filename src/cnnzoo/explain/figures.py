"""The pictures of :mod:`cnnzoo.explain`: CAM overlays, feature maps, filters, top losses, a class grid.

Each function returns a :class:`matplotlib.figure.Figure` (Agg, no pyplot state, as :mod:`cnnzoo.base.plots`);
write it with :func:`cnnzoo.base.plots.save_figure` after :func:`cnnzoo.base.outputs.claim_output`. Images are given
as the model sees them before normalisation: uint8 ``[N, C, H, W]`` / ``[N, H, W]``, or float in [0, 1].
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from cnnzoo.explain.activations import StageActivation
from cnnzoo.explain.cam import CamResult
from cnnzoo.explain.mistakes import Mistake

__all__ = [
    "MAX_CHANNELS",
    "MAX_FILTERS",
    "cam_figure",
    "class_grid_figure",
    "feature_maps_figure",
    "filters_figure",
    "top_losses_figure",
]

MAX_CHANNELS = 8  # feature maps drawn per stage: enough to see what a stage does, few enough to read
MAX_FILTERS = 64


def _picture(image: Tensor) -> np.ndarray:
    """One image as ``[H, W]`` or ``[H, W, 3]`` floats in [0, 1] for ``imshow``."""
    a = image.detach().float().cpu()
    if image.dtype.is_floating_point is False:
        a = a / 255.0
    if a.dim() == 3:
        a = a[0] if a.shape[0] == 1 else a[:3].permute(1, 2, 0)
    return a.clamp(0, 1).numpy()


def _show(ax, image: Tensor, **kw) -> None:
    pic = _picture(image)
    ax.imshow(pic, cmap="gray" if pic.ndim == 2 else None, vmin=0, vmax=1, **kw)
    ax.set_xticks([])
    ax.set_yticks([])


def _name(classes: Sequence[str], k: int) -> str:
    return classes[k] if 0 <= k < len(classes) else str(k)


def cam_figure(
    images: Tensor,
    cam: CamResult,
    classes: Sequence[str],
    *,
    top_k: int = 3,
    titles: Sequence[str] | None = None,
) -> Figure:
    """One row per map of ``cam``: the input as the model sees it, the map over it (for its target class),
    and the model's ``top_k`` classes with their probabilities. ``images[i]`` goes with ``cam.maps[i]``
    (repeat an image to show several target classes); ``titles`` head the rows (e.g. the file names)."""
    n = cam.maps.shape[0]
    k = max(1, min(top_k, cam.probabilities.shape[1]))
    fig = Figure(figsize=(9, 2.8 * n + 0.3), layout="constrained")
    axes = np.asarray(fig.subplots(n, 3, squeeze=False, gridspec_kw={"width_ratios": [1, 1, 1.3]}))
    h, w = cam.maps.shape[1:]
    for i in range(n):
        ax_in, ax_cam, ax_bar = axes[i]
        extent = (0, w, h, 0)  # the picture at any size is laid over the map's grid
        _show(ax_in, images[i], extent=extent)
        ax_in.set_title(titles[i] if titles is not None else "input (as the model sees it)", fontsize=8)
        _show(ax_cam, images[i], extent=extent)
        ax_cam.imshow(cam.maps[i].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1, extent=extent)
        target = cam.targets[i]
        p_target = float(cam.probabilities[i, target])
        ax_cam.set_title(f"Grad-CAM for {_name(classes, target)} ({p_target:.0%})", fontsize=8)
        if (note := cam.note(i)) is not None:  # an empty or coarse map says so, where it is drawn
            ax_cam.set_xlabel(note, fontsize=7, color="C3", wrap=True)
        values, indices = cam.probabilities[i].topk(k)
        labels = [_name(classes, j) for j in indices.tolist()]
        colors = ["C3" if j == target else "C0" for j in indices.tolist()]
        ax_bar.barh(range(k), values.tolist(), color=colors)
        ax_bar.set_yticks(range(k), labels=labels, fontsize=8)
        ax_bar.invert_yaxis()
        ax_bar.set_xlim(0, 1)
        for y, v in enumerate(values.tolist()):
            ax_bar.text(min(v, 0.8) + 0.02, y, f"{v:.1%}", va="center", fontsize=8)
        ax_bar.set_title(f"top {k} classes", fontsize=8)
    grid = f", its map {cam.grid[0]}x{cam.grid[1]}" if min(cam.grid) > 0 else ""
    fig.suptitle(f"what the model looks at (layer {cam.layer}{grid})", fontsize=9)
    return fig


def _mosaic(tiles: Tensor, cols: int, gap: int = 1) -> np.ndarray:
    """``tiles`` ``[N, H, W]`` laid out ``cols`` to a row, each scaled to [0, 1] on its own, NaN between them
    (one ``imshow`` instead of one axes per tile: a figure of 64 maps renders in a fraction of the time)."""
    n, h, w = tiles.shape
    rows = math.ceil(n / cols)
    flat = tiles.detach().float().cpu().flatten(1)
    lo, hi = flat.amin(dim=1, keepdim=True), flat.amax(dim=1, keepdim=True)
    scaled = ((flat - lo) / (hi - lo).clamp_min(1e-12)).view(n, h, w)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = scaled[i].numpy()
    return out


def _mosaic_axes(ax, mosaic: np.ndarray, cmap: str) -> None:
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="white")
    ax.imshow(mosaic, cmap=colormap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def feature_maps_figure(
    stages: Sequence[StageActivation],
    *,
    image: int = 0,
    max_channels: int = MAX_CHANNELS,
    title: str = "",
) -> Figure:
    """The shape trace made visible: one row per stage with a 4-D output (its first ``max_channels``
    channels for image ``image``, each scaled to its own range), titled with the stage and its shape. Stages
    whose output is flat (the classifier's head) are listed at the top rather than drawn."""
    maps = [s for s in stages if len(s.shape) == 4]
    flat = [s for s in stages if len(s.shape) != 4]
    cols = max(1, min(max_channels, max((s.shape[1] for s in maps), default=1)))
    rows = max(1, len(maps))
    fig = Figure(figsize=(1.2 * cols + 0.4, 1.45 * rows + 0.8), layout="constrained")
    axes = np.asarray(fig.subplots(rows, 1, squeeze=False))[:, 0]
    for ax in axes:
        ax.set_axis_off()
    for ax, stage in zip(axes, maps):
        out = stage.output[image]
        shown = min(cols, out.shape[0])
        ax.set_axis_on()
        _mosaic_axes(ax, _mosaic(out[:shown], cols), "viridis")
        part = f" (first {shown} of {out.shape[0]} channels)" if shown < out.shape[0] else ""
        ax.set_title(f"{stage.label}: {list(stage.shape)}{part}", fontsize=8, loc="left")
    footer = textwrap.fill("; ".join(f"{s.label}: {list(s.shape)}" for s in flat), 110)
    heading = title or "feature maps of each stage"
    fig.suptitle(heading + (f"\nthen {footer}" if footer else ""), fontsize=8)
    return fig


def filters_figure(weights: Tensor, *, max_filters: int = MAX_FILTERS, title: str = "") -> Figure:
    """The first layer's kernels as small pictures, in order, eight to a row, each scaled to its own range
    (grey for one input channel, the mean over the channels for more)."""
    w = weights.detach().float().cpu()[:max_filters]
    n = w.shape[0]
    cols = min(8, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(0.8 * cols + 0.6, 0.8 * rows + 0.7), layout="constrained")
    ax = fig.add_subplot()
    _mosaic_axes(ax, _mosaic(w.mean(dim=1), cols), "gray")
    shape = list(weights.shape)
    more = f", the first {n}" if n < weights.shape[0] else ""
    fig.suptitle(title or f"first convolution's filters {shape}{more}", fontsize=9)
    ax.set_title("in order, 8 to a row, each scaled to its own range", fontsize=8)
    return fig


def _grid(n: int, cols: int, cell: float = 1.5) -> tuple[Figure, np.ndarray]:
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(cell * cols + 0.4, (cell + 0.45) * rows + 0.5))
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes


def top_losses_figure(
    images: Tensor, mistakes: Sequence[Mistake], classes: Sequence[str], *, cols: int = 8, title: str = ""
) -> Figure:
    """The mistakes of :func:`~cnnzoo.explain.top_losses`, most confident first: each image with its true
    class, what the model took it for and with what probability. ``images`` is indexed by ``Mistake.index``."""
    fig, axes = _grid(max(1, len(mistakes)), cols)
    for ax, m in zip(axes.flat, mistakes):
        _show(ax, images[m.index])
        ax.set_axis_on()
        ax.set_title(
            f"true {_name(classes, m.true)}\nsaid {_name(classes, m.predicted)} {m.probability:.0%}", fontsize=7
        )
    if not mistakes:
        axes.flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle(title or f"the {len(mistakes)} most confident mistakes (highest loss first)", fontsize=9)
    return fig


def class_grid_figure(
    images: Tensor, samples: Mapping[int, Sequence[int]], classes: Sequence[str], *, title: str = ""
) -> Figure:
    """One row per class of ``samples`` (:func:`~cnnzoo.explain.class_samples`), its images side by side
    (as they are, not rescaled), the class name at the start of the row."""
    rows = max(1, len(samples))
    cols = max(1, max((len(v) for v in samples.values()), default=1))
    fig = Figure(figsize=(0.9 * cols + 1.6, 0.95 * rows + 0.5), layout="constrained")
    axes = np.asarray(fig.subplots(rows, 1, squeeze=False))[:, 0]
    h, w = images.shape[-2:]
    for ax, (label, indices) in zip(axes, samples.items()):
        strip = np.full((h, cols * (w + 1) - 1, 3), 1.0)  # white between and after the images
        for c, index in enumerate(indices):
            pic = _picture(images[index])
            strip[:, c * (w + 1) : c * (w + 1) + w] = pic[..., None] if pic.ndim == 2 else pic
        ax.imshow(strip, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_ylabel(_name(classes, label), rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title or f"{cols} images of each class", fontsize=9)
    return fig
