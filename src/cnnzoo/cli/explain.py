"""``cnnzoo explain``: what a trained network looks at (being written)."""

from __future__ import annotations

import argparse

from cnnzoo.errors import ConfigError


def add_explain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="class-activation maps, feature maps and filters of a trained run")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    raise ConfigError("cnnzoo explain is not written yet: use a later version")
