"""The flags of ``cnnzoo leaderboard`` (what the command does is in :mod:`cnnzoo.cli.leaderboard`)."""

from __future__ import annotations

import argparse

from cnnzoo.cli.flags.shared import add_batch_size, add_channels_last, add_input_size, add_precision
from cnnzoo.train.config import RECIPE_NAMES

__all__ = ["DEFAULT_MODELS", "add_leaderboard"]

DEFAULT_MODELS = ("lenet", "lenet_bn", "googlenet@32", "resnet18@32", "densenet@32")


def add_leaderboard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "leaderboard",
        help="train several models over several seeds and write a leaderboard table, figure and JSON",
        description="Train each MODEL with one recipe and budget, once per seed, and merge the rows (test accuracy "
        "mean ± std and best, training time, images/s, params, MACs, device) into --output's JSON; the Markdown "
        "table (with d2l's and the public reference figures beside each family) and the PNG (accuracy "
        "against MACs and against training time) are rewritten from all of its rows. Rows are keyed by model, "
        "input size, recipe, dataset, device and budget (epochs, or minutes): rerunning other models, on another "
        "device or with another budget adds rows; a rerun with fewer seeds does not replace a row without --replace.",
        epilog="MODEL is NAME[:KWARG[=VALUE],...][@SIDE]: resnet18:small_input is create_model('resnet18', "
        "small_input=True) (a 3x3 stride-1 stem for 28x28 inputs: slow on a CPU, meant for GPUs), googlenet@32 "
        "trains at 32x32, densenet:small_input@28 both. A VALUE of true/false/a number is converted.",
    )
    p.add_argument(
        "models",
        metavar="MODEL",
        nargs="*",
        help=f"models to train (default, CPU-sized: {' '.join(DEFAULT_MODELS)})",
    )
    p.add_argument("--recipe", choices=RECIPE_NAMES, default="fast", help="hyperparameter set (default fast)")
    p.add_argument("--epochs", type=int, help="epochs per run, at most with a budget (default: the recipe's)")
    p.add_argument(
        "--budget-minutes",
        type=float,
        metavar="M",
        help="wall-time budget per run (training + evaluation): a probe of a few steps picks how many whole epochs "
        "fit, and the schedule is laid over them; a run never stops mid-epoch",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="SEED", help="default 0 1 2")
    add_input_size(p, "input side for models without @SIDE (default: their own)")
    add_batch_size(p, "default: the recipe's")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    p.add_argument("--device", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps")
    add_precision(p)
    add_channels_last(p)
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: the cores other programs leave free)")
    p.add_argument("--dataset", metavar="NAME", help="fashion-mnist (default), mnist, kmnist, cifar10 or folder:PATH")
    p.add_argument("--data-root", metavar="DIR", help="directory with the dataset's files (default: the user cache)")
    p.add_argument(
        "--output",
        default="benchmarks/leaderboard.md",
        metavar="PATH",
        help="the Markdown table (default benchmarks/leaderboard.md); the .json and .png go beside it",
    )
    p.add_argument("--redraw", action="store_true", help="train nothing: rewrite the .md and .png from the .json")
    p.add_argument(
        "--replace",
        action="store_true",
        help="let a row replace one measured with more (more seeds, or more epochs in the same budget)",
    )
    p.add_argument("--force", action="store_true", help="replace a .md or .png there that cnnzoo did not write")
    p.add_argument("--quiet", action="store_true", help="no progress bars and no per-epoch lines")
    p.set_defaults(func="cnnzoo.cli.leaderboard:cmd_leaderboard")
