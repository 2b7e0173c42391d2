"""``cnnzoo studio [PATH]``: the local web app (:mod:`cnnzoo.studio`) on uvicorn.

It binds 127.0.0.1 unless told otherwise; another address is allowed (a lab machine shared on purpose) with one
line of warning, since the studio has no login. Missing FastAPI/uvicorn, a PATH that is not a directory and a
port already in use are one line each; Ctrl-C stops the server and exits 130 without a traceback.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import signal
import socket
import sys
import threading
import time
import webbrowser
from pathlib import Path

from cnnzoo.base.devices import set_threads
from cnnzoo.base.errors import ConfigError, MissingExtraError
from cnnzoo.cli.common import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated
from cnnzoo.studio import create_app
from cnnzoo.studio.app import LOOPBACK_NAMES

__all__ = ["cmd_studio", "is_loopback"]

EXTRA = "error: cnnzoo studio needs the studio extra: pip install 'cnnzoo[studio]'"


GRACE_SECONDS = 1  # after SIGTERM, requests in flight get this long; then the studio stops regardless


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or one line saying why not (a busy port, an unknown address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: not an address of this machine ({exc.strerror}): try 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use: choose another with --port, e.g. --port {port + 1}"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --host or --port") from None
    return sock


def cmd_studio(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # lazy: the studio extra is optional

    except ImportError:
        raise MissingExtraError(EXTRA.removeprefix("error: ")) from None
    root, fresh = _root(args.path)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: choose a port from 1 to 65535")
    everywhere = args.host in ("0.0.0.0", "::", "")  # bound to every address on purpose: any name reaches it
    set_threads(None)  # the cores other programs leave free; re-decided as the load changes (adapt_threads)
    app = create_app(root, missing_ok=fresh, hosts=None if everywhere else (*LOOPBACK_NAMES, args.host),
                     adapt_threads=True)  # fmt: skip
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    if not is_loopback(args.host):
        print(f"warning: --host {args.host} makes the studio reachable from other machines, with no login",
              file=sys.stderr)  # fmt: skip
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/" if ":" not in shown else f"http://[{shown}]:{port}/"
    runs = "no runs/ here yet: try the trained weights that ship with cnnzoo" if fresh else f"runs under {root}"
    print(f"cnnzoo studio: {url} ({runs}); Ctrl-C stops it", flush=True)
    if args.open:
        webbrowser.open(url)
    return _serve(uvicorn, app, sock)


def _root(path: str) -> tuple[Path, bool]:
    """The studio's root, and whether it is the default ``runs/`` not made yet (a fresh install)."""
    if not path.strip():  # Path("") is the working directory: an unset variable, not a choice
        raise ConfigError(
            "the studio's root is empty (an unset variable?): give a run directory or a directory of runs"
        )
    root = Path(path)
    fresh = path == "runs" and not root.exists() and not root.is_symlink()  # nothing trained here yet
    if not root.is_dir() and not fresh:
        what = "is a file, not a directory" if root.exists() else "does not exist"
        raise ConfigError(f"{root} {what}: give a run directory or a directory of runs (default runs/)")
    return root, fresh


def _serve(uvicorn, app, sock) -> int:
    """Serve until Ctrl-C or SIGTERM: requests in flight get GRACE seconds, then the server stops regardless."""
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=GRACE_SECONDS)
    )
    _stop_within(server, GRACE_SECONDS + 2)
    try:
        # uvicorn traps Ctrl-C, shuts down, then raises the signal again: it arrives here as KeyboardInterrupt
        server.run(sockets=[sock])
    except Terminated:
        raise  # SIGTERM: the CLI's own line and exit status 143
    except KeyboardInterrupt:
        print("\nstudio stopped (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        sock.close()
    return 0


def _stop_within(server, seconds: float) -> None:
    """Whatever its requests are doing (a worker thread cannot be interrupted), the process ends ``seconds`` after
    the server is asked to stop: a daemon thread watches for it."""

    def watch() -> None:
        while not server.should_exit:
            time.sleep(0.2)
        time.sleep(seconds)
        print("studio stopped (requests still running were abandoned)", file=sys.stderr, flush=True)
        interrupted = signal.SIGINT in getattr(server, "_captured_signals", ())
        os._exit(EXIT_INTERRUPTED if interrupted else EXIT_TERMINATED)

    threading.Thread(target=watch, name="cnnzoo-studio-stop", daemon=True).start()
