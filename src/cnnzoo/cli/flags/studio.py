"""The flags of ``cnnzoo studio`` (what the command does is in :mod:`cnnzoo.cli.studio`)."""

from __future__ import annotations

import argparse

__all__ = ["add_studio"]


def add_studio(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "studio",
        help="a local web app: the zoo, your runs, and a model to try",
        description="Serve the zoo, the runs under PATH (live while they train) and a page to try a model, at "
        "http://HOST:PORT/. Read-only: it never writes into run directories.",
    )
    p.add_argument("path", nargs="?", default="runs", metavar="PATH", help="a run directory or a directory of runs "
                   "(default: runs/)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0: any free port)")
    p.add_argument("--open", action="store_true", help="open the studio in the web browser")
    p.set_defaults(func="cnnzoo.cli.studio:cmd_studio")
