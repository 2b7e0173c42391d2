"""``cnnzoo bench``: synthetic throughput, or the race against the book's pipeline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from cnnzoo import bench
from cnnzoo.atomic import atomic_write_text
from cnnzoo.config import PRECISIONS
from cnnzoo.devices import setup_device
from cnnzoo.errors import ConfigError
from cnnzoo.registry import get_model_info, list_models


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="throughput of models on synthetic input, or cnnzoo's training raced against the seeds' pipeline",
        description="Without --pipeline: images/s, ms/step, parameters, MACs and peak memory of each MODEL (or "
        "all) on synthetic input, after warm-up and with device synchronisation; out of memory retries at half "
        "the batch. With --pipeline MODEL: one epoch of cnnzoo's training against one of the seeds' pipeline "
        "(torchvision + DataLoader(4 workers) + train_ch6), interleaved, and the median ratio.",
    )
    p.add_argument("models", metavar="MODEL", nargs="*", help="registered model names, or all (the default)")
    p.add_argument("--pipeline", metavar="MODEL", help="race cnnzoo's training against the seeds' pipeline")
    p.add_argument("--mode", choices=("train", "infer", "both"), default="train", help="default train")
    p.add_argument("--batch-size", type=int, help="default 16 on CPU, 256 on GPU; --pipeline: the seeds' batch")
    p.add_argument("--input-size", type=int, metavar="SIDE", help="default: each model's own; clipped into its range")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None, help="default auto")
    p.add_argument("--compile", action="store_true", help="torch.compile (compilation happens in the warm-up)")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: all cores)")
    g = p.add_argument_group("timing (throughput)")
    g.add_argument("--warmup", type=int, default=3, metavar="STEPS", help="untimed steps first (default 3)")
    g.add_argument("--steps", type=int, default=10, help="timed steps, at least (default 10)")
    g.add_argument("--min-time", type=float, default=0.0, metavar="S", help="keep timing for at least S seconds")
    g = p.add_argument_group("--pipeline")
    g.add_argument("--rounds", type=int, default=3, help="interleaved epochs of each side (default 3)")
    g.add_argument("--train-images", type=int, metavar="N", help="training images per epoch (default all)")
    g.add_argument("--test-images", type=int, metavar="N", help="test images per epoch (default all, or N/6)")
    g.add_argument("--lr", type=float, help="learning rate of both sides (default: the seeds')")
    g.add_argument("--workers", type=int, default=4, help="the seeds' DataLoader workers (default 4, as d2l)")
    g.add_argument("--data-root", metavar="DIR")
    g = p.add_argument_group("output")
    g.add_argument("--csv", metavar="PATH")
    g.add_argument("--json", metavar="PATH")
    g.add_argument("--markdown", metavar="PATH")
    g.add_argument("--png", metavar="PATH", help="bar chart (default: beside --csv/--json/--markdown)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    for flag in ("batch_size", "input_size", "warmup", "steps", "rounds", "train_images", "test_images", "threads"):
        value = getattr(args, flag)
        if value is not None and (value < 1 if flag not in ("warmup",) else value < 0):
            raise ConfigError(f"--{flag.replace('_', '-')} {value}: must be a positive whole number")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    layout = {None: "auto", True: "yes", False: "no"}[args.channels_last]
    outputs = {k: Path(v) for k, v in (("csv", args.csv), ("json", args.json), ("markdown", args.markdown)) if v}

    if args.pipeline:
        if args.models:
            raise ConfigError("--pipeline takes one model (--pipeline MODEL); drop the other model names")
        from cnnzoo.data import load_fashion_mnist

        get_model_info(args.pipeline)
        data = load_fashion_mnist(args.data_root)
        result = bench.compare_pipelines(
            args.pipeline,
            data,
            batch_size=args.batch_size,
            input_size=args.input_size,
            lr=args.lr,
            device=args.device,
            precision=args.precision,
            channels_last=layout,
            compile=args.compile,
            rounds=args.rounds,
            train_images=args.train_images,
            test_images=args.test_images,
            workers=args.workers,
            on_round=lambda k, r: print(
                f"round {k + 1}/{args.rounds}: seeds {r.seeds_seconds:.2f} s, cnnzoo {r.cnnzoo_seconds:.2f} s "
                f"({r.ratio:.2f}x)",
                flush=True,
            ),
        )
        print(bench.format_pipeline(result))
        command = "cnnzoo " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None
        if "json" in outputs:
            atomic_write_text(outputs["json"], json.dumps(result.to_dict(), indent=2) + "\n")
        if "markdown" in outputs:
            atomic_write_text(outputs["markdown"], bench.pipeline_markdown(result, command))
        if "csv" in outputs:
            raise ConfigError("--pipeline writes --json or --markdown, not --csv")
        for path in outputs.values():
            print(f"wrote {path}")
        return 0

    names = args.models or ["all"]
    if "all" in names:
        names = list_models()
    for name in names:
        get_model_info(name)  # unknown names fail before anything runs
    setup = setup_device(args.device, args.precision, layout)
    batch = args.batch_size or bench.default_bench_batch_size(setup.device)
    modes = bench.BENCH_MODES if args.mode == "both" else (args.mode,)
    print(f"benchmarking {len(names)} model(s), {'/'.join(modes)}, batch {batch} on {setup.describe()}", flush=True)
    rows = bench.bench(
        names,
        modes=modes,
        batch_size=batch,
        input_size=args.input_size,
        setup=setup,
        compile=args.compile,
        warmup=args.warmup,
        steps=args.steps,
        min_seconds=args.min_time,
        on_row=lambda r: print(f"  {r.model} {r.mode}: {r.images_per_sec:,.1f} images/s", flush=True),
    )
    print()
    print(bench.format_bench_table(rows))
    writers = {"csv": bench.rows_to_csv, "json": bench.rows_to_json, "markdown": bench.rows_to_markdown}
    for kind, path in outputs.items():
        atomic_write_text(path, writers[kind](rows))
        print(f"wrote {path}")
    png = Path(args.png) if args.png else (next(iter(outputs.values())).with_suffix(".png") if outputs else None)
    if png is not None:
        from cnnzoo.plots import save_figure

        save_figure(bench.bench_chart(rows), png)
        print(f"wrote {png}")
    return 0
