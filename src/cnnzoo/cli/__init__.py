"""The ``cnnzoo`` command line: a thin shell over the library.

This package is the only code that touches process-wide state (argv, stdout, exit codes, signals). The parser,
in :mod:`cnnzoo.cli.flags`, imports no torch (``cnnzoo --help`` answers at once): each subcommand's ``add_<name>``
there declares its flags and names its ``cmd_<name>``, which lives in the module of the same topic here
(``cli/flags/train.py`` declares ``cnnzoo train``, ``cli/train.py`` runs it) and is imported only when the command
runs; those modules import the library at their top. Each ``cmd_<name>`` calls the library and prints.
User-caused errors (:class:`~cnnzoo.base.errors.CnnzooError`) print one line ``error: ...`` and exit with status
2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

from cnnzoo.base.errors import CnnzooError
from cnnzoo.base.failures import is_collective_timeout, is_out_of_memory
from cnnzoo.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Terminated,
    command_of,
    raise_terminated,
)
from cnnzoo.cli.flags import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``cnnzoo`` command and return its exit status. ``argv`` None means this process's own command line
    (the ``cnnzoo`` program, ``python -m cnnzoo``): the process ends when main returns, so after a Ctrl-C or
    SIGTERM it ignores further ones. Called with an ``argv`` (a test, a notebook), it leaves every handler as it
    found it."""
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
        if in_main_thread and argv is None and status in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            # Stopped by a signal, its checkpoint saved, the process is ending: one more Ctrl-C or SIGTERM
            # during the interpreter's shutdown must neither print a traceback nor turn 143 into a kill (-15).
            # (Only then: a process that goes on, such as a test runner, would otherwise pass an ignored SIGINT
            # on to every child it starts, which Ctrl-C could then not stop.)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        if argv is None and status is not None and os.environ.get(TORCHRUN_WORKER):
            _end_torchrun_worker(status)


TORCHRUN_WORKER = "TORCHELASTIC_RUN_ID"  # set by torchrun in every worker it starts


def _end_torchrun_worker(status: int) -> None:
    """A torchrun worker whose command is done ends here, its output flushed, without the interpreter's teardown:
    the process group was left (cnnzoo.train.distributed), but PyTorch's communication threads could still be
    destroyed in the wrong order at exit and abort a finished run's worker ("terminate called without an active
    exception", seen once in tens of 2-process runs on a 2-core machine), turning its exit status 0 into -6."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _run(args: argparse.Namespace) -> int:
    """The subcommand, with every way it can end made one line and an exit status."""
    what = f"`cnnzoo {args.command}`"
    try:
        return int(command_of(args)(args) or 0)
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
    if isinstance(exc, MemoryError) or is_out_of_memory(exc):
        return f"out of memory while running {what}: try a smaller --batch-size or --input-size"
    if is_collective_timeout(exc):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return (f"a data-parallel rank stopped answering ({first}): check the other ranks' output; "
                "--dist-timeout SECONDS sets how long to wait")  # fmt: skip
    return None
