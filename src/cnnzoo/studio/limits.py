"""What any number of clients can make the studio do: a bounded amount of work at once, and an answer in bounded
time.

:class:`WorkLimit` wraps the application:

* **Model work at once.** A request that runs a model (``POST /api/predict`` and ``/api/arithmetic``;
  ``GET /api/models/NAME``, which pushes one image through the network to trace it; ``GET /api/confusion/...``,
  which classifies a run's test set once) takes one of ``heavy_at_once`` slots. A request that finds none free
  waits up to ``wait`` seconds, then is answered ``503`` with ``Retry-After``: memory and CPU stay bounded
  whatever the clients send, and a queue never grows without end.
* **Time.** Every request is answered within ``route_seconds``: one that takes longer is answered ``503`` at that
  moment; its work runs on to its end (a thread cannot be stopped midway), holding its slot until then, and its
  late answer is dropped.

Light routes (the runs, the zoo's list, the health check) take no slot, so ``/api/health`` answers at once however
busy the models are.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HEAVY_ROUTES", "WorkLimit"]

# (method, path or path prefix) of model work: a prediction, a model's trace, a run's test set classified
HEAVY_ROUTES = (
    ("POST", "/api/predict"),
    ("POST", "/api/arithmetic"),
    ("GET", "/api/models/"),
    ("GET", "/api/confusion/"),
)
HEAVY_AT_ONCE = 2  # two CPU cores: more at once would only share them
WAIT_SECONDS = 5.0
ROUTE_SECONDS = 30.0
RETRY_AFTER = 2


class WorkLimit:
    """ASGI middleware: at most ``heavy_at_once`` model-running requests at a time (the next waits up to
    ``wait`` seconds, then 503), and every request answered within ``route_seconds`` (else 503)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        heavy_at_once: int = HEAVY_AT_ONCE,
        wait: float = WAIT_SECONDS,
        route_seconds: float = ROUTE_SECONDS,
    ) -> None:
        self.app = app
        self.heavy_at_once, self.wait, self.route_seconds = heavy_at_once, wait, route_seconds
        self._slots: asyncio.Semaphore | None = None  # made in the server's event loop, on first use
        self.refused = 0  # 503s answered: busy or too slow

    def _is_heavy(self, scope: Scope) -> bool:
        method, path = scope.get("method", ""), scope.get("path", "")
        return any(method == m and (path == p or (p.endswith("/") and path.startswith(p))) for m, p in HEAVY_ROUTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        heavy = self._is_heavy(scope)
        if heavy:
            if self._slots is None:
                self._slots = asyncio.Semaphore(self.heavy_at_once)
            try:
                await asyncio.wait_for(self._slots.acquire(), self.wait)
            except TimeoutError:
                await self._refuse(send, f"the studio is busy with {self.heavy_at_once} model requests: try again "
                                   f"in {RETRY_AFTER} s")  # fmt: skip
                return
        await self._answer_in_time(scope, receive, send, heavy)

    async def _answer_in_time(self, scope: Scope, receive: Receive, send: Send, heavy: bool) -> None:
        state = {"started": False, "late": False}

        async def guarded(message: Message) -> None:
            if state["late"]:
                return  # answered already (503): the work's own answer comes too late
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded))
        if heavy:
            slots = self._slots
            task.add_done_callback(lambda _t: slots.release())
        done, _ = await asyncio.wait({task}, timeout=self.route_seconds)
        if task in done:
            task.result()  # its own exceptions, as if it had run here
            return
        task.add_done_callback(_retrieve)
        state["late"] = True
        if not state["started"]:
            await self._refuse(send, f"the request took longer than {self.route_seconds:g} s: try again later")

    async def _refuse(self, send: Send, message: str) -> None:
        self.refused += 1
        body = json.dumps({"error": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _retrieve(task: asyncio.Future) -> None:
    """Read a late task's outcome, so an exception it ends with is not reported as never retrieved."""
    with suppress(asyncio.CancelledError, Exception):
        task.result()
