"""A trained model ready to classify pictures, in one call: ``cnnzoo.load_model(RUN_DIR or CKPT)``.

:func:`load_model` reads a checkpoint (a run directory means its ``last.pt``; a weight's name, such as
``"lenet_bn.fashion_mnist"``, means that trained weight) and returns a :class:`Predictor`
that prepares any picture as :func:`cnnzoo.data.pictures.load_image` does (grayscale, polarity, for Fashion-MNIST-like
models the background levelled and the object cropped, square, the model's input size, the checkpoint's
normalisation) and classifies many of them in batches::

    model = cnnzoo.load_model("runs/lenet_bn-20261201-120000")
    model.predict(["shoe.jpg", "photos/"], top_k=3)      # files, directories, glob patterns

An upload (bytes in memory) goes the same way: ``model.prepare_bytes(data, "upload.jpg")``; the format is
sniffed from the content, never from the name. ``cnnzoo predict`` is this, printed.
"""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, PngImagePlugin
from torch import Tensor, nn

from cnnzoo.base.atomic import atomic_write_bytes
from cnnzoo.base.devices import resolve_device
from cnnzoo.base.errors import ArgumentTypeError, ConfigError, ImageError, OutputError
from cnnzoo.base.modes import eval_mode
from cnnzoo.base.outputs import claim_output
from cnnzoo.base.plots import PNG_METADATA
from cnnzoo.data import MNIST_LIKE, ModelView, dataset_name
from cnnzoo.data.datasets import IMAGE_SUFFIXES
from cnnzoo.data.pictures import PREPROCESS_CHOICES, PreparedImage, load_image
from cnnzoo.data.preprocessing import preprocess_spec
from cnnzoo.run.sources import load_trained
from cnnzoo.train.checkpoint import model_from_checkpoint

__all__ = [
    "BATCH",
    "FILL",
    "LOW_CONFIDENCE",
    "LOW_CONFIDENCE_SMOOTHED",
    "MAX_IMAGES",
    "Predictor",
    "expand_images",
    "load_model",
    "picture_defaults",
    "predict_tensors",
    "warning_summary",
]

BATCH = 256  # pictures prepared and classified at a time: memory stays bounded however many are given
MAX_IMAGES = 100_000  # one call's limit; more is a mistyped pattern, not a job
# How much of the frame the object's longer side fills in the training data: Fashion-MNIST's objects span the
# whole 28 pixels (measured on the test set: median 28 of 28 above grey level 30); MNIST's digits were fitted in
# a 20x20 box of the 28x28 frame (its documentation), and KMNIST follows MNIST's format.
FILL = {"fashion-mnist": 1.0, "mnist": 20 / 28, "kmnist": 20 / 28}
# Below this top probability a prediction is flagged, when the model carries no bound of its own (a checkpoint
# records cnnzoo.train.metrics.low_confidence_bound of its validation split: where its predictions were, together,
# right at most half the time). The fallbacks, measured that way: a model trained without label smoothing, 0.4;
# with label smoothing (every fast recipe's 0.1), which squeezes the probabilities, 0.5 (the six shipped weights'
# own bounds, on their 5,000 validation images, are 0.45 to 0.6; lenet_bn's 0.51 flags about 5 % of them).
LOW_CONFIDENCE = 0.4
LOW_CONFIDENCE_SMOOTHED = 0.5


def expand_images(items: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The image files ``items`` name: a file as it is, a directory's image files (by suffix, sorted, not
    recursive), a glob pattern's matches (sorted). A missing file stays in the list, so reading it names it."""
    out: list[Path] = []
    for item in items:
        if not str(item).strip():  # Path("") is the working directory: an unset variable, not a choice
            raise ImageError("a picture's path is empty (an unset variable?): give an image file or a directory")
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
    invert: str  # auto | yes | no (see cnnzoo.data.pictures)
    checkpoint: Path  # the checkpoint or weight file it came from
    weight: str | None = None  # the weight's name (cnnzoo.weights), None for a run's checkpoint
    preprocess: str = "none"  # auto | none: level the background and crop to the object (see cnnzoo.data.pictures)
    fill: float = 1.0  # the object's longer side over the frame's, after cropping
    check: bool = False  # warn when a picture does not look like Fashion-MNIST (its measured bounds)
    low_confidence: float = LOW_CONFIDENCE  # warn when the top probability is below this

    @property
    def name(self) -> str:
        """The weight's name, or the checkpoint file's name."""
        return self.weight or self.checkpoint.name

    @property
    def view(self) -> ModelView:
        """How the model sees images: its input side and normalisation."""
        return ModelView(self.input_size, self.mean, self.std)

    def prepare(self, image: str | os.PathLike[str] | IO[bytes] | bytes, *, name: str | None = None) -> PreparedImage:
        """The picture ``image`` (a path, an open binary file, or its bytes) as the model sees it (``.pixels``:
        uint8 ``[C, S, S]``); ``name`` labels a picture that is not a path, in errors and records."""
        steps = {"invert": self.invert, "preprocess": self.preprocess, "fill": self.fill, "check": self.check}
        return load_image(image, size=self.input_size, in_channels=self.in_channels, name=name, **steps)

    def model_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """Prepared uint8 pixels ``[N, C, S, S]`` as the model's normalised float input, on its device."""
        return model_input(pixels, mean=self.mean, std=self.std, device=next(self.model.parameters()).device)

    def prepare_bytes(self, data: bytes, name: str = "upload") -> PreparedImage:
        """An uploaded picture's bytes as the model sees it, exactly as :meth:`prepare` prepares a file
        (``name`` only labels it, in errors and records: the format is read from the content)."""
        return self.prepare(data, name=name)

    def classify(self, prepared: Sequence[PreparedImage], *, top_k: int = 3) -> list[dict[str, Any]]:
        """Records (as :meth:`predict` returns) of pictures already prepared, e.g. by :meth:`prepare_bytes`."""
        _check_top_k(top_k)
        for item in prepared:
            if not isinstance(item, PreparedImage):
                raise ArgumentTypeError(f"classify takes pictures prepare() returned, not {type(item).__name__}: "
                                        "give paths, bytes or pictures to predict()")  # fmt: skip
        records: list[dict[str, Any]] = []
        for start in range(0, len(prepared), BATCH):
            batch = list(prepared[start : start + BATCH])
            pixels = torch.stack([img.pixels for img in batch])
            values, indices = predict_tensors(self.model, pixels, mean=self.mean, std=self.std, top_k=top_k)
            records += prediction_records(batch, values, indices, self.classes, low_confidence=self.low_confidence)
        return records

    def records_of(
        self, prepared: Sequence[PreparedImage], probabilities: torch.Tensor, *, top_k: int = 3
    ) -> list[dict[str, Any]]:
        """The records :meth:`classify` makes, from the model's softmax ``[N, num_classes]`` for ``prepared``
        computed elsewhere (the studio's one forward pass also feeds Grad-CAM and the feature maps)."""
        _check_top_k(top_k)
        values, indices = _top_k(probabilities, top_k)
        return prediction_records(prepared, values, indices, self.classes,
                                  low_confidence=self.low_confidence)  # fmt: skip

    def predict(
        self,
        images: Any,
        *,
        top_k: int = 3,
        save_input: str | os.PathLike[str] | None = None,
    ) -> list[dict[str, Any]]:
        """One record per picture (``image``, ``size``, ``mode``, ``inverted``, ``preprocessed``, ``top``: rank,
        label, class and probability of the ``top_k`` classes, ``warning``: None or why not to trust it), in the
        order given, directories and patterns expanded.

        ``images``: one picture or a list of them, each a path (a file, a directory of images, a glob pattern),
        the bytes of an image file, a PIL image, a NumPy array ``[H, W]``, ``[H, W, 3]`` or ``[H, W, 4]`` (uint8
        0-255 or float 0-1, as PIL and matplotlib lay pictures out) or a tensor ``[C, H, W]`` or ``[H, W]``
        (uint8, or float 0-1, as torchvision does). A picture in memory is called ``picture N`` in the records.

        ``save_input``: a directory (made if missing) that receives each picture exactly as the model sees it,
        ``NNNN-<name>.png`` at the model's input size, before normalisation; the record's ``input`` names it."""
        _check_top_k(top_k)
        if not _is_one_picture(images) and not isinstance(images, Iterable):
            raise ArgumentTypeError(f"predict takes a picture or a list of them (paths, bytes, PIL images, arrays, "
                                    f"tensors), not {type(images).__name__}")  # fmt: skip
        items = [images] if _is_one_picture(images) else list(images)
        paths = _expand(items)
        targets = _input_targets(save_input, paths) if save_input is not None else None
        records: list[dict[str, Any]] = []
        created: list[Path] = []  # --save-input's new files: taken back if a later picture fails
        try:
            for start in range(0, len(paths), BATCH):
                prepared = [self.prepare(p) if isinstance(p, Path) else self.prepare(p[1], name=p[0])
                            for p in paths[start : start + BATCH]]  # fmt: skip
                batch = self.classify(prepared, top_k=top_k)
                for record, img, target in zip(batch, prepared, (targets or [])[start : start + BATCH]):
                    if not target.exists():
                        created.append(target)
                    atomic_write_bytes(target, _input_png(img))
                    record["input"] = str(target)
                records += batch
        except BaseException:
            for path in created:
                path.unlink(missing_ok=True)
            raise
        return records


_IN_MEMORY = (bytes, bytearray, Image.Image, np.ndarray, torch.Tensor)


def _is_one_picture(images: Any) -> bool:
    return isinstance(images, (str, os.PathLike, *_IN_MEMORY))


def _expand(items: Sequence[Any]) -> list[Path | tuple[str, Any]]:
    """Paths expanded (directories, patterns) with :func:`expand_images`; a picture in memory kept as
    ``(label, picture)``, labelled by its place in the call (``picture 3``)."""
    out: list[Path | tuple[str, Any]] = []
    for i, item in enumerate(items, start=1):
        if isinstance(item, _IN_MEMORY):
            out.append((f"picture {i}", item))
        elif isinstance(item, str | os.PathLike):
            out += expand_images([item])
        else:
            raise ArgumentTypeError(f"picture {i} is of type {type(item).__name__}: give a path, bytes, a PIL image, "
                                    "an array or a tensor")  # fmt: skip
        if len(out) > MAX_IMAGES:
            raise ConfigError(f"more than {MAX_IMAGES:,} images in one call: give fewer, or call it in parts")
    return out


def _input_targets(save_input: str | os.PathLike[str], paths: Sequence[Path | tuple[str, Any]]) -> list[Path]:
    """The files ``--save-input`` will write, all checked before any is written (a foreign file, or one of the
    pictures being read, is refused)."""
    if not str(save_input).strip():  # Path("") is the working directory: an unset variable, not a choice
        raise OutputError("--save-input is empty (an unset variable?): give a directory for the model's inputs")
    directory = Path(save_input)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"--save-input {directory} is not a directory: give a directory for the model's inputs")
    if not directory.parent.is_dir():
        raise OutputError(f"--save-input {directory}: its parent {directory.parent} does not exist: create it first")
    width = max(4, len(str(len(paths))))
    stems = [p.stem if isinstance(p, Path) else p[0].replace(" ", "-") for p in paths]
    targets = [directory / f"{i:0{width}d}-{stem}.png" for i, stem in enumerate(stems, start=1)]
    reading = {p.resolve() for p in paths if isinstance(p, Path)}
    for target in targets:
        if target.resolve() in reading:
            raise OutputError(f"--save-input would write {target}, one of the pictures being read: choose another "
                              "directory")  # fmt: skip
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


def load_model(
    path: str | os.PathLike[str],
    *,
    device: str = "cpu",
    invert: str | None = None,
    preprocess: str | None = None,
) -> Predictor:
    """The :class:`Predictor` of the checkpoint at ``path`` (a run directory: its ``last.pt``), or of a named
    weight (``"lenet_bn.fashion_mnist"``, :mod:`cnnzoo.weights`).

    ``invert`` and ``preprocess`` None decide by the training data: for Fashion-MNIST, MNIST and KMNIST, whose
    objects are light on black and fill the frame, ``auto`` (a light-background photo is inverted, its
    background levelled and the object cropped); for other datasets and your own folders ``no`` and ``none``
    (a folder's pictures were trained on as they are). Pictures are checked against Fashion-MNIST's look
    (:func:`cnnzoo.data.pictures.picture_warning`) for Fashion-MNIST models only.
    """
    _, ckpt = load_trained(path)
    pre = ckpt["preprocess"]
    dataset = dataset_name(ckpt["config"].get("dataset", "fashion-mnist"))
    defaults = picture_defaults(ckpt)
    invert = defaults["invert"] if invert is None else invert
    preprocess = defaults["preprocess"] if preprocess is None else preprocess
    if preprocess not in PREPROCESS_CHOICES:
        raise ConfigError(f"--preprocess {preprocess}: choose auto or none")
    model = model_from_checkpoint(ckpt).to(resolve_device(device)).eval()
    return Predictor(
        model=model,
        classes=list(pre["classes"]),
        input_size=int(pre["input_size"]),
        in_channels=int(pre["in_channels"]),
        mean=pre["mean"],
        std=pre["std"],
        invert=invert,
        checkpoint=Path(ckpt["path"]),
        weight=ckpt.get("weight"),
        preprocess=preprocess,
        fill=defaults["fill"],
        check=dataset == "fashion-mnist",
        low_confidence=low_confidence_of(ckpt),
    )


def _check_top_k(top_k: Any) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise ArgumentTypeError(f"top_k must be a whole number such as 3, not {top_k!r:.40}")
    if top_k < 1:
        raise ConfigError(f"--top-k {top_k}: must be at least 1")


def picture_defaults(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """How :func:`load_model` prepares pictures for ``ckpt`` by default (``invert``, ``preprocess``, ``fill``):
    decided by the training data, see there."""
    dataset = dataset_name(ckpt["config"].get("dataset", "fashion-mnist"))
    like = dataset in MNIST_LIKE
    return {
        "invert": "auto" if like else "no",
        "preprocess": "auto" if like else "none",
        "fill": FILL.get(dataset, 1.0),
    }


def preprocess_spec_of(ckpt: Mapping[str, Any], *, in_graph: bool = False) -> dict[str, Any]:
    """:func:`cnnzoo.data.preprocessing.preprocess_spec` of ``ckpt`` with :func:`picture_defaults`."""
    pre = ckpt["preprocess"]
    return preprocess_spec(
        size=int(pre["input_size"]),
        in_channels=int(pre["in_channels"]),
        mean=pre["mean"],
        std=pre["std"],
        in_graph=in_graph,
        **picture_defaults(ckpt),
    )


def low_confidence_of(ckpt: Mapping[str, Any]) -> float:
    """The top probability below which ``ckpt``'s predictions are flagged: its own bound (from its validation
    split) when it has one, else the measured fallback for its label smoothing (:data:`LOW_CONFIDENCE`)."""
    bound = ckpt["preprocess"].get("low_confidence")
    if bound is not None:
        return float(bound)
    smoothing = ckpt["config"].get("label_smoothing", 0.0)
    smoothed = isinstance(smoothing, int | float) and smoothing > 0
    return LOW_CONFIDENCE_SMOOTHED if smoothed else LOW_CONFIDENCE


def model_input(
    pixels: Tensor, *, mean: Sequence[float] | None, std: Sequence[float] | None, device: torch.device | str = "cpu"
) -> Tensor:
    """uint8 images ``[N, C, S, S]`` (already at the model's input size) as the model's float input: ``/ 255``,
    then the checkpoint's ``mean``/``std`` (``None``: scaled to [0, 1] only)."""
    x = pixels.to(device, torch.float32) / 255.0
    if mean is not None and std is not None:
        m = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        s = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        x = (x - m) / s
    return x


def predict_tensors(
    model: nn.Module,
    pixels: Tensor,
    *,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    top_k: int = 3,
) -> tuple[Tensor, Tensor]:
    """Top-``k`` probabilities and class indices for uint8 images ``[N, C, S, S]`` (in eval mode).

    ``mean``/``std`` are the checkpoint's normalisation (``None``: pixels scaled to [0, 1] only).
    """
    x = model_input(pixels, mean=mean, std=std, device=next(model.parameters()).device)
    with eval_mode(model), torch.inference_mode():
        probs = torch.softmax(model(x).float(), dim=1)
    return _top_k(probs, top_k)


def _top_k(probabilities: Tensor, top_k: int) -> tuple[Tensor, Tensor]:
    """The ``top_k`` largest probabilities of each row and their classes (at most every class), on the CPU."""
    values, indices = probabilities.topk(max(1, min(top_k, probabilities.shape[1])), dim=1)
    return values.cpu(), indices.cpu()


def prediction_records(
    images: Sequence[PreparedImage],
    values: Tensor,
    indices: Tensor,
    classes: Sequence[str],
    *,
    low_confidence: float = LOW_CONFIDENCE,
) -> list[dict[str, Any]]:
    """Plain records (the ``--json`` output) of :func:`predict_tensors`' result.

    ``warning`` is the picture's own (:attr:`PreparedImage.warning`), else ``low confidence`` when the top
    probability is below ``low_confidence``, else None.
    """
    records = []
    for img, vals, idxs in zip(images, values.tolist(), indices.tolist()):
        warning = img.warning
        if warning is None and vals[0] < low_confidence:
            warning = f"low confidence (top probability {vals[0]:.2f} < {low_confidence:g})"
        records.append(
            {
                "image": img.path,
                "size": list(img.original_size),
                "mode": img.original_mode,
                "inverted": img.inverted,
                "preprocessed": img.preprocessed,
                "top": [
                    {"rank": r + 1, "label": int(i), "class": classes[i], "probability": float(p)}
                    for r, (p, i) in enumerate(zip(vals, idxs))
                ],
                "warning": warning,
            }
        )
    return records


def format_records(records: Sequence[Mapping[str, Any]]) -> str:
    """Human-readable ranked lists, one block per image."""
    out = []
    for rec in records:
        w, h = rec["size"]
        out.append(f"{rec['image']}  ({w}x{h} {rec['mode']}{', inverted' if rec['inverted'] else ''})")
        width = max(len(t["class"]) for t in rec["top"])
        for t in rec["top"]:
            out.append(f"  {t['rank']}. {t['class']:<{width}}  {t['probability']:.3f}")
        if rec.get("warning"):
            out.append(f"  warning: {rec['warning']}")
    return "\n".join(out)


def warning_summary(records: Sequence[Mapping[str, Any]]) -> str | None:
    """One line counting the records with a warning (the commonest reasons first), or None when none has."""
    reasons: dict[str, int] = {}
    for rec in records:
        if rec.get("warning"):
            reason = rec["warning"].split(" (")[0]
            reasons[reason] = reasons.get(reason, 0) + 1
    if not reasons:
        return None
    count = sum(reasons.values())
    listed = ", ".join(f"{why} ({n})" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    return f"warning: {count} of {len(records)} pictures may not be classified reliably: {listed}"
