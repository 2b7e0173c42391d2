"""The JSON the API answers with, as pydantic models: what ``/openapi.json`` documents and what the pages read."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "ArithmeticOut",
    "CostRowOut",
    "ErrorOut",
    "FiltersOut",
    "LayerOut",
    "MetricsOut",
    "ModelDetailOut",
    "ModelOut",
    "PredictOut",
    "RunDetailOut",
    "RunOut",
    "SnapshotOut",
    "SnapshotsOut",
    "StageMapOut",
    "TopClassOut",
]


class ErrorOut(BaseModel):
    """Every 4xx (and the rare 500) answers with one line."""

    error: str = Field(examples=["unknown run 'lenet-x': see GET /api/runs for the runs under the studio's root"])


class ModelOut(BaseModel):
    """A registered model at its default input size (MACs: conv and linear multiply-accumulates, one image)."""

    name: str
    family: str
    description: str
    input_size: int
    min_input_size: int
    max_input_size: int | None
    params: int
    macs: int


class LayerOut(BaseModel):
    name: str
    type: str
    output_shape: list[int] | None
    params: int
    macs: int


class BlockOut(BaseModel):
    """A block as the book draws it (:func:`cnnzoo.models.graphs.block_graph`): ``kind`` layer, sequence,
    inception, residual, dense or nin; ``paths``: each path's layers, top to bottom, of a block whose input takes
    several paths, and ``join``: how they meet; ``blocks``: the parts of a sequence."""

    kind: str
    label: str
    paths: list[list[str]]
    join: str
    blocks: list[BlockOut]
    why: str = ""


class BookFigureOut(BaseModel):
    network: str
    test_acc: float | None
    setting: str
    source: str


class BookTraceOut(BaseModel):
    """The shape trace the book printed (``None`` where it printed none) and cnnzoo's, at the same input side."""

    side: int
    printed: list[str] | None
    live: list[str]


class BookOut(BaseModel):
    """The model's ties to the book: its section of the chapter, the accuracy the book printed for it (``None``:
    a plot only), the public Fashion-MNIST table's figure for its family, and the shape traces."""

    section: str | None
    figures: list[BookFigureOut]
    public: dict[str, Any] | None
    trace: BookTraceOut


class StageOut(LayerOut):
    """A top-level stage of the network, the layers inside it, and its graph."""

    children: list[LayerOut]
    graph: BlockOut


class WeightOut(BaseModel):
    """A named trained weight (cnnzoo.weights): ``available`` when its file is on this machine (shipped,
    fetched or built); ``test_acc`` is the file's, ``test_acc_mean``/``_std`` over its recipe's seeds."""

    name: str
    model: str
    dataset: str
    input_size: int
    classes: list[str]
    test_acc: float
    test_acc_mean: float | None
    test_acc_std: float | None
    seeds: int
    bytes: int
    where: str
    available: bool


class ModelDetailOut(ModelOut):
    input_shape: list[int]
    trainable_params: int
    stages: list[StageOut]
    book: BookOut


class CostRowOut(BaseModel):
    block: str
    weights: int
    macs: int


class RunOut(BaseModel):
    """A run directory under the studio's root. ``status``: ``training`` (a live process holds its lock),
    ``finished`` (it has its report), ``stopped`` (resumable from last.pt) or ``incomplete`` (no checkpoint)."""

    id: str
    model: str
    status: str
    epochs_done: int
    epochs: int | None
    test_acc: float | None
    best_val_acc: float | None
    dataset: str | None
    started: str | None
    has_checkpoint: bool


class RunDetailOut(RunOut):
    config: dict[str, Any]
    classes: list[str]
    per_class: list[dict[str, Any]]
    files: list[str]
    environment: dict[str, Any]


class MetricsOut(BaseModel):
    """``epochs``: one row per completed epoch (metrics.jsonl); ``live``: the epoch in progress (live.json),
    running train loss and accuracy at each log interval, empty when no epoch is under way."""

    run: str
    training: bool
    epochs: list[dict[str, Any]]
    live: list[dict[str, Any]]
    live_state: str | None


class TopClassOut(BaseModel):
    rank: int
    label: int
    class_: str = Field(alias="class")
    probability: float

    model_config = {"populate_by_name": True}


class StageMapOut(BaseModel):
    """One stage's output for the picture; ``image``: a PNG data URL of up to 16 of its channels (4-D outputs)."""

    name: str
    shape: list[int]
    channels_shown: int
    image: str | None
    values: list[float] | None = Field(
        None, description="the lowest and highest value among the channels shown (each map is coloured from its own)"
    )


class PredictOut(BaseModel):
    run: str = Field(description="the run id, or weight:NAME for a named weight")
    epoch: int | None = Field(None, description="the epoch snapshot used; None: the run's final model")
    filename: str
    size: list[int]
    mode: str
    inverted: bool
    top: list[TopClassOut]
    warning: str | None = Field(
        None, description="why not to trust this answer (unlike the training pictures, or low confidence), else None"
    )
    input: str = Field(description="the picture as the model sees it (before normalisation), a PNG data URL")
    cam: dict[str, Any] | None = Field(
        description="target, class, layer and overlay (PNG data URL); None without cnnzoo.explain"
    )
    stages: list[StageMapOut]
    note: str | None = None


class SnapshotOut(BaseModel):
    """One epoch snapshot of a run's weights (``cnnzoo train --snapshots``) and that epoch's accuracies."""

    epoch: int
    size: int = Field(description="the file's bytes")
    test_accuracy: float | None
    val_accuracy: float | None
    per_class: list[float] | None = Field(description="the test accuracy of each class, in the run's class order")


class SnapshotsOut(BaseModel):
    """The snapshots a run keeps, oldest first, for the epoch scrubber."""

    run: str
    classes: list[str]
    epochs: int | None = Field(description="the epochs the run was asked for")
    snapshots: list[SnapshotOut]


class FiltersOut(BaseModel):
    """The first convolution's filters after one epoch: each kernel in viridis, scaled from its own lowest value."""

    run: str
    epoch: int
    layer: str
    shape: list[int] = Field(description="[out channels, in channels, height, width]")
    shown: int = Field(description="how many filters the image shows (the first input channel of each)")
    image: str = Field(description="a PNG data URL")
    values: list[float] = Field(description="the lowest and highest weight among the filters shown")


class ArithmeticOut(BaseModel):
    """How one value of a layer's output was computed (see :mod:`cnnzoo.explain.arithmetic` for every field of
    ``arithmetic``): ``arithmetic.total`` is the sum written out, ``arithmetic.value`` the forward pass's value."""

    run: str
    epoch: int | None = None
    layers: list[dict[str, Any]] = Field(description="every unit a learner can choose: name, kind, label, shape")
    layer: dict[str, Any] = Field(description="the chosen unit: its maps as a PNG data URL and their layout")
    arithmetic: dict[str, Any]
