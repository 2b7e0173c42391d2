"""Nothing of the user's is overwritten (issue 13): output paths (:mod:`cnnzoo.base.outputs`), new run directories,
the run directory's lock (a real second process, and a SIGKILLed one), and leaderboard rows keyed by budget.

The one-line refusals through the CLI are catalogued in ``test_bad_inputs_outputs.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure

import cnnzoo.leaderboard.plan as lb
from cnnzoo.base.errors import ConfigError, OutputError, RunLockedError
from cnnzoo.base.outputs import claim_output, is_cnnzoo_output, marker_comment
from cnnzoo.base.plots import save_figure
from cnnzoo.base.rundirs import LOCK_NAME, RunLock, check_unlocked, lock_holder, new_run_dir
from cnnzoo.cli import main
from cnnzoo.leaderboard import board
from cnnzoo.run import new_run, start_training
from helpers_files import made_up_row

SRC = Path(__file__).resolve().parents[2] / "src"


def _figure() -> Figure:
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


# ------------------------------------------------------------------------------------------------
# claim_output: the one place that decides
# ------------------------------------------------------------------------------------------------
def test_a_new_path_and_cnnzoos_own_files_may_be_written(tmp_path):
    assert claim_output(tmp_path / "new.png", "png") == tmp_path / "new.png"
    png = save_figure(_figure(), tmp_path / "fig.png")
    assert is_cnnzoo_output(png, "png") and claim_output(png, "png") == png
    md = tmp_path / "t.md"
    md.write_text("| a |\n|---|\n\n" + marker_comment("bench"))  # the marker at the end counts too
    assert claim_output(md, "markdown") == md
    js = tmp_path / "b.json"
    js.write_text(json.dumps({"written_by": "cnnzoo bench", "rows": []}))
    assert claim_output(js, "json") == js
    js.write_text(json.dumps({"format": board.FORMAT, "rows": []}))
    assert claim_output(js, "json") == js
    csv = tmp_path / "b.csv"
    csv.write_text("model,mode\nlenet,train\n")
    assert claim_output(csv, "csv", header="model,mode") == csv
    st = tmp_path / "w.safetensors"
    head = json.dumps({"__metadata__": {"cnnzoo.model_name": "lenet"}}).encode()
    st.write_bytes(struct.pack("<Q", len(head)) + head)
    assert claim_output(st, "safetensors") == st


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("photo.png", None, "png"),  # a PNG matplotlib made for the user, not cnnzoo
        ("notes.md", b"# my notes\n", "markdown"),
        ("data.json", b'{"mine": 1}', "json"),
        ("table.csv", b"a,b\n1,2\n", "csv"),
        ("model.onnx", b"\x08\x07 not ours", "onnx"),
        ("w.safetensors", b"\x02\x00\x00\x00\x00\x00\x00\x00{}", "safetensors"),
    ],
)
def test_a_foreign_file_is_refused_by_name_and_force_replaces_it(tmp_path, name, content, kind):
    path = tmp_path / name
    if content is None:
        _figure().savefig(path, format="png")
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(OutputError, match=rf"--x {path} exists and is not .* cnnzoo wrote: .*--force"):
        claim_output(path, kind, flag="--x", header="model,mode")
    assert path.read_bytes() == before
    assert claim_output(path, kind, force=True) == path


def test_never_a_directory_a_checkpoint_an_input_or_nothing_even_with_force(tmp_path):
    (tmp_path / "d").mkdir()
    torch.save({"w": torch.zeros(2)}, tmp_path / "last.pt")
    shutil.copy(tmp_path / "last.pt", tmp_path / "weights.png")  # a checkpoint under another name
    cases = [
        (tmp_path / "d", "is a directory"),
        (tmp_path / "last.pt", "is a checkpoint"),
        (tmp_path / "weights.png", "is a checkpoint"),
        ("", "is empty"),
        ("  ", "is empty"),
    ]
    for path, fragment in cases:
        with pytest.raises(OutputError, match=fragment):
            claim_output(path, "png", force=True)
    src = tmp_path / "in.png"
    save_figure(_figure(), src)
    with pytest.raises(OutputError, match="is an input of this command"):
        claim_output(src, "png", force=True, inputs=[tmp_path / "." / "in.png"])


def test_every_figure_carries_the_cnnzoo_png_chunk(tmp_path):
    png = save_figure(_figure(), tmp_path / "f.png").read_bytes()
    assert b"tEXtSoftware\x00cnnzoo " in png[:200]


# ------------------------------------------------------------------------------------------------
# new run directories
# ------------------------------------------------------------------------------------------------
def test_a_new_run_goes_only_into_an_absent_or_empty_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match='--out "" is empty'):
        new_run_dir("lenet", "")
    assert sorted(os.listdir(tmp_path)) == []
    assert new_run_dir("lenet", tmp_path / "fresh").is_dir()
    (tmp_path / "empty").mkdir()
    assert new_run_dir("lenet", tmp_path / "empty") == tmp_path / "empty"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match=f"--out {mine} is not empty and is not a cnnzoo run .*thesis.tex.*empty it"):
        new_run_dir("lenet", mine)
    (mine / "thesis.tex").unlink()
    (mine / "config.json").write_text('{"my": "config"}')  # a user's config.json is not a run's
    with pytest.raises(OutputError, match="is not a cnnzoo run"):
        new_run_dir("lenet", mine)
    killed = tmp_path / "killed"  # a run killed before its first checkpoint: started again in place
    killed.mkdir()
    (killed / "config.json").write_text(json.dumps({"config": {}, "model": {}, "environment": {}}))
    (killed / LOCK_NAME).write_text("pid 999999\nstarted then\n")
    assert new_run_dir("lenet", killed) == killed
    (killed / "last.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="already holds a run: resume it with --resume"):
        new_run_dir("lenet", killed)


# ------------------------------------------------------------------------------------------------
# the lock
# ------------------------------------------------------------------------------------------------
_HOLDER = """
import sys, time
sys.path.insert(0, {src!r})
from cnnzoo.base.rundirs import RunLock
RunLock({d!r}).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def _hold_in_another_process(d: Path) -> subprocess.Popen:
    code = _HOLDER.format(src=str(SRC), d=str(d))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_is_refused_while_one_holds_the_lock_and_a_killed_ones_is_taken_over(
    tmp_path, trained_run, fake_train_data, capsys
):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    proc = _hold_in_another_process(run)
    try:
        holder = lock_holder(run)
        assert holder is not None and holder["pid"] == str(proc.pid)
        with pytest.raises(RunLockedError, match=rf"{run} is being trained by process {proc.pid} \(started "):
            RunLock(run).acquire()
        for argv in (["--out", str(run)], ["--resume", str(run), "--epochs", "5"]):
            cmd = ["train", *(["lenet_bn"] if argv[0] == "--out" else []), *argv, "--quiet"]
            assert main(cmd) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"is being trained by process {proc.pid}" in err, err
            assert err.rstrip().endswith("wait for it to finish or stop it"), err
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (run / LOCK_NAME).exists()  # left behind by kill -9 ...
    assert lock_holder(run) is None  # ... and recognised as stale
    check_unlocked(run)
    with RunLock(run) as lock:
        assert lock.held and f"pid {os.getpid()}" in (run / LOCK_NAME).read_text()
    assert not (run / LOCK_NAME).exists()


def test_training_holds_the_lock_until_it_ends_whatever_the_outcome(tmp_path, blocks, test_models):
    seen = []

    class Probe:
        def __getattr__(self, name):  # every Callback hook: record whether the directory is locked
            return lambda state, *a: seen.append(lock_holder(tmp_path / "r"))

    overrides = {"epochs": 1, "batch_size": 128, "device": "cpu"}
    training = start_training(new_run("tiny_test_net", overrides=overrides, data=blocks), out=tmp_path / "r")
    assert lock_holder(tmp_path / "r")["pid"] == str(os.getpid())
    training.train(callbacks=[Probe()])
    assert seen and all(h is not None and h["pid"] == str(os.getpid()) for h in seen)
    assert lock_holder(tmp_path / "r") is None and not (tmp_path / "r" / LOCK_NAME).exists()

    class Boom:
        def __getattr__(self, name):
            def hook(state, *a):
                raise RuntimeError("boom")

            return hook

    again = start_training(new_run("tiny_test_net", overrides=overrides, data=blocks), out=tmp_path / "s")
    with pytest.raises(RuntimeError, match="boom"):
        again.train(callbacks=[Boom()])
    assert lock_holder(tmp_path / "s") is None
    RunLock(tmp_path / "s").acquire().release()


def test_a_slow_training_in_another_process_refuses_a_second_one(tmp_path):
    from helpers_train import run_cli, start_cli

    out = tmp_path / "run"
    slow = ("--epochs", "50", "--batch-size", "8", "--device", "cpu")  # ~2.6 s an epoch: killed long before the end
    proc = start_cli("train", "slow_test_net", *slow, "--out", str(out), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while lock_holder(out) is None:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        second = run_cli("train", "slow_test_net", "--epochs", "1", "--device", "cpu", "--out", str(out), cwd=tmp_path)
        assert second.returncode == 2 and f"is being trained by process {proc.pid}" in second.stderr, second.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()


# ------------------------------------------------------------------------------------------------
# leaderboard rows keyed by what was measured
# ------------------------------------------------------------------------------------------------
def _seeds(row: dict, n: int) -> dict:
    epochs = row["runs"][0]["epochs"]
    return {**row, "seeds": list(range(n)), "runs": [{**row["runs"][0], "seed": s, "epochs": epochs} for s in range(n)]}


def test_a_smaller_measurement_never_replaces_a_larger_one_unless_asked(tmp_path):
    big = _seeds(made_up_row(acc=0.90), 3)
    small = _seeds(made_up_row(acc=0.95), 1)
    with pytest.raises(ConfigError, match=r"lb.json has resnet18@32 \(fast, 3 epochs, cpu .*over 3 seeds.*--replace"):
        board.merge_rows([big], [small], source="lb.json")
    assert board.merge_rows([big], [small], replace=True)[0]["test_acc_mean"] == 0.95
    assert board.merge_rows([small], [big])[0]["test_acc_mean"] == 0.90  # a larger one does replace
    longer = {**made_up_row(acc=0.97), "epochs_planned": 10}
    longer["runs"] = [{**r, "epochs": 10} for r in longer["runs"]]
    both = board.merge_rows([big], [longer])
    assert len(both) == 2 and {board.row_budget(r) for r in both} == {"3 epochs", "10 epochs"}
    timed = [{**made_up_row(), "budget_minutes": 5.0}, {**made_up_row(), "budget_minutes": 5.0}]
    timed[1]["runs"] = [{**r, "epochs": 2} for r in timed[1]["runs"]]
    with pytest.raises(ConfigError, match="with 3 epochs per seed, this run with 2"):
        board.merge_rows(timed[:1], timed[1:])
    legacy = {k: v for k, v in made_up_row().items() if k != "epochs_planned"}  # keyed by its runs' epochs
    assert board.row_key(legacy) == board.row_key(made_up_row())


def test_the_leaderboard_cli_refuses_the_smaller_row_and_keeps_the_files(tmp_path, capsys):
    md = tmp_path / "lb.md"
    board.update_leaderboard(md, [_seeds(made_up_row(), 3)])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ConfigError, match="--replace"):
        board.update_leaderboard(md, [_seeds(made_up_row(acc=0.99), 1)])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert main(["leaderboard", "--redraw", "--output", str(md)]) == 0  # its own files are rewritable
    md.write_text("# my page\n")
    assert main(["leaderboard", "--redraw", "--output", str(md)]) == 2
    assert "pass --force to replace it" in capsys.readouterr().err
    assert main(["leaderboard", "--redraw", "--force", "--output", str(md)]) == 0


def test_a_rerun_over_fewer_seeds_is_refused_before_it_trains(tmp_path, fake_train_data, monkeypatch, capsys):
    argv = ["leaderboard", "lenet_bn", "--epochs", "1", "--batch-size", "32", "--lr", "0.1", "--device", "cpu"]
    out = ["--quiet", "--output", str(tmp_path / "lb.md")]
    assert main([*argv, "--seeds", "0", "1", *out]) == 0
    before = (tmp_path / "lb.json").read_bytes()
    trained = []
    monkeypatch.setattr(lb, "fit", lambda *a, **k: trained.append(1) or [])
    monkeypatch.setattr(lb, "estimate_epoch_seconds", lambda *a, **k: trained.append(1) or 1.0)
    capsys.readouterr()
    assert main([*argv, "--seeds", "0", *out]) == 2
    assert "over 2 seeds, this run over 1: pass --replace" in capsys.readouterr().err
    assert trained == [] and (tmp_path / "lb.json").read_bytes() == before


# ------------------------------------------------------------------------------------------------
# the lock is cnnzoo's own file: never a link, a FIFO, a device or somebody else's file
# ------------------------------------------------------------------------------------------------
def _hostile_lock(kind: str, run: Path, victim: Path) -> None:
    lock = run / LOCK_NAME
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "dangling symlink":
        lock.symlink_to(victim.with_name("created-outside"))
    elif kind == "hard link":
        os.link(victim, lock)
    elif kind == "fifo":
        os.mkfifo(lock)
    elif kind == "foreign file":
        lock.write_text("my notes, not a lock\n")


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "hard link", "fifo", "foreign file"])
def test_a_lock_that_is_not_cnnzoos_own_file_is_refused_and_nothing_of_the_users_is_touched(kind, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "thesis.txt"
    victim.write_text("three years of work\n")
    _hostile_lock(kind, run, victim)
    with pytest.raises(ConfigError, match=r"\.lock (is|has|holds) .*(remove it|move it away)"):
        RunLock(run).acquire()
    assert victim.read_text() == "three years of work\n"
    assert not victim.with_name("created-outside").exists()
    assert lock_holder(run) is None  # the studio's question does not hang on a FIFO either
    if kind == "foreign file":
        assert (run / LOCK_NAME).read_text() == "my notes, not a lock\n"


def test_resuming_a_run_whose_lock_is_a_link_to_a_users_file_is_one_line(trained_run, tmp_path, capsys):
    import shutil

    from cnnzoo.cli import main

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    victim = tmp_path / "thesis.txt"
    victim.write_text("three years of work\n")
    (run / LOCK_NAME).symlink_to(victim)
    assert main(["train", "--resume", str(run), "--epochs", "4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "symbolic link" in err and err.count("\n") == 1
    assert victim.read_text() == "three years of work\n"
