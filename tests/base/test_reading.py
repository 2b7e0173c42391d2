"""Files cnnzoo did not just write, read the one safe way (cnnzoo.base.reading): never a FIFO, a device or a link
out of the root, never more than a bound, never JSON deep enough to crash the parser; and every reader that
goes through it (the run layer, the studio, the leaderboard, outputs, plot) answers such a file in one line or
treats it as absent, quickly."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cnnzoo.base.reading import LIMIT, JsonTooDeepError, UnsafeFileError, json_depth, loads_json, read_bytes, read_json
from cnnzoo.cli import main
from cnnzoo.run.live import read_live
from cnnzoo.train.metrics import read_metrics

BOMB = "[" * 100_000 + "]" * 100_000


@pytest.fixture(autouse=True)
def never_hang():
    """A read that blocks (a FIFO opened the plain way) fails the test in 30 s instead of holding the suite."""

    def stuck(signum, frame):
        raise TimeoutError("a read blocked")

    old = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_only_a_regular_file_within_its_bound_is_read(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json(good, limit=100) == {"a": [1, 2]}
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeFileError, match=r"is a FIFO \(named pipe\), not a regular file"):
        read_bytes(fifo, limit=100)
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    with pytest.raises(UnsafeFileError, match="is a device"):
        read_bytes(zero, limit=100)
    with pytest.raises(UnsafeFileError, match="is a directory"):
        read_bytes(tmp_path, limit=100)
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(1 << 30)  # a gigabyte that costs no disk
    start = time.perf_counter()
    with pytest.raises(UnsafeFileError, match=r"1,073,741,824 bytes, more than the 100"):
        read_bytes(sparse, limit=100)
    assert time.perf_counter() - start < 5  # refused from its size, not read
    assert issubclass(UnsafeFileError, OSError)  # readers that treat an unreadable file as absent do so here too


def test_links_are_followed_only_where_allowed_and_never_out_of_the_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "secret.txt"
    root.mkdir()
    outside.write_text("secret")
    (root / "inside.txt").write_text("fine")
    (root / "link-in").symlink_to(root / "inside.txt")
    (root / "link-out").symlink_to(outside)
    assert read_bytes(root / "link-in", limit=10, root=root) == b"fine"
    with pytest.raises(UnsafeFileError, match="leads outside"):
        read_bytes(root / "link-out", limit=10, root=root)
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        read_bytes(root / "link-in", limit=10, follow_links=False)
    assert read_bytes(root / "link-out", limit=10) == b"secret"  # no root: a link is the user's to make


def test_json_deeper_than_the_bound_is_refused_before_the_parser_recurses():
    assert json_depth('{"a": [1, {"b": "[[[ not brackets ]"}]}') == 3
    assert json_depth('"unterminated \\" [[[') == 0
    with pytest.raises(JsonTooDeepError, match="nested more than 64 levels"):
        loads_json(BOMB)
    assert loads_json("[" * 64 + "]" * 64) is not None
    assert issubclass(JsonTooDeepError, ValueError)
    start = time.perf_counter()
    with pytest.raises(ValueError):  # a quote and a backslash a million times: scanned once, not from each quote
        loads_json('"\\' * 1_000_000)
    assert time.perf_counter() - start < 10


def _sparse(path) -> None:
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # a gigabyte that costs no disk


HOSTILE = {
    "fifo": lambda path: os.mkfifo(path),
    "dev-zero": lambda path: path.symlink_to("/dev/zero"),
    "sparse": lambda path: _sparse(path),
    "bomb": lambda path: path.write_text(BOMB),
    "deep": lambda path: path.write_text('{"rows": ' + "[" * 500 + "]" * 500 + "}"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_the_run_readers_take_a_hostile_file_as_damaged_or_absent(tmp_path, kind):
    (tmp_path / "metrics.jsonl").unlink(missing_ok=True)
    HOSTILE[kind](tmp_path / "live.json")
    assert read_live(tmp_path) is None
    HOSTILE[kind](tmp_path / "metrics.jsonl")
    if kind in ("fifo", "dev-zero"):  # not a regular file: no metrics yet
        assert read_metrics(tmp_path) == []
    else:
        with pytest.raises(Exception) as info:
            read_metrics(tmp_path)
        assert type(info.value).__name__ == "MetricsFileError" and "\n" not in str(info.value), info.value


def hostile_root(tmp_path, trained_run):
    """The soak benchmark's hostile studio root (benchmarks/studio/soak.py): one good run, one run per hostile
    kind and run file, and a per_class.csv linked out of the root."""
    spec = importlib.util.spec_from_file_location(
        "studio_soak", Path(__file__).parents[2] / "benchmarks/studio/soak.py"
    )
    soak = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("studio_soak", soak)
    spec.loader.exec_module(soak)
    return soak.hostile_root(tmp_path, trained_run)


def test_the_studio_answers_every_run_of_a_hostile_folder_without_a_5xx(tmp_path, trained_run):
    from cnnzoo.studio import create_app

    root = hostile_root(tmp_path, trained_run)
    with TestClient(create_app(root), base_url="http://127.0.0.1") as client:
        start = time.perf_counter()
        runs = client.get("/api/runs")
        assert runs.status_code == 200, runs.text[:300]
        ids = {r["id"] for r in runs.json()}
        assert "good" in ids
        for run_id in sorted(p.name for p in root.iterdir()):
            for route in (f"/api/runs/{run_id}", f"/api/runs/{run_id}/metrics"):
                answer = client.get(route)
                assert answer.status_code < 500, (route, answer.status_code, answer.text[:200])
                assert b"the secret line" not in answer.content, route
        assert time.perf_counter() - start < 60
        good = client.get("/api/runs/good").json()
        assert good["per_class"] and good["epochs_done"] == 3


def test_the_leaderboard_refuses_a_damaged_file_in_one_line(tmp_path, capsys):
    from cnnzoo.leaderboard.board import FORMAT

    original = json.loads((Path(__file__).resolve().parents[2] / "benchmarks" / "leaderboard.json").read_text())
    row = original["rows"][0]
    mutations = {
        "a row that is a number": [5],
        "no model": [{k: v for k, v in row.items() if k != "model"}],
        "macs as text": [{**row, "macs": "many"}],
        "a negative accuracy": [{**row, "test_acc_mean": -1}],
        "runs as an object": [{**row, "runs": {"a": 1}}],
        "a run without epochs": [{**row, "runs": [{"seed": 0}]}],
        "a run with a text accuracy": [{**row, "runs": [{"epochs": 3, "test_acc": "high"}]}],
        "provenance without a command": [{**row, "provenance": {**row["provenance"], "command": None}}],
        "seeds of text": [{**row, "seeds": ["x"]}],
        "NaN seconds": [{**row, "train_seconds_mean": float("nan")}],
        "the budget as text": [{**row, "budget_minutes": "ten"}],
    }
    for what, rows in mutations.items():
        target = tmp_path / "board.json"
        target.write_text(json.dumps({"format": FORMAT, "rows": rows}))
        assert main(["leaderboard", "--redraw", "--output", str(tmp_path / "board.md")]) == 2, what
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, (what, err)
    target.write_text(BOMB)
    assert main(["leaderboard", "--redraw", "--output", str(tmp_path / "board.md")]) == 2
    assert "nested more than 64 levels" in capsys.readouterr().err


def test_an_output_nested_deep_is_not_taken_for_cnnzoos_and_costs_one_line(tmp_path, capsys):
    from cnnzoo.base.outputs import is_cnnzoo_output

    bomb = tmp_path / "results.json"
    bomb.write_text(BOMB)
    assert not is_cnnzoo_output(bomb, "json")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert not is_cnnzoo_output(fifo, "json")


def test_plot_skips_a_run_whose_metrics_are_a_nesting_bomb(tmp_path, trained_run, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(trained_run, bad)
    (bad / "metrics.jsonl").write_text(BOMB + "\n")
    out = tmp_path / "plot.png"
    assert main(["plot", str(trained_run), str(bad), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert out.is_file() and "nested more than 64 levels" in captured.err + captured.out


def test_the_limits_are_far_above_what_cnnzoo_writes(trained_run):
    for name, kind in (("config.json", "config"), ("metrics.jsonl", "metrics")):
        assert (trained_run / name).stat().st_size * 100 < LIMIT[kind]


def test_a_run_deleted_and_recreated_while_the_studio_reads_it_never_gives_a_5xx(tmp_path, trained_run):
    import threading

    from cnnzoo.studio import create_app

    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(trained_run, root / "flaky")
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            shutil.rmtree(root / "flaky", ignore_errors=True)
            shutil.copytree(trained_run, root / "flaky", ignore=shutil.ignore_patterns("*.pt"), dirs_exist_ok=True)

    thread = threading.Thread(target=churn, daemon=True)
    statuses = set()
    with TestClient(create_app(root), base_url="http://127.0.0.1") as client:
        thread.start()
        try:
            for _ in range(150):
                for route in (
                    "/api/runs",
                    "/api/runs/flaky",
                    "/api/runs/flaky/metrics",
                    "/api/runs/flaky/files/report.md",
                ):
                    answer = client.get(route)
                    statuses.add(answer.status_code)
                    assert answer.status_code < 500, (route, answer.status_code, answer.text[:300])
        finally:
            stop.set()
            thread.join(timeout=30)
    assert 200 in statuses
