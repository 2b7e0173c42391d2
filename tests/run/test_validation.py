"""The validation split (issue 14): held out of the training images, it alone chooses ``best.pt`` and stops a
run early; the test set is reported, never consulted. ``--recipe d2l`` keeps the book's set-up: no hold-out."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from cnnzoo.base.errors import ConfigError
from cnnzoo.data import ImageDataset, hold_out_validation
from cnnzoo.run import new_run, resume_run, start_training
from cnnzoo.train.checkpoint import load_checkpoint
from cnnzoo.train.config import TrainConfig, config_from_dict
from cnnzoo.train.history import best_row, patience_reached


def _fashion_like_labels(per_class: int = 6000) -> ImageDataset:
    labels = torch.arange(10).repeat_interleave(per_class)
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    images = (labels.view(-1, 1, 1) * 20).to(torch.uint8).expand(-1, 2, 2).contiguous()  # a pixel names the label
    return ImageDataset("fashion-like", images, labels, images[:10], labels[:10], [str(k) for k in range(10)])


def test_the_default_hold_out_is_5000_images_500_per_class_and_disjoint_from_training():
    data = _fashion_like_labels()
    split = hold_out_validation(data)
    assert split.val_labels.numel() == 5000 and split.train_labels.numel() == 55000
    assert split.class_counts("val") == [500] * 10 and split.class_counts("train") == [5500] * 10
    # every image is in exactly one of the two splits, with its own label
    assert torch.equal(split.val_images[:, 0, 0], (split.val_labels * 20).to(torch.uint8))
    assert torch.equal(split.train_images[:, 0, 0], (split.train_labels * 20).to(torch.uint8))
    assert split.test_images is data.test_images  # the test set is untouched


def test_the_hold_out_is_the_same_whatever_the_run_seed_and_proportional_for_uneven_classes():
    data = _fashion_like_labels(per_class=100)
    a, b = hold_out_validation(data, 100), hold_out_validation(data, 100)
    assert torch.equal(a.val_labels, b.val_labels) and torch.equal(a.val_images, b.val_images)
    torch.manual_seed(123)  # the global generators play no part
    assert torch.equal(hold_out_validation(data, 100).val_labels, a.val_labels)
    uneven = dataclasses.replace(data, train_labels=torch.cat([torch.zeros(900), torch.ones(100)]).long(),
                                 train_images=torch.zeros(1000, 2, 2, dtype=torch.uint8))  # fmt: skip
    assert hold_out_validation(uneven, 50).class_counts("val")[:2] == [45, 5]
    assert hold_out_validation(data, 0) is data  # 0: no validation split


def test_an_old_config_without_val_size_means_the_run_had_no_validation_split():
    saved = {k: v for k, v in TrainConfig().to_dict().items() if k != "val_size"}
    assert config_from_dict(saved).val_size == 0


def test_patience_counts_epochs_since_the_best_validation_accuracy():
    rows = [{"epoch": e, "val_acc": v, "test_acc": 1.0 - v} for e, v in enumerate([0.5, 0.7, 0.7, 0.6], start=1)]
    assert best_row(rows)["epoch"] == 2  # the first of equal ones: a tie is no improvement
    assert not patience_reached(rows[:3], 2) and patience_reached(rows, 2) and not patience_reached(rows, 3)
    assert best_row([{"epoch": 1, "val_acc": None, "test_acc": 0.9}]) is None  # no validation: no best epoch
    assert not patience_reached(rows, None)


def _train(data, out, model="lenet_bn", **overrides):
    run = new_run(model, overrides={"batch_size": 64, "device": "cpu", "augment": "none", **overrides}, data=data)
    return start_training(run, out=out).train()


def test_the_test_set_never_influences_best_pt(blocks, tmp_path):
    """Two runs that differ only in their test labels: one true, one shifted by a class so that the more the
    model learns the lower its "test accuracy". A best.pt chosen on test accuracy would differ between them
    (the shifted run would keep its first epoch); chosen on validation, both hold the same epoch and weights."""
    shifted = dataclasses.replace(blocks, test_labels=(blocks.test_labels + 1) % 10)
    settings = {"epochs": 4, "lr": 0.02, "schedule": "none", "optimizer": "sgd"}
    a = _train(blocks, tmp_path / "true", **settings)
    b = _train(shifted, tmp_path / "shifted", **settings)
    best_a, best_b = load_checkpoint(tmp_path / "true" / "best.pt"), load_checkpoint(tmp_path / "shifted" / "best.pt")
    assert best_a["train"]["epoch"] == best_b["train"]["epoch"] == best_row(a.history)["epoch"]
    assert all(torch.equal(best_a["model_state"][k], best_b["model_state"][k]) for k in best_a["model_state"])
    assert [r["val_acc"] for r in a.history] == [r["val_acc"] for r in b.history]
    # the two test sets did disagree, and a test-chosen epoch would have differed
    by_test_b = max(b.history, key=lambda r: r["test_acc"])["epoch"]
    assert by_test_b != best_row(b.history)["epoch"], b.history


def test_metrics_have_validation_columns_and_the_report_names_the_choice(blocks, tmp_path):
    out = tmp_path / "run"
    _train(blocks, out, epochs=2, lr=0.1)
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"val_loss", "val_acc"} <= set(rows[0]) and all(0 <= float(r["val_acc"]) <= 1 for r in rows)
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["val_images"] == 51 and config["config"]["val_size"] is None
    assert "best validation accuracy (`best.pt`)" in (out / "report.md").read_text()


def test_the_d2l_recipe_trains_on_every_training_image_and_keeps_no_best_pt(blocks, tmp_path):
    out = tmp_path / "run"
    run = new_run("lenet", recipe="d2l", overrides={"epochs": 1, "batch_size": 64, "device": "cpu"}, data=blocks)
    assert run.config.val_size == 0 and not run.data.has_validation
    assert run.data.train_labels.numel() == 512
    outcome = start_training(run, out=out).train()
    assert outcome.history[0]["val_acc"] is None and not (out / "best.pt").exists()
    with open(out / "metrics.csv", newline="") as f:
        assert next(csv.DictReader(f))["val_acc"] == ""
    assert "no `best.pt`" in (out / "report.md").read_text()


def test_patience_stops_a_run_and_resuming_it_needs_more_patience(blocks, tmp_path):
    """AdamW at lr 1e-12 leaves LeNet's weights as they are (the step is far below a float32 ulp, and the
    network has no BatchNorm statistics to move), so validation accuracy never improves after epoch 1 and
    ``--patience 2`` ends the run after epoch 3 of 10."""
    out = tmp_path / "run"
    settings = {"epochs": 10, "optimizer": "adamw", "lr": 1e-12, "schedule": "none", "patience": 2}
    outcome = _train(blocks, out, model="lenet", **settings)
    assert [r["epoch"] for r in outcome.history] == [1, 2, 3] and not outcome.stopped
    assert (out / "report.md").exists() and "early stopping" in (out / "report.md").read_text()
    with pytest.raises(ConfigError, match="stopped early at epoch 3: 2 epochs without a better validation"):
        resume_run(out, data=blocks)
    run = resume_run(out, overrides={"patience": 4, "device": "cpu"}, data=blocks)
    assert [r["epoch"] for r in start_training(run).train().history] == [1, 2, 3, 4, 5]


def test_resuming_a_run_rebuilds_the_same_validation_split(trained_run, tmp_path, fake_train_data):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    run = resume_run(run_dir, overrides={"epochs": 4, "device": "cpu"})
    fresh = hold_out_validation(fake_train_data)
    assert torch.equal(run.data.val_labels, fresh.val_labels) and torch.equal(run.data.val_images, fresh.val_images)
    assert np.array_equal(run.data.train_images.numpy(), fresh.train_images.numpy())


def test_a_large_validation_split_is_taken_once_when_the_run_loads_its_data(fake_train_data):
    """Half the training images held out: the split is made once (a second pass would see only the other half
    and refuse the size as too large)."""
    run = new_run("lenet_bn", overrides={"epochs": 1, "val_size": 256})
    assert (run.data.val_labels.numel(), run.data.train_labels.numel()) == (256, 256)
