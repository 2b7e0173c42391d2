"""Training throughput on a machine that is doing something else: idle, and with a busy loop pinned to one core.

Each measurement is a fresh process (OpenMP reads its settings once, at start-up) that times training steps
(forward, backward, SGD) of a model at batch 256 on synthetic data for a few seconds after a warm-up, and
prints images/s. Settings are interleaved round by round, and the busy loop is a second Python process
spinning on CPU 1 (`taskset -c 1`), which is what a browser tab or a compile beside a notebook looks like to
the scheduler.

    python benchmarks/busy_machine.py --models lenet_bn resnet18 --rounds 3

Prints a Markdown table: the median images/s per setting idle and loaded, and loaded/idle.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import os, sys, time
import torch
from torch import nn
import cnnzoo, cnnzoo.base.devices
model_name, side, seconds, auto = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "auto"
if auto:
    cnnzoo.base.devices.set_threads(None)  # what cnnzoo train/bench/leaderboard do without --threads
torch.manual_seed(0)
model = cnnzoo.create_model(model_name)
x = torch.randn(256, 1, side, side)
y = torch.randint(0, 10, (256,))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
loss_fn = nn.CrossEntropyLoss()
def step():
    opt.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    opt.step()
for _ in range(3):
    step()
done, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    step()
    done += 1
print(256 * done / (time.perf_counter() - start), torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY", "-"))
"""

# name -> (environment, whether cnnzoo picks the threads as the CLI does)
SETTINGS = {
    "before: all cores": ({}, False),
    "now: the free cores": ({}, True),
    "passive wait, all cores": ({"CNNZOO_CPU_WAIT": "passive"}, False),
    "passive wait, the free cores": ({"CNNZOO_CPU_WAIT": "passive"}, True),
    "1 thread": ({"OMP_NUM_THREADS": "1"}, False),
}
SIDES = {"lenet_bn": 28, "lenet": 28, "resnet18": 32}


def measure(model: str, env_extra: dict[str, str], auto: bool, seconds: float) -> float:
    unset = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "CNNZOO_CPU_WAIT")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, model, str(SIDES.get(model, 28)), str(seconds), "auto" if auto else "fixed"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lenet_bn", "resnet18"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    results: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(args.rounds):
        for condition in ("idle", "loaded"):
            busy = None
            if condition == "loaded":
                busy = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c", "while True: pass"])
                time.sleep(0.5)
            try:
                for model in args.models:
                    for name, (extra, auto) in SETTINGS.items():
                        rate = measure(model, extra, auto, args.seconds)
                        results.setdefault((model, name, condition), []).append(rate)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    print("| model | setting | idle img/s (median, min-max) | loaded img/s (median, min-max) | loaded / idle |")
    print("|---|---|---:|---:|---:|")
    for model in args.models:
        for name in SETTINGS:
            idle, loaded = results[(model, name, "idle")], results[(model, name, "loaded")]
            i, lo = statistics.median(idle), statistics.median(loaded)
            print(
                f"| {model} | {name} | {i:,.0f} ({min(idle):,.0f}-{max(idle):,.0f}) | "
                f"{lo:,.0f} ({min(loaded):,.0f}-{max(loaded):,.0f}) | {lo / i:.2f} |"
            )


if __name__ == "__main__":
    main()
