"""Issue 13, "one line, always": Ctrl-C and SIGTERM anywhere (real signals to real processes), running out of
memory, a stalled data-parallel rank and a checkpoint asking for more memory than there is each end with
one line and the exit status the rules give (130 for Ctrl-C, 143 for SIGTERM, 2 for the rest)."""

from __future__ import annotations

import datetime
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cnnzoo.cli.train
from cnnzoo.base.errors import CheckpointError, ConfigError
from cnnzoo.base.failures import is_collective_timeout
from cnnzoo.cli import main
from cnnzoo.train.checkpoint import model_from_checkpoint
from cnnzoo.train.distributed import timeout_from_env
from helpers_train import TESTS_DIR, cli_env, start_cli, wait_for_rows

TRAIN = ["train", "slow_test_net", "--epochs", "4", "--device", "cpu", "--quiet"]


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    return lines[-1] if lines else ""


# ------------------------------------------------------------------------------------------------
# signals during training
# ------------------------------------------------------------------------------------------------
def test_sigterm_during_training_saves_a_checkpoint_prints_the_resume_command_and_exits_143(tmp_path):
    out = tmp_path / "run"
    proc = start_cli(*TRAIN, "--batch-size", "64", "--out", str(out), cwd=tmp_path, n_train=1024)
    wait_for_rows(out, 1, proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "terminated (SIGTERM): finishing the current step" in stderr and "Traceback" not in stderr
    assert f"resume with: cnnzoo train --resume {out}" in stdout
    assert (out / "last.pt").exists()


def _wait_for_training(out: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (out / "config.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    time.sleep(1.0)  # into the first epoch (128 steps of >= 40 ms)


def test_a_double_ctrl_c_before_the_first_epoch_says_nothing_was_saved(tmp_path):
    out = tmp_path / "run"
    proc = start_cli(*TRAIN, "--batch-size", "8", "--out", str(out), cwd=tmp_path, n_train=1024)
    _wait_for_training(out, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    last = _one_line(stderr)
    # Either the second Ctrl-C aborted the first epoch (nothing on disk), or (on a loaded machine) it came once
    # the first had stopped the step and saved the mid-epoch checkpoint, which the line then names; or it came
    # after the first Ctrl-C's stop had finished, and the run's own closing lines (stdout) name the checkpoint.
    if (out / "last.pt").exists() and last.startswith("aborted"):
        assert f"the last checkpoint is in {out / 'last.pt'}: resume with: cnnzoo train --resume {out}" in last
    elif (out / "last.pt").exists():
        assert "interrupted: finishing the current step" in last and f"cnnzoo train --resume {out}" in stdout
    else:
        assert "nothing was saved" in last and "start again with the same command" in last, stderr
    assert "completed epoch" not in stderr


def test_a_double_sigterm_aborts_with_143(tmp_path):
    out = tmp_path / "run"
    proc = start_cli(*TRAIN, "--batch-size", "8", "--out", str(out), cwd=tmp_path, n_train=1024)
    _wait_for_training(out, proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    # Either the second signal aborted the step, or (on a loaded machine) it came once the first had already
    # stopped the run and saved the checkpoint, whose resume command is then printed (stdout).
    assert "aborted" in _one_line(stderr) or "resume with" in stdout, (stdout, stderr)


# ------------------------------------------------------------------------------------------------
# signals outside the epoch loop (here: while the data are being read)
# ------------------------------------------------------------------------------------------------
_SLOW_DATA_BOOT = """
import signal, sys, time
# Ctrl-C as an interactive shell delivers it: a test runner's worker may pass on SIGINT ignored or blocked, which a
# child inherits (and which, in a real shell, a background job gets too): this process starts as a terminal's would.
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT, signal.SIGTERM])
sys.path.insert(0, {tests!r})
import helpers_train
helpers_train.register_test_models()
import cnnzoo.data
def slow(root=None, download=True):
    print("loading", flush=True)
    time.sleep(60)
cnnzoo.data.load_fashion_mnist = slow
from cnnzoo.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("sig", "status", "words"), [(signal.SIGINT, 130, "interrupted (Ctrl-C)"),
                                                       (signal.SIGTERM, 143, "terminated (SIGTERM)")])  # fmt: skip
def test_a_signal_while_loading_data_is_one_line(tmp_path, sig, status, words):
    boot = _SLOW_DATA_BOOT.format(tests=str(TESTS_DIR))
    argv = [sys.executable, "-c", boot, "train", "tiny_test_net", "--out", str(tmp_path / "r")]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "loading"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == status, stderr
    assert stderr.strip().count("\n") == 0 and words in stderr and "`cnnzoo train`" in stderr, stderr


def test_main_restores_the_sigterm_handler():
    before = signal.getsignal(signal.SIGTERM)
    main(["models"])
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_interrupted_command_called_in_process_leaves_the_signal_handlers_as_they_were(monkeypatch, capsys):
    """main(argv) in a process that goes on (a test runner, a notebook) must not leave Ctrl-C ignored: every child
    process started afterwards would inherit it, and Ctrl-C could not stop them."""

    def interrupted(threads):
        raise KeyboardInterrupt

    sigint, sigterm = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cnnzoo.cli.train, "set_threads", interrupted)
    assert main(["train", "lenet_bn"]) == 130
    assert "interrupted (Ctrl-C)" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is sigint and signal.getsignal(signal.SIGTERM) is sigterm


# ------------------------------------------------------------------------------------------------
# resources
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "exc",
    [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB"), MemoryError(),
     RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")],
)  # fmt: skip
def test_out_of_memory_is_one_line_suggesting_a_smaller_batch(exc, monkeypatch, capsys):
    def boom(threads):
        raise exc

    monkeypatch.setattr(cnnzoo.cli.train, "set_threads", boom)  # what cnnzoo train calls first
    assert main(["train", "lenet_bn"]) == 2
    err = capsys.readouterr().err
    assert err == "error: out of memory while running `cnnzoo train`: try a smaller --batch-size or --input-size\n"


def test_other_runtime_errors_keep_their_traceback(monkeypatch):
    def boom(threads):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cnnzoo.cli.train, "set_threads", boom)  # what cnnzoo train calls first
    with pytest.raises(RuntimeError, match="a bug"):
        main(["train", "lenet_bn"])


def test_a_stalled_rank_is_one_line(monkeypatch, capsys):
    error = getattr(torch.distributed, "DistBackendError", RuntimeError)

    def boom(threads):
        raise error("[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(OpType=ALLREDUCE) ran for "
                    "1800000 milliseconds before timing out.\nmore")  # fmt: skip

    monkeypatch.setattr(cnnzoo.cli.train, "set_threads", boom)  # what cnnzoo train calls first
    assert main(["train", "lenet_bn"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: a data-parallel rank stopped answering") and err.count("\n") == 1
    assert "--dist-timeout SECONDS" in err
    assert is_collective_timeout(RuntimeError("Timed out waiting 1800000ms for recv operation (gloo)"))
    assert not is_collective_timeout(RuntimeError("shape mismatch"))


def test_the_dist_timeout_reaches_the_process_group(monkeypatch):
    assert timeout_from_env({}) == datetime.timedelta(seconds=1800)
    assert timeout_from_env({"CNNZOO_DIST_TIMEOUT": "12.5"}) == datetime.timedelta(seconds=12.5)
    with pytest.raises(ConfigError, match="not a number of seconds"):
        timeout_from_env({"CNNZOO_DIST_TIMEOUT": "soon"})
    seen = {}
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: seen.update(kw))
    from cnnzoo.train.distributed import from_env

    # the value is handed down as an argument (the CLI reads --dist-timeout or the variable once)
    ddp = from_env({"RANK": "0", "WORLD_SIZE": "2"}, timeout=datetime.timedelta(seconds=42))
    ddp.start(torch.device("cpu"))
    assert seen["timeout"] == datetime.timedelta(seconds=42)
    assert from_env({"RANK": "0", "WORLD_SIZE": "2"}).timeout == datetime.timedelta(seconds=1800)


def test_a_checkpoint_asking_for_terabytes_is_refused_before_allocating(test_models):
    state = {"0.weight": torch.zeros(1)}
    ckpt = {
        "model_name": "tiny_test_net",
        "model_kwargs": {"width": 10**10},
        "model_state": state,
        "path": "stranger.pt",
    }
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=r"stranger.pt: model 'tiny_test_net' .* needs [\d,.]+ GiB, more than"):
        model_from_checkpoint(ckpt)
    assert time.monotonic() - start < 5
