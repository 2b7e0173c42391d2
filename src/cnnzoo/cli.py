"""The ``cnnzoo`` command line: a thin shell over the library.

This is the only module that touches process-wide state (argv, stdout, exit codes, signals). Every
subcommand has an ``_add_<name>`` function that declares its flags and a ``_cmd_<name>`` function that
runs it and returns the exit status. User-caused errors (:class:`~cnnzoo.errors.CnnzooError`) print one
line ``error: ...`` and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cnnzoo.errors import CnnzooError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error format (argparse already exits 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="find, verify and describe Fashion-MNIST (or download it with --fetch)",
        description="Show where Fashion-MNIST was found, its checksum status and per-class counts.",
    )
    p.add_argument("--root", help="directory holding the four IDX files (.gz or raw)")
    p.add_argument("--fetch", action="store_true", help="download the dataset into the user cache first")
    p.set_defaults(func=_cmd_data)


def _cmd_data(args: argparse.Namespace) -> int:
    from cnnzoo.data import fetch_fashion_mnist, load_fashion_mnist

    if args.fetch:
        path = fetch_fashion_mnist(args.root)
        print(f"fetched into {path}")
    ds = load_fashion_mnist(args.root, download=False)
    print(f"dataset:   {ds.name}")
    print(f"found in:  {ds.source}")
    print(f"checksums: {'verified (MD5 of the uncompressed content)' if ds.verified else 'NOT verified'}")
    print(f"train:     {tuple(ds.train_images.shape)} uint8, test: {tuple(ds.test_images.shape)} uint8")
    train, test = ds.class_counts("train"), ds.class_counts("test")
    width = max(len(c) for c in ds.classes)
    print(f"\n{'label':>5}  {'class':<{width}}  {'train':>6}  {'test':>6}")
    for i, name in enumerate(ds.classes):
        print(f"{i:>5}  {name:<{width}}  {train[i]:>6}  {test[i]:>6}")
    print(f"{'':>5}  {'total':<{width}}  {sum(train):>6}  {sum(test):>6}")
    return 0


# ----------------------------------------------------------------------------------------------
# models, summary  (issue 3)
# ----------------------------------------------------------------------------------------------
def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list every model with its input size, parameters and MACs")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> int:
    raise NotImplementedError("cnnzoo models")


def _add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="print a model's shape trace and per-layer table")
    p.add_argument("model")
    p.add_argument("--input-size", help="CxHxW (or H) — defaults to the model's own input size")
    p.set_defaults(func=_cmd_summary)


def _cmd_summary(args: argparse.Namespace) -> int:
    raise NotImplementedError("cnnzoo summary")


# ----------------------------------------------------------------------------------------------
# train, eval, predict, plot  (issue 4)
# ----------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnnzoo",
        description="The classic CNNs of Dive into Deep Learning, built, inspected and trained.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_add_data, _add_models, _add_summary):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except CnnzooError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `cnnzoo models | head`
        return 0
