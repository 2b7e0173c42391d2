"""``cnnzoo studio`` as users start it, under many clients and a hostile run folder (FIFOs, /dev/zero links,
sparse gigabytes, nesting bombs, a link out of the root): every answer is a 2xx, a 4xx or the 503 of a full
queue (never another 5xx, never a transport error), nothing outside the root leaks, the health route keeps
answering, and SIGTERM in the middle of it all stops the process with 143. (How fast: benchmarks/studio-load.md.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the studio extra (fastapi) is not installed")

_spec = importlib.util.spec_from_file_location(
    "studio_soak", Path(__file__).resolve().parents[2] / "benchmarks" / "studio" / "soak.py"
)
soak = importlib.util.module_from_spec(_spec)
sys.modules["studio_soak"] = soak
_spec.loader.exec_module(soak)


def test_many_clients_and_a_hostile_folder_get_only_their_own_answers_and_sigterm_stops_it(trained_run):
    result = soak.soak(trained_run, clients=12, seconds=4)
    statuses = {key.rsplit(" ", 1)[1] for key in result["answers"]}
    assert statuses <= {"200", "400", "404", "503"}, result["answers"]
    assert not any(key.startswith("LEAK") for key in result["answers"]), result["answers"]
    assert sum(n for key, n in result["answers"].items() if key.endswith(" 200")) > 0, result["answers"]
    assert result["health"]["answered"] == result["health"]["asked"] > 0
    assert result["sigterm"]["exit"] == 143, result["sigterm"]
