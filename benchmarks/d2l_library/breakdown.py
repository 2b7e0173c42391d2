"""Where the whole-process wall time of a short cnnzoo run goes (issue 14, item 5).

    .venv/bin/python benchmarks/d2l_library/breakdown.py [--epochs 2] [--model lenet] [--repeats 1]

1. From outside, the real command `cnnzoo train MODEL --recipe d2l --epochs E --device cpu --out DIR`: its
   whole wall (launch to exit), cut by the run's own records: config.json is written when training starts
   (after start-up, data, model and run-directory set-up), metrics.jsonl after each epoch (with each epoch's
   train_seconds and eval_seconds), then curves.png, confusion.png, per_class.csv, report.md at the end.
2. The first segment (launch -> config.json) split without editing cnnzoo: `python -c pass` (the bare
   interpreter), `python -c "from cnnzoo.cli import main"` (what the console script imports first), and an
   instrumented twin of the CLI's steps on cnnzoo's public API (cnnzoo.load_fashion_mnist, cnnzoo.new_run,
   cnnzoo.base.devices.set_threads, cnnzoo.run.start_training, Training.train) with timestamps between the calls.
   The twin is a second process; its figures are its own, quoted beside the CLI's.
Each figure is the median over --repeats runs. Nothing here is timed inside the real CLI process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
CNNZOO = os.environ.get("CNNZOO", str(VENV_BIN / "cnnzoo"))

TWIN = r"""
import json, sys, time
t = {"process_start": float(sys.argv[3])}
t["python_ready"] = time.time()
import cnnzoo
from cnnzoo.cli import main  # what the console script imports
from cnnzoo.base.devices import set_threads
from cnnzoo.train.state import Callback
from cnnzoo.run.progress import default_callbacks
from cnnzoo.run import start_training
t["imported"] = time.time()
set_threads(None)  # the CLI's default: the free cores, a 0.1 s probe
t["threads_set"] = time.time()
data = cnnzoo.load_fashion_mnist()
t["data_loaded"] = time.time()
run = cnnzoo.new_run(sys.argv[1], recipe="d2l", overrides={"epochs": int(sys.argv[2]), "device": "cpu"}, data=data)
t["run_made"] = time.time()
training = start_training(run, out=sys.argv[4], command=["breakdown-twin"])
t["training_started"] = time.time()
class Stamp(Callback):
    def on_train_start(self, state):
        t["train_start"] = time.time()
    def on_epoch_end(self, state):
        t.setdefault("epoch_ends", []).append(time.time())
training.train(callbacks=[*default_callbacks(True), Stamp()])
t["train_returned"] = time.time()
print("TWIN " + json.dumps(t))
"""


def wall(cmd: list[str], **kw) -> tuple[float, float, float]:
    """(launch, exit, seconds) of one process, wall clock."""
    t0 = time.time()
    subprocess.run(cmd, check=True, **kw)
    t1 = time.time()
    return t0, t1, t1 - t0


def cli_run(model: str, epochs: int, scratch: Path, i: int) -> dict[str, float]:
    out = scratch / f"cli-{i}"
    log = scratch / f"cli-{i}.log"
    with log.open("w") as f:
        t0, t1, whole = wall([CNNZOO, "train", model, "--recipe", "d2l", "--epochs", str(epochs), "--device", "cpu",
                              "--out", str(out)], stdout=f, stderr=subprocess.STDOUT)  # fmt: skip
    mt = {p.name: p.stat().st_mtime for p in out.iterdir()}
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    cfg = json.loads((out / "config.json").read_text())
    train = sum(r["train_seconds"] for r in rows)
    evals = sum(r["eval_seconds"] for r in rows)
    epochs_span = mt["metrics.jsonl"] - mt["config.json"]
    closing_end = max(mt[n] for n in ("report.md", "confusion.png", "curves.png", "per_class.csv"))
    return {
        "whole": whole,
        "launch -> config.json (start-up, imports, data, model, run dir)": mt["config.json"] - t0,
        "epochs: training (sum of train_seconds)": train,
        "epochs: evaluation (sum of eval_seconds)": evals,
        "epochs: the rest (checkpoints, metrics, progress)": epochs_span - train - evals,
        "closing: curves.png": mt["curves.png"] - mt["metrics.jsonl"],
        "closing: confusion matrix (a test pass) + confusion.png": mt["confusion.png"] - mt["curves.png"],
        "closing: per_class.csv + report.md": closing_end - mt["confusion.png"],
        "report.md -> exit (closing lines, interpreter shutdown)": t1 - closing_end,
        "_threads": cfg["environment"].get("threads"),
        "_test_acc": rows[-1]["test_acc"],
        "_train_images": cfg["data"]["train_images"],
        "_val_images": cfg["data"].get("val_images"),
    }


def twin_run(model: str, epochs: int, scratch: Path, i: int) -> dict[str, float]:
    out = scratch / f"twin-{i}"
    t0 = time.time()
    p = subprocess.run([str(VENV_BIN / "python"), "-c", TWIN, model, str(epochs), repr(t0), str(out)],
                       capture_output=True, text=True, check=True)  # fmt: skip
    t1 = time.time()
    t = json.loads(next(x for x in p.stdout.splitlines() if x.startswith("TWIN "))[5:])
    return {
        "whole": t1 - t0,
        "interpreter start (launch -> first line)": t["python_ready"] - t0,
        "imports (cnnzoo, torch, the CLI)": t["imported"] - t["python_ready"],
        "threads probe (set_threads)": t["threads_set"] - t["imported"],
        "data: load_fashion_mnist": t["data_loaded"] - t["threads_set"],
        "config + model: new_run": t["run_made"] - t["data_loaded"],
        "run directory + device: start_training": t["training_started"] - t["run_made"],
        "train() -> first on_train_start": t["train_start"] - t["training_started"],
        "epochs (train + eval + checkpoints)": t["epoch_ends"][-1] - t["train_start"],
        "closing files (confusion, plots, report)": t["train_returned"] - t["epoch_ends"][-1],
        "after train() -> exit (interpreter shutdown)": t1 - t["train_returned"],
    }


def table(title: str, runs: list[dict[str, float]]) -> None:
    whole = statistics.median(r["whole"] for r in runs)
    print(f"\n{title} (median of {len(runs)}; whole process {whole:.2f} s)\n")
    print("| phase | seconds | share of whole |")
    print("|---|---:|---:|")
    for key in runs[0]:
        if key == "whole" or key.startswith("_"):
            continue
        v = statistics.median(r[key] for r in runs)
        print(f"| {key} | {v:.2f} | {100 * v / whole:.0f} % |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    py = str(VENV_BIN / "python")
    with tempfile.TemporaryDirectory(prefix="cnnzoo-breakdown-") as tmp:
        scratch = Path(tmp)
        bare = [wall([py, "-c", "pass"])[2] for _ in range(max(3, args.repeats))]
        imp = [wall([py, "-c", "from cnnzoo.cli import main"])[2] for _ in range(max(3, args.repeats))]
        cli, twin = [], []
        for i in range(args.repeats):  # interleaved, so drift hits both alike
            cli.append(cli_run(args.model, args.epochs, scratch, i))
            twin.append(twin_run(args.model, args.epochs, scratch, i))
    print(
        f"cnnzoo train {args.model} --recipe d2l --epochs {args.epochs} --device cpu; "
        f"{os.cpu_count()} CPUs, load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
    )
    print(
        f"\nbare interpreter `python -c pass`: {statistics.median(bare):.2f} s; "
        f'`python -c "from cnnzoo.cli import main"`: {statistics.median(imp):.2f} s (median of {len(imp)})'
    )
    table("The real CLI, cut by its run directory's records", cli)
    print(
        f"\nthreads {sorted({r['_threads'] for r in cli})}, test acc {[round(r['_test_acc'], 4) for r in cli]}, "
        f"split {sorted({(r['_train_images'], r['_val_images']) for r in cli})} (train, validation images)"
    )
    table("Its instrumented twin on the public API (a separate process)", twin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
