"""The ``cnnzoo`` parser: every subcommand's flags, declared without importing torch, so ``cnnzoo --help`` and every
usage error answer at once. Each subcommand names the function that runs it as ``"cnnzoo.cli.MODULE:FUNCTION"``
(:func:`cnnzoo.cli.common.command_of` imports it when the command runs).
"""

from __future__ import annotations

import argparse

from cnnzoo.cli.flags.bench import add_bench
from cnnzoo.cli.flags.explain import add_explain
from cnnzoo.cli.flags.info import add_data, add_models, add_summary
from cnnzoo.cli.flags.leaderboard import add_leaderboard
from cnnzoo.cli.flags.runs import add_eval, add_export, add_plot, add_predict
from cnnzoo.cli.flags.shared import Parser
from cnnzoo.cli.flags.studio import add_studio
from cnnzoo.cli.flags.train import add_train
from cnnzoo.cli.flags.weights import add_weights

__all__ = ["COMMANDS", "build_parser"]

COMMANDS = (add_data, add_models, add_summary, add_weights, add_train, add_eval, add_predict, add_explain, add_export,
            add_plot, add_bench, add_leaderboard, add_studio)  # fmt: skip


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
