"""The flags of ``cnnzoo bench`` (what the command does is in :mod:`cnnzoo.cli.bench`)."""

from __future__ import annotations

import argparse

from cnnzoo.cli.flags.shared import add_batch_size, add_channels_last, add_input_size, add_precision

__all__ = ["add_bench"]


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
    p.set_defaults(func="cnnzoo.cli.bench:cmd_bench")
