"""The Fashion-MNIST speed record, measured as airbench measures CIFAR-10's: each recipe over many seeds, through
the real CLI, with the time inside the process and the whole process's beside it.

    python benchmarks/speedrun/run.py                                  # speednet, seeds 0-9, 2 threads, the CPU
    python benchmarks/speedrun/run.py --models speednet speednet_wide --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --json benchmarks/speedrun/record.json --markdown benchmarks/speedrun/record.md
    python benchmarks/speedrun/run.py --device cuda --threads 0        # the same table on a GPU

Each run is ``cnnzoo train NAME --recipe record --seed S --device DEVICE --threads N --out DIR --quiet`` (the
record recipe's entry for NAME: ``--recipe fast`` for the earlier records, ``--`` and more flags to change it):
trained on the 55,000 training images with the stratified 5,000
validation images held out, tested on the 10,000 test images. For each run it records

* **the record time**: the engine's ``train_seconds + eval_seconds`` summed over the epochs (the validation and
  test evaluations of each epoch included; start-up, data loading and run-directory writes not), as airbench times
  its training and evaluation;
* **the whole process**: the wall time of the ``cnnzoo train`` process, start-up to exit;
* the final test and validation accuracy, the training images/s, and the achieved training GFLOP/s with its share of
  this CPU's estimated peak (:mod:`cnnzoo.bench.peak`);
* how busy the machine was just before the run: the cores other programs kept busy over one second
  (``/proc/stat``; idle: under 0.2 of a core), and the 1-minute load average (which still counts the previous
  run's own threads).

The summary per recipe gives mean ± std and the **worst seed** of each figure, and the share of seeds that met the
target. The recipes are fixed on the validation split beforehand (benchmarks/speedrun/notes.md); the test accuracy
is read here only, and nothing is chosen from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnnzoo.bench.peak import achieved_gflops, flops_per_image

TARGETS = {"speednet": (0.93, 60.0), "speednet_wide": (0.94, 300.0)}  # the issue's record targets
DEFAULT_TARGET = (0.93, 60.0)


def train(
    name: str, recipe: str, seed: int, out: Path, device: str, threads: int, extra: list[str]
) -> tuple[list[dict], float]:
    """One ``cnnzoo train`` run: its ``metrics.jsonl`` rows and the process's wall time in seconds."""
    cnnzoo = shutil.which("cnnzoo") or str(Path(sys.executable).with_name("cnnzoo"))
    cmd = [cnnzoo, "train", name, "--recipe", recipe, "--seed", str(seed), "--device", device, "--out", str(out)]
    cmd += ["--quiet", *extra]
    if threads:
        cmd += ["--threads", str(threads)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    with (out / "metrics.jsonl").open() as f:
        return [json.loads(line) for line in f if line.strip()], wall


def summarise(rows: list[dict], wall: float, macs: int, peak: float | None) -> dict:
    """One run's figures (see the module docstring)."""
    train_seconds = sum(r["train_seconds"] for r in rows)
    images = sum(r["images_per_sec"] * r["train_seconds"] for r in rows)
    gflops = achieved_gflops(images / train_seconds, flops_per_image(macs, "train")) if train_seconds else 0.0
    return {
        "epochs": len(rows),
        "test_acc": rows[-1]["test_acc"],
        "val_acc": rows[-1].get("val_acc"),
        "seconds": train_seconds + sum(r["eval_seconds"] for r in rows),
        "process_seconds": wall,
        "images_per_sec": images / train_seconds if train_seconds else 0.0,
        "gflops": gflops,
        "peak_percent": 100 * gflops / peak if peak else None,
    }


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def recipe_row(name: str, recipe: str, runs: list[dict]) -> dict:
    """The summary of one recipe over its seeds: means, standard deviations, the worst seed, the targets met."""
    acc, seconds = [r["test_acc"] for r in runs], [r["seconds"] for r in runs]
    target_acc, target_s = TARGETS.get(name, DEFAULT_TARGET)
    row = {"model": name, "recipe": recipe, "seeds": len(runs), "epochs": runs[0]["epochs"]}
    row["target"] = [target_acc, target_s]
    for key in ("test_acc", "val_acc", "seconds", "process_seconds", "images_per_sec", "gflops", "peak_percent"):
        values = [r[key] for r in runs if r[key] is not None]
        row[key] = _stats(values) if values else None
    row["worst_test_acc"], row["worst_seconds"] = min(acc), max(seconds)
    row["met"] = sum(r["test_acc"] >= target_acc and r["seconds"] <= target_s for r in runs)
    row["mean_met"] = row["test_acc"][0] >= target_acc and row["seconds"][0] <= target_s
    return row


def _cell(pair: tuple[float, float] | None, fmt: str) -> str:
    return "-" if pair is None else f"{pair[0]:{fmt}} ± {pair[1]:{fmt}}"


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [
        "| recipe | seeds | epochs | test acc (mean ± std) | worst seed | record s (train + eval) | slowest seed | "
        "whole process s | img/s | GFLOP/s | % peak* | target | met (seeds) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        acc, secs = r["target"]
        peak = "-" if r["peak_percent"] is None else f"{r['peak_percent'][0]:.1f}"
        lines.append(
            f"| `{r['model']} --recipe {r.get('recipe', 'fast')}` | {r['seeds']} | {r['epochs']} | "
            f"{_cell(r['test_acc'], '.4f')} | "
            f"{r['worst_test_acc']:.4f} | {_cell(r['seconds'], '.1f')} | {r['worst_seconds']:.1f} | "
            f"{_cell(r['process_seconds'], '.1f')} | {r['images_per_sec'][0]:,.0f} | {r['gflops'][0]:.1f} | "
            f"{peak} | ≥ {acc:.2f} in ≤ {secs:g} s | "
            f"{'yes' if r['mean_met'] else 'no'} ({r['met']} of {r['seeds']}) |"
        )
    lines += ["", f"\\* {machine['peak']}", "", "Machine: " + "; ".join(
        f"{k}: {v}" for k, v in machine.items() if k not in ("peak",))]  # fmt: skip
    return "\n".join(lines) + "\n"


def machine_record(device: str, threads: int, loads: list[float], busy: list[float]) -> dict:
    import torch

    from cnnzoo.bench.peak import cpu_peak

    peak = cpu_peak(threads or torch.get_num_threads())
    state = "idle" if max(busy) < 0.2 else f"loaded (up to {max(busy):.2f} cores busy before a run)"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": peak.model if peak else platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "device": device,
        "threads": threads or "cnnzoo's default",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "state": f"{state}: {min(busy):.2f}-{max(busy):.2f} cores busy in the second before each run; 1-minute "
        f"load average {min(loads):.2f}-{max(loads):.2f} (the previous run's threads included)",
        "peak": peak.describe("bf16") + "; fp32: " + peak.describe("fp32") if peak else "no peak estimate",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["speednet"])
    p.add_argument("--recipe", default="record", help="the cnnzoo train recipe (default: record)")
    p.add_argument("--seeds", nargs="+", type=int, default=list(range(10)))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (0: cnnzoo's default; 2: the record's)")
    p.add_argument("--out", type=Path, default=None, help="keep the run directories here (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="write every run and the summary here")
    p.add_argument("--markdown", type=Path, default=None, help="write the table here")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more `cnnzoo train` flags")
    args = p.parse_args(argv)
    from cnnzoo.base.devices import busy_cores
    from cnnzoo.bench.peak import cpu_peak
    from cnnzoo.models.inspection import count_macs
    from cnnzoo.models.registry import create_model
    from cnnzoo.train.recipes import recipe_values

    extra = [a for a in args.extra if a != "--"]
    root = args.out or Path(tempfile.mkdtemp(prefix="speedrun-"))
    results: dict[str, list[dict]] = {name: [] for name in args.models}
    loads: list[float] = []
    busy: list[float] = []
    for seed in args.seeds:  # seed-major: a slow phase of the machine hits every recipe alike
        for name in args.models:
            precision = recipe_values(args.recipe, name).get("precision", "fp32")
            peak = cpu_peak(args.threads or None) if args.device == "cpu" else None
            busy.append(busy_cores(1.0))
            loads.append(os.getloadavg()[0])
            rows, wall = train(name, args.recipe, seed, root / f"{name}-seed{seed}", args.device, args.threads, extra)
            run = summarise(rows, wall, count_macs(create_model(name), 28), peak.gflops(precision) if peak else None)
            run.update(model=name, seed=seed, loadavg=loads[-1], busy_cores=busy[-1], precision=precision)
            results[name].append(run)
            print(json.dumps(run), flush=True)
    summary = [recipe_row(name, args.recipe, runs) for name, runs in results.items()]
    machine = machine_record(args.device, args.threads, loads, busy)
    table = markdown(summary, machine)
    print("\n" + table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "summary": summary, "runs": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
