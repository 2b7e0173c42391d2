"""The try-it page's API: one uploaded picture through a run's model, with what the model makes of it.

``POST /api/predict`` takes a multipart form (``file``, ``run``, optional ``top_k`` and ``target``) and answers
with the top classes, the Grad-CAM overlay, each stage's feature maps (:func:`cnnzoo.explain.look_at`: two passes
of the model) and the picture as the model sees it, all images as PNG data URLs.

An upload is judged by its first bytes (:func:`sniff`), never by its name or its declared content type, and is
prepared exactly as ``cnnzoo predict`` prepares a file (:meth:`cnnzoo.Predictor.prepare`; the decoder's pixel
limits apply). Loaded models are kept in a small LRU cache; one model serves one request at a time (Grad-CAM
hooks the model, and two requests' hooks must not see each other's activations).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from matplotlib import colormaps
from PIL import Image
from starlette.concurrency import run_in_threadpool

from cnnzoo.base.devices import ThreadGovernor
from cnnzoo.base.errors import CnnzooError, ConfigError, ImageError
from cnnzoo.data.pictures import PreparedImage
from cnnzoo.explain import CamResult, StageActivation, look_at
from cnnzoo.explain.files import class_index
from cnnzoo.run.snapshots import list_snapshots, load_snapshot, snapshot_path
from cnnzoo.serve.predictor import Predictor, load_model
from cnnzoo.studio.runs import NotFoundError, RunIndex, RunsDep
from cnnzoo.studio.schemas import PredictOut
from cnnzoo.studio.weights import weight_rows

__all__ = [
    "MAX_STAGE_CHANNELS",
    "UPLOAD_ERRORS",
    "ModelCache",
    "ModelUpload",
    "ModelUploadDep",
    "UnsupportedUploadError",
    "UploadTooLargeError",
    "grid_layout",
    "model_source",
    "router",
    "snapshot_epochs",
    "sniff",
    "upload_route",
]

MAX_STAGE_CHANNELS = 16  # feature maps drawn per stage
MIN_SIDE = 112  # images are enlarged (whole pixels) to at least this side, so a 28x28 input is visible

# The first bytes of each picture format the decoder reads.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


class UnsupportedUploadError(ImageError):
    """An upload whose bytes are no picture format the studio reads (answered with 415)."""


class UploadTooLargeError(CnnzooError):
    """An upload over the studio's size limit (answered with 413)."""


def sniff(data: bytes) -> str:
    """The picture format of ``data`` by its signature (PNG, JPEG, GIF, BMP, TIFF, WebP), else
    :class:`UnsupportedUploadError`. The file name and the declared content type are never asked."""
    if not data:
        raise UnsupportedUploadError("the upload is empty (0 bytes): choose a picture file")
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    raise UnsupportedUploadError(
        "the upload is not a picture (its bytes are not PNG, JPEG, GIF, BMP, TIFF or WebP): choose an image file"
    )


class ModelCache:
    """At most ``size`` loaded :class:`~cnnzoo.Predictor` objects holding at most ``max_bytes`` of weights (a run's
    final model and its epoch snapshots are entries each: a scrubber going back and forth finds them loaded), the
    least recently used dropped first; a checkpoint rewritten since it was loaded (a run still training) is loaded
    again. A model is loaded once however many requests ask for it at the same time: the others wait for that load
    (six simultaneous first predictions of a 43M-parameter run would otherwise hold six copies, about 2 GB).

    With ``threads`` (a :class:`~cnnzoo.base.devices.ThreadGovernor`), each request first lets it re-decide
    PyTorch's CPU threads, so a model computes on the cores other programs leave free (two threads on a 2-core
    laptop with a busy browser beside would wait on each other at every layer)."""

    def __init__(self, size: int = 12, threads: ThreadGovernor | None = None, max_bytes: int = 768 << 20) -> None:
        self.size, self.max_bytes = size, max_bytes
        self.threads = threads  # re-decides the CPU threads at each request: the cores others leave free
        self._items: OrderedDict[tuple[str, int | None, int, int], tuple[Predictor, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, int | None], threading.Lock] = {}  # one lock per model while it loads
        self.loads = 0

    def get(self, source: Path | str, epoch: int | None = None) -> tuple[Predictor, threading.Lock]:
        """The predictor of a run directory (a ``Path``) or of a weight's name (a ``str``); with ``epoch``, of the
        run's snapshot after that epoch (:mod:`cnnzoo.run.snapshots`)."""
        if self.threads is not None:
            self.threads.poll()
        st = None
        if isinstance(source, Path):
            try:
                st = (source / "last.pt" if epoch is None else snapshot_path(source, epoch)).stat()
            except OSError:
                st = None
        key = (str(source), epoch, st.st_mtime_ns if st else 0, st.st_size if st else 0)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            loading = self._loading.setdefault(key[:2], threading.Lock())
        with loading:  # one load per model at a time; a request that waited finds the model loaded
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            return self._load(source, key)

    def _load(self, source: Path | str, key: tuple[str, int | None, int, int]) -> tuple[Predictor, threading.Lock]:
        epoch = key[1]
        if epoch is None or not isinstance(source, Path):
            predictor = load_model(source)  # outside the cache's lock: loading takes a while
        else:  # the run's final model with the snapshot's weights in a copy of its network
            final, final_lock = self.get(source)
            state = load_snapshot(source, epoch)
            with final_lock:  # a request's hooks are never on the network while it is copied
                predictor = dataclasses.replace(final, model=copy.deepcopy(final.model))
            predictor.model.load_state_dict(state)
        entry = (predictor, threading.Lock())
        with self._lock:
            self.loads += 1
            for old in [k for k in self._items if k[:2] == key[:2]]:
                del self._items[old]
            self._items[key] = entry
            while len(self._items) > 1 and (len(self._items) > self.size or self.bytes() > self.max_bytes):
                self._items.popitem(last=False)
        return entry

    def bytes(self) -> int:
        """The weights and buffers of the models held."""
        return sum(_model_bytes(p.model) for p, _ in self._items.values())


def _model_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


# ------------------------------------------------------------------------------------------------
# preparing the upload and drawing what comes back
# ------------------------------------------------------------------------------------------------
def model_cache(request: Request) -> ModelCache:
    """The studio's :class:`ModelCache`."""
    return request.app.state.models


def upload_limit(request: Request) -> int:
    """The studio's upload size limit, in bytes."""
    return request.app.state.max_upload


ModelsDep = Annotated[ModelCache, Depends(model_cache)]
UploadLimitDep = Annotated[int, Depends(upload_limit)]


def prepare_upload(predictor: Predictor, data: bytes, name: str) -> PreparedImage:
    """``data`` prepared exactly as :meth:`Predictor.prepare` prepares a file (the decoder sniffs the format)."""
    return predictor.prepare_bytes(data, name)


def png_data_url(array: np.ndarray) -> str:
    """A uint8 ``[H, W]`` or ``[H, W, 3]`` array as a PNG data URL."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _enlarge(array: np.ndarray, side: int = MIN_SIDE) -> np.ndarray:
    factor = max(1, -(-side // max(array.shape[:2])))
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def _input_rgb(pixels: torch.Tensor) -> np.ndarray:
    a = pixels.numpy()
    return np.repeat(a[0][..., None], 3, axis=2) if a.shape[0] == 1 else a.transpose(1, 2, 0)


def cam_overlay(pixels: torch.Tensor, cam: torch.Tensor) -> np.ndarray:
    """The input in grey with the class-activation map over it (inferno colours, more opaque where hotter)."""
    base = _input_rgb(pixels).astype(np.float32)
    heat = colormaps["inferno"](cam.numpy())[..., :3] * 255.0
    alpha = 0.25 + 0.5 * cam.numpy()[..., None]
    return _enlarge(np.clip(base * (1 - alpha) + heat * alpha, 0, 255).astype(np.uint8))


MAP_COLOURS = "viridis"  # the colour scale of the feature maps: dark blue = a map's lowest, yellow = its highest
MAP_GAP = 4  # white pixels between two maps


def grid_layout(count: int, h: int, w: int, min_side: int = 48) -> dict[str, int]:
    """Where :func:`feature_grid` puts ``count`` maps of ``h`` x ``w``: ``cols`` maps a row, each enlarged ``factor``
    times (to at least ``min_side`` pixels), ``gap`` pixels apart; a page maps a click on the picture back to a
    channel and a pixel with it."""
    cols = max(1, min(count, 8))
    return {"count": count, "cols": cols, "rows": -(-count // cols), "factor": max(1, -(-min_side // max(h, w, 1))),
            "gap": MAP_GAP, "height": h, "width": w}  # fmt: skip


def feature_grid(
    output: torch.Tensor, limit: int = MAX_STAGE_CHANNELS, min_side: int = 48
) -> tuple[np.ndarray, int, list[float]]:
    """Up to ``limit`` channels of one image's ``[C, H, W]`` stage output side by side, in :data:`MAP_COLOURS`
    (each map scaled from its own lowest to its own highest value), :data:`MAP_GAP` white pixels apart
    (:func:`grid_layout`); how many channels it shows; and the lowest and highest value among them."""
    maps = output[:limit].float()
    count, h, w = maps.shape
    low = maps.flatten(1).amin(dim=1).view(-1, 1, 1)
    high = maps.flatten(1).amax(dim=1).view(-1, 1, 1)
    scaled = ((maps - low) / (high - low).clamp_min(1e-12)).clamp(0, 1).numpy()
    coloured = (colormaps[MAP_COLOURS](scaled)[..., :3] * 255).astype(np.uint8)  # [count, h, w, 3]
    layout = grid_layout(count, h, w, min_side)
    cols, rows, factor = layout["cols"], layout["rows"], layout["factor"]
    th, tw, g = h * factor, w * factor, MAP_GAP
    grid = np.full((rows * (th + g) - g, cols * (tw + g) - g, 3), 255, dtype=np.uint8)
    for i in range(count):
        r, c = divmod(i, cols)
        tile = np.repeat(np.repeat(coloured[i], factor, axis=0), factor, axis=1)
        grid[r * (th + g) : r * (th + g) + th, c * (tw + g) : c * (tw + g) + tw] = tile
    return grid, count, [float(low.min()), float(high.max())]


def _target_index(target: str | None, classes: Sequence[str]) -> int | None:
    """``target`` as a class index (:func:`cnnzoo.explain.files.class_index`); None or blank: the predicted class."""
    if target is None or not target.strip():
        return None
    return class_index(target, classes, what="target")


def _cam_record(predictor: Predictor, pixels: torch.Tensor, cam: CamResult) -> dict[str, Any]:
    index = cam.targets[0]
    return {
        "target": index,
        "class": predictor.classes[index],
        "probability": float(cam.probabilities[0, index]),
        "layer": cam.layer,
        "grid": list(cam.grid),
        "note": cam.note(0),
        "overlay": png_data_url(cam_overlay(pixels, cam.maps[0])),
    }


def _stage_records(stages: Sequence[StageActivation]) -> list[dict[str, Any]]:
    out = []
    for stage in stages:
        first = stage.output[0]
        image, shown, values = None, 0, None
        if first.dim() == 3 and min(first.shape[1:]) >= 1:
            grid, shown, values = feature_grid(first)
            image = png_data_url(grid)
        out.append({"name": stage.label, "shape": list(stage.shape[1:]), "channels_shown": shown, "image": image,
                    "values": values})  # fmt: skip
    return out


def predict_upload(
    predictor: Predictor, data: bytes, filename: str, *, top_k: int, target: str | None
) -> dict[str, Any]:
    """The whole answer of ``POST /api/predict`` for one upload (the caller holds the model's lock): the upload is
    decoded and normalised once; one plain forward pass gives the prediction (the records ``cnnzoo predict``
    prints, warning included), the feature maps and Grad-CAM's layer, and Grad-CAM adds its own pass."""
    sniff(data)
    if not 1 <= top_k <= 100:
        raise ConfigError(f"top_k {top_k}: give a number from 1 to 100")
    wanted = _target_index(target, predictor.classes)
    prepared = prepare_upload(predictor, data, filename)
    x = predictor.model_input(prepared.pixels.unsqueeze(0))
    try:  # captum, which Grad-CAM uses, is imported by the first call
        seen = look_at(predictor.model, x, None if wanted is None else [wanted])
    except ImportError as exc:
        record = predictor.classify([prepared], top_k=top_k)[0]
        explained = {"cam": None, "stages": [], "note": f"no class-activation maps: captum is unavailable ({exc})"}
    else:
        record = predictor.records_of([prepared], seen.probabilities, top_k=top_k)[0]
        explained = {"cam": _cam_record(predictor, prepared.pixels, seen.cam), "stages": _stage_records(seen.stages),
                     "note": None}  # fmt: skip
    return {
        "filename": filename,
        "size": record["size"],
        "mode": record["mode"],
        "inverted": record["inverted"],
        "top": record["top"],
        "warning": record["warning"],
        "input": png_data_url(_enlarge(_input_rgb(prepared.pixels))),
        **explained,
    }


# ------------------------------------------------------------------------------------------------
# the route
# ------------------------------------------------------------------------------------------------
def snapshot_epochs(index: RunIndex, run_id: str, epoch: int | None = None) -> list[int]:
    """The epochs of the run's snapshots; with ``epoch``, :class:`NotFoundError` unless it is one of them."""
    epochs = [s.epoch for s in list_snapshots(index.path(run_id))]
    if epoch is not None and epoch not in epochs:
        kept = ", ".join(map(str, epochs)) or "none (train with --snapshots auto)"
        raise NotFoundError(f"{run_id} has no snapshot of epoch {epoch}: it keeps {kept}")
    return epochs


router = APIRouter(prefix="/api", tags=["try it"])


def too_large(max_upload: int) -> str:
    """The one message for an upload over the limit (413): while it arrives, or once read."""
    return f"the upload is over the studio's {max_upload / 1024 / 1024:g} MB limit: choose a smaller picture"


async def read_upload(file: UploadFile, limit: int) -> bytes:
    """The upload's bytes, read in chunks and refused as soon as they pass ``limit`` (the request body was
    bounded while it arrived: see :class:`cnnzoo.studio.app.BodyLimit`)."""
    chunks, size = [], 0
    while chunk := await file.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise UploadTooLargeError(too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class ModelUpload:
    """What a model request brings: the picture's bytes and name, and the model it goes through (a run's directory
    or a weight's name, its label in the answer, and the epoch snapshot, if one was asked for)."""

    data: bytes
    name: str
    source: Path | str
    label: str
    epoch: int | None


async def model_upload(
    index: RunsDep,
    max_upload: UploadLimitDep,
    file: Annotated[UploadFile, File(description="the picture (PNG, JPEG, GIF, BMP, TIFF, WebP: judged by its bytes)")],
    run: Annotated[str | None, Form(description="a run id from GET /api/runs (or give weight)")] = None,
    weight: Annotated[str | None, Form(description="a weight's name from GET /api/weights (or give run)")] = None,
    epoch: Annotated[
        int | None, Form(description="with run: the network as it was after this epoch (GET /api/runs/ID/snapshots)")
    ] = None,
) -> ModelUpload:
    """The picture and the model of ``POST /api/predict`` and ``/api/arithmetic``: the model is checked first (an
    unknown run is a 404 before the upload is read), then the upload is read within the size limit."""
    source, label = model_source(index, run, weight, epoch)
    data = await read_upload(file, max_upload)
    return ModelUpload(data, Path(file.filename or "upload").name[:200] or "upload", source, label, epoch)


ModelUploadDep = Annotated[ModelUpload, Depends(model_upload)]
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {400: {}, 404: {}, 413: {}, 415: {}}  # a model request's 4xx


def upload_route(on: APIRouter, path: str, answer: type, summary: str) -> Any:
    """The decorator of a ``POST`` route that takes a :class:`ModelUpload`, its answer and its 4xx documented."""
    return on.post(path, response_model=answer, summary=summary, responses=UPLOAD_ERRORS)


@upload_route(router, "/predict", PredictOut, "classify an uploaded picture with a model: top-k, CAM, stage maps")
async def post_predict(
    upload: ModelUploadDep,
    models: ModelsDep,
    top_k: Annotated[int, Form(description="how many classes to rank (1-100)")] = 3,
    target: Annotated[
        str | None, Form(description="the class the CAM explains (label or name; default: the top)")
    ] = None,
) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        predictor, lock = models.get(upload.source, upload.epoch)
        with lock:
            return predict_upload(predictor, upload.data, upload.name, top_k=top_k, target=target)

    return {"run": upload.label, "epoch": upload.epoch, **await run_in_threadpool(work)}


def model_source(
    index: RunIndex, run: str | None, weight: str | None, epoch: int | None = None
) -> tuple[Path | str, str]:
    """What ``POST /api/predict`` classifies with: a run's directory (``epoch``: one of its snapshots), or an
    available weight's name."""
    if (run is None) == (weight is None):
        raise ConfigError("give either run (a run id from GET /api/runs) or weight (a name from GET /api/weights)")
    if run is not None:
        if epoch is not None:
            snapshot_epochs(index, run, epoch)
        return index.path(run), run
    if epoch is not None:
        raise ConfigError("epoch goes with run (a run's snapshots), not with weight: drop epoch")
    found = next((w for w in weight_rows() if w["name"] == weight), None)
    if found is None:
        raise NotFoundError(f"unknown weight {weight[:80]!r}: see GET /api/weights")
    if not found["available"]:
        raise NotFoundError(f"{weight} is not on this machine: cnnzoo weights build {weight} (or fetch it)")
    return found["name"], f"weight:{found['name']}"
