"""One bounded HTTP download, shared by everything cnnzoo fetches (Fashion-MNIST's files, named weights).

:func:`stream` copies a URL's body into an open file under four bounds (:class:`Limits`): each wait for data
at most ``timeout`` seconds, the whole download at most ``deadline`` seconds, at least ``min_rate`` bytes/s over
every ``window`` seconds (a trickling mirror is abandoned), and at most ``max_bytes`` in all (announced or
sent). Every failure is an ``OSError`` whose text :func:`reason` turns into a few words for a one-line error.
Checking what arrived (a checksum) and renaming it into place is the caller's part.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import IO

from tqdm.auto import tqdm

__all__ = ["Limits", "reason", "stream"]


@dataclass(frozen=True)
class Limits:
    """The bounds of one download (see the module docstring)."""

    deadline: float
    min_rate: float
    window: float
    max_bytes: int


class _Pace:
    """Enforces a download's :class:`Limits` as its bytes arrive."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.start = self.window_start = time.monotonic()
        self.received = self.window_bytes = 0

    def update(self, n: int) -> None:
        lim = self.limits
        self.received += n
        self.window_bytes += n
        now = time.monotonic()
        if self.received > lim.max_bytes:
            raise OSError(f"the mirror sent more than {lim.max_bytes} bytes, far more than the file's size")
        if now - self.start > lim.deadline:
            raise OSError(f"abandoned after {lim.deadline:g} s (the download deadline) with {self.received} bytes")
        span = now - self.window_start
        if span >= lim.window:
            if self.window_bytes / span < lim.min_rate:
                raise OSError(
                    f"abandoned: {self.window_bytes} bytes in the last {span:.0f} s, under the minimum rate "
                    f"of {lim.min_rate:g} bytes/s (a stalled or trickling mirror)"
                )
            self.window_start, self.window_bytes = now, 0


def stream(url: str, out: IO[bytes], *, limits: Limits, timeout: float, progress: bool, label: str) -> int:
    """Copy ``url``'s body into ``out`` within ``limits``; the number of bytes written."""
    # ``timeout`` bounds each connect and each wait for data; _Pace bounds the whole and the rate.
    wait = max(0.1, min(timeout, limits.window, limits.deadline))
    with urllib.request.urlopen(url, timeout=wait) as resp:
        total = resp.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        if total is not None and total > limits.max_bytes:
            raise OSError(f"the mirror announces {total} bytes, over the {limits.max_bytes}-byte limit")
        bar = None
        if progress and sys.stderr.isatty():
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False)
        pace = _Pace(limits)
        try:
            while chunk := resp.read1(1 << 16):  # read1: whatever has arrived, so a trickle is seen as one
                out.write(chunk)
                pace.update(len(chunk))
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and pace.received != total:
        raise OSError(f"connection closed after {pace.received} of {total} bytes")
    return pace.received


def reason(exc: BaseException) -> str:
    """A few words for why a download failed."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return "timed out waiting for data"
    return str(exc)
