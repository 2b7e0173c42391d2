"""Speed that survives a busy laptop: OpenMP's passive wait chosen before torch loads, threads for the free
cores, and a warning when the machine slows a run down (benchmarks/busy-machine.md has the figures)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import types

import pytest
import torch

import cnnzoo.devices as devices
from cnnzoo.progress import SlowdownWarning, default_callbacks


def _policy_after_import(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "CNNZOO_CPU_WAIT")}
    code = "import os, cnnzoo; print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_cnnzoo_chooses_the_passive_wait_on_request_before_torch_loads():
    assert _policy_after_import() == "unset"  # OpenMP's own (spinning) default: the fastest when idle
    assert _policy_after_import(CNNZOO_CPU_WAIT="passive") == "PASSIVE"
    assert _policy_after_import(OMP_WAIT_POLICY="ACTIVE", CNNZOO_CPU_WAIT="passive") == "ACTIVE"  # the user's


WATCH_TORCH = """
import os, sys
seen = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY", "unset"))
        return None
sys.meta_path.insert(0, Watch())
import cnnzoo  # sets the policy; torch itself loads later, with whatever first needs it
import cnnzoo.engine
print(seen[0])
"""


def test_the_policy_is_set_before_torch_is_imported():
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "CNNZOO_CPU_WAIT")}
    clean["CNNZOO_CPU_WAIT"] = "passive"
    done = subprocess.run([sys.executable, "-c", WATCH_TORCH], env=clean, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "PASSIVE"  # what torch's OpenMP runtime finds when it loads


@pytest.mark.parametrize(("busy", "threads"), [(0.0, 2), (0.3, 2), (0.8, 1), (1.0, 1), (5.0, 1)])
def test_auto_threads_leaves_the_busy_cores_to_their_programs(busy, threads):
    assert devices.auto_threads(cores=2, busy=busy) == threads


def test_busy_cores_reads_the_busy_share_of_proc_stat(monkeypatch):
    # cpu  user nice system idle iowait irq softirq steal: 100 busy and 100 idle jiffies between the samples
    lines = iter(["cpu 100 0 0 1000 0 0 0 0\n", "cpu 200 0 0 1100 0 0 0 0\n"])
    monkeypatch.setattr(devices, "open", lambda *a, **k: io.StringIO(next(lines)), raising=False)
    monkeypatch.setattr(devices.time, "sleep", lambda s: None)
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 4)
    assert devices.busy_cores() == pytest.approx(2.0)


def test_set_threads_without_a_number_takes_the_free_cores_unless_omp_num_threads_says(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(devices, "busy_cores", lambda interval=0.1: 99.0)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert devices.set_threads(None) == 1 == torch.get_num_threads()
        torch.set_num_threads(before)
        monkeypatch.setenv("OMP_NUM_THREADS", str(before))
        assert devices.set_threads(None) == before == torch.get_num_threads()
        assert devices.set_threads(1) == 1
    finally:
        torch.set_num_threads(before)


def _state(*rates: float) -> types.SimpleNamespace:
    return types.SimpleNamespace(history=[{"epoch": i + 1, "images_per_sec": r} for i, r in enumerate(rates)])


def test_a_run_slowed_down_by_the_machine_says_so_once():
    out = io.StringIO()
    warn = SlowdownWarning(stream=out)
    warn.on_epoch_end(_state(9000))
    warn.on_epoch_end(_state(9000, 4000))  # 2.25x: within what a schedule or a cache can do
    assert out.getvalue() == ""
    warn.on_epoch_end(_state(9000, 4000, 2000))
    warn.on_epoch_end(_state(9000, 4000, 2000, 1000))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: epoch 3 trained 4.5x slower than epoch 1")
    assert any(isinstance(cb, SlowdownWarning) for cb in default_callbacks())
