"""Benchmarks: model throughput on synthetic input (``cnnzoo bench MODEL...``).

:func:`bench` asks *how fast is this network on this machine*: images/s and ms/step of a training step
(forward, backward, SGD) or an inference forward on a synthetic batch already on the device, after
warm-up steps (which also absorb ``torch.compile``'s compilation), between two device synchronisations,
so queued GPU work is counted and launch overhead is not mistaken for speed. The timing is repeated in the
spirit of ``torch.utils.benchmark``'s blocked autorange: ``repeats`` timed blocks one after another on the same
model (each at least ``steps`` steps and ``min_seconds`` seconds), and a row reports the blocks' median with their
spread (the interquartile range, or min-max under 4 blocks); a spread over 10% of the median marks the row
*noisy*, since one timing on a shared machine can be off by 100x. Peak memory, from building
the model to the last timed step (weights, gradients, optimizer state, activations), is CUDA's
``max_memory_allocated`` on a GPU, and on the CPU the process's peak resident set size (``VmHWM``, reset
through ``/proc/self/clear_refs`` after the previous model's memory is handed back with ``malloc_trim``),
so it includes the interpreter and PyTorch themselves (~0.4 GB). A batch that runs out of memory is
retried at half the size, and the row says so.

The other benchmark, cnnzoo's training raced against the book's pipeline (``cnnzoo bench --pipeline``),
is :mod:`cnnzoo.bench.race`.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from matplotlib.figure import Figure

from cnnzoo.base.devices import DeviceSetup, collecting_only_new_objects, free_device_memory
from cnnzoo.base.errors import ConfigError
from cnnzoo.base.failures import is_out_of_memory
from cnnzoo.bench.peak import achieved_gflops, cpu_peak, flops_per_image
from cnnzoo.models.inspection import count_macs, human
from cnnzoo.models.registry import create_model, get_model_info
from cnnzoo.train.loop import random_batch, training_step

try:
    import resource  # POSIX only: the CPU's peak RSS where /proc is missing
except ImportError:  # pragma: no cover - Windows
    resource = None

__all__ = [
    "BENCH_MODES",
    "NOISY_SPREAD",
    "BenchRow",
    "Timing",
    "bench",
    "bench_chart",
    "bench_input_size",
    "bench_model",
    "block_stats",
    "default_bench_batch_size",
    "format_bench_table",
    "rows_to_csv",
    "rows_to_json",
    "rows_to_markdown",
]

BENCH_MODES = ("train", "infer")
NOISY_SPREAD = 0.10  # a row whose relative spread exceeds this gets a "noisy" note
_IQR_BLOCKS = 4  # from this many blocks the spread is the IQR; under it, min-max
_clock = time.perf_counter  # the timer of every block (tests replace it)


@dataclass
class BenchRow:
    """One model in one mode. ``note`` says what differs from what was asked (input size, batch size) and
    whether the timing was noisy.

    ``images_per_sec`` and ``ms_per_step`` are medians over ``repeats`` timed blocks; ``q1``/``q3`` are the
    blocks' quartiles (linear interpolation, as ``numpy.quantile``), ``min``/``max`` their extremes, and
    ``spread`` the relative spread: IQR / median from 4 blocks on, (max - min) / median under 4 (0 for one
    block, NaN for a row that never ran). ``steps`` counts the timed steps of all blocks.
    """

    model: str
    mode: str
    batch_size: int
    input_size: int
    device: str
    precision: str
    channels_last: bool
    compiled: bool
    images_per_sec: float
    images_per_sec_q1: float
    images_per_sec_q3: float
    images_per_sec_min: float
    images_per_sec_max: float
    spread: float
    repeats: int
    ms_per_step: float
    steps: int
    params: int
    macs: int
    peak_memory_mb: float | None
    memory_kind: str
    threads: int = 0
    omp_wait_policy: str = ""
    note: str = ""
    flops_per_image: int = 0  # 6 x MACs in training, 2 x MACs in inference (cnnzoo.bench.peak)
    gflops: float = float("nan")  # achieved: images/s x flops_per_image
    peak_gflops: float | None = None  # this CPU's estimated peak for the precision (None: not a CPU, or unknown)
    peak_basis: str = ""  # how the peak was estimated

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def peak_percent(self) -> float | None:
        """The achieved GFLOP/s as a percentage of the estimated peak (None without a peak)."""
        if not self.peak_gflops or not math.isfinite(self.gflops):
            return None
        return 100.0 * self.gflops / self.peak_gflops

    @property
    def spread_kind(self) -> str:
        """What ``spread`` measures: ``IQR`` (4 blocks or more) or ``range`` (max - min)."""
        return "IQR" if self.repeats >= _IQR_BLOCKS else "range"

    @property
    def spread_bounds(self) -> tuple[float, float]:
        """The spread's ends in images/s: (q1, q3), or (min, max) under 4 blocks."""
        if self.repeats >= _IQR_BLOCKS:
            return self.images_per_sec_q1, self.images_per_sec_q3
        return self.images_per_sec_min, self.images_per_sec_max

    @property
    def noisy(self) -> bool:
        return math.isfinite(self.spread) and self.spread > NOISY_SPREAD


def block_stats(batch_size: int, blocks: Sequence[tuple[int, float]]) -> dict[str, Any]:
    """The BenchRow fields of timed blocks, each ``(steps, seconds)``: median images/s with its quartiles,
    min, max and relative spread, median ms/step, the number of blocks and all their steps."""
    rates = sorted(batch_size * n / s for n, s in blocks)
    median = statistics.median(rates)
    q1, q3 = statistics.quantiles(rates, n=4, method="inclusive")[::2] if len(rates) > 1 else (median, median)
    width = q3 - q1 if len(rates) >= _IQR_BLOCKS else rates[-1] - rates[0]
    return {
        "images_per_sec": median,
        "images_per_sec_q1": q1,
        "images_per_sec_q3": q3,
        "images_per_sec_min": rates[0],
        "images_per_sec_max": rates[-1],
        "spread": width / median if median > 0 else float("nan"),
        "repeats": len(blocks),
        "ms_per_step": statistics.median(1000 * s / n for n, s in blocks),
        "steps": sum(n for n, _ in blocks),
    }


def _time_blocks(
    step: Callable[[], None],
    synchronize: Callable[[], None],
    *,
    steps: int,
    min_seconds: float,
    repeats: int,
) -> list[tuple[int, float]]:
    """``repeats`` timed blocks, one after another, each ``(steps done, seconds)``: at least ``steps`` steps and
    ``min_seconds`` seconds, between two device synchronisations."""
    blocks = []
    for _ in range(repeats):
        synchronize()
        done, start = 0, _clock()
        while True:
            step()
            done += 1
            if done < steps:
                continue
            if min_seconds <= 0:
                break
            synchronize()  # only to decide whether to stop; the figure is taken below
            if _clock() - start >= min_seconds:
                break
        synchronize()
        blocks.append((done, _clock() - start))
    return blocks


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
    """MACs per image with :func:`cnnzoo.models.inspection.count_macs`, on a meta-device copy (no memory, fast);
    counted once per builder and size (a table measures each model in two modes)."""
    return _macs_of(get_model_info(name).builder, name, size)


@functools.lru_cache(maxsize=128)
def _macs_of(builder: Callable[..., Any], name: str, size: int) -> int:
    with torch.device("meta"):
        meta = create_model(name)
    return count_macs(meta, size)


@dataclass(frozen=True)
class Timing:
    """How a measurement is timed: ``warmup`` untimed steps, then ``repeats`` blocks of at least ``steps`` steps
    and ``min_seconds`` seconds; ``compile``: ``torch.compile`` the model first (compiled in the warm-up)."""

    compile: bool = False
    warmup: int = 3
    steps: int = 10
    min_seconds: float = 0.0
    repeats: int = 5


DEFAULT_TIMING = Timing()


def bench_model(
    name: str,
    *,
    mode: str,
    batch_size: int,
    input_size: int,
    setup: DeviceSetup,
    timing: Timing = DEFAULT_TIMING,
) -> BenchRow:
    """Measure one model in one mode at one batch size (raises on out of memory; :func:`bench` retries).

    After ``timing.warmup`` untimed steps, times ``timing.repeats`` blocks, each of at least ``timing.steps`` steps
    that keeps going until ``timing.min_seconds`` have passed, and reports their median and spread
    (:func:`block_stats`). Training
    steps use SGD with momentum and cross-entropy under the setup's autocast.
    """
    if timing.repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {timing.repeats}")
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
    x, y = random_batch(setup, batch_size, 1, input_size, 10)
    forward = torch.compile(model) if timing.compile else model

    if mode == "train":
        model.train()
        step = training_step(forward, x, y, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), setup)
    else:
        model.eval()

        def step() -> None:
            with torch.inference_mode(), setup.autocast():
                forward(x)

    for _ in range(timing.warmup):
        step()
    blocks = _time_blocks(
        step, setup.synchronize, steps=timing.steps, min_seconds=timing.min_seconds, repeats=timing.repeats
    )
    peak = memory.peak_mb()
    row = BenchRow(
        model=name,
        mode=mode,
        batch_size=batch_size,
        input_size=input_size,
        **setup.table_fields(),
        compiled=timing.compile,
        **block_stats(batch_size, blocks),
        params=params,
        macs=_count_macs(name, input_size),
        peak_memory_mb=peak,
        memory_kind=memory.kind,
        **_threading(),
    )
    return with_arithmetic(row, setup)


def with_arithmetic(row: BenchRow, setup: DeviceSetup) -> BenchRow:
    """``row`` with its FLOPs per image, achieved GFLOP/s and, on a CPU, the estimated peak (cnnzoo.bench.peak)."""
    flops = flops_per_image(row.macs, row.mode)
    peak = cpu_peak(row.threads or torch.get_num_threads()) if setup.device.type == "cpu" else None
    return dataclasses.replace(
        row,
        flops_per_image=flops,
        gflops=achieved_gflops(row.images_per_sec, flops) if row.images_per_sec > 0 else float("nan"),
        peak_gflops=peak.gflops(row.precision) if peak is not None else None,
        peak_basis=peak.describe(row.precision) if peak is not None else "",
    )


def _threading() -> dict[str, Any]:
    """The CPU threading the figures were taken under: PyTorch's intra-op threads and OpenMP's wait policy."""
    return {"threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}


def _noisy_note(row: BenchRow) -> str:
    return f"noisy: {row.spread_kind} {100 * row.spread:.0f}% of the median; the machine was busy?"


def bench(
    names: Sequence[str],
    *,
    modes: Sequence[str] = BENCH_MODES,
    batch_size: int,
    input_size: int | None,
    setup: DeviceSetup,
    timing: Timing = DEFAULT_TIMING,
    on_row: Callable[[BenchRow], None] | None = None,
    measure: Callable[..., BenchRow] | None = None,
) -> list[BenchRow]:
    """:func:`bench_model` for every model and mode; out of memory halves the batch until it fits.

    A model that does not fit even one image gets a row with zero throughput and a note, so a table
    over ``all`` models is always complete. A row whose spread exceeds :data:`NOISY_SPREAD` is noted
    as noisy. ``measure`` replaces :func:`bench_model` (tests).
    """
    measure = measure or bench_model
    with collecting_only_new_objects():  # free_device_memory's collections between models: milliseconds each
        return _bench_rows(names, modes, batch_size, input_size, setup, timing, on_row, measure)


def _bench_rows(
    names: Sequence[str],
    modes: Sequence[str],
    batch_size: int,
    input_size: int | None,
    setup: DeviceSetup,
    timing: Timing,
    on_row: Callable[[BenchRow], None] | None,
    measure: Callable[..., BenchRow],
) -> list[BenchRow]:
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
                        timing=timing,
                    )
                    break
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    free_device_memory(setup.device)
                    if batch <= floor:
                        notes.append(f"out of memory even at batch {batch}")
                        row = _failed_row(name, mode, size, setup, timing.compile)
                        break
                    smaller = max(floor, batch // 2)
                    notes.append(f"batch {batch} out of memory, retried at {smaller}")
                    batch = smaller
            free_device_memory(setup.device)
            if row.noisy:
                notes.insert(0, _noisy_note(row))
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
        **setup.table_fields(),
        compiled=compile,
        images_per_sec=0.0,
        images_per_sec_q1=0.0,
        images_per_sec_q3=0.0,
        images_per_sec_min=0.0,
        images_per_sec_max=0.0,
        spread=float("nan"),
        repeats=0,
        ms_per_step=float("nan"),
        steps=0,
        params=params,
        macs=_count_macs(name, size),
        peak_memory_mb=None,
        memory_kind="",
        **_threading(),
    )


# -- output -------------------------------------------------------------------------------------
_COLUMNS = ("model", "mode", "batch", "input", "images/s", "spread", "ms/step", "params", "MACs", "GFLOP/s",
            "% peak*", "peak MB", "note")  # fmt: skip
_RIGHT = frozenset(range(2, 12))  # right-aligned columns: every figure


def _spread_cell(row: BenchRow) -> str:
    """``q1-q3 (IQR/median)``, or ``min-max (...)`` under 4 blocks; ``-`` for one block or none."""
    if row.repeats < 2 or not math.isfinite(row.spread):
        return "-"
    lo, hi = row.spread_bounds
    return f"{lo:,.1f}-{hi:,.1f} ({100 * row.spread:.0f}%)"


def _cells(row: BenchRow) -> list[str]:
    peak = f"{row.peak_memory_mb:,.0f}" if row.peak_memory_mb is not None else "-"
    return [
        row.model,
        row.mode,
        str(row.batch_size),
        f"{row.input_size}x{row.input_size}",
        f"{row.images_per_sec:,.1f}",
        _spread_cell(row),
        f"{row.ms_per_step:,.2f}" if math.isfinite(row.ms_per_step) else "-",
        f"{row.params:,}",
        human(row.macs),
        f"{row.gflops:,.1f}" if math.isfinite(row.gflops) else "-",
        f"{row.peak_percent:.1f}" if row.peak_percent is not None else "-",
        peak,
        row.note,
    ]


def _timing_clause(rows: Sequence[BenchRow]) -> str:
    """How the figures were taken: blocks, what the spread column is, threads, and how many rows were noisy."""
    r = rows[0]
    repeats = max(x.repeats for x in rows)
    if repeats >= _IQR_BLOCKS:
        spread = "spread = q1-q3 (IQR / median)"
    elif repeats > 1:
        spread = "spread = min-max ((max - min) / median)"
    else:
        spread = "no spread from 1 block"
    noisy = sum(x.noisy for x in rows)
    verdict = f"{noisy} of {len(rows)} rows noisy (spread > {NOISY_SPREAD:.0%})" if noisy else "no row noisy"
    blocks = f"{repeats} timed block{'s' if repeats != 1 else ''}"
    threads = f"torch threads {r.threads}, " if f"({r.threads} threads)" not in r.device else ""
    return (
        f"images/s and ms/step: median of {blocks}, {spread}; {verdict}; {threads}OMP_WAIT_POLICY {r.omp_wait_policy}"
    )


def _settings_line(rows: Sequence[BenchRow]) -> str:
    if not rows:
        return ""
    r = rows[0]
    memory = next((x.memory_kind for x in rows if x.memory_kind), "")
    layout = "channels_last" if r.channels_last else "NCHW"
    basis = next((x.peak_basis for x in rows if x.peak_basis), "")
    peak = f"* % peak: of {basis}" if basis else "* % peak: no estimate for this device"
    return (
        f"device {r.device}, {r.precision}, {layout}{', torch.compile' if r.compiled else ''}; synthetic input; "
        f"train = forward + backward + SGD step; MACs per image; GFLOP/s = images/s x FLOPs per image (training "
        f"6 x MACs, inference 2 x MACs); {peak}; peak memory: {memory}; {_timing_clause(rows)}"
    )


def format_bench_table(rows: Sequence[BenchRow]) -> str:
    """A plain-text table, then one line with the settings every row shares (and how many rows were noisy)."""
    body = [_COLUMNS, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in body) for i in range(len(_COLUMNS))]
    lines = []
    for line in body:
        cells = [c.rjust(w) if i in _RIGHT else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n\n" + _settings_line(rows)


def rows_to_markdown(rows: Sequence[BenchRow]) -> str:
    """The table as GitHub Markdown, with the settings line under it."""
    align = ["---:" if i in _RIGHT else "---" for i in range(len(_COLUMNS))]
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "|".join(align) + "|"]
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


def _label(row: BenchRow) -> str:
    return f"{row.model} @{row.input_size}"


def _chart_panel(ax: Any, rows: Sequence[BenchRow], labels: Sequence[str], mode: str) -> None:
    """One mode's horizontal bars on a linear axis: the median, an error bar over the spread, the figure."""
    by_label = {_label(r): r for r in rows if r.mode == mode}
    ys = list(range(len(labels)))
    values = [by_label[n].images_per_sec if n in by_label else 0.0 for n in labels]
    bounds = [by_label[n].spread_bounds if n in by_label else (0.0, 0.0) for n in labels]
    lower = [max(0.0, v - lo) for v, (lo, _) in zip(values, bounds)]
    upper = [max(0.0, hi - v) for v, (_, hi) in zip(values, bounds)]
    ax.barh(ys, values, height=0.6, xerr=[lower, upper], capsize=3, color="C0" if mode == "train" else "C1")
    ends = [v + u for v, u in zip(values, upper)]
    for y, v, end in zip(ys, values, ends):
        if v > 0:
            ax.annotate(f"{v:,.0f}", (end, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    ax.set_xscale("linear")
    ax.set_xlim(0, max([*ends, 1.0]) * 1.3)  # room for the figures right of the longest error bar
    ax.set_yticks(ys, labels)
    ax.set_xlabel(f"{mode}: images/s (median, error bar = spread)", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(True, axis="x", alpha=0.3)


def bench_chart(rows: Sequence[BenchRow]) -> Figure:
    """Horizontal bars of images/s per model on a linear axis (so lengths are ratios), one panel per mode,
    each bar the median with an error bar over its spread (q1-q3, or min-max under 4 blocks); each label
    names the input size (``resnet18 @96``). Each panel has its own scale: training and inference differ."""
    labels = list(dict.fromkeys(_label(r) for r in rows))
    modes = [m for m in BENCH_MODES if any(r.mode == m for r in rows)] or ["train"]
    fig = Figure(figsize=(4.2 * len(modes) + 1.6, 1.2 + 0.3 * max(1, len(labels))), layout="constrained")
    axes = fig.subplots(1, len(modes), sharey=True, squeeze=False)[0]
    for ax, mode in zip(axes, modes):
        _chart_panel(ax, rows, labels, mode)
    axes[0].invert_yaxis()  # the first model on top (shared by every panel)
    batches = sorted({r.batch_size for r in rows if r.batch_size})
    batch = f"batch {batches[0]}" if len(batches) == 1 else "batch " + "/".join(map(str, batches))
    repeats = max((r.repeats for r in rows), default=0)
    title = f"{_settings_line(rows).split(';')[0]}, {batch}, median of {repeats} timed blocks"
    fig.suptitle(title, fontsize=9)
    return fig
