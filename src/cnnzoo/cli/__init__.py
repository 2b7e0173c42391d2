"""The ``cnnzoo`` command line: a thin shell over the library.

This package is the only code that touches process-wide state (argv, stdout, exit codes, signals). Building the
parser imports no torch (``cnnzoo --help`` answers at once): each module imports the library inside its
``cmd_*`` functions, which is where the work is. Each
module holds a few subcommands; each subcommand has an ``add_<name>`` function that declares its flags and a
``cmd_<name>`` function that calls the library and prints. User-caused errors
(:class:`~cnnzoo.errors.CnnzooError`) print one line ``error: ...`` and exit with status 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from cnnzoo.cli.bench import add_bench
from cnnzoo.cli.common import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, Parser, Terminated, raise_terminated
from cnnzoo.cli.explain import add_explain
from cnnzoo.cli.info import add_data, add_models, add_summary
from cnnzoo.cli.leaderboard import add_leaderboard
from cnnzoo.cli.runs import add_eval, add_export, add_plot, add_predict
from cnnzoo.cli.studio import add_studio
from cnnzoo.cli.train import add_train
from cnnzoo.cli.weights import add_weights
from cnnzoo.errors import CnnzooError

__all__ = ["build_parser", "main"]

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, raise_terminated) if in_main_thread else None
    status = None
    try:
        status = _run(args)
        return status
    finally:
        if in_main_thread and status in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            # Stopped by a signal, its checkpoint saved, the process is ending: one more Ctrl-C or SIGTERM
            # during the interpreter's shutdown must neither print a traceback nor turn 143 into a kill (-15).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    """The subcommand, with every way it can end made one line and an exit status."""
    what = f"`cnnzoo {args.command}`"
    try:
        return int(args.func(args) or 0)
    except CnnzooError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `cnnzoo models | head`
        return 0
    except Terminated:
        if args.debug:
            raise
        print(f"\nterminated (SIGTERM): {what} stopped before it finished", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"\ninterrupted (Ctrl-C): {what} stopped before it finished", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (MemoryError, RuntimeError) as exc:
        message = _resource_message(exc, what)
        if args.debug or message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE


def _resource_message(exc: BaseException, what: str) -> str | None:
    """The one line for running out of memory or a stalled data-parallel rank; None for anything else (a bug)."""
    # here, not at the top: both import torch, which `cnnzoo --help` must not wait for
    from cnnzoo.bench import is_out_of_memory
    from cnnzoo.distributed import is_collective_timeout

    if isinstance(exc, MemoryError) or is_out_of_memory(exc):
        return f"out of memory while running {what}: try a smaller --batch-size or --input-size"
    if is_collective_timeout(exc):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return (f"a data-parallel rank stopped answering ({first}): check the other ranks' output; "
                "--dist-timeout SECONDS sets how long to wait")  # fmt: skip
    return None
