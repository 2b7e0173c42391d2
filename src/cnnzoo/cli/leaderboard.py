"""``cnnzoo leaderboard``: several models over several seeds, one table (:mod:`cnnzoo.leaderboard` runs,
:mod:`cnnzoo.board` writes the files)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping
from typing import Any

from cnnzoo.cli.common import add_batch_size, add_channels_last, add_input_size, add_precision, train_overrides
from cnnzoo.config import RECIPES, TrainConfig
from cnnzoo.errors import ConfigError

# The models `cnnzoo leaderboard` trains when none are named: what a 2-core CPU trains in reasonable time. The
# 96x96 networks run at 32x32 (the smallest power of two DenseNet's strided stem accepts): measured there at
# 0.1-0.2 s per 128-image step, against ~6 s for the small_input (stride-1 stem) variants at 28x28, which are for
# GPUs (`resnet18:small_input`).
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
    p.add_argument("--recipe", choices=sorted(RECIPES), default="fast", help="hyperparameter set (default fast)")
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
    p.set_defaults(func=cmd_leaderboard)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from cnnzoo import board, leaderboard  # the library's part, imported when the command runs (start-up)
    from cnnzoo.devices import set_threads
    from cnnzoo.registry import parse_model_spec
    from cnnzoo.run import load_data

    if args.redraw:
        return _redraw(args)
    _check_numbers(args)
    _, js, _ = board.check_outputs(args.output, force=args.force)  # a wrong --output fails before anything trains
    specs = [parse_model_spec(m) for m in args.models or DEFAULT_MODELS]  # fail fast
    set_threads(args.threads)
    overrides = train_overrides(args)
    input_size = overrides.pop("resize", None)  # the side of the models named without @SIDE
    data = load_data(TrainConfig(dataset=args.dataset or TrainConfig.dataset, resize=input_size), args.data_root)
    argv = sys.argv[1:] if sys.argv[1:2] == ["leaderboard"] else _leaderboard_argv(args)
    budget = f", {args.budget_minutes:g}-minute budget per run" if args.budget_minutes else ""
    print(f"leaderboard: {len(specs)} model(s) x seeds {' '.join(map(str, args.seeds))}, recipe {args.recipe}"
          f"{budget}, on {data.name}; rows go to {args.output}", flush=True)  # fmt: skip
    rows = leaderboard.run_leaderboard(
        specs,
        data,
        recipe=args.recipe,
        overrides=overrides,
        seeds=args.seeds,
        budget_seconds=args.budget_minutes * 60 if args.budget_minutes else None,
        input_size=input_size,
        command="cnnzoo " + shlex.join(argv),
        progress=not args.quiet,
        log=lambda line: print(line, flush=True),
        on_row=lambda row: _write_row(args, row),
        existing=board.load_rows(js),  # a rerun that would measure less is refused before it trains
        replace=args.replace,
        source=str(js),
    )
    print("", *(_summary_line(r) for r in rows), sep="\n")
    return 0


def _redraw(args: argparse.Namespace) -> int:
    from cnnzoo import board

    if args.models:
        raise ConfigError("--redraw trains nothing: drop the model names, or drop --redraw to train them")
    md, js, png, rows = board.update_leaderboard(args.output, force=args.force)
    print(f"redrew {md} and {png} from the {len(rows)} rows of {js}")
    return 0


def _check_numbers(args: argparse.Namespace) -> None:
    for dest, flag in (("epochs", "--epochs"), ("resize", "--input-size"), ("batch_size", "--batch-size")):
        value = getattr(args, dest)
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value}: must be a positive whole number")
    if args.budget_minutes is not None and not 0 < args.budget_minutes < float("inf"):
        raise ConfigError(f"--budget-minutes {args.budget_minutes:g}: must be a positive number of minutes")


def _write_row(args: argparse.Namespace, row: Mapping[str, Any]) -> None:
    """Each model's row goes to the files as soon as its seeds are done: an interruption loses one at most."""
    from cnnzoo import board

    md, js, png, _ = board.update_leaderboard(args.output, [row], replace=args.replace, force=args.force)
    print(f"{row['model']}@{row['input_size']}: wrote its row to {js}, {md} and {png}", flush=True)


def _summary_line(r: Mapping[str, Any]) -> str:
    spread = f" ± {r['test_acc_std']:.4f}" if r["test_acc_std"] is not None else ""
    return (
        f"{r['model']}@{r['input_size']}: test acc {r['test_acc_mean']:.4f}{spread} "
        f"(best {r['test_acc_best']:.4f}) over {len(r['seeds'])} seed(s), "
        f"{r['train_seconds_mean']:.1f} s training, {r['images_per_sec_mean']:,.0f} images/s on {r['device']}"
    )


_RECORDED = (
    ("epochs", "--epochs"),
    ("budget_minutes", "--budget-minutes"),
    ("resize", "--input-size"),
    ("batch_size", "--batch-size"),
    ("lr", "--lr"),
    ("device", "--device"),
    ("precision", "--precision"),
    ("channels_last", "--channels-last"),
    ("threads", "--threads"),
    ("dataset", "--dataset"),
    ("data_root", "--data-root"),
)


def _leaderboard_argv(args: argparse.Namespace) -> list[str]:
    """The command line equivalent to ``args`` (for the record, when cnnzoo was not started from a shell)."""
    argv = ["leaderboard", *args.models, "--recipe", args.recipe, "--seeds", *map(str, args.seeds)]
    for dest, flag in _RECORDED:
        if getattr(args, dest) is not None:
            argv += [flag, str(getattr(args, dest))]
    return [*argv, "--output", args.output]
