"""``cnnzoo studio``: the local web app (being written)."""

from __future__ import annotations

import argparse

from cnnzoo.errors import ConfigError


def add_studio(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("studio", help="a local web app: the zoo, your runs, and a model to try")
    p.set_defaults(func=cmd_studio)


def cmd_studio(args: argparse.Namespace) -> int:
    raise ConfigError("cnnzoo studio is not written yet: use a later version")
