"""Classify the user's own pictures with a trained checkpoint.

Fashion-MNIST images are small, grayscale, centred, and show a *light object on a dark background*.
A photo or a catalogue picture usually is none of these, so :func:`load_image` brings any PNG/JPEG (any
size, any mode: 1, L, P, RGB, RGBA, LA, CMYK, 16-bit, ...) to the training distribution:

1. orientation from EXIF is applied; transparency is composited onto white (how a viewer shows it);
2. the image becomes grayscale (or RGB for a 3-channel model); 16-bit and float images are scaled,
   not clipped;
3. polarity: with ``invert="auto"`` the mean of the outer border decides; a light border means a dark
   object on a light background, which is inverted to match Fashion-MNIST (``yes``/``no`` force it);
4. it is padded to a square with the border's colour (no distortion), then resized to the model's input
   size with antialiasing.

Oversized files are refused before decoding (:data:`MAX_PIXELS`): a small PNG can declare gigapixels
(a "decompression bomb"); so are images whose padded square would be (:data:`MAX_SQUARE_PIXELS`), and
anything that is not a regular file (a FIFO would block the read forever). Animations (GIF, APNG, WebP
with several frames) are refused: there is no one picture to classify. Every problem with a file is an
:class:`~cnnzoo.errors.ImageError` naming it.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor, nn

from cnnzoo.errors import ConfigError, ImageError

__all__ = ["MAX_PIXELS", "MAX_SQUARE_PIXELS", "PreparedImage", "check_size", "load_image", "predict_tensors"]

MAX_PIXELS = 50_000_000  # 50 megapixels: far above any camera photo one would classify, far below a bomb
# The square an image is padded to (its longer side squared) is allocated too: a 40,000,000x1 image has
# 40 megapixels but pads to 1.6 petapixels. 100 MP lets every 50 MP photo of aspect up to 2:1 through.
MAX_SQUARE_PIXELS = 100_000_000
INVERT_CHOICES = ("auto", "yes", "no")
_ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")  # PNG: APNG


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for the model: ``pixels`` is uint8 ``[C, S, S]``."""

    path: str
    pixels: Tensor
    inverted: bool
    original_size: tuple[int, int]  # (width, height)
    original_mode: str


def load_image(path: str | os.PathLike[str], *, size: int, in_channels: int = 1, invert: str = "auto") -> PreparedImage:
    """Read ``path`` and prepare it as described in the module docstring."""
    if invert not in INVERT_CHOICES:
        raise ConfigError(f"--invert {invert}: choose auto, yes or no")
    if in_channels not in (1, 3):
        raise ConfigError(f"images can be prepared for 1 or 3 input channels, not {in_channels}")
    path = Path(path)
    gray, picture, original_size, mode = _decode(path, in_channels)
    border = _border_mean(np.asarray(gray, dtype=np.float64))
    flip = border > 127.5 if invert == "auto" else invert == "yes"
    if flip:
        picture = ImageOps.invert(picture)
        border = 255.0 - border
    picture = _pad_to_square(picture, round(border))
    picture = picture.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return PreparedImage(str(path), _to_tensor(picture), flip, original_size, mode)


def _decode(path: Path, in_channels: int) -> tuple[Image.Image, Image.Image, tuple[int, int], str]:
    """``(grayscale, picture in the model's mode, (width, height), original mode)`` of the file ``path``.

    Every way the file can fail to be one picture is an :class:`ImageError` naming it.
    """
    _check_regular(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ImageError(f"{path}: the file is empty (0 bytes; an interrupted copy or download?): copy the image again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # PIL's "Corrupt EXIF data" and such: the picture loads
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:  # reads the header only
                _check_header(path, img)
                width, height = img.size
                mode = img.mode
                img.load()
                img = ImageOps.exif_transpose(img)
                gray = _to_mode(img, "L")
                picture = gray if in_channels == 1 else _to_mode(img, "RGB")
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a directory, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file PIL can read (PNG, JPEG, BMP, GIF, TIFF, WebP ...)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path}: refused as a possible decompression bomb: shrink it first") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{path}: truncated or corrupt image ({exc})") from None
    if width < 1 or height < 1:
        raise ImageError(f"{path}: the image is empty ({width}x{height})")
    return gray, picture, (width, height), mode


def _check_regular(path: Path) -> None:
    """Refuse a FIFO, socket or device before it is opened (opening a FIFO blocks until a writer comes)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # missing or unreadable: Image.open says which
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise ImageError(f"{path} is {kind}, not an image file: give a regular image file")


def check_size(path: str | os.PathLike[str], width: int, height: int) -> str | None:
    """Why an image of ``width`` x ``height`` is refused before decoding, or None when it is not."""
    if width * height > MAX_PIXELS:
        return (
            f"{path}: {width}x{height} is over the {MAX_PIXELS / 1e6:g}-megapixel limit "
            "(a decompression bomb?): shrink it first"
        )
    side = max(width, height)
    if side * side > MAX_SQUARE_PIXELS:
        return (
            f"{path}: {width}x{height} pads to a {side}x{side} square, over the {MAX_SQUARE_PIXELS / 1e6:g}-megapixel "
            "limit: crop it to a less extreme aspect ratio first"
        )
    return None


def _check_header(path: Path, img: Image.Image) -> None:
    """Refuse, before decoding, what is too large to decode or is not one picture."""
    width, height = img.size
    if (why := check_size(path, width, height)) is not None:
        raise ImageError(why)
    # An animation has no one picture to classify. (A phone's multi-picture JPEG, MPO, is fine:
    # its first frame is the photo.)
    if img.format in _ANIMATED_FORMATS and getattr(img, "is_animated", False):
        raise ImageError(
            f"{path}: an animated {img.format} ({getattr(img, 'n_frames', '?')} frames), not one "
            "picture: save the frame you want as a PNG or JPEG"
        )


def _pad_to_square(picture: Image.Image, fill: int) -> Image.Image:
    """``picture`` centred on a square of the colour ``fill`` (no distortion, nothing cropped)."""
    side = max(picture.size)
    if picture.size == (side, side):
        return picture
    square = Image.new(picture.mode, (side, side), (fill,) * len(picture.getbands()))
    square.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
    return square


def _to_tensor(picture: Image.Image) -> Tensor:
    """uint8 ``[C, H, W]`` of an ``L`` or ``RGB`` image."""
    array = np.asarray(picture, dtype=np.uint8)
    if array.ndim == 2:
        return torch.from_numpy(array.copy()).unsqueeze(0)
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def _to_mode(img: Image.Image, target: str) -> Image.Image:
    """``img`` as ``L`` or ``RGB``: alpha over white, 16-bit/float scaled to 0-255 rather than clipped."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        # A float TIFF may hold NaN (even signalling NaN, whose mere cast sets numpy's "invalid" flag) and
        # infinities: they become 0, quietly.
        with np.errstate(all="ignore"):
            values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            top = 65535.0 if img.mode.startswith("I;16") else max(255.0, float(values.max(initial=0)))
            img = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert(target)


def _border_mean(gray: np.ndarray) -> float:
    """Mean of the outer ring (about 1/16 of the shorter side, at least one pixel)."""
    h, w = gray.shape
    k = max(1, min(h, w) // 16)
    ring = np.concatenate([gray[:k].ravel(), gray[-k:].ravel(), gray[:, :k].ravel(), gray[:, -k:].ravel()])
    return float(ring.mean())


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
    device = next(model.parameters()).device
    x = pixels.to(device, torch.float32) / 255.0
    if mean is not None and std is not None:
        m = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        s = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        x = (x - m) / s
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            probs = torch.softmax(model(x).float(), dim=1)
    finally:
        model.train(was_training)
    k = max(1, min(top_k, probs.shape[1]))
    values, indices = probs.topk(k, dim=1)
    return values.cpu(), indices.cpu()


def prediction_records(
    images: Sequence[PreparedImage], values: Tensor, indices: Tensor, classes: Sequence[str]
) -> list[dict[str, Any]]:
    """Plain records (the ``--json`` output) of :func:`predict_tensors`' result."""
    records = []
    for img, vals, idxs in zip(images, values.tolist(), indices.tolist()):
        records.append(
            {
                "image": img.path,
                "size": list(img.original_size),
                "mode": img.original_mode,
                "inverted": img.inverted,
                "top": [
                    {"rank": r + 1, "label": int(i), "class": classes[i], "probability": float(p)}
                    for r, (p, i) in enumerate(zip(vals, idxs))
                ],
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
    return "\n".join(out)
