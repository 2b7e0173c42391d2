"""The ``cnnzoo`` command line: a thin shell over the library.

This package is the only code that touches process-wide state (argv, stdout, exit codes, signals). Each
module holds a few subcommands; each subcommand has an ``add_<name>`` function that declares its flags and a
``cmd_<name>`` function that calls the library and prints. User-caused errors
(:class:`~cnnzoo.errors.CnnzooError`) print one line ``error: ...`` and exit with status 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cnnzoo.cli.bench import add_bench
from cnnzoo.cli.common import EXIT_USAGE, Parser
from cnnzoo.cli.info import add_data, add_models, add_summary
from cnnzoo.cli.leaderboard import add_leaderboard
from cnnzoo.cli.runs import add_eval, add_export, add_plot, add_predict
from cnnzoo.cli.train import add_train
from cnnzoo.errors import CnnzooError

__all__ = ["build_parser", "main"]

COMMANDS = (add_data, add_models, add_summary, add_train, add_eval, add_predict, add_export, add_plot, add_bench,
            add_leaderboard)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="cnnzoo",
        description="The classic CNNs of Dive into Deep Learning (d2l), built, inspected and trained.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for add in COMMANDS:
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
