"""Benchmarks: model throughput on synthetic input, and cnnzoo's training path raced against the seeds'.

Two measurements, two questions.

:func:`bench` (``cnnzoo bench MODEL...``) asks *how fast is this network on this machine*: images/s and
ms/step of a training step (forward, backward, SGD) or an inference forward on a synthetic batch already
on the device, after warm-up steps (which also absorb ``torch.compile``'s compilation), between two
device synchronisations, so queued GPU work is counted and launch overhead is not mistaken for speed.
Peak memory, from building the model to the last timed step (weights, gradients, optimizer state,
activations), is CUDA's ``max_memory_allocated`` on a GPU, and on the CPU the process's peak resident
set size (``VmHWM``, reset through ``/proc/self/clear_refs`` after the previous model's memory is handed
back with ``malloc_trim``), so it includes the interpreter and PyTorch themselves (~0.4 GB). A batch that
runs out of memory is retried at half the size, and the row says so.

:func:`compare_pipelines` (``cnnzoo bench --pipeline MODEL``) asks *how much faster does cnnzoo train
than the seeds' code*: one epoch of each, end to end, on the same model, batch size, input size, device
and torch thread settings, interleaved (seeds, cnnzoo, seeds, cnnzoo, ...) after an untimed warm-up,
and the median of the per-round ratios. The seeds' side is rebuilt faithfully from seed 001:
``d2l.load_data_fashion_mnist`` (torchvision's ``FashionMNIST`` dataset, ``transforms.Resize`` when the
seeds resize, then ``ToTensor``, a shuffling ``DataLoader`` with d2l's 4 workers, started anew each
epoch as d2l's loaders are) and ``train_ch6``'s epoch (plain SGD, cross-entropy, ``d2l.Accumulator``
fed ``float(l * X.shape[0])`` and ``d2l.accuracy`` every batch: two host syncs per batch, then
``evaluate_accuracy_gpu`` over the test loader). Left out, in the seeds' favour: the ``Animator`` live
plot and the prints. cnnzoo's side is :func:`cnnzoo.fit` for one epoch with the ``d2l`` recipe's
optimisation (plain SGD, no normalisation, no augmentation), so the two sides differ only in the input
pipeline and the loop: device-resident batches, no per-batch host sync, evaluation in large batches.
Both times are whole epochs (data loader start-up, training, test evaluation); the training-only
figures are reported too.

torchvision reads the IDX files itself, so the seeds' side gets its own copy: the four uncompressed
files that ``torchvision.datasets.FashionMNIST`` expects in ``<root>/FashionMNIST/raw/`` are written
once from cnnzoo's verified tensors (:func:`seeds_dataset_root`); nothing is downloaded.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo.data.dataset import ImageDataset
from cnnzoo.devices import DeviceSetup, free_device_memory
from cnnzoo.errors import ConfigError
from cnnzoo.registry import create_model, get_model_info

__all__ = [
    "BENCH_MODES",
    "BenchRow",
    "PipelineResult",
    "PipelineRound",
    "bench",
    "bench_chart",
    "bench_input_size",
    "bench_model",
    "compare_pipelines",
    "default_bench_batch_size",
    "format_bench_table",
    "format_pipeline",
    "is_out_of_memory",
    "pipeline_markdown",
    "rows_to_csv",
    "rows_to_json",
    "rows_to_markdown",
    "seeds_dataset_root",
    "seeds_train_epoch",
]

BENCH_MODES = ("train", "infer")
SEEDS_WORKERS = 4  # d2l.get_dataloader_workers()


# ------------------------------------------------------------------------------------------------
# synthetic-input throughput
# ------------------------------------------------------------------------------------------------
@dataclass
class BenchRow:
    """One model in one mode. ``note`` says what differs from what was asked (input size, batch size)."""

    model: str
    mode: str
    batch_size: int
    input_size: int
    device: str
    precision: str
    channels_last: bool
    compiled: bool
    images_per_sec: float
    ms_per_step: float
    steps: int
    params: int
    macs: int
    peak_memory_mb: float | None
    memory_kind: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_bench_batch_size(device: torch.device) -> int:
    """256 on an accelerator; 16 on the CPU, where a batch of VGG-11 at 224x224 takes seconds per step."""
    return 16 if device.type == "cpu" else 256


def bench_input_size(name: str, requested: int | None) -> tuple[int, str]:
    """The input side to benchmark ``name`` at, and a note when it is not ``requested``.

    No size: the model's own input size. A size outside the model's valid range is clipped into it
    (LeNet takes 28-31, VGG 224-255, AlexNet 193-224), so ``bench all --input-size 32`` runs every model.
    """
    info = get_model_info(name)
    if requested is None:
        return info.default_input_size, ""
    size = max(int(requested), info.min_input_size)
    if info.max_input_size is not None:
        size = min(size, info.max_input_size)
    if size == requested:
        return size, ""
    accepts = f"{info.min_input_size}-{info.max_input_size}" if info.max_input_size else f">= {info.min_input_size}"
    return size, f"input {requested} -> {size} (accepts {accepts})"


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's and the CPU allocator's out-of-memory errors (both ``torch.OutOfMemoryError`` today; older
    builds raised a plain ``RuntimeError`` with the words in the message)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class _PeakMemory:
    """Peak memory of one measurement: CUDA max allocated, or the process's peak RSS on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda max allocated" if device.type == "cuda" else "process peak RSS"
        self._reset_ok = False

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so the peak is this measurement's.
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._reset_ok = True
        except OSError:
            self._reset_ok = False
            self.kind = "process peak RSS since start"

    def peak_mb(self) -> float | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.device.type != "cpu":
            return None
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        try:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        except (ImportError, OSError):
            return None


def _count_macs(name: str, size: int) -> int:
    """MACs per image with :func:`cnnzoo.inspection.count_macs`, on a meta-device copy (no memory, fast)."""
    from cnnzoo.inspection import count_macs

    with torch.device("meta"):
        meta = create_model(name)
    return count_macs(meta, size)


def bench_model(
    name: str,
    *,
    mode: str,
    batch_size: int,
    input_size: int,
    setup: DeviceSetup,
    compile: bool = False,
    warmup: int = 3,
    steps: int = 10,
    min_seconds: float = 0.0,
) -> BenchRow:
    """Measure one model in one mode at one batch size (raises on out of memory; :func:`bench` retries).

    Times at least ``steps`` steps and keeps going until ``min_seconds`` have passed, after ``warmup``
    untimed steps. Training steps use SGD with momentum and cross-entropy under the setup's autocast.
    """
    if mode not in BENCH_MODES:
        raise ValueError(f"mode must be one of {BENCH_MODES}, got {mode!r}")
    device = setup.device
    memory = _PeakMemory(device)
    free_device_memory(device)
    memory.reset()  # the peak covers weights, gradients, optimizer state and activations
    torch.manual_seed(0)
    model = create_model(name).to(device)
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(batch_size, 1, input_size, input_size, device=device)
    if setup.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)
    forward = torch.compile(model) if compile else model

    if mode == "train":
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()

        def step() -> None:
            with setup.autocast():
                loss = loss_fn(forward(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    else:
        model.eval()

        def step() -> None:
            with torch.inference_mode(), setup.autocast():
                forward(x)

    for _ in range(warmup):
        step()
    setup.synchronize()
    done, start = 0, time.perf_counter()
    while done < steps or time.perf_counter() - start < min_seconds:
        step()
        done += 1
        if done >= steps and min_seconds > 0:
            setup.synchronize()  # only to decide whether to stop; the figure is taken below
    setup.synchronize()
    seconds = time.perf_counter() - start
    peak = memory.peak_mb()
    return BenchRow(
        model=name,
        mode=mode,
        batch_size=batch_size,
        input_size=input_size,
        device=setup.describe().split(",")[0],
        precision=setup.precision,
        channels_last=setup.channels_last,
        compiled=compile,
        images_per_sec=batch_size * done / seconds,
        ms_per_step=1000 * seconds / done,
        steps=done,
        params=params,
        macs=_count_macs(name, input_size),
        peak_memory_mb=peak,
        memory_kind=memory.kind,
    )


def bench(
    names: Sequence[str],
    *,
    modes: Sequence[str] = BENCH_MODES,
    batch_size: int,
    input_size: int | None,
    setup: DeviceSetup,
    compile: bool = False,
    warmup: int = 3,
    steps: int = 10,
    min_seconds: float = 0.0,
    on_row: Callable[[BenchRow], None] | None = None,
    measure: Callable[..., BenchRow] | None = None,
) -> list[BenchRow]:
    """:func:`bench_model` for every model and mode; out of memory halves the batch until it fits.

    A model that does not fit even one image gets a row with zero throughput and a note, so a table
    over ``all`` models is always complete. ``measure`` replaces :func:`bench_model` (tests).
    """
    measure = measure or bench_model
    rows = []
    for name in names:
        size, size_note = bench_input_size(name, input_size)
        for mode in modes:
            batch, notes = batch_size, [size_note] if size_note else []
            floor = 2 if mode == "train" else 1  # BatchNorm's batch statistics need two images to train
            if batch < floor:
                raise ConfigError(f"--batch-size {batch}: a training step needs at least 2 images (BatchNorm)")
            while True:
                try:
                    row = measure(
                        name,
                        mode=mode,
                        batch_size=batch,
                        input_size=size,
                        setup=setup,
                        compile=compile,
                        warmup=warmup,
                        steps=steps,
                        min_seconds=min_seconds,
                    )
                    break
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    free_device_memory(setup.device)
                    if batch <= floor:
                        notes.append(f"out of memory even at batch {batch}")
                        row = _failed_row(name, mode, size, setup, compile)
                        break
                    smaller = max(floor, batch // 2)
                    notes.append(f"batch {batch} out of memory, retried at {smaller}")
                    batch = smaller
            free_device_memory(setup.device)
            row.note = "; ".join(notes)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def _failed_row(name: str, mode: str, size: int, setup: DeviceSetup, compile: bool) -> BenchRow:
    with torch.device("meta"):
        params = sum(p.numel() for p in create_model(name).parameters())
    return BenchRow(
        model=name,
        mode=mode,
        batch_size=0,
        input_size=size,
        device=setup.describe().split(",")[0],
        precision=setup.precision,
        channels_last=setup.channels_last,
        compiled=compile,
        images_per_sec=0.0,
        ms_per_step=float("nan"),
        steps=0,
        params=params,
        macs=_count_macs(name, size),
        peak_memory_mb=None,
        memory_kind="",
    )


# -- output -------------------------------------------------------------------------------------
_COLUMNS = ("model", "mode", "batch", "input", "images/s", "ms/step", "params", "MACs", "peak MB", "note")


def _cells(row: BenchRow) -> list[str]:
    from cnnzoo.inspection import human

    peak = f"{row.peak_memory_mb:,.0f}" if row.peak_memory_mb is not None else "-"
    return [
        row.model,
        row.mode,
        str(row.batch_size),
        f"{row.input_size}x{row.input_size}",
        f"{row.images_per_sec:,.1f}",
        f"{row.ms_per_step:,.2f}" if math.isfinite(row.ms_per_step) else "-",
        f"{row.params:,}",
        human(row.macs),
        peak,
        row.note,
    ]


def _settings_line(rows: Sequence[BenchRow]) -> str:
    if not rows:
        return ""
    r = rows[0]
    memory = next((x.memory_kind for x in rows if x.memory_kind), "")
    layout = "channels_last" if r.channels_last else "NCHW"
    return (
        f"device {r.device}, {r.precision}, {layout}{', torch.compile' if r.compiled else ''}; synthetic input; "
        f"train = forward + backward + SGD step; MACs per image; peak memory: {memory}"
    )


def format_bench_table(rows: Sequence[BenchRow]) -> str:
    """A plain-text table, then one line with the settings every row shares."""
    body = [_COLUMNS, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in body) for i in range(len(_COLUMNS))]
    right = {2, 3, 4, 5, 6, 7, 8}
    lines = []
    for line in body:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n\n" + _settings_line(rows)


def rows_to_markdown(rows: Sequence[BenchRow]) -> str:
    """The table as GitHub Markdown, with the settings line under it."""
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 7 + ["---"]) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in _cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n\n" + _settings_line(rows) + "\n"


def rows_to_csv(rows: Sequence[BenchRow]) -> str:
    """Every field of every row, one row per line."""
    buf = io.StringIO()
    fields = [f.name for f in dataclasses.fields(BenchRow)]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r.to_dict())
    return buf.getvalue()


def rows_to_json(rows: Sequence[BenchRow], extra: dict[str, Any] | None = None) -> str:
    """``{"torch": ..., "rows": [...]}`` (NaN written as null)."""
    clean = [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.to_dict().items()}
        for r in rows
    ]
    return json.dumps({"torch": torch.__version__, **(extra or {}), "rows": clean}, indent=2) + "\n"


def bench_chart(rows: Sequence[BenchRow]) -> Any:
    """A horizontal bar chart of images/s per model, one bar per mode (log scale: LeNet and VGG differ
    by three orders of magnitude)."""
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(r.model for r in rows))
    modes = [m for m in BENCH_MODES if any(r.mode == m for r in rows)]
    fig = Figure(figsize=(7.5, 0.9 + 0.42 * len(names) * max(1, len(modes))))
    ax = fig.add_subplot()
    height = 0.8 / max(1, len(modes))
    for k, mode in enumerate(modes):
        by_name = {r.model: r.images_per_sec for r in rows if r.mode == mode}
        ys = [i + k * height for i in range(len(names))]
        values = [by_name.get(n, 0.0) for n in names]
        bars = ax.barh(ys, values, height=height, label=mode)
        for bar, v in zip(bars, values):
            if v > 0:
                ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {v:,.0f}", va="center", fontsize=7)
    ax.set_yticks([i + height * (len(modes) - 1) / 2 for i in range(len(names))], names)
    ax.invert_yaxis()
    if any(r.images_per_sec > 0 for r in rows):
        ax.set_xscale("log")
    ax.set_xlabel("images/s")
    ax.legend(loc="lower right")
    batches = sorted({r.batch_size for r in rows if r.batch_size})
    batch = f"batch {batches[0]}" if len(batches) == 1 else "batch " + "/".join(map(str, batches))
    ax.set_title(f"{_settings_line(rows).split(';')[0]}, {batch}", fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    return fig


# ------------------------------------------------------------------------------------------------
# the seeds' pipeline, rebuilt (seed 001: d2l.load_data_fashion_mnist + train_ch6)
# ------------------------------------------------------------------------------------------------
_RAW_FILES = (
    ("train_images", "train-images-idx3-ubyte"),
    ("train_labels", "train-labels-idx1-ubyte"),
    ("test_images", "t10k-images-idx3-ubyte"),
    ("test_labels", "t10k-labels-idx1-ubyte"),
)


def seeds_dataset_root(data: ImageDataset, root: str | os.PathLike[str] | None = None) -> Path:
    """A directory ``torchvision.datasets.FashionMNIST(root, download=False)`` loads ``data`` from.

    torchvision looks for the four *uncompressed* IDX files in ``<root>/FashionMNIST/raw/`` (its
    ``_check_exists``); they are written from ``data``'s tensors under a key made of their content, in
    the user cache by default, and reused while they match.
    """
    from cnnzoo.data.cache import cache_dir
    from cnnzoo.data.idx import write_idx

    tensors = {key: getattr(data, key).cpu().contiguous() for key, _ in _RAW_FILES}
    digest = hashlib.md5()
    for key, _ in _RAW_FILES:
        digest.update(repr(tuple(tensors[key].shape)).encode())
        digest.update(tensors[key].numpy().tobytes())
    base = Path(root) if root is not None else cache_dir("seeds-torchvision")
    top = base / f"{data.name}-{digest.hexdigest()[:12]}"
    raw = top / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for key, stem in _RAW_FILES:
        path = raw / stem
        array = tensors[key].numpy()
        if key.endswith("labels"):
            array = array.astype("uint8")
        content = write_idx(array)
        if not path.exists() or path.stat().st_size != len(content):
            from cnnzoo.atomic import atomic_write_bytes

            atomic_write_bytes(path, content)
    return top


def _seeds_loaders(
    root: Path, batch_size: int, resize: int | None, train_images: int, test_images: int, workers: int
) -> tuple[Any, Any]:
    """``d2l.load_data_fashion_mnist(batch_size, resize)``, limited to the first images of each split."""
    import torchvision
    from torch.utils import data as tud
    from torchvision import transforms

    trans = [transforms.ToTensor()]
    if resize:
        trans.insert(0, transforms.Resize(resize))
    trans = transforms.Compose(trans)
    mnist_train = torchvision.datasets.FashionMNIST(root=str(root), train=True, transform=trans, download=False)
    mnist_test = torchvision.datasets.FashionMNIST(root=str(root), train=False, transform=trans, download=False)
    # Shorter splits (ResNet on a CPU): keep the first images. Slicing the dataset's own tensors keeps
    # its __getitem__ (PIL image, transforms) exactly as it is.
    mnist_train.data, mnist_train.targets = mnist_train.data[:train_images], mnist_train.targets[:train_images]
    mnist_test.data, mnist_test.targets = mnist_test.data[:test_images], mnist_test.targets[:test_images]
    return (
        tud.DataLoader(mnist_train, batch_size, shuffle=True, num_workers=workers),
        tud.DataLoader(mnist_test, batch_size, shuffle=False, num_workers=workers),
    )


class _Accumulator:
    """``d2l.Accumulator``: sums ``n`` variables as Python floats (``float(tensor)`` syncs the host)."""

    def __init__(self, n: int) -> None:
        self.data = [0.0] * n

    def add(self, *args: Any) -> None:
        self.data = [a + float(b) for a, b in zip(self.data, args)]

    def __getitem__(self, idx: int) -> float:
        return self.data[idx]


def _d2l_accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """``d2l.accuracy``: the number of correct predictions, as a Python float (a host sync)."""
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def _d2l_evaluate_accuracy_gpu(net: nn.Module, data_iter: Iterable, device: torch.device) -> float:
    """Seed 001's ``evaluate_accuracy_gpu``."""
    net.eval()
    metric = _Accumulator(2)
    with torch.no_grad():
        for X, y in data_iter:
            X = X.to(device)
            y = y.to(device)
            metric.add(_d2l_accuracy(net(X), y), y.numel())
    return metric[0] / metric[1]


def seeds_train_epoch(
    net: nn.Module, train_iter: Iterable, test_iter: Iterable, lr: float, device: torch.device
) -> dict[str, float]:
    """One epoch of seed 001's ``train_ch6`` (``num_epochs=1``): its init, SGD, per-batch float() metrics
    and test evaluation; without the ``Animator`` and the prints. Returns seconds and accuracies."""

    def init_weight(m: nn.Module) -> None:
        if type(m) is nn.Linear or type(m) is nn.Conv2d:
            nn.init.xavier_uniform_(m.weight)

    start = time.perf_counter()
    net.apply(init_weight)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    metric = _Accumulator(3)
    net.train()
    train_l = train_acc = float("nan")
    for X, y in train_iter:
        optimizer.zero_grad()
        X, y = X.to(device), y.to(device)
        y_hat = net(X)
        l = loss(y_hat, y)  # noqa: E741  (the seeds' name)
        l.backward()
        optimizer.step()
        with torch.no_grad():
            metric.add(l * X.shape[0], _d2l_accuracy(y_hat, y), X.shape[0])
        train_l = metric[0] / metric[2]
        train_acc = metric[1] / metric[2]
    trained = time.perf_counter()
    test_acc = _d2l_evaluate_accuracy_gpu(net, test_iter, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    end = time.perf_counter()
    return {
        "seconds": end - start,
        "train_seconds": trained - start,
        "images": metric[2],
        "train_loss": train_l,
        "train_acc": train_acc,
        "test_acc": test_acc,
    }


# ------------------------------------------------------------------------------------------------
# the race
# ------------------------------------------------------------------------------------------------
@dataclass
class PipelineRound:
    """One timed round: an epoch of each side. Seconds are whole epochs (start-up, training, test)."""

    seeds_seconds: float
    cnnzoo_seconds: float
    seeds_train_seconds: float
    cnnzoo_train_seconds: float
    seeds_test_acc: float
    cnnzoo_test_acc: float

    @property
    def ratio(self) -> float:
        return self.seeds_seconds / self.cnnzoo_seconds

    @property
    def train_ratio(self) -> float:
        return self.seeds_train_seconds / self.cnnzoo_train_seconds


@dataclass
class PipelineResult:
    """Both sides' throughput (medians over rounds) and the median per-round ratio."""

    model: str
    batch_size: int
    input_size: int
    lr: float
    device: str
    precision: str
    channels_last: bool
    threads: int
    workers: int
    train_images: int
    test_images: int
    torch_version: str
    compiled: bool = False
    rounds: list[PipelineRound] = field(default_factory=list)

    def _rate(self, attr: str) -> float:
        return statistics.median(self.train_images / getattr(r, attr) for r in self.rounds)

    @property
    def seeds_images_per_sec(self) -> float:
        return self._rate("seeds_seconds")

    @property
    def cnnzoo_images_per_sec(self) -> float:
        return self._rate("cnnzoo_seconds")

    @property
    def ratio(self) -> float:
        """Median over rounds of seeds epoch time / cnnzoo epoch time (how many times faster cnnzoo is)."""
        return statistics.median(r.ratio for r in self.rounds)

    @property
    def train_ratio(self) -> float:
        return statistics.median(r.train_ratio for r in self.rounds)

    @property
    def ratio_range(self) -> tuple[float, float]:
        return min(r.ratio for r in self.rounds), max(r.ratio for r in self.rounds)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["rounds"] = [{**dataclasses.asdict(r), "ratio": r.ratio, "train_ratio": r.train_ratio} for r in self.rounds]
        d.update(
            seeds_images_per_sec=self.seeds_images_per_sec,
            cnnzoo_images_per_sec=self.cnnzoo_images_per_sec,
            ratio=self.ratio,
            ratio_min=self.ratio_range[0],
            ratio_max=self.ratio_range[1],
            train_ratio=self.train_ratio,
        )
        return d


def _subset(data: ImageDataset, train_images: int, test_images: int) -> ImageDataset:
    return dataclasses.replace(
        data,
        train_images=data.train_images[:train_images],
        train_labels=data.train_labels[:train_images],
        test_images=data.test_images[:test_images],
        test_labels=data.test_labels[:test_images],
        extra={},
    )


def compare_pipelines(
    model_name: str,
    data: ImageDataset,
    *,
    batch_size: int | None = None,
    input_size: int | None = None,
    lr: float | None = None,
    device: str = "auto",
    precision: str = "auto",
    channels_last: str = "auto",
    compile: bool = False,
    rounds: int = 3,
    train_images: int | None = None,
    test_images: int | None = None,
    warmup_batches: int = 3,
    workers: int = SEEDS_WORKERS,
    seeds_root: str | os.PathLike[str] | None = None,
    on_round: Callable[[int, PipelineRound], None] | None = None,
) -> PipelineResult:
    """Race one epoch of cnnzoo's training (:func:`cnnzoo.fit`) against one of the seeds' (see the module
    docstring), ``rounds`` times, interleaved, after an untimed warm-up of ``warmup_batches`` batches each.

    Defaults: the ``d2l`` recipe's batch size, input size and learning rate for the model (256, its
    own input size and 0.1 for a model the seeds do not train), every training image, and a test split
    in the real 6:1 proportion when the training split is cut. ``precision``/``channels_last``/``compile``
    apply to cnnzoo's side only: the seeds' code has no such settings (fp32, NCHW, eager). ``torch.compile``
    compiles during the untimed warm-up, so the timed epochs measure the compiled steady state; the
    compilation itself (tens of seconds on a CPU) is paid once per process and is not in the figures.
    """
    from cnnzoo.config import _D2L_MODELS, resolve_config
    from cnnzoo.devices import setup_device
    from cnnzoo.engine import fit, xavier_init

    seed_values = _D2L_MODELS.get(model_name, {})
    batch_size = batch_size or seed_values.get("batch_size", 256)
    input_size = input_size or seed_values.get("resize") or get_model_info(model_name).default_input_size
    lr = lr or seed_values.get("lr", 0.1)
    n_train = min(train_images or data.train_images.shape[0], data.train_images.shape[0])
    default_test = data.test_images.shape[0] if n_train == data.train_images.shape[0] else max(1, n_train // 6)
    n_test = min(test_images or default_test, data.test_images.shape[0])
    config = resolve_config(
        model_name,
        "d2l",
        {
            "batch_size": batch_size,
            "lr": lr,
            "resize": input_size,
            "epochs": 1,
            "device": device,
            "precision": precision,
            "channels_last": channels_last,
            "compile": compile,
        },
    )
    setup = setup_device(config.device, config.precision, config.channels_last)
    root = seeds_dataset_root(data, seeds_root)
    native = data.image_size[0]
    resize = input_size if input_size != native else None  # the seeds pass resize only when they resize

    torch.manual_seed(0)
    base = create_model(model_name)
    xavier_init(base)
    seeds_net, cnnzoo_net = copy.deepcopy(base), copy.deepcopy(base)

    def seeds_side(n: int, m: int) -> dict[str, float]:
        with warnings.catch_warnings():
            # d2l's 4 workers on a 2-core machine make PyTorch warn at every epoch; it is the point here.
            warnings.filterwarnings("ignore", message="This DataLoader will create")
            train_iter, test_iter = _seeds_loaders(root, batch_size, resize, n, m, workers)
            return seeds_train_epoch(seeds_net, train_iter, test_iter, lr, setup.device)

    def cnnzoo_side(n: int, m: int) -> dict[str, float]:
        part = _subset(data, n, m)
        setup.synchronize()
        start = time.perf_counter()
        history = fit(cnnzoo_net, part, config, setup=setup)
        setup.synchronize()
        row = history[-1]
        return {"seconds": time.perf_counter() - start, "train_seconds": row["train_seconds"], **row}

    warm = min(n_train, warmup_batches * batch_size)
    seeds_side(warm, min(n_test, warm))
    cnnzoo_side(warm, min(n_test, warm))

    result = PipelineResult(
        model=model_name,
        batch_size=batch_size,
        input_size=input_size,
        lr=lr,
        device=setup.describe().split(",")[0],
        precision=setup.precision,
        channels_last=setup.channels_last,
        compiled=compile,
        threads=torch.get_num_threads(),
        workers=workers,
        train_images=n_train,
        test_images=n_test,
        torch_version=torch.__version__,
    )
    for k in range(rounds):
        s = seeds_side(n_train, n_test)
        c = cnnzoo_side(n_train, n_test)
        r = PipelineRound(
            seeds_seconds=s["seconds"],
            cnnzoo_seconds=c["seconds"],
            seeds_train_seconds=s["train_seconds"],
            cnnzoo_train_seconds=c["train_seconds"],
            seeds_test_acc=s["test_acc"],
            cnnzoo_test_acc=c["test_acc"],
        )
        result.rounds.append(r)
        if on_round is not None:
            on_round(k, r)
    return result


def format_pipeline(result: PipelineResult) -> str:
    """The headline lines: both throughputs, the ratio and its spread, and what was held equal."""
    lo, hi = result.ratio_range
    layout = "channels_last" if result.channels_last else "NCHW"
    n = len(result.rounds)
    return "\n".join(
        [
            f"{result.model}, batch {result.batch_size}, {result.input_size}x{result.input_size}, {result.device}, "
            f"{result.threads} torch threads, {result.train_images:,} training + {result.test_images:,} test "
            f"images per epoch, {n} interleaved round{'s' if n != 1 else ''} after a warm-up",
            f"  seeds' pipeline (torchvision + DataLoader({result.workers} workers) + train_ch6, fp32, NCHW): "
            f"{result.seeds_images_per_sec:,.0f} images/s",
            f"  cnnzoo (device-resident batches + engine, {result.precision}, {layout}"
            f"{', torch.compile' if result.compiled else ''}): "
            f"{result.cnnzoo_images_per_sec:,.0f} images/s",
            f"  cnnzoo is {result.ratio:.2f}x faster (median of {n}; range {lo:.2f}-{hi:.2f}); "
            f"training alone {result.train_ratio:.2f}x",
            "  (whole epochs: loader start-up, training and test evaluation; images/s = training images / epoch time)",
        ]
    )


def pipeline_markdown(result: PipelineResult, command: str | None = None) -> str:
    """One Markdown table row set for ``benchmarks/``."""
    lo, hi = result.ratio_range
    lines = [
        "| model | batch | input | device | precision / layout (cnnzoo) | seeds img/s | cnnzoo img/s | ratio "
        "(median, range) | training-only ratio |",
        "|---|---:|---:|---|---|---:|---:|---|---:|",
        f"| {result.model} | {result.batch_size} | {result.input_size} | {result.device} | {result.precision} / "
        f"{'channels_last' if result.channels_last else 'NCHW'}{' / compiled' if result.compiled else ''} | "
        f"{result.seeds_images_per_sec:,.0f} | "
        f"{result.cnnzoo_images_per_sec:,.0f} | {result.ratio:.2f}x ({lo:.2f}-{hi:.2f}) | {result.train_ratio:.2f}x |",
    ]
    if command:
        lines = [f"`{command}`", "", *lines]
    return "\n".join(lines) + "\n"
