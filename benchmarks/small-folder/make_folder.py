"""The small folder of benchmarks/small-folder.md: gray circles, squares and triangles on gray noise, 60 of each to
train on and 200 of each to test on (a folder of one's own, in the ImageFolder layout with train/ and test/).

    python benchmarks/small-folder/make_folder.py DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = {"circle": (220, 60, 60), "square": (60, 170, 60), "triangle": (60, 90, 220)}


def draw_shape(shape: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """The notebook's shapes (examples/your_own_images.ipynb), in grayscale: only the shape tells them apart."""
    img = Image.fromarray(rng.integers(90, 166, (size, size, 3), dtype=np.uint8))
    r = int(rng.integers(size // 6, size // 3 + 1))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    colour = tuple(int(np.clip(c + rng.integers(-40, 41), 0, 255)) for c in SHAPES[shape])
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return img.convert("L")


def main(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 60), ("test", 200)):
        for shape in SHAPES:
            folder = root / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                draw_shape(shape, rng).save(folder / f"{i:04d}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
