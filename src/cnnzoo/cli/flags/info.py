"""The flags of ``cnnzoo data``, ``cnnzoo models`` and ``cnnzoo summary`` (what the commands do is in
:mod:`cnnzoo.cli.info`)."""

from __future__ import annotations

import argparse

__all__ = ["add_data", "add_models", "add_summary"]


def add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="find, verify and describe Fashion-MNIST (or download it with --fetch)",
        description="Show where Fashion-MNIST was found, its checksum status and per-class counts.",
    )
    p.add_argument("--root", help="directory holding the four IDX files (.gz or raw)")
    p.add_argument("--fetch", action="store_true", help="download the dataset into the user cache first")
    p.set_defaults(func="cnnzoo.cli.info:cmd_data")


def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list every model with its input size, parameters and MACs")
    p.set_defaults(func="cnnzoo.cli.info:cmd_models")


def add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="print a model's shape trace and per-layer table")
    p.add_argument("model")
    p.add_argument("--input-size", help="CxHxW (or H) — defaults to the model's own input size")
    p.add_argument("--depth", type=int, help="show modules nested at most this deep (default: all)")
    p.set_defaults(func="cnnzoo.cli.info:cmd_summary")
