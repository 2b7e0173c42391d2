"""What kind of failure an exception is, decided without importing torch: the CLI asks before it knows whether
the command it ran ever imported torch (``cnnzoo --help`` must not), and torch's own error classes are only looked
up in an already-imported torch. No torch loaded, no torch error."""

from __future__ import annotations

import sys

__all__ = ["is_collective_timeout", "is_out_of_memory"]


def _loaded_class(module: str, name: str) -> type | None:
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else None


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's and the CPU allocator's out-of-memory errors (both ``torch.OutOfMemoryError`` today; older
    builds raised a plain ``RuntimeError`` with the words in the message)."""
    oom = _loaded_class("torch", "OutOfMemoryError")
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def is_collective_timeout(exc: BaseException) -> bool:
    """A collective or the rendezvous gave up waiting for another rank (NCCL's watchdog, gloo, the store)."""
    dist_error = _loaded_class("torch.distributed", "DistError")
    text = str(exc).lower()
    timed_out = "timed out" in text or "timeout" in text
    if dist_error is not None and isinstance(exc, dist_error):
        return timed_out or "watchdog" in text
    words = ("gloo", "nccl", "collective", "store", "recv", "send")
    return isinstance(exc, RuntimeError) and timed_out and any(w in text for w in words)
