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

import cnnzoo.base.devices as devices
from cnnzoo.run.progress import SlowdownWarning, default_callbacks


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
import cnnzoo.train.loop
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


class FakeMachine:
    """A 2-core machine in ticks of 1/100 s, advanced by hand: its clock, /proc/stat's (busy, total) and this
    process's CPU seconds, all three fake (no real time is read)."""

    def __init__(self, cores: int = 2) -> None:
        self.cores, self.now, self.busy, self.total, self.cpu = cores, 0.0, 0, 0, 0.0

    def advance(self, seconds: float, *, others: float, ours: float) -> None:
        """``seconds`` during which other programs keep ``others`` cores busy and this process ``ours``."""
        self.now += seconds
        self.busy += round((others + ours) * seconds * 100)
        self.total += round(self.cores * seconds * 100)
        self.cpu += ours * seconds

    def governor(self, threads: int) -> devices.ThreadGovernor:
        self.set = []
        return devices.ThreadGovernor(
            self.cores,
            clock=lambda: self.now,
            machine=lambda: (self.busy, self.total),
            own=lambda: self.cpu,
            set_threads=self.set.append,
            threads=threads,
        )


def test_the_threads_follow_the_free_cores_while_a_run_trains():
    m = FakeMachine()
    gov = m.governor(threads=2)
    polls = []

    def run(seconds: float, *, others: float, ours: float) -> None:
        for _ in range(int(seconds)):  # the engine polls every log interval; here once a second
            m.advance(1.0, others=others, ours=ours)
            polls.append(gov.poll())

    run(10, others=0.0, ours=2.0)  # idle: both cores ours
    assert m.set == []
    # A neighbour starts: three runnable threads on two cores, it gets two thirds of one.
    run(10, others=0.67, ours=1.33)
    assert m.set == [1] and gov.threads == 1
    run(20, others=1.0, ours=1.0)  # with one thread each, it keeps its core: no flapping back
    assert m.set == [1]
    run(10, others=0.0, ours=1.0)  # it ends: the free core is taken back
    assert m.set == [1, 2] and gov.threads == 2
    assert [t for _, t in gov.changes] == [1, 2]
    assert gov.changes[0][0] <= 10 + 2 * gov.every + 1  # within two measurements of the neighbour's start
    assert gov.changes[1][0] <= 40 + 2 * gov.every + 1


def test_a_short_burst_elsewhere_changes_nothing():
    m = FakeMachine()
    gov = m.governor(threads=2)
    for others in [0.0] * 5 + [0.9] * 3 + [0.0] * 10:  # one measurement's worth of a busy neighbour
        m.advance(1.0, others=others, ours=2.0 - others)
        gov.poll()
    assert m.set == []


def test_an_unreadable_proc_stat_leaves_the_threads_alone():
    def broken():
        raise OSError("no /proc")

    gov = devices.ThreadGovernor(2, clock=iter(range(0, 100, 5)).__next__, machine=broken, own=lambda: 0.0,
                                 set_threads=lambda n: pytest.fail("changed"), threads=2)  # fmt: skip
    assert [gov.poll() for _ in range(10)] == [None] * 10


def test_only_a_run_whose_threads_nobody_chose_adapts(monkeypatch):
    import cnnzoo.train.loop as engine
    from cnnzoo.train.recipes import resolve_config
    from helpers_train import blocks_dataset

    made = []

    class Recorder:
        def __init__(self, *a, **k) -> None:
            made.append(self)
            self.polls = 0

        def poll(self) -> None:
            self.polls += 1

    monkeypatch.setattr(engine, "ThreadGovernor", Recorder)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    data = blocks_dataset(n_train=128, n_test=32)

    def train(**overrides) -> None:
        config = resolve_config("lenet_bn", overrides={"epochs": 1, "batch_size": 16, "device": "cpu", **overrides})
        engine.fit(cnnzoo_model(), data, config)

    monkeypatch.setattr(devices, "_threads_fixed", False)
    train()
    assert len(made) == 1 and made[0].polls >= 1  # polled as it trained
    train(deterministic=True)  # a deterministic run keeps its threads (its sums depend on them)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    train()
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(devices, "_threads_fixed", True)  # --threads N
    train()
    assert len(made) == 1


def cnnzoo_model():
    import cnnzoo

    return cnnzoo.create_model("lenet_bn")


def test_set_threads_with_a_number_fixes_them_and_without_lets_them_adapt(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(devices, "busy_cores", lambda interval=0.1: 0.0)
    monkeypatch.setattr(devices, "_threads_fixed", False)
    try:
        devices.set_threads(1)
        assert not devices.threads_adapt()
        devices.set_threads(None)
        assert devices.threads_adapt()
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert not devices.threads_adapt()
    finally:
        torch.set_num_threads(before)
