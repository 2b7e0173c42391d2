"""The CPU speedrun's final figures (issue 14 item 6): each recipe, three seeds, through the real CLI.

    python benchmarks/speedrun/run.py                       # speednet and speednet_wide, seeds 0 1 2
    python benchmarks/speedrun/run.py --models speednet lenet_bn --seeds 0 1 2 3 4

Each run is ``cnnzoo train NAME --seed S --device cpu --out DIR --quiet``: the fast recipe, trained on the
55,000 training images with the stratified 5,000 validation images held out. Times are the engine's own:
``train_seconds + eval_seconds`` summed over epochs (evaluation of the validation and the test set
included; start-up and run-directory writes not). Test accuracy is reported per epoch anyway, so "time to
0.92" is the time up to the first epoch whose test accuracy reached 0.92: reporting, not selection.

Run it on a quiet machine (``cat /proc/loadavg`` below 0.3 on the 2-core reference machine): the script
prints the load before each run, and a busy neighbour halves the speed of every figure here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TARGETS = (0.92, 0.93)


def train(name: str, seed: int, out: Path, extra: list[str]) -> list[dict]:
    """One ``cnnzoo train`` run; its ``metrics.jsonl`` rows."""
    cnnzoo = shutil.which("cnnzoo") or str(Path(sys.executable).with_name("cnnzoo"))
    cmd = [cnnzoo, "train", name, "--seed", str(seed), "--device", "cpu", "--out", str(out), "--quiet", *extra]
    subprocess.run(cmd, check=True)
    with (out / "metrics.jsonl").open() as f:
        return [json.loads(line) for line in f if line.strip()]


def summarise(rows: list[dict]) -> dict:
    """Final test accuracy, total time and the time each target was first reached (None: never)."""
    elapsed, reached = 0.0, dict.fromkeys(TARGETS)
    for row in rows:
        elapsed += row["train_seconds"] + row["eval_seconds"]
        for target in TARGETS:
            if reached[target] is None and row["test_acc"] >= target:
                reached[target] = elapsed
    return {
        "epochs": len(rows),
        "test_acc": rows[-1]["test_acc"],
        "val_acc": rows[-1].get("val_acc"),
        "seconds": elapsed,
        "images_per_sec": statistics.median(r["images_per_sec"] for r in rows),
        "reached": reached,
    }


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4g} ± {std:.2g}"


def report(name: str, runs: list[dict]) -> None:
    print(f"\n{name}: {len(runs)} runs, {runs[0]['epochs']} epochs")
    print(f"  final test accuracy  {_mean_std([r['test_acc'] for r in runs])}")
    val = [r["val_acc"] for r in runs if r["val_acc"] is not None]
    print(f"  final val accuracy   {_mean_std(val)}")
    print(f"  train+eval seconds   {_mean_std([r['seconds'] for r in runs])}")
    print(f"  training img/s       {_mean_std([r['images_per_sec'] for r in runs])}")
    for target in TARGETS:
        hits = [r["reached"][target] for r in runs if r["reached"][target] is not None]
        print(f"  time to {target:.2f} test    {_mean_std(hits)}  (reached in {len(hits)} of {len(runs)} runs)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["speednet", "speednet_wide"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=None, help="keep the run directories here (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="also write every run's summary here")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more `cnnzoo train` flags, e.g. -- --threads 2")
    args = p.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    root = args.out or Path(tempfile.mkdtemp(prefix="speedrun-"))
    results: dict[str, list[dict]] = {name: [] for name in args.models}
    for seed in args.seeds:  # seed-major: a slow phase of the machine hits every model alike
        for name in args.models:
            load = os.getloadavg()[0]
            summary = summarise(train(name, seed, root / f"{name}-seed{seed}", extra))
            summary.update(model=name, seed=seed, loadavg=load)
            results[name].append(summary)
            print(json.dumps(summary), flush=True)
    for name, runs in results.items():
        report(name, runs)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
