"""``cnnzoo weights``: the trained weights, their figures, and getting those that are not shipped."""

from __future__ import annotations

import argparse
import json
import sys

from cnnzoo.cli.common import Parser
from cnnzoo.cli.train import add_train
from cnnzoo.config import config_from_dict
from cnnzoo.errors import CheckpointError, ConfigError


def add_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "weights",
        help="list the trained weights (cnnzoo predict lenet_bn.fashion_mnist shoe.jpg), build or fetch the others",
        description="Without an action: every named weight with its input side, size, test accuracy (of the file, "
        "as cnnzoo eval prints it), the mean and spread over its recipe's seeds, and where it is. A weight's name "
        "goes wherever a run directory does (predict, eval, explain, export); its card is docs/weights/NAME.md.",
    )
    p.add_argument("--json", action="store_true", help="the catalog entries as JSON")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    b = actions.add_parser(
        "build",
        help="train a weight that is not shipped on this machine, with its card's command",
        description="Runs the weight's own `cnnzoo train` command (its card's) into ~/.cache/cnnzoo/weights/runs/ "
        "(Ctrl-C stops it; the same command resumes it), then stores its best.pt as the weight's file in the cache "
        "and prints the test accuracy it reaches here beside the card's.",
    )
    b.add_argument("name", metavar="WEIGHT")
    f = actions.add_parser(
        "fetch",
        help="download a weight's published file from a mirror you name, checked against its SHA-256",
        description="Downloads MIRROR/FILE into ~/.cache/cnnzoo/weights/, bounded in time and size, and keeps it "
        "only if its SHA-256 is the catalog's.",
    )
    f.add_argument("name", metavar="WEIGHT")
    f.add_argument("--mirror", required=True, metavar="URL", help="base URL holding the weight files")
    p.set_defaults(func=cmd_weights)


def cmd_weights(args: argparse.Namespace) -> int:
    from cnnzoo.weights import get_weight
    from cnnzoo.weights.obtain import fetch_weight

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
    from cnnzoo.data.cache import cache_dir
    from cnnzoo.inspection import human
    from cnnzoo.weights import list_weights
    from cnnzoo.weights.catalog import FILES_DIR
    from cnnzoo.weights.obtain import describe_sources

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
    from cnnzoo.checkpoint import load_checkpoint
    from cnnzoo.run import load_data
    from cnnzoo.weights import get_weight
    from cnnzoo.weights.obtain import build_argv, build_dir, finish_build

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
    return int(train.func(train) or 0)
