"""``cnnzoo weights``: the trained weights, their figures, and getting those that are not shipped."""

from __future__ import annotations

import argparse
import json
import sys

from cnnzoo.base.errors import CheckpointError, ConfigError
from cnnzoo.cli.common import command_of
from cnnzoo.cli.flags.shared import Parser
from cnnzoo.cli.flags.train import add_train
from cnnzoo.data.cache import cache_dir
from cnnzoo.models.inspection import human
from cnnzoo.run import load_data
from cnnzoo.train.checkpoint import load_checkpoint
from cnnzoo.train.config import config_from_dict
from cnnzoo.weights import get_weight, list_weights
from cnnzoo.weights.catalog import FILES_DIR
from cnnzoo.weights.obtain import build_argv, build_dir, describe_sources, fetch_weight, finish_build

__all__ = ["cmd_weights"]


def cmd_weights(args: argparse.Namespace) -> int:
    if args.action == "build":
        return _build(args)
    if args.action != "fetch":
        return _list(args)
    weight = get_weight(args.name)
    if weight.shipped:
        raise ConfigError(f"{weight.name} is shipped with cnnzoo: use it as it is (cnnzoo predict {weight.name} ...)")
    path = fetch_weight(weight, args.mirror)
    print(f"fetched {weight.name} into {path} ({weight.bytes:,} bytes, SHA-256 checked)")
    return 0


def _list(args: argparse.Namespace) -> int:
    """The table of every weight, where its file is, and how to try one."""

    weights = list_weights()
    if args.json:
        print(json.dumps([w.to_dict() for w in weights], indent=1))
        return 0
    where = describe_sources(weights)
    rows = [("weight", "input", "params", "MACs", "test acc", "seeds: mean ± std", "file", "where")]
    for w in weights:
        m = w.meta
        spread = (
            f"{m['test_acc_mean']:.4f} ± {m['test_acc_std']:.4f}" if m.get("test_acc_std") is not None else "1 seed"
        )
        rows.append((w.name, f"{w.input_size}x{w.input_size}", human(m["params"]), human(m["macs"]),
                     f"{w.test_acc:.4f}", f"{spread} ({len(m['seeds'])})", f"{w.bytes / 1e6:.1f} MB {w.storage}",
                     where[w.name]))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(n) if i in (0, 7) else c.rjust(n) for i, (c, n) in enumerate(zip(r, widths))))
    print("\ntest acc: this file on the test set, in fp32 (cnnzoo eval NAME prints it); cards: docs/weights/NAME.md")
    print(f"shipped files: {FILES_DIR}; built or fetched ones: {cache_dir('weights')}")
    if weights:
        show = next((w for w in weights if w.model == "resnet18" and w.shipped), weights[0])
        print(f"try one: cnnzoo predict {show.short_name if show.default else show.name} shoe.jpg "
              f"(or cnnzoo explain, eval, export; cnnzoo studio: Try it)")  # fmt: skip
    return 0


def _build(args: argparse.Namespace) -> int:
    weight = get_weight(args.name)
    if weight.shipped:
        raise ConfigError(f"{weight.name} is shipped with cnnzoo: nothing to build (cnnzoo predict {weight.name} ...)")
    out = build_dir(weight)
    if (out / "report.md").is_file():
        print(f"{out} finished already: storing its best.pt")
    else:
        argv = build_argv(weight, out)
        took = f"{weight.meta['train_seconds'] / 60:.0f} min on {weight.meta['hardware']['cpu']}"
        print(f"building {weight.name}: cnnzoo {' '.join(argv)}  (its card's run took {took})")
        status = _train(argv)
        if status:
            print(f"`cnnzoo weights build {weight.name}` continues this build from where it stopped", file=sys.stderr)
            return status
    if not (out / "best.pt").is_file():
        raise CheckpointError(f"{out} has no best.pt: the build trained without a validation split")
    config = config_from_dict(load_checkpoint(out / "best.pt")["config"])
    record = finish_build(weight, out, load_data(config))
    print(f"built {weight.name}: test acc {record['test_acc']:.4f} here, {record['card_test_acc']:.4f} on its card; "
          f"use it as cnnzoo predict {weight.name} shoe.jpg")  # fmt: skip
    return 0


def _train(argv: list[str]) -> int:
    """``cnnzoo train ARGV``: the train command itself, parsed as if typed."""
    parser = Parser(prog="cnnzoo")
    add_train(parser.add_subparsers(dest="command", parser_class=Parser))
    train = parser.parse_args(argv)
    return int(command_of(train)(train) or 0)
