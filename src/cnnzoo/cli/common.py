"""What every command shares: the exit codes, SIGTERM as an exception, the flags a run takes, and the one place
that finds a subcommand's function from its name.

The parser (:mod:`cnnzoo.cli.flags`) names each subcommand's function as ``"module:function"``; :func:`command_of`
imports that module when the command runs, so building the parser imports no torch (``cnnzoo --help`` answers at
once) while every command module imports what it uses at its top."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from cnnzoo.train.config import TrainConfig

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "Terminated",
    "command_of",
    "raise_terminated",
    "train_overrides",
]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM, what docker stop and systemd send


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python raises KeyboardInterrupt for Ctrl-C (``main`` installs the handler), so
    whatever cleans up after a Ctrl-C cleans up after a SIGTERM too; ``main`` exits 143 for it."""


def raise_terminated(signum: int, frame: object) -> None:
    """The SIGTERM handler ``main`` installs."""
    raise Terminated


def train_overrides(args: argparse.Namespace) -> dict:
    """The :class:`TrainConfig` fields the user gave on the command line (``None``: not given)."""
    names = [f for f in TrainConfig.__dataclass_fields__ if f not in ("model", "model_kwargs", "recipe")]
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def command_of(args: argparse.Namespace) -> Callable[[argparse.Namespace], int | None]:
    """The function of the subcommand ``args`` was parsed for: its ``func``, ``"cnnzoo.cli.MODULE:FUNCTION"``."""
    module, _, name = args.func.partition(":")
    return getattr(importlib.import_module(module), name)
