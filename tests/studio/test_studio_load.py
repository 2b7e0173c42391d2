"""``cnnzoo studio`` under load: uvicorn on 127.0.0.1 in its own process, 200 ``POST /api/predict`` from 8
concurrent clients with malformed uploads mixed in. No 5xx, every malformed one a 4xx, no leaked memory."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the studio extra (fastapi) is not installed")
from test_studio_api import RUN, studio_root

_spec = importlib.util.spec_from_file_location(
    "studio_load", Path(__file__).resolve().parents[2] / "benchmarks" / "studio" / "load.py"
)
load = importlib.util.module_from_spec(_spec)
sys.modules["studio_load"] = load  # its dataclasses look their module up
_spec.loader.exec_module(load)

EXPECTED = {"text": 415, "empty": 415, "truncated": 400, "header only": 400, "unknown run": 404,
            "traversal run": 404, "bad top_k": 400, "bad target": 400}  # fmt: skip


def test_200_concurrent_predictions_with_malformed_uploads_no_5xx_no_leak(tmp_path, trained_run):
    root = studio_root(tmp_path, trained_run)
    proc, url = load.start_server(root)
    try:
        load.fire(url, RUN, 40, 8, malformed_share=0.3, seed=1)  # warm-up: the model loaded, the allocator settled
        warm = load.rss_bytes(proc.pid)
        outcome = load.fire(url, RUN, 200, 8, malformed_share=0.25, seed=2)
        after = load.rss_bytes(proc.pid)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert outcome.errors == []
    assert sum(len(v) for v in outcome.statuses.values()) == 200
    assert set(outcome.statuses["good"]) == {200} and len(outcome.statuses["good"]) >= 120
    assert set(outcome.statuses) - {"good"} == set(EXPECTED)  # every kind of malformed request was sent
    for kind, codes in outcome.statuses.items():
        if kind != "good":
            assert set(codes) == {EXPECTED[kind]}, (kind, codes)
    # each answer is ~100 KB of data URLs: keeping even a tenth of them would pass this bound
    assert after - warm < 20 * 2**20, f"server RSS grew {(after - warm) / 2**20:.1f} MiB over 200 requests"
    assert "Traceback" not in err, err[-2000:]
