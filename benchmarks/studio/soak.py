"""``cnnzoo studio`` under 40 clients and a hostile run folder: its health route's latency, its memory, its
answers, and how long it takes to stop on SIGTERM in the middle of the load.

    python benchmarks/studio/soak.py RUN_DIR [--clients 40] [--seconds 60] [--json soak.json]

The root holds a copy of ``RUN_DIR`` and runs whose ``config.json``, ``metrics.jsonl``, ``live.json`` or
``per_class.csv`` is a FIFO, a link to ``/dev/zero``, a sparse gigabyte, a JSON nesting bomb or a link out of the
root. The studio runs as users start it (``cnnzoo studio ROOT --port P``). The clients loop over predictions
(the run and the shipped weight), every run's page and metrics, the zoo's model pages and the run files; a
monitor asks ``/api/health`` twice a second. At the end, with the clients still sending, the studio gets SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

_spec = importlib.util.spec_from_file_location("studio_load", Path(__file__).resolve().parent / "load.py")
load = importlib.util.module_from_spec(_spec)
sys.modules["studio_load"] = load
_spec.loader.exec_module(load)


def _sparse(path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(1 << 30)


BOMB = "[" * 100_000 + "]" * 100_000
HOSTILE = {
    "fifo": os.mkfifo,
    "dev-zero": lambda path: path.symlink_to("/dev/zero"),
    "sparse": _sparse,
    "bomb": lambda path: path.write_text(BOMB),
}


def hostile_root(directory: Path, run: Path) -> Path:
    """``directory/runs``: ``good`` (a copy of ``run``) and a run per hostile kind and run file."""
    root = directory / "runs"
    root.mkdir()
    shutil.copytree(run, root / "good")
    (directory / "secret.csv").write_text("label,name\n0,the secret line\n")
    for kind, make in HOSTILE.items():
        for name in ("config.json", "metrics.jsonl", "live.json", "per_class.csv"):
            bad = root / f"{kind}-{name.split('.')[0]}"
            shutil.copytree(run, bad, ignore=shutil.ignore_patterns("*.png"))
            (bad / name).unlink(missing_ok=True)
            make(bad / name)
    leak = root / "leaky"
    shutil.copytree(run, leak, ignore=shutil.ignore_patterns("*.png"))
    (leak / "per_class.csv").unlink()
    (leak / "per_class.csv").symlink_to(directory / "secret.csv")
    return root


def start_cli(root: Path) -> tuple[subprocess.Popen, str]:
    port = load.free_port()
    argv = [sys.executable, "-m", "cnnzoo", "studio", str(root), "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, load.wait_until_up(proc, f"http://127.0.0.1:{port}")


def _client(url, runs, stop: threading.Event, stopping: threading.Event, seed: int, seen: Counter, lock):
    rng = random.Random(seed)
    shoe = load.picture(3, __import__("numpy").random.default_rng(seed))
    with httpx.Client(base_url=url, timeout=60) as http:
        while not stop.is_set():
            kind = rng.choice(["predict-run", "predict-weight", "run", "metrics", "model", "file"])
            run = rng.choice(runs)
            try:
                if kind == "predict-run":
                    r = http.post("/api/predict", files={"file": ("x.png", shoe)}, data={"run": "good"})
                elif kind == "predict-weight":
                    r = http.post("/api/predict", files={"file": ("x.png", shoe)},
                                  data={"weight": "lenet_bn.fashion_mnist"})  # fmt: skip
                elif kind == "run":
                    r = http.get(f"/api/runs/{run}")
                elif kind == "metrics":
                    r = http.get(f"/api/runs/{run}/metrics")
                elif kind == "model":
                    r = http.get(f"/api/models/{rng.choice(['lenet', 'resnet18', 'googlenet', 'vgg11'])}")
                else:
                    r = http.get(f"/api/runs/{run}/files/per_class.csv")
                status = r.status_code
                leaked = b"the secret line" in r.content
            except httpx.HTTPError as exc:
                status, leaked = type(exc).__name__, False
            with lock:
                if stopping.is_set():
                    continue  # the server is stopping: what it answers now is counted apart
                seen[(kind, status)] += 1
                if leaked:
                    seen[("LEAK", kind)] += 1


def soak(run: Path, clients: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="cnnzoo-soak-") as tmp:
        root = hostile_root(Path(tmp), run)
        runs = sorted(p.name for p in root.iterdir())
        proc, url = start_cli(root)
        stop, stopping, lock, seen = threading.Event(), threading.Event(), threading.Lock(), Counter()
        threads = [threading.Thread(target=_client, args=(url, runs, stop, stopping, i, seen, lock), daemon=True)
                   for i in range(clients)]  # fmt: skip
        for t in threads:
            t.start()
        health, rss = [], []
        end = time.monotonic() + seconds
        with httpx.Client(base_url=url, timeout=30) as http:
            while time.monotonic() < end:
                t0 = time.perf_counter()
                try:
                    ok = http.get("/api/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                health.append((time.perf_counter() - t0, ok))
                rss.append(load.rss_bytes(proc.pid))
                time.sleep(0.5)
        stopping.set()
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)  # the clients still sending
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed after 60 s"
        stopped = time.perf_counter() - t0
        stop.set()
        for t in threads:
            t.join(timeout=5)
    latencies = [s for s, _ in health]
    return {
        "clients": clients,
        "seconds": seconds,
        "health": {
            "asked": len(health),
            "answered": sum(ok for _, ok in health),
            "p50": statistics.median(latencies),
            "p95": load.percentile(latencies, 95),
            "max": max(latencies),
        },
        "rss_mib": {"first": rss[0] / 2**20, "max": max(rss) / 2**20, "last": rss[-1] / 2**20},
        "answers": {f"{k} {s}": n for (k, s), n in sorted(seen.items(), key=str)},
        "sigterm": {"seconds": stopped, "exit": code},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--clients", type=int, default=40)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    result = soak(args.run, args.clients, args.seconds)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
