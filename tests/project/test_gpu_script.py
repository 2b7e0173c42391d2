"""benchmarks/gpu.sh: its smoke mode runs every step on the CPU and writes the summary; it refuses foreign output.

The smoke run is one subprocess shared by the tests of this module (most of its time is the start-up of the
four Python processes it runs); the refusals stop before any Python starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnnzoo.models.references import D2L_FIGURES, D2L_SOURCE, reference_key
from cnnzoo.models.registry import get_model_info
from cnnzoo.train.recipes import d2l_models

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu.sh"
STEPS = ("1-bench", "2-tta", "3-d2l", "4-board", "5-speedrun")
PROJECT_BOARD = [REPO / "benchmarks" / f"leaderboard.{ext}" for ext in ("md", "json", "png")]

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and GNU timeout"
)


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CNNZOO_DATA", None)  # smoke mode makes its own data
    env["CNNZOO_PYTHON"] = sys.executable
    env["XDG_CACHE_HOME"] = str(tmp / "xdg-cache")  # smoke mode keeps its cache inside --out: never created
    return env


def _run(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=cwd, env=_env(cwd), capture_output=True, text=True, timeout=timeout
    )


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run, from a scratch working directory, into a directory an earlier run of the script left."""
    cwd = tmp_path_factory.mktemp("gpu-smoke")
    out = cwd / "results"
    (out / "2-tta").mkdir(parents=True)
    (out / "2-tta" / "metrics.jsonl").write_text('{"epoch": 7}\n')  # cnnzoo would refuse to train into it
    (out / "summary.md").write_text("stale\n")
    (out / "notes.txt").write_text("mine\n")  # not a name the script writes: kept
    (out / ".written-by-gpu-sh").write_text("written by benchmarks/gpu.sh\n")
    before = {p: _digest(p) for p in PROJECT_BOARD}
    proc = _run("--smoke", "--out", str(out), cwd=cwd)
    after = {p: _digest(p) for p in PROJECT_BOARD}
    return proc, out, cwd, before, after


def _summary(out: Path) -> str:
    return (out / "summary.md").read_text()


def test_smoke_runs_every_step_and_exits_0(smoke):
    proc, out, _, _, _ = smoke
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = _summary(out)
    for key in STEPS:
        log = out / f"{key}.log"
        assert log.is_file() and log.stat().st_size > 0, key
        assert re.search(rf"^\| {key} \| .+ \| ok \| \d+ \| \d+ \| {key}\.log \|$", summary, re.M), key
        assert f"[{key}] ok in" in proc.stdout
        assert f"{key}: " in (out / "commands.txt").read_text()
    assert "all steps ok" in proc.stdout
    assert (out / "notes.txt").read_text() == "mine\n"
    assert "| step | what | status |" in proc.stdout  # the table is printed too


def test_summary_records_date_machine_and_versions(smoke):
    _, out, _, _, _ = smoke
    summary = _summary(out)
    import torch

    assert re.search(r"^# cnnzoo GPU run, \d{4}-\d\d-\d\d \d\d:\d\d UTC$", summary, re.M)
    assert "- mode: smoke" in summary
    assert re.search(r"^- GPU: \S", summary, re.M)
    assert f"torch {torch.__version__}" in summary
    assert "```" in summary and "leaderboard" in summary.split("## Commands")[1]
    assert "## 5. The speed record's table" in summary and "| `speednet --recipe record` | 1 | 1 |" in summary


def _book_cell(name: str) -> str:
    figures = D2L_FIGURES[reference_key(name, get_model_info(name).family)]
    figure = next(f for f in figures if f.source == D2L_SOURCE)
    return "plot only" if figure.test_acc is None else f"{figure.test_acc:.4f}"


def test_summary_sets_each_d2l_network_beside_the_books_figure(smoke):
    _, out, _, _, _ = smoke
    section = _summary(out).split("## 3.")[1].split("\n## ")[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in section.splitlines() if line.startswith("| ")}
    assert set(d2l_models()) <= set(rows)
    for name in d2l_models():
        cells = [c.strip() for c in rows[name].strip("|").split("|")]
        assert cells[1] == "ok", rows[name]
        assert cells[2] == "1"  # smoke: one epoch
        assert re.fullmatch(r"0\.\d{4}|1\.0000", cells[3]), rows[name]
        assert cells[4] == _book_cell(name), rows[name]
        run = out / "3-d2l" / name
        assert json.loads((run / "config.json").read_text())["config"]["recipe"] == "d2l"
        assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
        assert not list(run.glob("*.pt"))  # smoke mode drops the checkpoints
    order = [r["model"] for r in json.loads((out / "3-d2l" / "results.json").read_text())]
    plot_only = [name for name in order if _book_cell(name) == "plot only"]
    assert sorted(order) == d2l_models() and order[-len(plot_only) :] == plot_only  # printed figures first


def test_smoke_writes_only_into_its_directory(smoke):
    _, out, cwd, before, after = smoke
    assert before == after  # benchmarks/leaderboard.* untouched
    assert [p.name for p in cwd.iterdir()] == ["results"]  # no runs/ in the working directory, no user cache
    assert (out / "leaderboard.md").is_file() and (out / "leaderboard.json").is_file()
    assert (out / "2-tta" / "metrics.jsonl").is_file()


@pytest.mark.parametrize(
    "setup, args, fragment",
    [
        ("foreign", ["--smoke"], "did not write"),
        ("file", ["--smoke"], "is a file"),
        (None, ["--smoke", "--frobnicate"], "unknown argument --frobnicate"),
        (None, ["--budget", "soon"], "--budget soon"),
    ],
)
def test_refuses_with_one_error_line_and_exit_2(tmp_path, setup, args, fragment):
    out = tmp_path / "out"
    if setup == "foreign":
        out.mkdir()
        (out / "notes.txt").write_text("mine\n")
    elif setup == "file":
        out.write_text("mine\n")
    proc = _run(*args, "--out", str(out), cwd=tmp_path, timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
    if setup == "foreign":
        assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine\n"
    elif setup == "file":
        assert out.read_text() == "mine\n"
    else:
        assert not out.exists()
