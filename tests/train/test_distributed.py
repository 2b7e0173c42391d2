"""Data-parallel training: torchrun + DDP on 2 CPU processes (gloo) equals one process with the same global batch.

The launch test is the issue's CI check: ``python -m torch.distributed.run --nproc_per_node=2`` trains the
sigmoid LeNet (no BatchNorm, no dropout, so the two runs are comparable weight for weight) on the test-made
blocks data; its weights must equal a one-process run's within 1e-5, and exactly one run directory must
appear. It then resumes each run under the other world size and checks the two continuations agree too.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch
from torch import nn

import helpers_train
from cnnzoo.base.devices import setup_device
from cnnzoo.base.errors import ConfigError
from cnnzoo.models.registry import create_model
from cnnzoo.train.checkpoint import load_checkpoint
from cnnzoo.train.distributed import Distributed, from_env, sync_batchnorm
from cnnzoo.train.loop import make_batches
from cnnzoo.train.recipes import resolve_config
from helpers_train import cli_env, run_cli

TRAIN = ["train", "lenet", "--recipe", "d2l", "--batch-size", "64", "--lr", "0.9", "--device", "cpu", "--quiet"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, cwd, nproc: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    boot = cwd / "boot.py"
    if not boot.exists():
        boot.write_text(helpers_train._BOOT.format(tests=str(helpers_train.TESTS_DIR), n_train=512, n_test=256))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", f"--nproc_per_node={nproc}"]
    launcher += ["--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    return subprocess.run(
        [*launcher, str(boot), *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout
    )


def weights(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.pt")["model_state"]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def test_two_gloo_processes_train_the_same_weights_as_one_and_write_one_run_directory(tmp_path):
    ddp_cwd, single_cwd = tmp_path / "ddp", tmp_path / "single"
    ddp_cwd.mkdir()
    single_cwd.mkdir()
    done = torchrun(*TRAIN, "--epochs", "1", cwd=ddp_cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = list((ddp_cwd / "runs").iterdir())
    assert len(runs) == 1, runs  # rank 0 only
    assert [p for p in ddp_cwd.iterdir() if p.name not in ("runs", "boot.py")] == []
    ddp_run = runs[0]
    assert done.stdout.count("examples/sec on cpu") == 1  # rank 0 only prints

    single = single_cwd / "run"
    done = run_cli(*TRAIN, "--epochs", "1", "--out", str(single), cwd=single_cwd)
    assert done.returncode == 0, done.stderr
    assert max_difference(weights(ddp_run), weights(single)) < 1e-5
    # the all-reduced epoch metrics are the whole world's: every training image counted once
    ddp_row = load_checkpoint(ddp_run / "last.pt")["train"]["history"][0]
    single_row = load_checkpoint(single / "last.pt")["train"]["history"][0]
    assert ddp_row["train_acc"] == single_row["train_acc"] and ddp_row["test_acc"] == single_row["test_acc"]
    assert ddp_row["train_loss"] == pytest.approx(single_row["train_loss"], rel=1e-5)

    # A checkpoint resumes under another world size: the 1-process run continues on 2 processes and the
    # 2-process run on 1; both second epochs must agree.
    done = torchrun("train", "--resume", str(single), "--epochs", "2", "--quiet", cwd=ddp_cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_cli("train", "--resume", str(ddp_run), "--epochs", "2", "--quiet", cwd=single_cwd)
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(single / "last.pt")["train"]["epoch"] == 2
    assert max_difference(weights(ddp_run), weights(single)) < 1e-5
    assert len(list((ddp_cwd / "runs").iterdir())) == 1


# ------------------------------------------------------------------------------------------------
# the pieces, in one process
# ------------------------------------------------------------------------------------------------
def test_from_env_reads_torchrun_variables():
    assert from_env({}) is None
    assert from_env({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}) is None  # one process: no DDP
    d = from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (d.rank, d.local_rank, d.world_size, d.is_main) == (3, 1, 4, False)
    with pytest.raises(ConfigError, match="RANK=5 is outside WORLD_SIZE=2"):
        from_env({"RANK": "5", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="not whole numbers"):
        from_env({"RANK": "x", "WORLD_SIZE": "2"})


def test_the_global_batch_must_divide_over_the_ranks():
    d = Distributed(rank=0, local_rank=0, world_size=3)
    config = resolve_config("lenet", "d2l", {"batch_size": 256, "device": "cpu"})
    with pytest.raises(ConfigError, match=r"--batch-size 256 is the global batch.*use e\.g\. --batch-size 258"):
        d.device_for(config)
    assert Distributed(rank=1, local_rank=1, world_size=2).device_for(config) == "cpu"
    mps = resolve_config("lenet", "d2l", {"batch_size": 256, "device": "mps"})
    with pytest.raises(ConfigError, match=r"CUDA \(NCCL\) or the CPU \(gloo\)"):
        Distributed(rank=0, local_rank=0, world_size=2).device_for(mps)


def test_rank_shards_of_a_step_make_up_the_single_process_batch(blocks):
    config = resolve_config("lenet", "d2l", {"batch_size": 64, "device": "cpu", "normalize": False})
    setup = setup_device("cpu", "fp32", "no")
    whole = make_batches(blocks, config, split="train", setup=setup, resize=28)
    shards = [make_batches(blocks, config, split="train", setup=setup, resize=28, rank=r, world_size=2) for r in (0, 1)]
    for b in (whole, *shards):
        b.set_epoch(3)
    assert len(whole) == len(shards[0]) == len(shards[1]) == 8  # same steps per epoch: the schedule is unchanged
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *shards):
        assert x0.shape[0] == x1.shape[0] == 32
        key = lambda images, labels: sorted(zip(images.flatten(1).sum(1).tolist(), labels.tolist()))  # noqa: E731
        assert key(torch.cat([x0, x1]), torch.cat([y0, y1])) == key(x, y)


def test_agreed_stop_polls_the_flag_every_n_calls():
    flag = {"stop": False}
    should_stop = Distributed(rank=0, local_rank=0, world_size=2).agreed_stop(
        lambda: flag["stop"], torch.device("cpu"), every=3
    )
    assert [should_stop() for _ in range(3)] == [False, False, False]
    flag["stop"] = True
    assert [should_stop() for _ in range(3)] == [False, False, True]  # only on the 3rd call, on every rank


def test_sync_bn_is_refused_where_it_would_be_wrong():
    cuda = torch.device("cuda")
    with pytest.raises(ConfigError, match="GPUs only"):
        sync_batchnorm(create_model("lenet_bn"), torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"lenet_bn_scratch uses cnnzoo's hand-written BatchNorm.*lenet_bn"):
        sync_batchnorm(create_model("lenet_bn_scratch"), cuda)
    with pytest.raises(ConfigError, match="lenet has no BatchNorm"):
        sync_batchnorm(create_model("lenet"), cuda)
    converted = sync_batchnorm(create_model("lenet_bn"), cuda)  # the conversion itself needs no GPU
    assert any(isinstance(m, nn.SyncBatchNorm) for m in converted.modules())
    assert not any(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) for m in converted.modules())
    assert converted.model_name == "lenet_bn"  # the checkpoint still knows what it holds
    assert set(converted.state_dict()) == set(create_model("lenet_bn").state_dict())


def test_sync_bn_on_the_cpu_fails_before_training(fake_train_data, tmp_path, capsys, monkeypatch):
    from cnnzoo.cli import main

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(Distributed, "start", lambda self, device: None)  # no process group in this test
    argv = ["train", "lenet_bn", "--sync-bn", "--device", "cpu", "--epochs", "1", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "error: --sync-bn: PyTorch's SyncBatchNorm runs on GPUs only" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
