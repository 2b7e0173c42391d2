"""A training that meets a competing training, with threads re-decided as it runs against threads fixed at start.

    python benchmarks/busy_machine_adaptive.py [--seconds 75] [--rounds 1] [--out busy-adaptive.json]

Two scenarios, each run once per setting (interleaved), on Fashion-MNIST with ``lenet_bn``'s fast recipe:

* **A neighbour comes and goes.** The run starts on an idle machine; a second ``cnnzoo train lenet_bn --threads 2``
  starts after a third of the time and is killed after two thirds.
* **A neighbour is there at the start.** The competitor runs from before the start to half-way.

Settings: ``adaptive`` is cnnzoo's default (:class:`cnnzoo.base.devices.ThreadGovernor` re-decides the threads every
3 s); ``fixed`` is the previous default, the free cores probed once at start-up and kept. Printed and written: the
training throughput (images/s, training steps only, evaluation excluded) in 5-second windows, the thread count,
and each phase's mean.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cnnzoo
from cnnzoo.base import devices
from cnnzoo.train.state import Callback

WINDOW = 5.0


class Timeline(Callback):
    """(seconds since start, images trained so far in this epoch's steps, threads) at every log interval."""

    def __init__(self, start: float) -> None:
        self.start, self.rows, self.epoch_base = start, [], 0

    def on_epoch_start(self, state, steps) -> None:
        self.rows.append(None)  # an epoch boundary: no rate across it (evaluation ran in between)

    def on_log(self, state, totals) -> None:
        self.rows.append((time.monotonic() - self.start, totals.count, devices.torch.get_num_threads()))


def rates(rows, seconds: float) -> list[dict]:
    """Images/s per window: the steps' images over the steps' time, pairs across an epoch boundary skipped."""
    out = []
    for w in range(int(seconds // WINDOW)):
        lo, hi = w * WINDOW, (w + 1) * WINDOW
        images = elapsed = 0.0
        threads = []
        for a, b in itertools.pairwise(rows):
            if a is None or b is None or not lo <= b[0] < hi:
                continue
            images, elapsed = images + b[1] - a[1], elapsed + b[0] - a[0]
            threads.append(b[2])
        out.append({"from": lo, "images_per_sec": images / elapsed if elapsed else None,
                    "threads": max(set(threads), key=threads.count) if threads else None})  # fmt: skip
    return out


def competitor(workdir: Path) -> subprocess.Popen:
    out = workdir / f"competitor-{time.monotonic_ns()}"
    argv = [sys.executable, "-m", "cnnzoo", "train", "lenet_bn", "--threads", "2", "--epochs", "200", "--quiet"]
    return subprocess.Popen([*argv, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_run(setting: str, scenario: str, seconds: float, data, workdir: Path) -> dict:
    before = competitor(workdir) if scenario == "busy-start" else None
    if before is not None:
        time.sleep(8)  # its start-up (imports, data) done: it trains
    if setting == "adaptive":
        threads = devices.set_threads(None)
    else:
        threads = devices.set_threads(devices.auto_threads())  # probed once, then fixed
    run = cnnzoo.new_run("lenet_bn", overrides={"epochs": 1000, "device": "cpu"}, data=data)
    start = time.monotonic()
    timeline = Timeline(start)
    events = {"start_threads": threads}
    other = before

    def should_stop() -> bool:
        nonlocal other
        t = time.monotonic() - start
        if scenario == "idle-start" and other is None and "competitor_start" not in events and t >= seconds / 3:
            other, events["competitor_start"] = competitor(workdir), t
        if other is not None and t >= (seconds / 2 if scenario == "busy-start" else 2 * seconds / 3):
            other.send_signal(signal.SIGKILL)
            other.wait()
            other, events["competitor_end"] = None, t
        return t >= seconds

    try:
        run.fit(callbacks=[timeline], should_stop=should_stop, progress=False)
    finally:
        if other is not None:
            other.kill()
            other.wait()
    return {"setting": setting, "scenario": scenario, "events": events, "windows": rates(timeline.rows, seconds)}


def phase_means(result: dict, seconds: float) -> list[float | None]:
    ev = result["events"]
    cuts = [0.0, ev.get("competitor_start", 0.0), ev["competitor_end"], seconds]
    if result["scenario"] == "busy-start":
        cuts = [0.0, ev["competitor_end"], seconds]
    means = []
    for lo, hi in itertools.pairwise(cuts):
        vals = [w["images_per_sec"] for w in result["windows"]
                if w["images_per_sec"] and lo + WINDOW <= w["from"] and w["from"] + WINDOW <= hi]  # fmt: skip
        means.append(sum(vals) / len(vals) if vals else None)
    return means


def render(results: list[dict]) -> str:
    """The Markdown tables of ``results``: each run's phases, then its 5-second windows (images/s and threads)."""
    out = ["| scenario | setting | threads at start | phase means, images/s (before / with / after the competitor) |",
           "|---|---|---:|---|"]  # fmt: skip
    for r in results:
        means = " / ".join(f"{m:,.0f}" if m else "–" for m in r["phase_means"])
        out.append(f"| {r['scenario']} | {r['setting']} | {r['events']['start_threads']} | {means} |")
    out += ["", "Each 5-second window: thousands of training images/s, then the thread count (`k/threads`):", ""]
    for r in results:
        ev = r["events"]
        when = (f"competitor from {ev['competitor_start']:.0f} s to {ev['competitor_end']:.0f} s"
                if "competitor_start" in ev else f"competitor until {ev['competitor_end']:.0f} s")  # fmt: skip
        cells = " ".join(f"{(w['images_per_sec'] or 0) / 1000:.1f}k/{w['threads'] or '-'}" for w in r["windows"])
        out.append(f"- {r['scenario']}, {r['setting']} ({when}): {cells}")
    return "\n".join(out) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=75.0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("busy-adaptive.json"))
    p.add_argument("--render", type=Path, nargs="+", help="print the Markdown of recorded JSON files and exit")
    args = p.parse_args()
    if args.render:
        print(render([r for path in args.render for r in json.loads(path.read_text())]), end="")
        return 0
    os.environ.pop("OMP_NUM_THREADS", None)
    from cnnzoo.run import load_data

    data = load_data(cnnzoo.resolve_config("lenet_bn"))
    results = []
    with tempfile.TemporaryDirectory(prefix="cnnzoo-busy-") as tmp:
        for r in range(args.rounds):
            for scenario in ("idle-start", "busy-start"):
                for setting in ("adaptive", "fixed") if r % 2 == 0 else ("fixed", "adaptive"):
                    result = one_run(setting, scenario, args.seconds, data, Path(tmp))
                    result["round"], result["phase_means"] = r, phase_means(result, args.seconds)
                    results.append(result)
                    line = " ".join(f"{w['images_per_sec'] or 0:6.0f}/{w['threads'] or 0}" for w in result["windows"])
                    print(f"{scenario:10} {setting:8} {result['events']} phases {result['phase_means']}\n  {line}",
                          flush=True)  # fmt: skip
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
