"""A picture, any picture, made into what a model trained on Fashion-MNIST expects: the one decoder for the user's
photos (:mod:`cnnzoo.serve.predictor`) and a folder's images (:mod:`cnnzoo.data.datasets`).

Fashion-MNIST images are small, grayscale, centred, and show a *light object on a black background* that
fills the frame. A phone photo is none of these: a dark object on grey paper lit unevenly, somewhere in the
frame, with noise. :func:`load_image` brings any PNG/JPEG (any size, any mode: 1, L, P, RGB, RGBA, LA, CMYK,
16-bit, ...; a path, bytes or a binary file, sniffed by content, never by name) to the training distribution:

1. orientation from EXIF is applied; transparency is composited onto white (how a viewer shows it);
2. the image becomes grayscale (or RGB for a 3-channel model); 16-bit and float images are scaled,
   not clipped;
3. polarity: with ``invert="auto"`` the mean of the outer border decides; a light border means a dark
   object on a light background, which is inverted to match Fashion-MNIST (``yes``/``no`` force it);
4. with ``preprocess="auto"`` (see :func:`_level_and_crop`), on a copy at most :data:`WORK_SIDE` pixels
   long: the paper's illumination (a quadratic surface fitted robustly to the border) is subtracted, so
   the background becomes uniform black; the noise left is cut at 3 sigma and the object's contrast is
   stretched to Fashion-MNIST's full range; the picture is cropped to the object (Otsu's threshold on a
   blurred copy), whose longer side then fills ``fill`` of the frame (Fashion-MNIST: all of it, measured:
   the median test object spans 28 of 28 pixels; MNIST: 20 of 28, its documented box);
   ``preprocess="none"`` skips this step (what training on a folder does);
5. it is padded to a square with the border's colour (no distortion), then resized to the model's input
   size with antialiasing.

:func:`picture_warning` says when what the model sees does not look like Fashion-MNIST (its bounds are
measured, see there); :func:`cnnzoo.serve.predictor.prediction_records` adds a low-confidence warning.

Oversized files are refused before decoding (:data:`MAX_PIXELS`): a small PNG can declare gigapixels
(a "decompression bomb"); so are images whose padded square would be (:data:`MAX_SQUARE_PIXELS`), and
anything that is not a regular file (a FIFO would block the read forever). Animations (GIF, APNG, WebP
with several frames) are refused: there is no one picture to classify. Every problem with a file is an
:class:`~cnnzoo.base.errors.ImageError` naming it.
"""

from __future__ import annotations

import io
import math
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from torch import Tensor

from cnnzoo.base.errors import ConfigError, ImageError

__all__ = [
    "MAX_PIXELS",
    "MAX_SQUARE_PIXELS",
    "PREPROCESS_CHOICES",
    "PreparedImage",
    "check_size",
    "load_image",
    "picture_warning",
]

MAX_PIXELS = 50_000_000  # 50 megapixels: far above any camera photo one would classify, far below a bomb
# The square an image is padded to (its longer side squared) is allocated too: a 40,000,000x1 image has
# 40 megapixels but pads to 1.6 petapixels. 100 MP lets every 50 MP photo of aspect up to 2:1 through.
MAX_SQUARE_PIXELS = 100_000_000
INVERT_CHOICES = ("auto", "yes", "no")
PREPROCESS_CHOICES = ("auto", "none")
WORK_SIDE = 1024  # levelling and cropping run on a copy at most this long (bounded work for any photo)
ImageSource = str | os.PathLike[str] | bytes | IO[bytes] | Image.Image | np.ndarray | Tensor
_ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")  # PNG: APNG


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for the model: ``pixels`` is uint8 ``[C, S, S]``."""

    path: str
    pixels: Tensor
    inverted: bool
    original_size: tuple[int, int]  # (width, height)
    original_mode: str
    preprocessed: bool = False  # levelled and cropped (``preprocess="auto"``)
    warning: str | None = None  # why the picture does not look like the training data (checked pictures only)


def load_image(
    path: ImageSource,
    *,
    size: int,
    in_channels: int = 1,
    invert: str = "auto",
    preprocess: str = "none",
    fill: float = 1.0,
    check: bool = False,
    name: str | None = None,
) -> PreparedImage:
    """Read ``path`` (a file; or the image's bytes or a binary file object, called ``name``) and prepare it as
    described in the module docstring.

    ``preprocess``: ``auto`` levels the background and crops to the object, whose longer side then fills
    ``fill`` of the frame; ``none`` keeps the whole picture. ``check``: set :attr:`PreparedImage.warning` by
    :func:`picture_warning` (its bounds are Fashion-MNIST's).
    """
    if invert not in INVERT_CHOICES:
        raise ConfigError(f"--invert {invert}: choose auto, yes or no")
    if preprocess not in PREPROCESS_CHOICES:
        raise ConfigError(f"--preprocess {preprocess}: choose auto or none")
    if in_channels not in (1, 3):
        raise ConfigError(f"images can be prepared for 1 or 3 input channels, not {in_channels}")
    if not 0.1 <= fill <= 1.0:
        raise ConfigError(f"fill {fill}: the object's share of the frame must be between 0.1 and 1")
    in_memory = _in_memory(path, name or "picture")
    if in_memory is not None:
        label = name or "picture"
        gray, picture, original_size, mode = _from_picture(in_memory, label, in_channels)
    else:
        label, source = _source(path, name)
        gray, picture, original_size, mode = _decode(source, label, in_channels)
    gray_array = np.asarray(gray, dtype=np.float64)
    border = _border_mean(gray_array)
    flip = border > 127.5 if invert == "auto" else invert == "yes"
    if flip:
        picture = ImageOps.invert(picture)
        border = 255.0 - border
    if preprocess == "auto":
        picture = _level_and_crop(picture, fill)
        border = 0.0
    picture = _pad_to_square(picture, round(border))
    picture = picture.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    pixels = _to_tensor(picture)
    if preprocess == "auto":
        pixels = _stretch(pixels)
    warning = picture_warning(pixels) if check else None
    return PreparedImage(label, pixels, flip, original_size, mode, preprocess == "auto", warning)


def _in_memory(obj: object, label: str) -> Image.Image | None:
    """A picture held in memory as a PIL image; None for a path, bytes or a file.

    * a PIL image, as it is;
    * a NumPy array ``[H, W]`` (grayscale), ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA), as PIL and matplotlib
      lay pictures out: uint8 0-255, or float 0-1;
    * a torch tensor ``[H, W]``, ``[1, H, W]`` or ``[3, H, W]``, as torchvision lays them out (channels first):
      uint8 0-255, or float 0-1.
    """
    if isinstance(obj, Image.Image):
        return obj
    if isinstance(obj, Tensor):
        t = obj.detach().cpu()
        if t.dim() == 3 and t.shape[0] in (1, 3, 4):
            t = t.permute(1, 2, 0)
        obj = t.squeeze(-1).numpy() if t.dim() == 3 and t.shape[-1] == 1 else t.numpy()
    if not isinstance(obj, np.ndarray):
        return None
    a = obj
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"{label}: an array of shape {list(a.shape)} is not a picture: give [H, W], [H, W, 3] "
                         "or [H, W, 4] (NumPy), or [C, H, W] (a tensor)")  # fmt: skip
    if a.dtype.kind == "f":
        with np.errstate(all="ignore"):
            a = np.clip(np.nan_to_num(a, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ImageError(f"{label}: {a.dtype} values from {a.min()} to {a.max()}: give uint8 0-255 or floats 0-1")
        a = a.astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a))


def _from_picture(img: Image.Image, label: str, in_channels: int):
    """:func:`_decode`'s result for a picture already in memory (the same size limits)."""
    width, height = img.size
    if (why := check_size(label, width, height)) is not None:
        raise ImageError(why)
    if width < 1 or height < 1:
        raise ImageError(f"{label}: the image is empty ({width}x{height})")
    gray = _to_mode(img, "L")
    return gray, gray if in_channels == 1 else _to_mode(img, "RGB"), (width, height), img.mode


def _source(path: ImageSource, name: str | None) -> tuple[str, Path | IO[bytes]]:
    """``(label, what to open)``: a path as it is; bytes or an open binary file named ``name`` (PIL reads
    the format from the content, so a name's suffix means nothing)."""
    if isinstance(path, bytes | bytearray | memoryview):
        label = name or "upload"
        if not len(path):
            raise ImageError(f"{label}: the upload is empty (0 bytes): send the image again")
        return label, io.BytesIO(bytes(path))
    if hasattr(path, "read"):
        return name or str(getattr(path, "name", "upload")), path  # type: ignore[return-value]
    return str(path), Path(path)


def _decode(
    source: Path | IO[bytes], label: str, in_channels: int
) -> tuple[Image.Image, Image.Image, tuple[int, int], str]:
    """``(grayscale, picture in the model's mode, (width, height), original mode)`` of the file ``source``
    (a path, or an open binary file named ``label``).

    Every way the file can fail to be one picture is an :class:`ImageError` naming it.
    """
    if isinstance(source, Path):
        _check_regular(source)
        if source.is_file() and source.stat().st_size == 0:
            raise ImageError(
                f"{label}: the file is empty (0 bytes; an interrupted copy or download?): copy the image again"
            )
    path = label
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # PIL's "Corrupt EXIF data" and such: the picture loads
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:  # reads the header only
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


def _ring(h: int, w: int) -> np.ndarray:
    """A boolean mask of the outer ring :func:`_border_mean` averages."""
    k = max(1, min(h, w) // 16)
    ring = np.zeros((h, w), bool)
    ring[:k], ring[-k:], ring[:, :k], ring[:, -k:] = True, True, True, True
    return ring


def _background(channel: np.ndarray, ring: np.ndarray) -> tuple[np.ndarray, float]:
    """The paper's illumination under ``channel`` and the noise's sigma on it.

    A quadratic surface in x and y is fitted to the border ring by least squares, twice: the second fit
    drops the ring pixels more than 3 sigma (at least 4 grey levels) from the first, which are the parts of
    the object that touch the border (Fashion-MNIST's objects touch it on their long side). Inside, the
    surface is clipped to the range of the pixels it was fitted on, so it cannot overshoot.
    """
    h, w = channel.shape
    ys, xs = np.nonzero(ring)
    values = channel[ys, xs]

    def design(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        y, x = y / max(h - 1, 1) - 0.5, x / max(w - 1, 1) - 0.5
        return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1)

    keep = np.abs(values - np.median(values)) <= max(4.0, 3 * 1.4826 * _mad(values))
    for _ in range(2):
        coef = np.linalg.lstsq(design(ys[keep], xs[keep]), values[keep], rcond=None)[0]
        residual = values - design(ys, xs) @ coef
        keep = np.abs(residual) <= max(4.0, 3 * 1.4826 * _mad(residual[keep]))
    grid_y, grid_x = np.mgrid[0:h, 0:w]
    surface = (design(grid_y.astype(np.float32), grid_x.astype(np.float32)) @ coef.astype(np.float32)).astype(
        np.float32
    )
    surface = np.clip(surface, values[keep].min(), values[keep].max())
    return surface, float(1.4826 * _mad(residual[keep]))


def _mad(values: np.ndarray) -> float:
    """The median absolute deviation (1.4826 times it estimates a Gaussian's sigma, unmoved by outliers)."""
    return float(np.median(np.abs(values - np.median(values)))) if values.size else 0.0


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values in 0-255: the level that best splits them into two classes."""
    hist = np.bincount(np.clip(values, 0, 255).astype(np.int64).ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256, dtype=np.float64)
    weight = np.cumsum(hist)
    mass = np.cumsum(hist * levels)
    total, total_mass = weight[-1], mass[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mass * weight - mass * total) ** 2 / (weight * (total - weight))
    return float(np.nanargmax(between)) if np.isfinite(between).any() else 0.0


def _level_and_crop(picture: Image.Image, fill: float) -> Image.Image:
    """``picture`` (light object, any background) on a uniform black background, cropped to the object and
    padded so that its longer side is ``fill`` of a square (step 4 of the module docstring).

    On a copy at most :data:`WORK_SIDE` long: the border's illumination surface is subtracted per channel,
    what is left of the noise (3 sigma) is cut. The object's box holds the pixels above a quarter of Otsu's threshold
    that are so in a copy blurred over 1/100 of the picture too (isolated noise specks are not); no object:
    the whole (levelled) picture.
    """
    work = picture.copy()
    work.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    array = np.asarray(work, dtype=np.float32)
    channels = array[..., None] if array.ndim == 2 else array
    ring = _ring(*channels.shape[:2])
    levelled = np.empty_like(channels)
    for c in range(channels.shape[2]):
        surface, sigma = _background(channels[..., c], ring)
        levelled[..., c] = np.maximum(channels[..., c] - surface - 3 * sigma, 0)
    levelled = np.clip(levelled + 0.5, 0, 255).astype(np.uint8)
    out = Image.fromarray(levelled[..., 0] if levelled.shape[2] == 1 else levelled)
    box = _object_box(levelled.mean(axis=2))
    if box is None:
        return out
    side = max(1, math.ceil(max(box[2] - box[0], box[3] - box[1]) / fill))
    if side >= 0.9 * max(out.size):  # it fills the picture already: a pixel or two less is the threshold's noise
        side = max(out.size)
    left, top = _square_origin(box[0], box[2], side, out.width), _square_origin(box[1], box[3], side, out.height)
    return out.crop((left, top, left + side, top + side))  # outside the picture: black


def _square_origin(start: int, end: int, side: int, length: int) -> int:
    """Where a square of ``side`` begins along an axis of ``length`` to hold the object ``[start, end)``:
    centred on it; but where the square is nearly the whole picture (an object that already fills the frame,
    like a Fashion-MNIST image) it stays inside it, so the picture is not shifted by a pixel of rounding."""
    origin = round((start + end - side) / 2)
    if 0.9 * length <= side <= length:  # the object fills the picture already: keep its framing
        origin = min(max(origin, end - side, 0), start, length - side)
    return origin


def _stretch(pixels: Tensor) -> Tensor:
    """``pixels`` scaled so the brightest is 255, as in every Fashion-MNIST image (measured: the test images'
    maxima are 254 or 255, all 10,000 of them); at most 4x, so a faint smudge is not made an object."""
    top = int(pixels.max())
    if top == 0 or top >= 254:
        return pixels
    gain = min(255.0 / top, 4.0)
    return (pixels.float() * gain + 0.5).clamp(0, 255).to(torch.uint8)


def _object_box(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(left, top, right, bottom)`` of the object in the levelled ``gray``, or None when there is none."""
    h, w = gray.shape
    radius = max(1, round(max(h, w) / 100))
    blurred = np.asarray(Image.fromarray(gray.astype(np.uint8)).filter(ImageFilter.BoxBlur(radius)), np.float32)
    threshold = _otsu(gray)
    if threshold <= 0:
        return None
    mask = (blurred > threshold / 4) & (gray > threshold / 4)  # the blur only vetoes isolated specks
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def picture_stats(pixels: Tensor) -> dict[str, float]:
    """What :func:`picture_warning` judges, on the prepared picture (uint8 ``[C, S, S]``) brought to 28x28:

    ``contrast`` (99th minus 1st percentile), ``neighbours`` (the correlation of horizontally and vertically
    adjacent pixels: an object is smooth, noise is not), ``share`` (the fraction of the frame above half of
    Otsu's threshold) and ``largest`` (the share of those pixels in the largest 8-connected piece).
    """
    array = pixels.numpy().astype(np.float32).mean(axis=0)
    if array.shape != (28, 28):
        array = np.asarray(Image.fromarray(array).resize((28, 28), Image.Resampling.BILINEAR), np.float32)
    contrast = float(np.percentile(array, 99) - np.percentile(array, 1))
    a, b = (
        np.concatenate([array[:, :-1].ravel(), array[:-1].ravel()]),
        np.concatenate([array[:, 1:].ravel(), array[1:].ravel()]),
    )
    neighbours = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0
    mask = array > max(_otsu(array) / 2, 1.0)
    count = int(mask.sum())
    return {
        "contrast": contrast,
        "neighbours": neighbours,
        "share": count / mask.size,
        "largest": _largest_piece(mask) / count if count else 0.0,
    }


def _largest_piece(mask: np.ndarray) -> int:
    """Pixels in the largest 8-connected piece of ``mask`` (a small frame: a plain flood fill)."""
    seen = np.zeros_like(mask)
    h, w = mask.shape
    best = 0
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start] = True
        stack, size = [start], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
        best = max(best, size)
    return best


def picture_warning(pixels: Tensor) -> str | None:
    """Why the prepared picture does not look like a Fashion-MNIST image, or None (see :func:`picture_stats`).

    The bounds lie outside what 1,000 real test images give after :func:`load_image` (``preprocess="auto"``;
    their 0.5th-99.5th percentiles: contrast 150-255, share 0.12-0.77 (p99 0.73), largest piece 0.49-1 (p1
    0.61), neighbours 0.54-0.92), so together they flag about 1.5 % of them. Uniform and Gaussian noise and
    flat pictures leave no object after levelling (contrast 0): all are flagged. Text-like stripes fall apart
    into pieces (largest piece below 0.6) for about 40 % of them; a photo of a digit-like stroke is one
    smooth object and passes these checks (only low confidence flags some: benchmarks/photos.md).
    """
    stats = picture_stats(pixels)
    if stats["contrast"] < 60:
        return "no object found (a blank, flat or noisy picture?)"
    if stats["share"] > 0.85:
        return "the object covers almost all of the frame (a close-up or a texture?)"
    if stats["share"] < 0.08:
        return "the object covers almost none of the frame (a speck, or the wrong --invert?)"
    if stats["largest"] < 0.6:
        return "several separate objects, not one (text? a pattern?)"
    if stats["neighbours"] < 0.5:
        return "looks like noise or a texture, not one object"
    return None
