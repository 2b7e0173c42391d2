"""A trained model ready to classify pictures, in one call: ``cnnzoo.load_model(RUN_DIR or CKPT)``.

:func:`load_model` reads a checkpoint (a run directory means its ``last.pt``) and returns a :class:`Predictor`
that prepares any picture as :func:`cnnzoo.predict.load_image` does (grayscale, polarity, square, the model's
input size, the checkpoint's normalisation) and classifies many of them in batches::

    model = cnnzoo.load_model("runs/lenet_bn-20261201-120000")
    model.predict(["shoe.jpg", "photos/"], top_k=3)      # files, directories, glob patterns

``cnnzoo predict`` is this, printed.
"""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, PngImagePlugin
from torch import nn

from cnnzoo.atomic import atomic_write_bytes
from cnnzoo.checkpoint import load_checkpoint, model_from_checkpoint
from cnnzoo.data import MNIST_LIKE, dataset_name
from cnnzoo.data.datasets import IMAGE_SUFFIXES
from cnnzoo.devices import resolve_device
from cnnzoo.errors import ConfigError, ImageError, OutputError
from cnnzoo.outputs import claim_output
from cnnzoo.plots import PNG_METADATA
from cnnzoo.predict import PreparedImage, load_image, predict_tensors, prediction_records
from cnnzoo.run.directory import resolve_run_dir

__all__ = ["BATCH", "MAX_IMAGES", "Predictor", "expand_images", "load_model"]

BATCH = 256  # pictures prepared and classified at a time: memory stays bounded however many are given
MAX_IMAGES = 100_000  # one call's limit; more is a mistyped pattern, not a job


def expand_images(items: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The image files ``items`` name: a file as it is, a directory's image files (by suffix, sorted, not
    recursive), a glob pattern's matches (sorted). A missing file stays in the list, so reading it names it."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise ImageError(
                    f"{path}: no images in this directory (files ending in {', '.join(IMAGE_SUFFIXES[:3])}, ...): "
                    "give image files, or a directory that holds some"
                )
            out += found
        elif not path.exists() and glob.has_magic(str(path)):
            found = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
            if not found:
                raise ImageError(f"{path}: the pattern matches no file: check it, or quote it for the shell")
            out += found
        else:
            out.append(path)
        if len(out) > MAX_IMAGES:
            raise ConfigError(f"more than {MAX_IMAGES:,} images in one call: give fewer, or call it in parts")
    return out


@dataclass
class Predictor:
    """A model from a checkpoint with what it takes to prepare pictures for it."""

    model: nn.Module
    classes: list[str]
    input_size: int
    in_channels: int
    mean: list[float] | None
    std: list[float] | None
    invert: str  # auto | yes | no (see cnnzoo.predict)
    checkpoint: Path

    def prepare(self, image: str | os.PathLike[str]) -> PreparedImage:
        """The picture at ``image`` as the model sees it (``.pixels``: uint8 ``[C, S, S]``)."""
        return load_image(image, size=self.input_size, in_channels=self.in_channels, invert=self.invert)

    def predict(
        self,
        images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        top_k: int = 3,
        save_input: str | os.PathLike[str] | None = None,
    ) -> list[dict[str, Any]]:
        """One record per picture (``image``, ``size``, ``mode``, ``inverted``, ``top``: rank, label, class and
        probability of the ``top_k`` classes), in the order given, directories and patterns expanded.

        ``save_input``: a directory (made if missing) that receives each picture exactly as the model sees it,
        ``NNNN-<name>.png`` at the model's input size, before normalisation; the record's ``input`` names it."""
        if top_k < 1:
            raise ConfigError(f"--top-k {top_k}: must be at least 1")
        items = [images] if isinstance(images, str | os.PathLike) else list(images)
        paths = expand_images(items)
        targets = _input_targets(Path(save_input), paths) if save_input is not None else None
        records: list[dict[str, Any]] = []
        for start in range(0, len(paths), BATCH):
            prepared = [self.prepare(p) for p in paths[start : start + BATCH]]
            pixels = torch.stack([img.pixels for img in prepared])
            values, indices = predict_tensors(self.model, pixels, mean=self.mean, std=self.std, top_k=top_k)
            batch = prediction_records(prepared, values, indices, self.classes)
            if targets is not None:
                for record, img, target in zip(batch, prepared, targets[start : start + BATCH]):
                    atomic_write_bytes(target, _input_png(img))
                    record["input"] = str(target)
            records += batch
        return records


def _input_targets(directory: Path, paths: Sequence[Path]) -> list[Path]:
    """The files ``--save-input`` will write, all checked before any is written (a foreign file is refused)."""
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"--save-input {directory} is not a directory: give a directory for the model's inputs")
    if not directory.parent.is_dir():
        raise OutputError(f"--save-input {directory}: its parent {directory.parent} does not exist: create it first")
    width = max(4, len(str(len(paths))))
    targets = [directory / f"{i:0{width}d}-{p.stem}.png" for i, p in enumerate(paths, start=1)]
    for target in targets:
        claim_output(target, "png", flag="--save-input")
    directory.mkdir(exist_ok=True)
    return targets


def _input_png(img: PreparedImage) -> bytes:
    """The prepared pixels as a PNG marked as cnnzoo's (so a rerun may replace it)."""
    pixels = img.pixels.numpy()
    picture = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
    info = PngImagePlugin.PngInfo()
    for key, value in PNG_METADATA.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    picture.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def load_model(path: str | os.PathLike[str], *, device: str = "cpu", invert: str | None = None) -> Predictor:
    """The :class:`Predictor` of the checkpoint at ``path`` (a run directory: its ``last.pt``).

    ``invert`` None decides by the training data: ``auto`` for Fashion-MNIST, MNIST and KMNIST, whose objects
    are light on black (a light-background photo is inverted), ``no`` for other datasets and your own folders.
    """
    _, ckpt_path = resolve_run_dir(path)
    ckpt = load_checkpoint(ckpt_path)
    pre = ckpt["preprocess"]
    if invert is None:
        invert = "auto" if dataset_name(ckpt["config"].get("dataset", "fashion-mnist")) in MNIST_LIKE else "no"
    model = model_from_checkpoint(ckpt).to(resolve_device(device)).eval()
    return Predictor(
        model=model,
        classes=list(pre["classes"]),
        input_size=int(pre["input_size"]),
        in_channels=int(pre["in_channels"]),
        mean=pre["mean"],
        std=pre["std"],
        invert=invert,
        checkpoint=ckpt_path,
    )
