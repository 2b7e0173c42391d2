"""The CLI's reach: `train/eval/predict --dataset`, `cnnzoo export`, `train --tensorboard`, model specs with kwargs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from cnnzoo.cli import main
from cnnzoo.train.checkpoint import load_checkpoint, model_from_checkpoint
from helpers_files import write_mnist_raw
from helpers_train import blocks_images

TRAIN = ["--epochs", "3", "--batch-size", "16", "--lr", "0.05", "--device", "cpu", "--quiet"]


def half_images(folder: Path, per_class: int = 40, seed: int = 0) -> Path:
    """An easy RGB folder dataset: ``left`` has a bright red left half, ``right`` a bright blue right half,
    on noise, at two sizes that are not the model's (so they are resized on loading)."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(("left", "right")):
        for i in range(per_class):
            w, h = (40, 30) if i % 2 else (20, 20)
            pixels = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
            half = slice(0, w // 2) if k == 0 else slice(w // 2, w)
            pixels[:, half, 0 if k == 0 else 2] = 230
            (folder / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels, "RGB").save(folder / name / f"{i:03d}.png")
    return folder


def final_test_acc(run: Path) -> float:
    ckpt = load_checkpoint(run / "last.pt")
    return float(ckpt["train"]["history"][-1]["test_acc"])


# ------------------------------------------------------------------------------------------------
# --dataset
# ------------------------------------------------------------------------------------------------
def test_folder_dataset_trains_evaluates_and_predicts(isolated_data, tmp_path, capsys):
    folder = half_images(tmp_path / "pictures")
    run = tmp_path / "run"
    # Enough steps (6 epochs of 8 batches) for batch norm's running statistics to settle for evaluation.
    train = ["--epochs", "6", "--batch-size", "8", "--lr", "0.05", "--device", "cpu", "--quiet"]
    argv = ["train", "lenet_bn", "--dataset", f"folder:{folder}", "--val-fraction", "0.25", *train, "--out", str(run)]
    assert main(argv) == 0
    ckpt = load_checkpoint(run / "last.pt")
    # The model took the folder's channels and classes, and the checkpoint remembers them.
    assert ckpt["model_kwargs"] == {"in_channels": 3, "num_classes": 2}
    assert ckpt["preprocess"]["classes"] == ["left", "right"] and ckpt["preprocess"]["in_channels"] == 3
    assert ckpt["config"]["dataset"] == f"folder:{folder}" and ckpt["config"]["val_fraction"] == 0.25
    trained_acc = final_test_acc(run)
    assert trained_acc >= 0.9  # an easy two-class problem: above chance by far
    capsys.readouterr()

    # eval rebuilds the same held-out split (20 of 80 images) and gets the run's own test accuracy.
    assert main(["eval", str(run), "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 20
    assert result["test_acc"] == pytest.approx(trained_acc, abs=1e-6)

    # predict keeps the pixels (no Fashion-MNIST polarity flip) for a folder-trained model.
    picture = folder / "left" / "000.png"
    assert main(["predict", str(run), str(picture), "--json", "--top-k", "1"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["inverted"] is False
    assert record["top"][0]["class"] == "left"


def test_mnist_dataset_from_torchvision_layout(isolated_data, tmp_path, capsys):
    rng = np.random.default_rng(1)
    train_labels, test_labels = np.arange(320) % 10, np.arange(100) % 10
    arrays = {
        "train_images": blocks_images(train_labels, rng),
        "train_labels": train_labels.astype(np.uint8),
        "test_images": blocks_images(test_labels, rng),
        "test_labels": test_labels.astype(np.uint8),
    }
    root = tmp_path / "data"
    write_mnist_raw(root, "MNIST", arrays)
    run = tmp_path / "run"
    assert main(["train", "lenet_bn", "--dataset", "mnist", "--data-root", str(root), *TRAIN, "--out", str(run)]) == 0
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["preprocess"]["classes"] == list("0123456789")
    assert ckpt["model_kwargs"] == {"in_channels": 1, "num_classes": 10}
    capsys.readouterr()
    assert main(["eval", str(run), "--device", "cpu", "--data-root", str(root), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 100 and result["test_acc"] == pytest.approx(final_test_acc(run), abs=1e-6)


def test_unknown_dataset_is_a_one_line_error(isolated_data, tmp_path, capsys):
    assert main(["train", "lenet_bn", "--dataset", "fashon-mnist", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown dataset 'fashon-mnist'") and "did you mean fashion-mnist" in err
    assert not (tmp_path / "r").exists()


def test_bad_val_fraction_is_refused(isolated_data, tmp_path, capsys):
    argv = ["train", "lenet_bn", "--dataset", f"folder:{tmp_path}", "--val-fraction", "1.5"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    assert "--val-fraction 1.5" in capsys.readouterr().err


def test_dataset_cannot_change_on_resume(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["train", "--resume", str(run), "--dataset", "mnist", "--epochs", "4"]) == 2
    assert "--dataset" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# export
# ------------------------------------------------------------------------------------------------
def test_export_onnx_runs_in_onnxruntime_with_any_batch(trained_run, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["export", str(trained_run), "--format", "onnx", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "checked with onnxruntime" in printed
    model = model_from_checkpoint(load_checkpoint(trained_run / "last.pt")).eval()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        x = torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(n))
        (got,) = session.run(["logits"], {"input": x.numpy()})
        with torch.no_grad():
            expected = model(x).numpy()
        assert got.shape == (n, 10)
        assert np.abs(got - expected).max() < 1e-4


def test_export_safetensors_default_path_beside_the_checkpoint(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["export", str(run), "--format", "safetensors"]) == 0
    from safetensors.torch import load_file

    tensors = load_file(run / "last.safetensors")
    state = load_checkpoint(run / "last.pt")["model_state"]
    assert set(tensors) == set(state)
    for name, value in state.items():
        assert torch.equal(tensors[name], value)


def test_export_without_the_extra_names_it(trained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    assert main(["export", str(trained_run), "--output", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "pip install 'cnnzoo[export]'" in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_of_a_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing.pt")]) == 2
    assert capsys.readouterr().err.startswith("error:")


# ------------------------------------------------------------------------------------------------
# --tensorboard
# ------------------------------------------------------------------------------------------------
def test_tensorboard_scalars_match_the_run_history(fake_train_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(["train", "lenet_bn", *TRAIN, "--tensorboard", "--out", str(run)]) == 0
    logs = run / "tensorboard"
    assert list(logs.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(logs))
    events.Reload()
    assert {"loss/train", "loss/test", "accuracy/train", "accuracy/test", "lr"} <= set(events.Tags()["scalars"])
    rows = load_checkpoint(run / "last.pt")["train"]["history"]
    test_acc = events.Scalars("accuracy/test")
    assert [e.step for e in test_acc] == [1, 2, 3]
    assert [e.value for e in test_acc] == pytest.approx([r["test_acc"] for r in rows], abs=1e-6)


def test_tensorboard_missing_is_reported_before_anything_is_written(fake_train_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    run = tmp_path / "run"
    assert main(["train", "lenet_bn", *TRAIN, "--tensorboard", "--out", str(run)]) == 2
    assert "pip install 'cnnzoo[tensorboard]'" in capsys.readouterr().err
    assert not run.exists()


# ------------------------------------------------------------------------------------------------
# MODEL specs with keyword arguments: NAME:KWARG[=VALUE],...[@SIDE]
# ------------------------------------------------------------------------------------------------
def test_train_passes_model_kwargs_and_the_checkpoint_rebuilds_them(fake_train_data, test_models, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "tiny_test_net:width=4", *TRAIN, "--out", str(run)]) == 0
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["model_kwargs"]["width"] == 4 and ckpt["config"]["model_kwargs"] == {"width": 4}
    assert ckpt["model_state"]["0.weight"].shape == (4, 1, 5, 5)
    capsys.readouterr()
    assert main(["eval", str(run), "--device", "cpu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_acc"] == pytest.approx(final_test_acc(run), abs=1e-6)


def test_a_keyword_the_model_does_not_take_is_named(isolated_data, tmp_path, capsys):
    assert main(["train", "lenet_bn:small_input", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model lenet_bn:small_input: lenet_bn has no keyword argument 'small_input'")
    assert not (tmp_path / "r").exists()


def test_side_in_the_spec_and_resize_must_agree(isolated_data, tmp_path, capsys):
    assert main(["train", "resnet18@32", "--resize", "48", "--out", str(tmp_path / "r")]) == 2
    assert "give the side once" in capsys.readouterr().err


def test_small_input_changes_the_default_and_the_accepted_sizes():
    from cnnzoo.base.errors import ConfigError
    from cnnzoo.train.recipes import resolve_config

    assert resolve_config("densenet").resize == 96
    assert resolve_config("densenet", overrides={"model_kwargs": {"small_input": True}}).resize == 28
    assert resolve_config("resnet18", overrides={"model_kwargs": {"small_input": True}}).resize == 28
    with pytest.raises(ConfigError, match="minimum input size 29"):
        resolve_config("densenet", overrides={"resize": 28})
