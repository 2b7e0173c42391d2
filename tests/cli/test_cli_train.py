"""`cnnzoo train / eval / plot` end to end: run directory, exact resume after kill -9 and Ctrl-C, errors."""

from __future__ import annotations

import csv
import json
import re
import signal

import pytest

from cnnzoo.cli import main
from cnnzoo.run import environment_info
from cnnzoo.train.history import TIMING_KEYS
from helpers_train import run_cli, start_cli, wait_for_rows

RUN_FILES = {
    "config.json",
    "metrics.csv",
    "metrics.jsonl",
    "curves.png",
    "last.pt",
    "best.pt",
    "confusion.png",
    "per_class.csv",
    "report.md",
    "top_losses.png",
    "explained.png",
    "snapshots",
}
D2L_LINES = re.compile(r"loss \d\.\d{3}, train acc \d\.\d{3}, test acc \d\.\d{3}\n\d+\.\d examples/sec on cpu\n$")


def metrics_without_timing(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in csv.DictReader(f)]


def test_one_epoch_smoke_run_through_main(fake_train_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "lenet_bn", "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert D2L_LINES.search(stdout), stdout  # d2l's two closing lines, last
    assert re.search(r"^epoch 1/1  loss ", stdout, re.M)
    assert {p.name for p in out.iterdir()} == RUN_FILES
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["model"] == "lenet_bn" and config["config"]["epochs"] == 1
    assert config["seed"] == 0 and config["environment"]["torch"] and "cpu" in config["environment"]["device"]
    # a tenth of the 512 training images held out for validation, stratified over the ten classes
    assert (config["data"]["train_images"], config["data"]["val_images"]) == (461, 51)
    assert "461 training + 51 validation images" in stdout
    assert re.search(r"^best\.pt: epoch 1, the best validation accuracy", stdout, re.M)
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["epoch"] == 1
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    for name in ("curves.png", "confusion.png", "per_class.csv", "metrics.csv", "Total params"):
        assert name in report
    with open(out / "per_class.csv", newline="") as f:
        assert [r["class"] for r in csv.DictReader(f)] == fake_train_data.classes


def test_eval_reproduces_the_runs_test_accuracy(fake_train_data, trained_run, tmp_path, capsys):
    last = json.loads((trained_run / "metrics.jsonl").read_text().splitlines()[-1])
    png = tmp_path / "cm.png"
    assert main(["eval", str(trained_run), "--json", "--png", str(png)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_acc"] == last["test_acc"]  # exactly: same weights, same batches, same device
    assert result["epoch"] == 3 and sum(map(sum, result["confusion"])) == 256
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["eval", str(trained_run / "best.pt"), "--png", str(png)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^test acc \d\.\d{4} \(\d+/256\)", text, re.M)
    assert all(name in text for name in fake_train_data.classes)


def test_plot_overlays_runs(trained_run, tmp_path, capsys):
    out = tmp_path / "compare.png"
    assert main(["plot", str(trained_run), str(trained_run), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and "2 runs" in capsys.readouterr().out
    assert main(["plot", str(tmp_path), "--out", str(out)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    stopped = tmp_path / "stopped"  # runs/* with a run that stopped before its first epoch: it is skipped
    stopped.mkdir()
    (stopped / "config.json").write_text("{}")
    assert main(["plot", str(trained_run), str(stopped), "--out", str(out), "--force"]) == 0
    captured = capsys.readouterr()
    assert (
        "1 runs" in captured.out
        and captured.err.strip() == f"skipped {stopped}: not a run directory with metrics (no metrics.jsonl rows yet)"
    )


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "lenet_bn", "--epochs", "0"], "--epochs 0: must be a positive whole number"),
        (["train", "lenet_bn", "--lr", "-1"], "--lr -1.0"),
        (["train", "lenet_bn", "--device", "cuda:7"], "--device cuda:7"),
        (["train", "lenett"], "unknown model 'lenett'"),
        (["train", "--resume", "/nonexistent/run"], "no such run directory"),
        (["eval", "/nonexistent/run.pt"], "no such run directory or checkpoint"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(fake_train_data, tmp_path, capsys, argv, fragment, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1


def test_resume_refuses_to_change_the_runs_hyperparameters(fake_train_data, trained_run, capsys):
    assert main(["train", "--resume", str(trained_run), "--lr", "0.5", "--epochs", "5"]) == 2
    assert "--lr cannot change when resuming" in capsys.readouterr().err
    assert main(["train", "--resume", str(trained_run)]) == 2
    assert "already finished 3 of 3 epochs: pass --epochs 8" in capsys.readouterr().err


def test_a_diverging_run_stops_with_a_clear_message(fake_train_data, tmp_path, capsys):
    argv = ["train", "lenet", "--optimizer", "sgd", "--schedule", "none", "--lr", "1e30", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the training loss became") and "lower learning rate" in err
    assert "no epoch finished" in err


TRAIN = ["train", "slow_test_net", "--epochs", "4", "--batch-size", "64", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The uninterrupted 4-epoch run the interrupted ones must match."""
    out = tmp_path_factory.mktemp("reference") / "run"
    done = run_cli(*TRAIN, "--out", str(out), cwd=out.parent, n_train=1024)
    assert done.returncode == 0, done.stderr
    return out


def test_a_run_killed_with_sigkill_after_epoch_2_resumes_to_the_same_result(reference_run, tmp_path):
    out = tmp_path / "run"
    proc = start_cli(*TRAIN, "--out", str(out), cwd=tmp_path, n_train=1024)
    wait_for_rows(out, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len((out / "metrics.jsonl").read_text().splitlines()) in (2, 3)  # epoch 3 may have finished too
    done = run_cli("train", "--resume", str(out), "--quiet", cwd=tmp_path, n_train=1024)
    assert done.returncode == 0, done.stderr
    assert metrics_without_timing(out) == metrics_without_timing(reference_run)
    assert D2L_LINES.search(done.stdout)


def test_ctrl_c_saves_a_checkpoint_prints_the_resume_command_and_exits_130(reference_run, tmp_path):
    out = tmp_path / "run"
    proc = start_cli(*TRAIN, "--out", str(out), cwd=tmp_path, n_train=1024)
    wait_for_rows(out, 1, proc)
    proc.send_signal(signal.SIGINT)  # during epoch 2: 16 steps of >= 40 ms each
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "finishing the current step" in stderr
    assert f"resume with: cnnzoo train --resume {out}" in stdout
    assert (out / "last.pt").exists()
    done = run_cli("train", "--resume", str(out), "--quiet", cwd=tmp_path, n_train=1024)
    assert done.returncode == 0, done.stderr
    assert metrics_without_timing(out) == metrics_without_timing(reference_run)
    assert json.loads((out / "config.json").read_text())["resumed"]


def test_environment_info_names_versions_and_device():
    info = environment_info("cpu (2 threads), fp32, NCHW")
    assert info["device"].startswith("cpu") and info["torch"] and info["python"] and info["cpu_count"] >= 1


@pytest.mark.slow
def test_one_epoch_on_real_fashion_mnist_reaches_85_percent(tmp_path, capsys):
    from cnnzoo.data.fashion_mnist import find_fashion_mnist

    if find_fashion_mnist() is None:
        pytest.skip("Fashion-MNIST is not installed: `make data` (or apt-get install dataset-fashion-mnist)")
    out = tmp_path / "run"
    argv = ["train", "lenet_bn", "--epochs", "1", "--lr", "0.5", "--batch-size", "64", "--augment", "none"]
    assert main([*argv, "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["test_acc"] >= 0.85, row
    assert D2L_LINES.search(capsys.readouterr().out)


@pytest.mark.killloop
def test_repeated_sigkill_at_random_moments_never_loses_or_changes_the_run(reference_run, tmp_path):
    """Kill -9 at random times (during start-up, training, evaluation, checkpoint writes) and resume
    until the run completes: the result must equal the uninterrupted run and every file must be whole."""
    import random

    rng = random.Random(4)
    out = tmp_path / "run"
    kills = 0
    while True:
        args = ["train", "--resume", str(out), "--quiet"] if (out / "last.pt").exists() else [*TRAIN, "--out", str(out)]
        proc = start_cli(*args, cwd=tmp_path, n_train=1024)
        try:
            # start-up alone takes ~3 s, so early kills land in start-up, training, evaluation or a write
            proc.wait(timeout=rng.uniform(1.5, 3.0 if kills == 0 else 5.0) if kills < 6 else 120)
        except Exception:
            proc.kill()
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0, proc.stderr.read()
        break
    assert kills >= 1  # the first attempt (start-up + 4 x 16 steps of >= 40 ms) outlives its <= 3 s
    assert metrics_without_timing(out) == metrics_without_timing(reference_run)
    assert not list(out.glob(".*.tmp")) and not list(out.glob("snapshots/.*.tmp"))
    assert {p.name for p in out.iterdir()} == RUN_FILES
