"""How a picture is prepared for a model, written out as data: every step :func:`cnnzoo.data.pictures.load_image` and
:func:`cnnzoo.serve.predictor.model_input` take, in order, with every parameter, so that a program outside cnnzoo (an
ONNX consumer, a phone app) can prepare pictures exactly as cnnzoo does.

:func:`preprocess_spec` gives that description as a JSON-ready dict; ``cnnzoo export`` stores it in the ONNX
file's metadata (``cnnzoo.preprocess``) and the safetensors header. ``tests/serve/test_export_preprocess.py``
re-implements the steps from that description alone, with NumPy, and gets cnnzoo's predictions on photo-like
pictures: the description is complete, and stays so.

The steps (``op``), each applied only when listed:

==================  ================================================================================================
``decode``          the file's pixels, read by content; EXIF orientation applied
``to_mode``         grayscale ``L`` or ``RGB``; alpha composited onto white; 16-bit and float pictures scaled
``invert``          ``255 - v`` when the outer ring of the grayscale picture is light (or always, or never)
``level_and_crop``  subtract the paper's illumination, cut the noise, crop to the object (Fashion-MNIST models)
``pad_to_square``   centred on a square of the border's colour
``resize``          to the model's side, triangle filter widened when shrinking (antialiased bilinear)
``stretch``         the brightest pixel brought to 255 (at most 4x), after ``level_and_crop``
``scale``           ``v / 255`` as float32
``normalize``       ``(v - mean[c]) / std[c]`` per channel
==================  ================================================================================================

A graph exported with ``--with-preprocessing`` does the steps marked ``"in_graph": true`` itself (``resize``,
``stretch``, ``scale``, ``normalize``): it takes the uint8 picture as ``pad_to_square`` leaves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnnzoo.data.pictures import INVERT_CHOICES, PREPROCESS_CHOICES, WORK_SIDE

__all__ = ["FORMAT", "GRAPH_STEPS", "preprocess_spec"]

FORMAT = "cnnzoo-preprocess/1"
GRAPH_STEPS = ("resize", "stretch", "scale", "normalize")  # what a --with-preprocessing graph does itself
_RING = "the outer ring k = max(1, min(h, w) // 16) pixels wide on each of the four sides"
_ROUND = "floor(v + 0.5), clipped to 0-255"
_MAD = "MAD(v) = median(|v - median(v)|)"


def preprocess_spec(
    *,
    size: int,
    in_channels: int,
    invert: str,
    preprocess: str,
    fill: float,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    in_graph: bool = False,
) -> dict[str, Any]:
    """The steps that prepare a picture for a model of input side ``size`` and ``in_channels`` channels, with
    :func:`cnnzoo.data.pictures.load_image`'s ``invert``, ``preprocess`` and ``fill``, normalised by ``mean`` and
    ``std`` (None: scaled only). ``in_graph``: the steps :data:`GRAPH_STEPS` are done by the exported graph."""
    if invert not in INVERT_CHOICES or preprocess not in PREPROCESS_CHOICES:
        raise ValueError(f"invert {invert!r} / preprocess {preprocess!r}: see cnnzoo.data.pictures")
    mode = "L" if in_channels == 1 else "RGB"
    steps: list[dict[str, Any]] = [
        {"op": "decode", "exif_orientation": "applied (the EXIF Orientation tag's transpose)"},
        _to_mode(mode),
        {
            "op": "invert",
            "when": {"auto": "border_is_light", "yes": "always", "no": "never"}[invert],
            "border": f"mean of the grayscale picture's pixels in {_RING}",
            "threshold": 127.5,
            "rule": "when the border's mean > threshold (auto), every value v of every channel becomes 255 - v; "
            "the border's mean becomes 255 - mean",
        },
    ]
    if preprocess == "auto":
        steps.append(_level_and_crop(fill))
    steps += [
        {
            "op": "pad_to_square",
            "fill": "0" if preprocess == "auto" else "round-half-even(border mean after invert), every channel",
            "placement": "side = max(w, h); the picture pasted at ((side - w) // 2, (side - h) // 2)",
        },
        {
            "op": "resize",
            "size": [size, size],
            "filter": "triangle (bilinear): weight(d) = max(0, 1 - |d|), d in input pixels divided by s = "
            "max(1, in / out) (antialiasing when shrinking); output pixel i (centre (i + 0.5) * in / out) "
            "is the normalised weighted sum over input pixels j at d = (j + 0.5 - centre) / s; first along "
            "each row (the width), then along each column (PIL Image.resize BILINEAR, reducing_gap None)",
            "rounding": f"to uint8 after each of the two passes: {_ROUND}",
        },
    ]
    if preprocess == "auto":
        steps.append(
            {
                "op": "stretch",
                "rule": "top = the largest value; when 0 < top < 254, v = floor(v * min(255 / top, 4) + 0.5), "
                "clipped to 255",
            }
        )
    steps.append({"op": "scale", "divide": 255.0, "dtype": "float32"})
    if mean is not None and std is not None:
        steps.append({"op": "normalize", "mean": [float(m) for m in mean], "std": [float(s) for s in std]})
    if in_graph:
        for step in steps:
            step["in_graph"] = step["op"] in GRAPH_STEPS
    return {
        "format": FORMAT,
        "input": {"channels": in_channels, "size": size, "mode": mode},
        "layout": "[C, H, W] per picture, channels first; a batch stacks them: [N, C, H, W]",
        "steps": steps,
    }


def _to_mode(mode: str) -> dict[str, Any]:
    return {
        "op": "to_mode",
        "mode": mode,
        "alpha": "composited onto opaque white (255, 255, 255)",
        "sixteen_bit": "v / 65535 * 255, rounded (floor(x + 0.5))",
        "float": "v / max(255, largest v) * 255, rounded; NaN and infinities become 0",
        "gray_from_rgb": "L = (R * 19595 + G * 38470 + B * 7471 + 32768) >> 16 (ITU-R 601-2, PIL's integers)",
        "gray": "the grayscale picture is kept beside the picture: the invert step's border is measured on it",
    }


def _level_and_crop(fill: float) -> dict[str, Any]:
    return {
        "op": "level_and_crop",
        "work_side": WORK_SIDE,
        "reduce": f"a picture longer than {WORK_SIDE} pixels is first box-filtered down to fit in "
        f"{WORK_SIDE} x {WORK_SIDE}, its aspect kept (PIL thumbnail BOX)",
        "ring": _RING,
        "surface": "per channel, in float: f(x, y) = c0 + c1 x + c2 y + c3 x^2 + c4 x y + c5 y^2 with "
        "x = col / max(w - 1, 1) - 0.5, y = row / max(h - 1, 1) - 0.5, fitted by least squares to ring pixels",
        "robust_fit": f"{_MAD}; keep = ring pixels with |v - median| <= max(4, 3 * 1.4826 * MAD(ring)); twice: "
        "fit on keep, residual r = v - f over the whole ring, keep = |r| <= max(4, 3 * 1.4826 * MAD(r on the "
        "previous keep)); the last fit's f, clipped to [min, max] of the ring values kept last; "
        "sigma = 1.4826 * MAD(r on the last keep)",
        "level": f"v = max(v - f - 3 * sigma, 0), then {_ROUND} to uint8",
        "object": "gray = mean of the levelled channels (float); t = Otsu's threshold of floor(gray) over 256 "
        "levels (the level maximising (M * W(t) - m(t) * N)^2 / (W(t) * (N - W(t))), W and m cumulative count "
        "and mass up to t); no object when t <= 0; blurred = box blur of floor(gray) as uint8, radius "
        "r = max(1, round-half-even(max(w, h) / 100)) (a (2r+1)-wide mean, rows then columns, edges "
        "repeated, rounded); object pixels: blurred > t / 4 and gray > t / 4; box = their bounding rows "
        "and columns [start, end)",
        "fill": fill,
        "crop": "side = max(1, ceil(max(box width, box height) / fill)); when side >= 0.9 * max(w, h), "
        "side = max(w, h); per axis of length L, origin = round-half-even((start + end - side) / 2), and when "
        "0.9 * L <= side <= L, origin = min(max(origin, end - side, 0), start, L - side); the square "
        "[origin, origin + side) on both axes is cut out, black (0) outside the picture; no object: the "
        "levelled picture uncropped",
    }
