"""The flags several subcommands take, spelled the same everywhere, and the parser with the one-line error format."""

from __future__ import annotations

import argparse

from cnnzoo.cli.common import EXIT_USAGE
from cnnzoo.train.config import CHANNELS_LAST, PRECISIONS

__all__ = ["Parser", "add_batch_size", "add_channels_last", "add_input_size", "add_precision"]


class Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error format (argparse already exits 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def add_input_size(group: argparse._ActionsContainer, help: str) -> None:
    """``--input-size SIDE`` (``--resize``, the older spelling, still works): the square input side.

    Stored as ``resize``, the :class:`~cnnzoo.train.config.TrainConfig` field (and the key config.json keeps)."""
    group.add_argument("--input-size", "--resize", dest="resize", type=int, metavar="SIDE", help=help)


def add_batch_size(group: argparse._ActionsContainer, help: str | None = None) -> None:
    group.add_argument("-b", "--batch-size", dest="batch_size", type=int, metavar="N", help=help)


def add_precision(group: argparse._ActionsContainer, default: str | None = None) -> None:
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=default,
        help="auto: bf16 autocast on a GPU that supports it, else fp32; bf16-native: bf16 wherever the hardware "
        "computes it (also CPUs with AVX512-BF16 or AMX), else fp32",
    )


def add_channels_last(group: argparse._ActionsContainer, default: str | None = None) -> None:
    """``--channels-last [auto|yes|no]`` (a bare ``--channels-last`` is yes; ``--no-channels-last`` is no)."""
    group.add_argument(
        "--channels-last",
        nargs="?",
        const="yes",
        choices=CHANNELS_LAST,
        default=default,
        help="NHWC memory format: auto (on CUDA only), yes or no",
    )
    group.add_argument(
        "--no-channels-last", dest="channels_last", action="store_const", const="no", help=argparse.SUPPRESS
    )
