"""Local HTTP servers on 127.0.0.1 for the download tests (nothing is fetched from the internet)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["local_server", "serve", "slow_server"]


@contextmanager
def local_server(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on a free port of 127.0.0.1 for the block; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _Handler(http.server.SimpleHTTPRequestHandler):
    die_after: int | None = None  # bytes sent before the connection is dropped

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.die_after is None:
            return super().do_GET()
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return self.send_error(404)
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: self.die_after])
        self.wfile.flush()
        self.close_connection = True


def serve(directory: Path, die_after: int | None = None):
    """The files of ``directory`` over HTTP (``die_after``: bytes sent before each connection is dropped)."""
    handler = type("H", (_Handler,), {"die_after": die_after})
    return local_server(lambda *a, **k: handler(*a, directory=str(directory), **k))


class _Slow(http.server.BaseHTTPRequestHandler):
    length = 1000
    gap = 0.2  # seconds between writes
    piece = 1  # bytes per write

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(self.length))
        self.end_headers()
        try:
            sent = 0
            while sent < self.length:
                self.wfile.write(b"\0" * self.piece)
                self.wfile.flush()
                sent += self.piece
                time.sleep(self.gap)
        except (BrokenPipeError, ConnectionResetError):
            pass


def slow_server(**attrs):
    """A server that trickles ``length`` zero bytes, ``piece`` bytes every ``gap`` seconds."""
    return local_server(type("H", (_Slow,), attrs))
