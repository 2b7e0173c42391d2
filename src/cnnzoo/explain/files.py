"""The files explanations leave: what ``cnnzoo explain`` writes for pictures and runs, and the two figures of a
finished run's report (``top_losses.png``, ``explained.png``).

Every path is claimed (:func:`cnnzoo.base.outputs.claim_output`) before anything is computed or written, so a
foreign file in the way stops the command before it has done half its work; PNGs carry cnnzoo's mark, so a
rerun replaces its own files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from cnnzoo.base.errors import ConfigError, OutputError
from cnnzoo.base.outputs import claim_output
from cnnzoo.base.plots import save_figure
from cnnzoo.data.batches import ModelView
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.explain.activations import first_conv_filters, stage_activations
from cnnzoo.explain.cam import CamResult, class_activation_maps
from cnnzoo.explain.figures import (
    cam_figure,
    class_grid_figure,
    feature_maps_figure,
    filters_figure,
    top_losses_figure,
)
from cnnzoo.explain.mistakes import Mistake, class_samples, model_inputs, top_losses


class Predictor(Protocol):
    """What :func:`explain_images` needs of a :class:`cnnzoo.serve.predictor.Predictor` (described, not imported:
    the predictor imports the run layer, which imports this module for the report)."""

    model: nn.Module
    classes: list[str]
    input_size: int
    mean: list[float] | None
    std: list[float] | None

    def prepare(self, image: Path) -> Any: ...

    def model_input(self, pixels: Tensor) -> Tensor: ...


__all__ = [
    "ExplainedImage",
    "RunExplanation",
    "explain_images",
    "explain_run",
    "parse_targets",
    "prepare_out_dir",
    "unwrap",
    "write_class_grid",
    "write_top_losses",
]

TOP_LOSSES = 16  # the report's gallery: two rows of eight
REPORT_TOP_K = 3


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a ``DistributedDataParallel`` or ``torch.compile`` wrapper (explanations hook
    submodules by name, and must not run collective operations on one rank)."""
    while True:
        inner = getattr(model, "module", None) if isinstance(model, nn.parallel.DistributedDataParallel) else None
        inner = inner or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def class_index(text: str, classes: Sequence[str], *, what: str = "--target") -> int:
    """The class ``text`` names: a class name, or an index ``0``-``len(classes) - 1`` in ASCII digits (a
    superscript two, a 5,000-digit number or ``-1`` is no index); else a one-line :class:`ConfigError`."""
    text = str(text).strip()
    if text in classes:
        return list(classes).index(text)
    if text.isascii() and text.isdecimal() and len(text) <= 9 and int(text) < len(classes):
        return int(text)
    shown = ", ".join(classes[:20]) + (f" ... ({len(classes)} in all)" if len(classes) > 20 else "")
    raise ConfigError(f"{what} {text[:40]!r} is not a class of this model: give a class name or an index "
                      f"0-{len(classes) - 1} ({shown})")  # fmt: skip


def parse_targets(items: Sequence[str] | None, classes: Sequence[str]) -> list[int]:
    """Class indices of ``--target`` values, each a class name or an index (``[]`` for none given)."""
    return [class_index(item, classes) for item in items or ()]


def prepare_out_dir(directory: str | os.PathLike[str]) -> Path:
    """``directory`` made (with its parents' existence checked) for explanation files."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {path} is a file, not a directory: give a directory for the explanation files")
    if not path.exists() and not path.parent.is_dir():
        raise OutputError(f"--out {path}: its parent {path.parent} does not exist: create it first")
    return path


@dataclass(frozen=True)
class ExplainedImage:
    """One picture ``cnnzoo explain`` explained: the model's top classes, the files written."""

    image: str
    top: list[tuple[str, float]]  # (class, probability), most probable first
    files: list[Path] = field(default_factory=list)


def _stems(paths: Sequence[Path]) -> list[str]:
    """File stems, numbered when two pictures share one (``a/shoe.png`` and ``b/shoe.png``)."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    width = len(str(len(paths)))
    return [f"{i:0{width}d}-{s}" for i, s in enumerate(stems, start=1)]


def explain_images(
    predictor: Predictor,
    paths: Sequence[Path],
    out: Path,
    *,
    targets: Sequence[int] = (),
    top_k: int = 3,
    force: bool = False,
) -> tuple[list[ExplainedImage], Path]:
    """For each picture, ``<stem>-cam.png`` (the input, Grad-CAM for each of ``targets``, or for the predicted
    class when none are given, and the ``top_k`` classes) and ``<stem>-features.png`` (every stage's feature
    maps); once, ``filters.png`` (the first convolution's kernels). Returns the records and the filters file."""
    if top_k < 1:
        raise ConfigError(f"--top-k {top_k}: must be at least 1")
    model = predictor.model
    stems = _stems(paths)
    filters = claim_output(out / "filters.png", "png", flag="--out", force=force)
    planned = [
        (
            claim_output(out / f"{s}-cam.png", "png", flag="--out", force=force, inputs=paths),
            claim_output(out / f"{s}-features.png", "png", flag="--out", force=force, inputs=paths),
        )
        for s in stems
    ]
    prepared = [predictor.prepare(p) for p in paths]  # every picture is read (and refused) before any is written
    out.mkdir(exist_ok=True)
    save_figure(
        filters_figure(first_conv_filters(model), title=f"{_model_name(model)}: first convolution's filters"), filters
    )
    records = []
    for img, (cam_path, features_path) in zip(prepared, planned):
        pixels = img.pixels.unsqueeze(0)
        x = predictor.model_input(pixels)
        wanted = list(targets) or [None]
        cam = _cams(model, x, wanted)
        views = pixels.expand(len(wanted), *pixels.shape[1:])
        save_figure(
            cam_figure(views, cam, predictor.classes, top_k=top_k, titles=[Path(img.path).name] * len(wanted)), cam_path
        )
        stages = stage_activations(model, x)
        save_figure(
            feature_maps_figure(stages, title=f"{Path(img.path).name}: feature maps of each stage"), features_path
        )
        values, indices = cam.probabilities[0].topk(min(top_k, cam.probabilities.shape[1]))
        top = [(predictor.classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]
        records.append(ExplainedImage(img.path, top, [cam_path, features_path]))
    return records, filters


def _model_name(model: nn.Module) -> str:
    return str(getattr(model, "model_name", type(model).__name__))


def _cams(model: nn.Module, x: Tensor, wanted: Sequence[int | None]) -> CamResult:
    """One map per wanted class (None: the predicted one) of the single image ``x``."""
    if wanted == [None]:
        return class_activation_maps(model, x)
    return class_activation_maps(model, x.expand(len(wanted), *x.shape[1:]), [int(t) for t in wanted])


def write_top_losses(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    path: Path,
    *,
    classes: Sequence[str],
    view: ModelView,
    count: int = TOP_LOSSES,
    batch_size: int = 512,
    title: str = "",
) -> list[Mistake]:
    """:func:`~cnnzoo.explain.top_losses` of ``images`` drawn into ``path`` (claimed by the caller); the mistakes.
    ``title`` may say ``{n}``: the number of mistakes shown."""
    model = unwrap(model)
    mistakes = top_losses(model, images, labels, view, k=count, batch_size=batch_size)
    shown = _model_view(images, [m.index for m in mistakes], view.input_size)
    remapped = [Mistake(i, m.true, m.predicted, m.probability, m.loss) for i, m in enumerate(mistakes)]
    save_figure(top_losses_figure(shown, remapped, classes, title=title.format(n=len(mistakes))), path)
    return mistakes


def write_class_grid(
    images: Tensor, labels: Tensor, path: Path, *, classes: Sequence[str], per_class: int = 8, seed: int = 0
) -> dict[int, list[int]]:
    """A seeded sample of ``per_class`` images of every class drawn into ``path``; the indices."""
    samples = class_samples(labels, per_class, seed, num_classes=len(classes))
    save_figure(class_grid_figure(images, samples, classes), path)
    return samples


def _model_view(images: Tensor, indices: Sequence[int], input_size: int) -> Tensor:
    """The images at ``indices`` as the model sees them before normalisation (resized, in [0, 1])."""
    if not indices:
        return torch.zeros((0, 1, input_size, input_size))
    picked = images[torch.as_tensor(list(indices), dtype=torch.long)]
    shown, _ = next(model_inputs(picked, view=ModelView(input_size), batch_size=len(indices)))
    return shown.cpu()


# ------------------------------------------------------------------------------------------------
# the report of a finished run
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunExplanation:
    """What :func:`explain_run` wrote, for ``report.md``: the gallery's mistakes, how many test images are
    wrong in all, and the explained image (its index, true class, top classes and CAM layer)."""

    mistakes: list[dict[str, Any]]
    wrong: int
    total: int
    example: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"mistakes": self.mistakes, "wrong": self.wrong, "total": self.total, "example": self.example}


def explain_run(
    model: nn.Module,
    data: ImageDataset,
    directory: Path,
    view: ModelView,
    *,
    wrong: int,
    batch_size: int = 512,
) -> RunExplanation:
    """Write ``top_losses.png`` (the test split's :data:`TOP_LOSSES` most confident mistakes: one forward pass)
    and ``explained.png`` (the first test image with its Grad-CAM and top 3: one more) into ``directory``.

    ``wrong``: the misclassified test images the final evaluation counted (for the report's sentence).
    Nothing here chooses anything: the test split is shown, not used to pick a model or a setting.
    """
    model = unwrap(model)
    name = _model_name(model)
    classes = list(data.classes)
    gallery = claim_output(directory / "top_losses.png", "png")
    explained = claim_output(directory / "explained.png", "png")
    mistakes = write_top_losses(
        model,
        data.test_images,
        data.test_labels,
        gallery,
        classes=classes,
        view=view,
        batch_size=batch_size,
        title=f"{name}: the {{n}} test images it is most confidently wrong about",
    )
    first = data.test_images[:1]
    x, _ = next(model_inputs(first, view=view, device=_device(model)))
    cam = class_activation_maps(model, x)
    true = int(data.test_labels[0])
    save_figure(
        cam_figure(
            _model_view(first, [0], view.input_size),
            cam,
            classes,
            top_k=REPORT_TOP_K,
            titles=[f"test image 0 (true class {classes[true]})"],
        ),
        explained,
    )
    values, indices = cam.probabilities[0].topk(min(REPORT_TOP_K, len(classes)))
    return RunExplanation(
        mistakes=[
            {"index": m.index, "true": classes[m.true], "predicted": classes[m.predicted], "probability": m.probability}
            for m in mistakes
        ],
        wrong=int(wrong),
        total=int(data.test_labels.numel()),
        example={
            "index": 0,
            "true": classes[true],
            "top": [(classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())],
            "layer": cam.layer,
        },
    )
