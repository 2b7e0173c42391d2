"""Epoch snapshots (cnnzoo.run.snapshots): what a run keeps, how it thins them, and what the studio reads back."""

from __future__ import annotations

import itertools
import shutil

import pytest
import torch

from cnnzoo.base.errors import CheckpointError
from cnnzoo.cli import main
from cnnzoo.models.registry import create_model
from cnnzoo.run import resume_run
from cnnzoo.run.snapshots import (
    BUDGET_BYTES,
    FOLDER,
    keep_count,
    list_snapshots,
    load_snapshot,
    snapshot_bytes,
    thin,
)
from cnnzoo.train.checkpoint import load_checkpoint

TRAIN = ["train", "lenet_bn", "--batch-size", "64", "--lr", "0.2", "--augment", "none", "--quiet"]


def _touch(run_dir, epochs):
    (run_dir / FOLDER).mkdir(parents=True, exist_ok=True)
    for e in epochs:
        (run_dir / FOLDER / f"epoch-{e:03d}.safetensors").write_bytes(b"x")


def _kept(run_dir):
    return sorted(int(p.stem.split("-")[1]) for p in (run_dir / FOLDER).glob("epoch-*.safetensors"))


def test_a_finished_run_has_a_snapshot_of_every_epoch_with_that_epochs_accuracy(trained_run):
    found = list_snapshots(trained_run)
    assert [s.epoch for s in found] == [1, 2, 3]
    history = load_checkpoint(trained_run / "last.pt")["train"]["history"]
    for snap, row in zip(found, history):
        assert snap.test_accuracy == pytest.approx(row["test_acc"])
        assert snap.val_accuracy == pytest.approx(row["val_acc"])
        assert len(snap.per_class) == 10 and all(0 <= a <= 1 for a in snap.per_class)
    # the per-class figures of the last epoch are the final model's on the test split (per_class.csv)
    rows = (trained_run / "per_class.csv").read_text().splitlines()[1:]
    assert [round(a, 4) for a in found[-1].per_class] == [round(float(r.split(",")[4]), 4) for r in rows]


def test_the_last_snapshot_is_the_last_checkpoint_in_half_precision(trained_run):
    final = load_checkpoint(trained_run / "last.pt")["model_state"]
    snap = load_snapshot(trained_run, 3)
    assert set(snap) == set(final)
    for name, value in final.items():
        if value.is_floating_point():
            assert torch.allclose(snap[name], value.float(), rtol=1e-3, atol=1e-4), name
        else:
            assert torch.equal(snap[name], value)
    assert not torch.allclose(load_snapshot(trained_run, 1)["0.weight"], final["0.weight"])  # epoch 1 differs


def test_a_snapshot_it_does_not_have_is_one_clear_error(trained_run):
    with pytest.raises(CheckpointError, match=r"no snapshot of epoch 7 \(it keeps: 1, 2, 3\)"):
        load_snapshot(trained_run, 7)


def test_auto_keeps_every_epoch_of_a_small_network_and_a_bounded_number_of_a_large_one():
    lenet = snapshot_bytes(create_model("lenet_bn"))
    assert lenet < 200_000 and keep_count("auto", lenet) > 1000  # every epoch of any run
    with torch.device("meta"):
        resnet = snapshot_bytes(create_model("resnet18"))
        alexnet = snapshot_bytes(create_model("alexnet"))
    assert 20e6 < resnet < 25e6 and keep_count("auto", resnet) == BUDGET_BYTES // resnet == 11
    assert keep_count("auto", alexnet) == 2  # at least the first and the newest
    assert keep_count("all", alexnet) is None and keep_count("none", lenet) == 0 and keep_count("5", lenet) == 5


def test_thinning_keeps_the_first_and_the_newest_and_spreads_the_rest(tmp_path):
    _touch(tmp_path, range(1, 11))
    assert thin(tmp_path, None) == [] and _kept(tmp_path) == list(range(1, 11))
    thin(tmp_path, 4)
    kept = _kept(tmp_path)
    assert len(kept) == 4 and kept[0] == 1 and kept[-1] == 10
    gaps = [b - a for a, b in itertools.pairwise(kept)]
    assert max(gaps) - min(gaps) <= 2  # spread, not bunched at one end
    _touch(tmp_path, [11])  # a new epoch: still 4, the newest among them
    thin(tmp_path, 4)
    assert len(_kept(tmp_path)) == 4 and _kept(tmp_path)[-1] == 11 and _kept(tmp_path)[0] == 1


def test_snapshots_none_keeps_none_and_n_keeps_at_most_n(tmp_path, fake_train_data):
    assert main([*TRAIN, "--epochs", "1", "--snapshots", "none", "--out", str(tmp_path / "a")]) == 0
    assert list_snapshots(tmp_path / "a") == []
    assert main([*TRAIN, "--epochs", "3", "--snapshots", "2", "--out", str(tmp_path / "b")]) == 0
    assert [s.epoch for s in list_snapshots(tmp_path / "b")] == [1, 3]


@pytest.mark.parametrize("value", ["1", "0", "some", "-3", "2.5"])
def test_a_bad_snapshots_value_is_one_line_exit_2(value, tmp_path, capsys, fake_train_data):
    assert main([*TRAIN, "--epochs", "1", "--snapshots", value, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --snapshots {value}: give auto, all, none or how many") and "\n" not in err
    assert not (tmp_path / "r").exists()


def test_resume_goes_on_adding_snapshots(trained_run, tmp_path, fake_train_data):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    resume_run(run_dir, overrides={"epochs": 4, "device": "cpu"}).fit(out=True)
    assert [s.epoch for s in list_snapshots(run_dir)] == [1, 2, 3, 4]


def test_a_snapshot_a_kill_cut_off_is_written_when_the_run_resumes(trained_run, tmp_path, fake_train_data):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    (run_dir / FOLDER / "epoch-003.safetensors").unlink()  # killed between last.pt and its snapshot
    (run_dir / FOLDER / ".epoch-003.safetensors.1234.tmp").write_bytes(b"half")
    resume_run(run_dir, overrides={"epochs": 4, "device": "cpu"}).fit(out=True)
    found = list_snapshots(run_dir)
    assert [s.epoch for s in found] == [1, 2, 3, 4] and not list((run_dir / FOLDER).glob(".*"))
    assert found[2].test_accuracy is not None and found[2].per_class is None  # the confusion matrix was not kept
    final = load_checkpoint(trained_run / "last.pt")["model_state"]["0.weight"]
    assert torch.allclose(load_snapshot(run_dir, 3)["0.weight"], final, atol=1e-3)


def test_a_file_named_snapshots_in_the_run_is_left_alone(tmp_path, fake_train_data):
    out = tmp_path / "r"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out)]) == 0
    shutil.rmtree(out / FOLDER)
    (out / FOLDER).write_text("mine")  # not cnnzoo's: never replaced, and the run goes on without snapshots
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    assert (out / FOLDER).read_text() == "mine" and list_snapshots(out) == []
