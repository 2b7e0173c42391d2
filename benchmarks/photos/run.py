"""Top-1 of trained checkpoints on photo-like Fashion-MNIST test pictures, and how often predict warns.

    .venv/bin/python benchmarks/photos/run.py RUN_DIR [RUN_DIR ...] [--n 1000] [--seed 0]

For each run: top-1 on ``n`` photo-like renderings of the first ``n`` Fashion-MNIST *test* images
(:func:`cnnzoo.bench.photos.photo_benchmark`: JPEG files read by ``Predictor.predict``) and on the same
images unmodified (saved as PNG files, read the same way), each with ``--preprocess auto`` and ``none``;
then the share of pictures that get a warning: real test images, photo-like ones (the first ``2 * unlike``),
and pictures unlike the
training data (uniform and Gaussian noise, flat grey, text-like stripes, photos of hand-drawn digit-like
strokes). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import cnnzoo
from cnnzoo.bench.photos import photo_benchmark
from cnnzoo.data import load_fashion_mnist
from cnnzoo.data.photolike import photo_like_jpegs


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def unlike_pictures(n: int, seed: int = 0) -> dict[str, list[bytes]]:
    """Pictures that are not garments (PNG bytes), ``n`` of each kind."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[bytes]] = {}
    out["uniform noise"] = [png(rng.integers(0, 256, (224, 224), dtype=np.uint8)) for _ in range(n)]
    out["Gaussian noise"] = [png(np.clip(rng.normal(128, 40, (224, 224)), 0, 255).astype(np.uint8)) for _ in range(n)]
    out["flat grey"] = [png(np.full((224, 224), int(v), np.uint8)) for v in np.linspace(0, 255, n)]
    out["text-like stripes"] = [png(_stripes(rng)) for _ in range(n)]
    out["photo of a digit"] = [png(_digit(rng)) for _ in range(n)]
    return out


def _stripes(rng: np.random.Generator) -> np.ndarray:
    """Dark lines of 'text' of random lengths on light paper."""
    a = np.full((224, 224), int(rng.integers(190, 240)), np.uint8)
    period = int(rng.integers(10, 24))
    for row in range(20, 200, period):
        a[row : row + period // 2, 20 : int(rng.integers(80, 205))] = int(rng.integers(20, 80))
    return a


def _digit(rng: np.random.Generator) -> np.ndarray:
    """A digit-like pen stroke (a polyline, sometimes with a loop) on grey paper, lit unevenly, noisy."""
    img = Image.new("L", (224, 224), int(rng.integers(170, 230)))
    draw = ImageDraw.Draw(img)
    points = [tuple(int(v) for v in rng.integers(50, 175, 2)) for _ in range(int(rng.integers(2, 5)))]
    draw.line(points, fill=int(rng.integers(20, 70)), width=int(rng.integers(8, 18)))
    if rng.random() < 0.5:
        x, y = (int(v) for v in rng.integers(60, 110, 2))
        draw.ellipse([x, y, x + 60, y + 60], outline=int(rng.integers(20, 70)), width=int(rng.integers(8, 16)))
    a = np.asarray(img, np.float64) + np.linspace(-20, 20, 224)[None] + rng.normal(0, 5, (224, 224))
    return np.clip(a, 0, 255).astype(np.uint8)


def classify_files(predictor: cnnzoo.Predictor, blobs: list[bytes], suffix: str) -> list[dict]:
    """Records of ``blobs`` written as files and read by ``predictor.predict`` (the user's path)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, data in enumerate(blobs):
            paths.append(Path(tmp) / f"{i:06d}{suffix}")
            paths[-1].write_bytes(data)
        return predictor.predict(paths, top_k=1)


def warned(records: list[dict]) -> float:
    return sum(r["warning"] is not None for r in records) / len(records)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--unlike", type=int, default=100, help="pictures of each unlike kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_fashion_mnist()
    images, labels = data.test_images.numpy()[: args.n], data.test_labels.numpy()[: args.n]
    plain = [png(a) for a in images]
    photos = photo_like_jpegs(images, seed=args.seed)
    unlike = unlike_pictures(args.unlike, args.seed)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(f"date {time.strftime('%Y-%m-%d %H:%M %Z')}, CPU {cpu}, torch {torch.__version__}, "
          f"python {platform.python_version()}, {args.n} test images, seed {args.seed}\n")  # fmt: skip
    print("| run | preprocess | photo-like top-1 | plain test top-1 | warned: plain | warned: photo-like | "
          + " | ".join(f"warned: {k}" for k in unlike) + " | seconds |")  # fmt: skip
    print("|" + "---|" * (7 + len(unlike)))
    for run in args.runs:
        for pre in ("auto", "none"):
            start = time.perf_counter()
            predictor = cnnzoo.load_model(run, preprocess=pre)
            photo_acc = photo_benchmark(predictor, images, labels, seed=args.seed)
            plain_rec = classify_files(predictor, plain, ".png")
            plain_acc = float(np.mean([r["top"][0]["label"] == y for r, y in zip(plain_rec, labels)]))
            photo_rec = classify_files(predictor, photos[: args.unlike * 2], ".jpg")
            rates = [warned(classify_files(predictor, blobs, ".png")) for blobs in unlike.values()]
            cells = [f"{photo_acc:.3f}", f"{plain_acc:.4f}", f"{warned(plain_rec):.3f}", f"{warned(photo_rec):.3f}"]
            cells += [f"{r:.2f}" for r in rates]
            seconds = time.perf_counter() - start
            print(f"| {Path(run).name} | {pre} | " + " | ".join(cells) + f" | {seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
