"""Checkpoints: plain data only, atomic writes, one-line errors, models rebuilt without flags."""

from __future__ import annotations

import os

import pytest
import torch

from cnnzoo import create_model
from cnnzoo.base.atomic import atomic_write, atomic_write_text
from cnnzoo.base.errors import CheckpointError
from cnnzoo.train.checkpoint import FORMAT, _require_plain, load_checkpoint, model_from_checkpoint, save_checkpoint


def test_a_run_checkpoint_loads_with_weights_only_and_rebuilds_the_model(trained_run):
    raw = torch.load(trained_run / "last.pt", weights_only=True)  # torch's own safe loader accepts it
    assert raw["format"] == FORMAT
    assert raw["model_name"] == "lenet_bn" and raw["model_kwargs"] == {"num_classes": 10, "in_channels": 1}
    pre = raw["preprocess"]
    assert pre["input_size"] == 28 and pre["in_channels"] == 1 and len(pre["classes"]) == 10
    assert len(pre["mean"]) == 1 and len(pre["std"]) == 1
    assert raw["train"]["epoch"] == 3 and len(raw["train"]["history"]) == 3
    assert set(raw["train"]["rng"]) >= {"torch", "numpy", "python"}
    model = model_from_checkpoint(load_checkpoint(trained_run / "last.pt"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, raw["model_state"][name]), name


def test_best_checkpoint_is_the_epoch_with_the_best_test_accuracy(trained_run):
    best = load_checkpoint(trained_run / "best.pt")
    history = best["train"]["history"]
    assert max(r["test_acc"] for r in history) == history[-1]["test_acc"]
    last = load_checkpoint(trained_run / "last.pt")["train"]["history"]
    assert max(r["test_acc"] for r in last) == history[-1]["test_acc"]


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "last.pt"
    atomic_write_text(target, "old")

    def broken(f):
        f.write(b"half of the new")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["last.pt"]  # no temp file left behind


class _Payload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _write(tmp_path, name, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda tmp: tmp / "nope.pt", "no such checkpoint file"),
        (lambda tmp: tmp, "is a directory"),
        (lambda tmp: _write(tmp, "empty.pt", b""), "the file is empty"),
        (lambda tmp: _write(tmp, "notes.pt", b"just some text\n"), "not a PyTorch checkpoint file"),
    ],
    ids=["missing", "directory", "empty", "text"],
)
def test_unloadable_files_are_one_line_checkpoint_errors(tmp_path, make, fragment):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(make(tmp_path))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_a_truncated_checkpoint_is_reported_as_such(trained_run, tmp_path):
    data = (trained_run / "last.pt").read_bytes()
    path = _write(tmp_path, "cut.pt", data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_pickled_objects_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"format": FORMAT, "evil": _Payload(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused to load") as info:
        load_checkpoint(tmp_path / "evil.pt")
    assert "weights_only=True" in str(info.value)
    assert not marker.exists()


def test_a_torch_file_that_is_not_a_cnnzoo_checkpoint(tmp_path):
    torch.save({"weight": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a cnnzoo checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": FORMAT, "version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="newer than this cnnzoo reads"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save({"format": FORMAT, "version": 1, "model_name": "lenet"}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="missing model_kwargs"):
        load_checkpoint(tmp_path / "partial.pt")


def test_weights_of_another_model_are_refused(trained_run, tmp_path):
    ckpt = load_checkpoint(trained_run / "last.pt")
    ckpt["model_name"] = "lenet"  # same kwargs, different layers
    save_checkpoint(tmp_path / "swapped.pt", ckpt)
    with pytest.raises(CheckpointError, match="weights do not fit model 'lenet'"):
        model_from_checkpoint(load_checkpoint(tmp_path / "swapped.pt"))
    ckpt["model_name"] = "lenet_nine"
    with pytest.raises(CheckpointError, match="cannot rebuild model 'lenet_nine'"):
        model_from_checkpoint(ckpt)


def test_non_plain_values_are_refused_at_save_time():
    _require_plain({"a": [1, 2.0, "x", None, True, torch.ones(1)]}, "ok")
    with pytest.raises(TypeError, match="TorchVersion"):
        _require_plain({"torch": torch.__version__}, "versions")
    with pytest.raises(TypeError, match="Linear"):
        _require_plain({"kwargs": {"head": torch.nn.Linear(1, 1)}}, "model_kwargs")
    assert create_model("lenet").model_kwargs == {"num_classes": 10, "in_channels": 1}
