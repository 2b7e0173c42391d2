"""``cnnzoo bench``: synthetic throughput (:mod:`cnnzoo.bench`), or the race against the book's pipeline
(:mod:`cnnzoo.race`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cnnzoo.cli.common import add_batch_size, add_channels_last, add_input_size, add_precision
from cnnzoo.config import TrainConfig
from cnnzoo.errors import ConfigError

if TYPE_CHECKING:  # annotations only: cnnzoo.bench (and torch) is imported by the command
    from cnnzoo import bench
from cnnzoo.outputs import claim_output, marker_comment


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="throughput of models on synthetic input, or cnnzoo's training raced against d2l's pipeline",
        description="Without --pipeline: images/s, ms/step, parameters, MACs and peak memory of each MODEL (or "
        "all) on synthetic input, after warm-up and with device synchronisation, as the median of --repeats "
        "timed blocks with their spread (a spread over 10% is noted as noisy); out of memory retries at half "
        "the batch. With --pipeline MODEL: one epoch of cnnzoo's training against one of the book's pipeline "
        "(torchvision + DataLoader(4 workers) + train_ch6), interleaved, and the median ratio.",
    )
    p.add_argument("models", metavar="MODEL", nargs="*", help="registered model names, or all (the default)")
    p.add_argument("--pipeline", metavar="MODEL", help="race cnnzoo's training against d2l's pipeline")
    p.add_argument("--mode", choices=("train", "infer", "both"), default="train", help="default train")
    add_batch_size(p, "default 16 on CPU, 256 on GPU; --pipeline: the book's batch")
    add_input_size(p, "default: each model's own; clipped into its range")
    p.add_argument("--device", default="auto")
    add_precision(p, default="auto")
    add_channels_last(p, default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile (compilation happens in the warm-up)")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: the cores other programs leave free)")
    g = p.add_argument_group("timing (throughput)")
    g.add_argument("--warmup", type=int, default=3, metavar="STEPS", help="untimed steps first (default 3)")
    g.add_argument("--steps", type=int, default=10, help="timed steps, at least (default 10)")
    g.add_argument("--min-time", type=float, default=0.0, metavar="S", help="keep timing for at least S seconds")
    g.add_argument(
        "--repeats",
        type=int,
        default=5,
        metavar="N",
        help="timed blocks per row, each of --steps and --min-time; the row reports their median and spread "
        "(IQR, or min-max under 4) and notes a spread over 10%% as noisy (default 5)",
    )
    g = p.add_argument_group("--pipeline")
    g.add_argument("--rounds", type=int, default=3, help="interleaved epochs of each side (default 3)")
    g.add_argument("--train-images", type=int, metavar="N", help="training images per epoch (default all)")
    g.add_argument("--test-images", type=int, metavar="N", help="test images per epoch (default all, or N/6)")
    g.add_argument("--lr", type=float, help="learning rate of both sides (default: the book's)")
    g.add_argument("--workers", type=int, help="the book's DataLoader workers (default: the book's, 4)")
    g.add_argument("--data-root", metavar="DIR")
    g = p.add_argument_group("output")
    g.add_argument("--csv", metavar="PATH")
    g.add_argument("--json", metavar="PATH")
    g.add_argument("--markdown", metavar="PATH")
    g.add_argument("--png", metavar="PATH", help="bar chart (default: beside --csv/--json/--markdown)")
    g.add_argument(
        "--force", action="store_true", help="replace output files cnnzoo did not write (never a checkpoint)"
    )
    p.set_defaults(func=cmd_bench)


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
    from cnnzoo.devices import set_threads

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
    """The output files, each one cnnzoo may write (:func:`cnnzoo.outputs.claim_output`), before anything runs;
    the chart's path (given or beside them) too, as ``args.png``."""
    from cnnzoo import bench

    outputs = {}
    for kind, flag in _KINDS.items():
        value = getattr(args, kind)
        if value is not None:
            header = bench.rows_to_csv([]).strip() if kind == "csv" else None
            outputs[kind] = claim_output(value, kind, flag=flag, force=args.force, header=header)
    if not args.pipeline and (args.png is not None or outputs):
        png = args.png if args.png is not None else next(iter(outputs.values())).with_suffix(".png")
        args.png = claim_output(png, "png", flag="--png", force=args.force)
    return outputs


def _race(args: argparse.Namespace, outputs: dict[str, Path]) -> None:
    """``--pipeline MODEL``: the race, its headline lines, and its --json/--markdown."""
    from cnnzoo import race
    from cnnzoo.atomic import atomic_write_text
    from cnnzoo.registry import get_model_info
    from cnnzoo.run import load_data

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


def _progress(row: bench.BenchRow) -> str:
    """One row as it finishes: the median, and the spread when there are blocks to spread."""

    text = f"{row.images_per_sec:,.1f} images/s"
    if row.repeats > 1:
        lo, hi = row.spread_bounds
        kind = "IQR" if row.spread_kind == "IQR" else "min-max"
        text += f" (median of {row.repeats}, {kind} {lo:,.1f}-{hi:,.1f})"
    return text + (" noisy" if row.noisy else "")


def _throughput(args: argparse.Namespace, outputs: dict[str, Path]) -> None:
    """``MODEL...|all``: the synthetic-input table, its files and the chart."""
    from cnnzoo import bench
    from cnnzoo.atomic import atomic_write_text
    from cnnzoo.devices import setup_device
    from cnnzoo.plots import save_figure
    from cnnzoo.registry import get_model_info, list_models

    names = args.models or ["all"]
    if "all" in names:
        names = list_models()
    for name in names:
        get_model_info(name)  # unknown names fail before anything runs
    setup = setup_device(args.device, args.precision, args.channels_last)
    batch = args.batch_size or bench.default_bench_batch_size(setup.device)
    modes = bench.BENCH_MODES if args.mode == "both" else (args.mode,)
    print(f"benchmarking {len(names)} model(s), {'/'.join(modes)}, batch {batch} on {setup.describe()}", flush=True)
    rows = bench.bench(
        names,
        modes=modes,
        batch_size=batch,
        input_size=args.resize,
        setup=setup,
        compile=args.compile,
        warmup=args.warmup,
        steps=args.steps,
        min_seconds=args.min_time,
        repeats=args.repeats,
        on_row=lambda r: print(f"  {r.model} {r.mode}: {_progress(r)}", flush=True),
    )
    print()
    print(bench.format_bench_table(rows))
    writers = {
        "csv": bench.rows_to_csv,
        "json": lambda rows: bench.rows_to_json(rows, {"written_by": "cnnzoo bench"}),
        "markdown": lambda rows: bench.rows_to_markdown(rows) + "\n" + marker_comment("bench"),
    }
    for kind, path in outputs.items():
        atomic_write_text(path, writers[kind](rows))
        print(f"wrote {path}")
    png = args.png  # claimed with the others (given, or beside them)
    if png is not None:
        save_figure(bench.bench_chart(rows), png)
        print(f"wrote {png}")
