"""``cnnzoo bench``: synthetic throughput (:mod:`cnnzoo.bench.throughput`), or the race against the book's pipeline
(:mod:`cnnzoo.bench.race`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnzoo.base.atomic import atomic_write_text
from cnnzoo.base.devices import set_threads, setup_device
from cnnzoo.base.errors import ConfigError
from cnnzoo.base.outputs import claim_output, marker_comment
from cnnzoo.base.plots import save_figure
from cnnzoo.bench import race, throughput
from cnnzoo.models.registry import get_model_info, list_models
from cnnzoo.run import load_data
from cnnzoo.train.config import TrainConfig

__all__ = ["cmd_bench"]

_COUNTS = {
    "batch_size": 1,
    "resize": 1,
    "warmup": 0,
    "steps": 1,
    "repeats": 1,
    "rounds": 1,
    "train_images": 1,
    "test_images": 1,
}
_FLAGS = {"resize": "--input-size"}


def _check_counts(args: argparse.Namespace) -> None:
    for dest, least in _COUNTS.items():
        value = getattr(args, dest)
        if value is not None and value < least:
            flag = _FLAGS.get(dest, "--" + dest.replace("_", "-"))
            raise ConfigError(f"{flag} {value}: must be a positive whole number")


def cmd_bench(args: argparse.Namespace) -> int:
    _check_counts(args)
    set_threads(args.threads)
    outputs = _claim_outputs(args)
    if args.pipeline:
        _race(args, outputs)
    else:
        _throughput(args, outputs)
    return 0


_KINDS = {"csv": "--csv", "json": "--json", "markdown": "--markdown"}


def _claim_outputs(args: argparse.Namespace) -> dict[str, Path]:
    """The output files, each one cnnzoo may write (:func:`cnnzoo.base.outputs.claim_output`), before anything runs;
    the chart's path (given or beside them) too, as ``args.png``."""

    outputs = {}
    for kind, flag in _KINDS.items():
        value = getattr(args, kind)
        if value is not None:
            header = throughput.rows_to_csv([]).strip() if kind == "csv" else None
            outputs[kind] = claim_output(value, kind, flag=flag, force=args.force, header=header)
    if not args.pipeline and (args.png is not None or outputs):
        png = args.png if args.png is not None else next(iter(outputs.values())).with_suffix(".png")
        args.png = claim_output(png, "png", flag="--png", force=args.force)
    return outputs


def _race(args: argparse.Namespace, outputs: dict[str, Path]) -> None:
    """``--pipeline MODEL``: the race, its headline lines, and its --json/--markdown."""

    if args.models:
        raise ConfigError("--pipeline takes one model (--pipeline MODEL); drop the other model names")
    if "csv" in outputs:
        raise ConfigError("--pipeline writes --json or --markdown, not --csv")
    get_model_info(args.pipeline)
    result = race.compare_pipelines(
        args.pipeline,
        load_data(TrainConfig(), args.data_root),  # Fashion-MNIST, as the run layer loads it
        batch_size=args.batch_size,
        input_size=args.resize,
        lr=args.lr,
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        rounds=args.rounds,
        train_images=args.train_images,
        test_images=args.test_images,
        workers=args.workers if args.workers is not None else race.D2L_WORKERS,
        on_round=lambda k, r: print(race.format_round(k, args.rounds, r), flush=True),
    )
    print(race.format_pipeline(result))
    command = "cnnzoo " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None
    if "json" in outputs:
        doc = {"written_by": "cnnzoo bench --pipeline", **result.to_dict()}
        atomic_write_text(outputs["json"], json.dumps(doc, indent=2) + "\n")
    if "markdown" in outputs:
        text = race.pipeline_markdown(result, command) + "\n" + marker_comment("bench --pipeline")
        atomic_write_text(outputs["markdown"], text)
    for path in outputs.values():
        print(f"wrote {path}")


def _progress(row: throughput.BenchRow) -> str:
    """One row as it finishes: the median, and the spread when there are blocks to spread."""

    text = f"{row.images_per_sec:,.1f} images/s"
    if row.repeats > 1:
        lo, hi = row.spread_bounds
        kind = "IQR" if row.spread_kind == "IQR" else "min-max"
        text += f" (median of {row.repeats}, {kind} {lo:,.1f}-{hi:,.1f})"
    return text + (" noisy" if row.noisy else "")


def _throughput(args: argparse.Namespace, outputs: dict[str, Path]) -> None:
    """``MODEL...|all``: the synthetic-input table, its files and the chart."""

    names = args.models or ["all"]
    if "all" in names:
        names = list_models()
    for name in names:
        get_model_info(name)  # unknown names fail before anything runs
    setup = setup_device(args.device, args.precision, args.channels_last)
    batch = args.batch_size or throughput.default_bench_batch_size(setup.device)
    modes = throughput.BENCH_MODES if args.mode == "both" else (args.mode,)
    print(f"benchmarking {len(names)} model(s), {'/'.join(modes)}, batch {batch} on {setup.describe()}", flush=True)
    rows = throughput.bench(
        names,
        modes=modes,
        batch_size=batch,
        input_size=args.resize,
        setup=setup,
        timing=throughput.Timing(args.compile, args.warmup, args.steps, args.min_time, args.repeats),
        on_row=lambda r: print(f"  {r.model} {r.mode}: {_progress(r)}", flush=True),
    )
    print()
    print(throughput.format_bench_table(rows))
    writers = {
        "csv": throughput.rows_to_csv,
        "json": lambda rows: throughput.rows_to_json(rows, {"written_by": "cnnzoo bench"}),
        "markdown": lambda rows: throughput.rows_to_markdown(rows) + "\n" + marker_comment("bench"),
    }
    for kind, path in outputs.items():
        atomic_write_text(path, writers[kind](rows))
        print(f"wrote {path}")
    png = args.png  # claimed with the others (given, or beside them)
    if png is not None:
        save_figure(throughput.bench_chart(rows), png)
        print(f"wrote {png}")
