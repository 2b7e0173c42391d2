"""Fashion-MNIST pictures made to look like phone photos, and the accuracy a :class:`~cnnzoo.serve.predictor.Predictor`
reaches on them.

A model that scores 90 % on the test set can fall to chance on a photo of the same garment: the photo shows a
*dark* object on *grey* paper lit unevenly, somewhere in the frame, noisy, slightly blurred and tilted, as a
JPEG. :func:`photo_like` renders each image like that, seeded (one random stream per image: the i-th picture
does not depend on the others):

* paper of brightness 150-230 with a linear illumination gradient of 20-60 grey levels across the frame;
* the garment as ink: the paper darkened by 60-85 % where Fashion-MNIST is white (a reflectance, so the
  gradient shows on the object too), rotated by up to +-10 degrees;
* its longer side (after the rotation) spans 50-70 % of the frame, at a random place fully inside it;
* a Gaussian blur of radius 0.5-1.5 px, Gaussian noise of sigma 3-8 grey levels, then JPEG at quality 60-90.

:func:`photo_benchmark` scores a predictor on them through the path users take: JPEG files on disk read by
``Predictor.predict``. Use held-out images (the Fashion-MNIST *test* split) so the score says something.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["PhotoLook", "photo_like", "photo_like_jpegs"]

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class PhotoLook:
    """The ranges :func:`photo_like` draws from (uniformly, per picture)."""

    paper: tuple[float, float] = (150.0, 230.0)  # grey level of the paper at the frame's centre
    gradient: tuple[float, float] = (20.0, 60.0)  # grey levels of illumination change across the frame
    ink: tuple[float, float] = (0.60, 0.85)  # how much of the paper's light the whitest garment pixel absorbs
    share: tuple[float, float] = (0.50, 0.70)  # the object's longer side over the frame's side
    rotation: float = 10.0  # degrees, either way
    blur: tuple[float, float] = (0.5, 1.5)  # Gaussian radius, pixels
    noise: tuple[float, float] = (3.0, 8.0)  # sigma, grey levels
    quality: tuple[int, int] = (60, 90)  # JPEG quality


def photo_like_jpegs(
    images: np.ndarray, *, seed: int = 0, size: int = 224, look: PhotoLook = PhotoLook()
) -> list[bytes]:
    """JPEG files (bytes) of ``images`` (uint8 ``[N, 28, 28]``, light object on black) as ``size`` x ``size``
    phone-photo-like pictures (module docstring)."""
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"photo_like needs uint8 images [N, H, W], not {images.dtype} {list(images.shape)}")
    return [_render(image, np.random.default_rng([seed, i]), size, look) for i, image in enumerate(images)]


def photo_like(
    images: np.ndarray, labels: Sequence[int] | np.ndarray | None = None, *, seed: int = 0, size: int = 224
) -> list[Image.Image]:
    """The pictures :func:`photo_like_jpegs` writes, decoded (grayscale PIL images). ``labels`` are not
    needed to render; they are accepted so a call reads like the dataset it comes from."""
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    out = []
    for data in photo_like_jpegs(images, seed=seed, size=size):
        with Image.open(io.BytesIO(data)) as img:
            out.append(img.convert("L"))
    return out


def _render(image: np.ndarray, rng: np.random.Generator, size: int, look: PhotoLook) -> bytes:
    """One picture as JPEG bytes; every random draw comes from ``rng`` in a fixed order."""
    paper, gradient = rng.uniform(*look.paper), rng.uniform(*look.gradient)
    direction = rng.uniform(0, 2 * np.pi)
    ink, share = rng.uniform(*look.ink), rng.uniform(*look.share)
    angle = rng.uniform(-look.rotation, look.rotation)
    blur, noise = rng.uniform(*look.blur), rng.uniform(*look.noise)
    quality = int(rng.integers(look.quality[0], look.quality[1] + 1))
    where = rng.uniform(0, 1, 2)
    noise_field = rng.normal(0, noise, (size, size))

    garment = _garment(image, angle, max(1, round(share * size)))
    h, w = garment.shape
    top, left = int(where[0] * (size - h)), int(where[1] * (size - w))
    reflect = np.ones((size, size))
    reflect[top : top + h, left : left + w] -= ink * garment
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1) - 0.5
    light = paper + gradient * (np.cos(direction) * x + np.sin(direction) * y)
    photo = Image.fromarray(np.clip(light * reflect, 0, 255).astype(np.uint8))
    photo = np.asarray(photo.filter(ImageFilter.GaussianBlur(blur)), np.float64) + noise_field
    buf = io.BytesIO()
    Image.fromarray(np.clip(photo + 0.5, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _garment(image: np.ndarray, angle: float, long_side: int) -> np.ndarray:
    """``image`` (0-255) as 0-1 ink, rotated by ``angle`` degrees, trimmed to its box and scaled so its longer
    side is ``long_side`` pixels (a blank image: its whole frame)."""
    big = Image.fromarray(image).resize((112, 112), Image.Resampling.BILINEAR)
    rotated = np.asarray(big.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True), np.float64) / 255.0
    rows, cols = np.nonzero((rotated > 0.02).any(axis=1))[0], np.nonzero((rotated > 0.02).any(axis=0))[0]
    if rows.size:
        rotated = rotated[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = rotated.shape
    scale = long_side / max(h, w)
    target = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = Image.fromarray((rotated * 255).astype(np.uint8)).resize(target, Image.Resampling.LANCZOS)
    return np.asarray(out, np.float64) / 255.0
