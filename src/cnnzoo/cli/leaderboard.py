"""``cnnzoo leaderboard``: several models over several seeds, one table (:mod:`cnnzoo.leaderboard.plan` runs,
:mod:`cnnzoo.leaderboard.board` writes the files)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping
from typing import Any

from cnnzoo.base.devices import set_threads
from cnnzoo.base.errors import ConfigError
from cnnzoo.cli.common import train_overrides
from cnnzoo.cli.flags.leaderboard import DEFAULT_MODELS
from cnnzoo.leaderboard import board, plan
from cnnzoo.models.registry import parse_model_spec
from cnnzoo.run import load_data
from cnnzoo.train.config import TrainConfig

__all__ = ["cmd_leaderboard"]

# The models `cnnzoo leaderboard` trains when none are named: what a 2-core CPU trains in reasonable time. The
# 96x96 networks run at 32x32 (the smallest power of two DenseNet's strided stem accepts): measured there at
# 0.1-0.2 s per 128-image step, against ~6 s for the small_input (stride-1 stem) variants at 28x28, which are for
# GPUs (`resnet18:small_input`).


def cmd_leaderboard(args: argparse.Namespace) -> int:
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
    rows = plan.run_leaderboard(
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
