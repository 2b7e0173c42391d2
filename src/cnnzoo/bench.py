"""Benchmarks: model throughput on synthetic input (``cnnzoo bench MODEL...``).

:func:`bench` asks *how fast is this network on this machine*: images/s and ms/step of a training step
(forward, backward, SGD) or an inference forward on a synthetic batch already on the device, after
warm-up steps (which also absorb ``torch.compile``'s compilation), between two device synchronisations,
so queued GPU work is counted and launch overhead is not mistaken for speed. Peak memory, from building
the model to the last timed step (weights, gradients, optimizer state, activations), is CUDA's
``max_memory_allocated`` on a GPU, and on the CPU the process's peak resident set size (``VmHWM``, reset
through ``/proc/self/clear_refs`` after the previous model's memory is handed back with ``malloc_trim``),
so it includes the interpreter and PyTorch themselves (~0.4 GB). A batch that runs out of memory is
retried at half the size, and the row says so.

The other benchmark, cnnzoo's training raced against the book's pipeline (``cnnzoo bench --pipeline``),
is :mod:`cnnzoo.race`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from cnnzoo.devices import DeviceSetup, free_device_memory
from cnnzoo.errors import ConfigError
from cnnzoo.inspection import count_macs, human
from cnnzoo.registry import create_model, get_model_info

try:
    import resource  # POSIX only: the CPU's peak RSS where /proc is missing
except ImportError:  # pragma: no cover - Windows
    resource = None

__all__ = [
    "BENCH_MODES",
    "BenchRow",
    "bench",
    "bench_chart",
    "bench_input_size",
    "bench_model",
    "default_bench_batch_size",
    "format_bench_table",
    "is_out_of_memory",
    "rows_to_csv",
    "rows_to_json",
    "rows_to_markdown",
]

BENCH_MODES = ("train", "infer")


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
        if resource is None:
            return None
        try:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        except OSError:
            return None


def _count_macs(name: str, size: int) -> int:
    """MACs per image with :func:`cnnzoo.inspection.count_macs`, on a meta-device copy (no memory, fast)."""
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
        device=setup.name,
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
        device=setup.name,
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


def bench_chart(rows: Sequence[BenchRow]) -> Figure:
    """A horizontal bar chart of images/s per model, one bar per mode (log scale: LeNet and VGG differ
    by three orders of magnitude)."""
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
