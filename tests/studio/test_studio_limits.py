"""What any number of clients can make the studio do (cnnzoo.studio.limits.WorkLimit): model work at most N at a
time, the next waiting briefly and then told 503 with Retry-After; every request answered within its time limit;
light routes never waiting for the models. The routes here block on events the test releases, so the checks are
on order and status, never on how fast a machine is."""

from __future__ import annotations

import asyncio
import threading

import httpx
from fastapi import FastAPI

from cnnzoo.studio.limits import HEAVY_ROUTES, WorkLimit


def _app(release: threading.Event, started: list) -> FastAPI:
    app = FastAPI()

    @app.post("/api/predict")
    def predict() -> dict:  # a worker thread, as the real route
        started.append(1)
        release.wait(30)
        return {"ok": True}

    @app.get("/api/health")
    async def health() -> dict:
        return {"ok": True}

    return app


def _client(app, **limits) -> httpx.AsyncClient:
    limited = WorkLimit(app, **limits)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=limited), base_url="http://127.0.0.1"), limited


def test_model_work_beyond_the_slots_waits_then_is_told_to_retry():
    release, started = threading.Event(), []

    async def scenario():
        client, limited = _client(_app(release, started), heavy_at_once=2, wait=0.3, route_seconds=60)
        async with client:
            first = [asyncio.create_task(client.post("/api/predict")) for _ in range(2)]
            while len(started) < 2:  # both slots taken
                await asyncio.sleep(0.01)
            third = await client.post("/api/predict")  # no slot frees: refused after its wait
            health = await client.get("/api/health")  # light: no slot needed
            release.set()
            answers = await asyncio.gather(*first)
            return third, health, answers, limited.refused

    third, health, answers, refused = asyncio.run(scenario())
    assert third.status_code == 503 and third.headers["retry-after"] == "2", third.text
    assert "the studio is busy with 2 model requests" in third.json()["error"]
    assert health.status_code == 200
    assert [a.status_code for a in answers] == [200, 200] and refused == 1


def test_a_request_past_its_time_limit_is_answered_and_its_slot_kept_until_its_work_ends():
    release, started = threading.Event(), []

    async def scenario():
        client, limited = _client(_app(release, started), heavy_at_once=1, wait=0.2, route_seconds=0.3)
        async with client:
            slow = await client.post("/api/predict")  # answered at its limit, its work still running
            busy = await client.post("/api/predict")  # the slot is still held by that work
            release.set()
            await asyncio.sleep(0.2)
            for _ in range(100):  # its thread ends, the slot frees
                if limited._slots._value == 1:
                    break
                await asyncio.sleep(0.05)
            after = await client.post("/api/predict")
            return slow, busy, after

    slow, busy, after = asyncio.run(scenario())
    assert slow.status_code == 503 and "took longer than 0.3 s" in slow.json()["error"], slow.text
    assert busy.status_code == 503 and "busy" in busy.json()["error"]
    assert after.status_code == 200


def test_the_routes_that_run_a_model_are_the_limited_ones():
    limited = WorkLimit(FastAPI())
    heavy = {(m, p) for m, p in HEAVY_ROUTES}
    assert ("POST", "/api/predict") in heavy
    assert limited._is_heavy({"method": "POST", "path": "/api/predict"})
    assert limited._is_heavy({"method": "GET", "path": "/api/models/vgg11"})
    for method, path in (("GET", "/api/models"), ("GET", "/api/health"), ("GET", "/api/runs/x/metrics")):
        assert not limited._is_heavy({"method": method, "path": path}), path
