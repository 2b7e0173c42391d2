"""An export says how to prepare a picture, completely: the steps of its ``cnnzoo.preprocess`` metadata,
re-implemented here from that JSON alone with NumPy (PIL only reads the files), prepare 200 photo-like pictures
so that the exported graph answers as cnnzoo's own predictor does; and the ``--with-preprocessing`` graph, fed
the pictures as the ``pad_to_square`` step leaves them, answers the same."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import onnx  # the dev extra installs the export extra and onnxruntime: a missing one fails loudly, not skips
import onnxruntime as ort
import pytest
from PIL import Image, ImageDraw, ImageOps

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.data.photolike import photo_like_jpegs

WEIGHT = "lenet_bn.fashion_mnist"  # shipped: a Fashion-MNIST model, so every step (levelling, cropping) is used
COUNT = 200


# -- the steps, from the JSON alone ----------------------------------------------------------------------------


def _round(v: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(v + 0.5), 0, 255)


def _ring(h: int, w: int) -> np.ndarray:
    k = max(1, min(h, w) // 16)
    ring = np.zeros((h, w), bool)
    ring[:k], ring[-k:], ring[:, :k], ring[:, -k:] = True, True, True, True
    return ring


def _mad(v: np.ndarray) -> float:
    return float(np.median(np.abs(v - np.median(v)))) if v.size else 0.0


def _otsu(values: np.ndarray) -> float:
    hist = np.bincount(np.floor(values).astype(np.int64).ravel(), minlength=256).astype(np.float64)
    count, mass = np.cumsum(hist), np.cumsum(hist * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mass[-1] * count - mass * count[-1]) ** 2 / (count * (count[-1] - count))
    return float(np.nanargmax(between)) if np.isfinite(between).any() else 0.0


def _box_blur(gray: np.ndarray, r: int) -> np.ndarray:
    out = gray.astype(np.float64)
    for axis in (1, 0):  # rows, then columns; edges repeated; rounded after each pass
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * r + 1, axis=axis)
        out = _round(windows.mean(axis=-1))
    return out


def _surface(channel: np.ndarray, ring: np.ndarray) -> tuple[np.ndarray, float]:
    h, w = channel.shape
    ys, xs = np.nonzero(ring)
    v = channel[ys, xs]

    def design(y, x):
        y, x = y / max(h - 1, 1) - 0.5, x / max(w - 1, 1) - 0.5
        return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1)

    keep = np.abs(v - np.median(v)) <= max(4.0, 3 * 1.4826 * _mad(v))
    for _ in range(2):
        coef = np.linalg.lstsq(design(ys[keep], xs[keep]), v[keep], rcond=None)[0]
        r = v - design(ys, xs) @ coef
        keep = np.abs(r) <= max(4.0, 3 * 1.4826 * _mad(r[keep]))
    gy, gx = np.mgrid[0:h, 0:w]
    f = np.clip(design(gy.astype(np.float64), gx.astype(np.float64)) @ coef, v[keep].min(), v[keep].max())
    return f, 1.4826 * _mad(r[keep])


def _origin(start: int, end: int, side: int, length: int) -> int:
    origin = round((start + end - side) / 2)  # Python's round: half to even
    if 0.9 * length <= side <= length:
        origin = min(max(origin, end - side, 0), start, length - side)
    return origin


def _level_and_crop(pic: np.ndarray, step: dict) -> np.ndarray:
    h, w, channels = pic.shape
    assert max(h, w) <= step["work_side"]  # the pictures here need no reduction first
    ring = _ring(h, w)
    levelled = np.empty(pic.shape)
    for c in range(channels):
        f, sigma = _surface(pic[..., c].astype(np.float64), ring)
        levelled[..., c] = np.maximum(pic[..., c] - f - 3 * sigma, 0)
    levelled = _round(levelled)
    gray = levelled.mean(axis=2)
    t = _otsu(gray)
    if t <= 0:
        return levelled
    blurred = _box_blur(np.floor(gray), max(1, round(max(h, w) / 100)))
    mask = (blurred > t / 4) & (gray > t / 4)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return levelled
    box = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    side = max(1, math.ceil(max(box[2] - box[0], box[3] - box[1]) / step["fill"]))
    if side >= 0.9 * max(w, h):
        side = max(w, h)
    left, top = _origin(box[0], box[2], side, w), _origin(box[1], box[3], side, h)
    out = np.zeros((side, side, channels))
    src = levelled[max(top, 0) : top + side, max(left, 0) : left + side]
    out[max(-top, 0) : max(-top, 0) + src.shape[0], max(-left, 0) : max(-left, 0) + src.shape[1]] = src
    return out


def _weights(n_in: int, n_out: int) -> np.ndarray:
    scale = n_in / n_out
    s = max(1.0, scale)
    centre = (np.arange(n_out) + 0.5) * scale
    w = np.clip(1 - np.abs(np.arange(n_in)[None, :] + 0.5 - centre[:, None]) / s, 0, None)
    return w / w.sum(axis=1, keepdims=True)


def _resize(pic: np.ndarray, size: int) -> np.ndarray:
    h, w, _ = pic.shape
    across = _round(np.einsum("ow,hwc->hoc", _weights(w, size), pic))  # along each row first
    return _round(np.einsum("oh,hwc->owc", _weights(h, size), across))


def prepare(data: bytes, spec: dict, *, until: str | None = None) -> np.ndarray:
    """The picture file ``data`` prepared by ``spec``'s steps (float32 [C, S, S]), or uint8 [C, H, W] as it is
    before the step ``until``."""
    pic = gray = border = None
    for step in spec["steps"]:
        op = step["op"]
        if op == until:
            return pic.transpose(2, 0, 1).astype(np.uint8)
        if op == "decode":
            with Image.open(io.BytesIO(data)) as img:
                img = ImageOps.exif_transpose(img)
                rgb = np.asarray(img.convert("RGB"), np.uint32) if img.mode != "L" else None
                gray = np.asarray(img, np.float64) if img.mode == "L" else None
        elif op == "to_mode":
            if gray is None:  # from RGB, with PIL's integer weights
                gray = ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 32768) >> 16).astype(float)
            pic = gray[..., None] if step["mode"] == "L" else rgb.astype(np.float64)
        elif op == "invert":
            border = gray[_ring(*gray.shape)].mean()
            if step["when"] == "always" or (step["when"] == "border_is_light" and border > step["threshold"]):
                pic, border = 255 - pic, 255 - border
        elif op == "level_and_crop":
            pic, border = _level_and_crop(pic, step), 0.0
        elif op == "pad_to_square":
            h, w, c = pic.shape
            side = max(h, w)
            square = np.full((side, side, c), float(round(border)))
            square[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = pic
            pic = square
        elif op == "resize":
            pic = _resize(pic, step["size"][0])
        elif op == "stretch":
            top = pic.max()
            if 0 < top < 254:
                pic = np.clip(np.floor(pic * min(255 / top, 4.0) + 0.5), 0, 255)
        elif op == "scale":
            pic = (pic / step["divide"]).astype(np.float32)
        elif op == "normalize":
            pic = (pic - np.float32(step["mean"])) / np.float32(step["std"])
        else:
            raise AssertionError(f"a step this re-implementation does not know: {op}")
    return pic.transpose(2, 0, 1).astype(np.float32)


# -- pictures ----------------------------------------------------------------------------------------------------


def _garments(n: int, rng: np.random.Generator) -> np.ndarray:
    """Light, textured polygons on black at 28x28 (as Fashion-MNIST lays garments out), of many shapes."""
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        img = Image.new("L", (28, 28))
        corners = rng.integers(3, 8)
        angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
        radius = rng.uniform(6, 14, corners)
        cx, cy = rng.uniform(11, 17, 2)
        points = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a, r in zip(angles, radius)]
        ImageDraw.Draw(img).polygon(points, fill=int(rng.integers(120, 256)))
        texture = rng.integers(0, 60, (28, 28))
        images[i] = np.clip(np.asarray(img, np.int64) - texture * (np.asarray(img) > 0), 0, 255)
    return images


@pytest.fixture(scope="module")
def pictures() -> list[bytes]:
    """200 photo-like JPEGs; every other one re-saved as a tinted RGB PNG (the RGB-to-gray step is used)."""
    rng = np.random.default_rng(7)
    jpegs = photo_like_jpegs(_garments(COUNT, rng), seed=7, size=160)
    out = []
    for i, data in enumerate(jpegs):
        if i % 2:
            gray = np.asarray(Image.open(io.BytesIO(data)), np.float64)
            tint = np.clip(gray[..., None] * np.array([1.0, 0.93, 0.85]), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(tint, "RGB").save(buffer, format="PNG")
            data = buffer.getvalue()
        out.append(data)
    return out


def _metadata(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_steps_in_the_metadata_re_implemented_with_numpy_give_cnnzoos_predictions(pictures, tmp_path):
    plain, graph = tmp_path / "plain.onnx", tmp_path / "graph.onnx"
    assert main(["export", WEIGHT, "--output", str(plain)]) == 0
    assert main(["export", WEIGHT, "--output", str(graph), "--with-preprocessing"]) == 0
    spec = json.loads(_metadata(plain)["cnnzoo.preprocess"])
    ops = [s["op"] for s in spec["steps"]]
    assert ops == ["decode", "to_mode", "invert", "level_and_crop", "pad_to_square", "resize", "stretch", "scale",
                   "normalize"]  # fmt: skip

    records = cnnzoo.load_model(WEIGHT).predict(pictures, top_k=10)
    expected = np.zeros((COUNT, 10))
    for i, record in enumerate(records):
        for entry in record["top"]:
            expected[i, entry["label"]] = entry["probability"]

    x = np.stack([prepare(data, spec) for data in pictures])
    session = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
    got = _softmax(session.run(["logits"], {"input": x})[0])
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert np.abs(got - expected).max() < 0.01, np.abs(got - expected).max()
    assert len(set(expected.argmax(axis=1).tolist())) >= 4  # the pictures reach several classes, not one

    # The graph with the steps it holds: fed each picture as pad_to_square leaves it (sizes differ: one by one).
    graph_spec = json.loads(_metadata(graph)["cnnzoo.preprocess"])
    assert [s["op"] for s in graph_spec["steps"] if s["in_graph"]] == ["resize", "stretch", "scale", "normalize"]
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    squares = [prepare(data, graph_spec, until="resize") for data in pictures]
    assert len({s.shape for s in squares}) > 1  # the crop leaves pictures of many sizes
    logits = np.concatenate([session.run(["logits"], {"image": s[None]})[0] for s in squares])
    got = _softmax(logits)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert np.abs(got - expected).max() < 0.01, np.abs(got - expected).max()


def test_a_model_trained_on_a_colour_folder_lists_only_its_own_steps(tmp_path):
    from cnnzoo.serve.export import export_metadata_of
    from cnnzoo.weights import weight_checkpoint

    ckpt = weight_checkpoint(WEIGHT)
    folder = {
        **ckpt,
        "config": {**ckpt["config"], "dataset": "folder:/photos"},
        "preprocess": {**ckpt["preprocess"], "in_channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3},
    }
    spec = json.loads(export_metadata_of(folder)["cnnzoo.preprocess"])
    steps = {s["op"]: s for s in spec["steps"]}
    assert list(steps) == ["decode", "to_mode", "invert", "pad_to_square", "resize", "scale", "normalize"]
    assert steps["to_mode"]["mode"] == "RGB" and steps["invert"]["when"] == "never"
    assert steps["normalize"] == {"op": "normalize", "mean": [0.5] * 3, "std": [0.25] * 3}


def test_with_preprocessing_is_for_onnx_only(capsys):
    assert main(["export", WEIGHT, "--format", "safetensors", "--with-preprocessing", "--output", "x"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --with-preprocessing puts the steps into an ONNX graph: drop it for safetensors"
    )
