"""Load on ``cnnzoo studio``'s ``POST /api/predict``: N requests from C concurrent clients, some malformed, with
p50/p95 latency, the status codes seen and the server's resident memory before and after.

    python benchmarks/studio/load.py RUN_DIR [--requests 400] [--clients 8] [--out benchmarks/studio-load.md]
    python benchmarks/studio/load.py RUN_DIR --interactive [--requests 60]

``--interactive`` measures what one learner's page asks while they explore a run (:func:`interact`): the epoch
scrubber dragged there and back (each step: the first layer's filters, and the prediction with Grad-CAM for their
picture at that epoch) and clicks on feature-map pixels of random layers (the convolution's arithmetic); it prints
a Markdown section with p50/p95/max of each kind.

It starts the studio on 127.0.0.1 in a subprocess (``RUN_DIR`` as its root), warms it up, fires the requests
with httpx from threads, and writes a Markdown record (command, date, CPU, torch version, model, machine load).
``tests/studio/test_studio_load.py`` uses the same functions with fewer requests.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

SERVER = """
import sys, uvicorn
from cnnzoo.base.devices import set_threads
from cnnzoo.studio import create_app
set_threads(None)  # as cnnzoo studio does
app = create_app(sys.argv[1], adapt_threads=True)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """The studio for ``root`` in a subprocess; returns it and its URL once it answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(root), str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    return proc, wait_until_up(proc, f"http://127.0.0.1:{port}")


def wait_until_up(proc: subprocess.Popen, url: str, seconds: float = 60) -> str:
    """``url`` once the studio in ``proc`` answers its health route; one line if it exits or never answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the studio exited ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the studio did not answer within {seconds:g} s")


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def picture(k: int, rng: np.random.Generator) -> bytes:
    """A light block on a dim noisy background, somewhere in a 112x112 picture, as PNG or JPEG."""
    a = rng.integers(0, 50, (112, 112), dtype=np.uint8)
    r, c = 12 + (k // 5) * 52, 8 + (k % 5) * 20
    a[r : r + 24, c : c + 16] = 220
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG" if k % 2 else "JPEG")
    return buf.getvalue()


MALFORMED = {
    "text": lambda good: (b"certainly not a picture\n" * 20, {}),
    "truncated": lambda good: (good[: len(good) // 3], {}),
    "header only": lambda good: (good[:8] + b"\x00" * 100, {}),
    "empty": lambda good: (b"", {}),
    "unknown run": lambda good: (good, {"run": "no-such-run"}),
    "traversal run": lambda good: (good, {"run": "../../etc"}),
    "bad top_k": lambda good: (good, {"top_k": "-3"}),
    "bad target": lambda good: (good, {"target": "no-such-class"}),
}


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)  # seconds, well-formed requests
    statuses: dict[str, list[int]] = field(default_factory=dict)  # kind -> status codes
    errors: list[str] = field(default_factory=list)  # transport failures


def fire(url: str, run: str, requests: int, clients: int, *, malformed_share: float = 0.2, seed: int = 0) -> Outcome:
    """``requests`` POSTs to ``/api/predict`` from ``clients`` threads, each with its own httpx client; about
    ``malformed_share`` of them malformed (every kind of :data:`MALFORMED` in turn)."""
    rng = np.random.default_rng(seed)
    choose = random.Random(seed)
    goods = [picture(k, rng) for k in range(10)]
    kinds = list(MALFORMED)
    plan = []
    for i in range(requests):
        good = goods[i % 10]
        if choose.random() < malformed_share:
            kind = kinds[len(plan) % len(kinds)]
            data, form = MALFORMED[kind](good)
            plan.append((kind, data, form))
        else:
            plan.append(("good", good, {}))
    out = Outcome()
    lock = threading.Lock()
    local = threading.local()

    def one(item: tuple[str, bytes, dict]) -> None:
        kind, data, form = item
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=60)
        start = time.perf_counter()
        try:
            answer = client.post(f"{url}/api/predict", files={"file": ("upload.png", data)},
                                 data={"run": run, "top_k": "3", **form})  # fmt: skip
        except httpx.HTTPError as exc:
            with lock:
                out.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            return
        elapsed = time.perf_counter() - start
        with lock:
            out.statuses.setdefault(kind, []).append(answer.status_code)
            if kind == "good" and answer.status_code == 200:
                out.latencies.append(elapsed)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, plan))
    return out


def interact(url: str, run: str, requests: int, *, seed: int = 0) -> dict[str, list[float]]:
    """Seconds of each request one learner's page makes, in the order it makes them (one at a time): ``requests``
    scrubber steps across the run's kept epochs, there and back (``GET .../snapshots/N/filters``, then ``POST
    /api/predict`` with ``epoch``), each followed by a click on a pixel of a random layer's maps (``POST
    /api/arithmetic``: the network after the last epoch)."""
    rng = np.random.default_rng(seed)
    choose = random.Random(seed)
    mine = picture(3, rng)
    out: dict[str, list[float]] = {"scrubber: filters": [], "scrubber: picture at the epoch": [], "arithmetic": []}
    with httpx.Client(timeout=60) as client:
        epochs = [s["epoch"] for s in client.get(f"{url}/api/runs/{run}/snapshots").json()["snapshots"]]
        if not epochs:
            raise RuntimeError(f"{run} keeps no snapshots: train it with --snapshots auto")
        sweep = epochs + epochs[-2:0:-1]
        layers = client.post(f"{url}/api/arithmetic", files={"file": ("mine.png", mine)}, data={"run": run}).json()
        layers = layers["layers"]

        def timed(kind: str, method: str, path: str, **request: object) -> None:
            start = time.perf_counter()
            answer = client.request(method, f"{url}{path}", **request)
            out[kind].append(time.perf_counter() - start)
            if answer.status_code != 200:
                raise RuntimeError(f"{kind}: {answer.status_code} {answer.text[:200]}")

        upload = {"file": ("mine.png", mine)}
        for i in range(requests):
            epoch = sweep[i % len(sweep)]
            timed("scrubber: filters", "GET", f"/api/runs/{run}/snapshots/{epoch}/filters")
            timed("scrubber: picture at the epoch", "POST", "/api/predict", files=upload,
                  data={"run": run, "epoch": str(epoch)})  # fmt: skip
            layer = choose.choice(layers)
            c, h, w = layer["shape"]
            form = {"run": run, "layer": layer["name"], "channel": str(choose.randrange(min(c, 16))),
                    "y": str(choose.randrange(h)), "x": str(choose.randrange(w))}  # fmt: skip
            timed("arithmetic", "POST", "/api/arithmetic", files=upload, data=form)
    return out


def interactive_record(run_dir: Path, requests: int) -> str:
    """The Markdown section of ``--interactive`` for the runs under ``run_dir`` (its parent: the studio's root)."""
    import torch

    proc, url = start_server(run_dir.parent)
    try:
        model = next(r["model"] for r in httpx.get(f"{url}/api/runs").json() if r["id"] == run_dir.name)
        interact(url, run_dir.name, 4)  # warm-up: the final model and a first snapshot loaded
        load = machine_load()
        found = interact(url, run_dir.name, requests, seed=1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    size = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["model"]["input_size"]
    lines = [
        f"### {model} at {size}x{size} (run `{run_dir.name}`)",
        "",
        f"- command: `python benchmarks/studio/load.py {run_dir} --interactive --requests {requests}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; CPU: {cpu_name()} ({os.cpu_count()} logical CPUs); "
        f"torch {torch.__version__}; machine: {load}",
        "",
        "| request | n | p50 s | p95 s | max s |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, values in found.items():
        lines.append(f"| {kind} | {len(values)} | {statistics.median(values):.3f} | {percentile(values, 95):.3f} | "
                     f"{max(values):.3f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def machine_load() -> str:
    """``idle`` or ``loaded``, by the 1-minute load average against the CPU count."""
    one = os.getloadavg()[0]
    return f"{'idle' if one < 0.5 else 'loaded'} (1-min load average {one:.2f} on {os.cpu_count()} CPUs)"


def cpu_name() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    for line in text.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/studio-load.md"))
    parser.add_argument("--interactive", action="store_true", help="one learner's scrubber and arithmetic requests")
    args = parser.parse_args(argv)
    if args.interactive:
        print(interactive_record(args.run_dir.resolve(), args.requests if args.requests != 400 else 60))
        return 0
    import torch

    run_dir = args.run_dir.resolve()
    proc, url = start_server(run_dir)
    try:
        model = httpx.get(f"{url}/api/runs").json()[0]["model"]
        fire(url, run_dir.name, 40, args.clients, malformed_share=0.0)  # warm-up: model loaded, caches filled
        warm = rss_bytes(proc.pid)
        load_before = machine_load()
        start = time.perf_counter()
        outcome = fire(url, run_dir.name, args.requests, args.clients)
        wall = time.perf_counter() - start
        after = rss_bytes(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    statuses = {k: sorted(set(v)) for k, v in outcome.statuses.items()}
    lat = outcome.latencies
    lines = [
        "# cnnzoo studio: load on POST /api/predict",
        "",
        f"- command: `python benchmarks/studio/load.py {args.run_dir} --requests {args.requests} "
        f"--clients {args.clients}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- CPU: {cpu_name()} ({os.cpu_count()} logical CPUs); torch {torch.__version__}",
        f"- model: {model} (run `{run_dir.name}`), each answer: top-3, Grad-CAM overlay, every stage's feature maps",
        f"- machine: {load_before} when the load began (other programs were running: figures are 'loaded')",
        f"- {args.requests} requests from {args.clients} concurrent clients in {wall:.1f} s "
        f"({args.requests / wall:.1f} requests/s); {len(lat)} well-formed, "
        f"{args.requests - len(lat) - len(outcome.errors)} malformed, {len(outcome.errors)} transport errors",
        "",
        "| latency of well-formed requests | seconds |",
        "|---|---:|",
        f"| p50 | {percentile(lat, 50):.3f} |",
        f"| p95 | {percentile(lat, 95):.3f} |",
        f"| max | {max(lat):.3f} |",
        "",
        "| request kind | statuses seen |",
        "|---|---|",
        *(f"| {k} | {', '.join(map(str, v))} |" for k, v in sorted(statuses.items())),
        "",
        f"Server memory (RSS): {warm / 2**20:.0f} MiB after the warm-up, {after / 2**20:.0f} MiB after the load "
        f"({(after - warm) / 2**20:+.1f} MiB).",
        "",
        "The server handles one prediction per model at a time (Grad-CAM hooks the model): under 8 clients a "
        "request mostly waits for the ones ahead of it, so these latencies include that queueing.",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0 if not outcome.errors and all(s < 500 for v in outcome.statuses.values() for s in v) else 1


if __name__ == "__main__":
    raise SystemExit(main())
