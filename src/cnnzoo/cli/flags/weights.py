"""The flags of ``cnnzoo weights`` (what the command does is in :mod:`cnnzoo.cli.weights`)."""

from __future__ import annotations

import argparse

__all__ = ["add_weights"]


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
    p.set_defaults(func="cnnzoo.cli.weights:cmd_weights")
