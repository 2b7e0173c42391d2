"""The training engine: learning, schedules, no per-batch syncs, exact resume, divergence, evaluation."""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from cnnzoo import create_model
from cnnzoo.base.devices import DeviceSetup
from cnnzoo.base.errors import TrainingDivergedError
from cnnzoo.models.whitening import PatchWhitening
from cnnzoo.run import RunDirectory
from cnnzoo.run.progress import default_callbacks
from cnnzoo.train.checkpoint import checkpoint_payload, load_checkpoint, save_checkpoint
from cnnzoo.train.history import HISTORY_KEYS, TIMING_KEYS
from cnnzoo.train.loop import evaluate, fit, make_batches, train_one_epoch, tta_logits
from cnnzoo.train.optim import build_optimizer, build_scheduler, lr_factor
from cnnzoo.train.recipes import resolve_config
from cnnzoo.train.state import Callback, EpochTotals, restore_rng_state, rng_state

pytestmark = pytest.mark.usefixtures("test_models")
CPU = DeviceSetup(torch.device("cpu"))


def tiny_config(**overrides):
    # crop, not flip: mirroring moves a block to another class's place
    base = {"epochs": 3, "batch_size": 64, "lr": 0.2, "device": "cpu", "augment": "crop"}
    return resolve_config("tiny_test_net", "fast", {**base, **overrides})


def new_model(seed=0):
    torch.manual_seed(seed)
    return create_model("tiny_test_net")


def metrics_only(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


class StopAfter(Callback):
    """should_stop source: True once ``epochs`` epochs (and ``steps`` more steps) are done."""

    def __init__(self, epochs, steps=0):
        self.epochs, self.steps, self.state, self.calls = epochs, steps, None, 0

    def on_train_start(self, state):
        self.state = state

    def __call__(self):
        if self.state.epoch < self.epochs:
            return False
        if self.steps == 0:
            return True
        self.calls += 1
        return self.calls >= self.steps


class Capture(Callback):
    def __init__(self):
        self.stopped = None
        self.payload = None

    def on_stop(self, state):
        self.payload = checkpoint_payload(state, classes=list("0123456789"), mean=None, std=None, input_size=28,
                                          in_channels=1)  # fmt: skip


def test_fit_learns_the_blocks_and_reports_every_metric(blocks):
    history = fit(new_model(), blocks, tiny_config())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for row in history:
        assert set(row) == set(HISTORY_KEYS)
        assert row["images_per_sec"] > 0 and row["train_seconds"] > 0 and row["eval_seconds"] > 0
        assert 0 <= row["train_acc"] <= 1 and 0 <= row["test_acc"] <= 1
    assert history[-1]["test_acc"] >= 0.9
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    # onecycle ends near zero; the recorded lr is that of the epoch's last step
    assert history[-1]["lr"] < 0.01 * 0.2 < history[0]["lr"]


def test_fit_prints_one_line_per_epoch(blocks, capsys):
    fit(new_model(), blocks, tiny_config(epochs=2), callbacks=default_callbacks())
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2  loss ") and "test acc" in lines[0] and "img/s" in lines[0]


def test_the_hot_loop_reads_the_device_once_per_epoch_not_per_batch(blocks, monkeypatch):
    """No .item()/float()/int()/bool() per batch: count host reads of tensors during one epoch."""
    import cnnzoo.train.loop as engine

    monkeypatch.setattr(engine, "LOG_EVERY", 10**9)
    monkeypatch.setattr(engine, "LOG_SECONDS", float("inf"))
    config = tiny_config(grad_clip=1.0, label_smoothing=0.1)
    model = new_model()
    batches = make_batches(blocks, config, split="train", setup=CPU, resize=28)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, len(batches))
    reads = []
    for name in ("item", "__float__", "__int__", "__bool__", "tolist"):
        original = getattr(torch.Tensor, name)

        def counting(self, *a, _original=original, _name=name, **k):
            reads.append(_name)
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counting)
    model.train()
    totals, stopped = train_one_epoch(
        model, batches, optimizer, scheduler, nn.CrossEntropyLoss(label_smoothing=0.1), setup=CPU, grad_clip=1.0
    )
    monkeypatch.undo()
    assert len(batches) == 8 and totals.step == 8 and not stopped
    assert len(reads) <= 1, reads  # the end-of-epoch divergence check


def test_lr_schedules_per_step():
    steps = 10
    f = lr_factor(tiny_config(epochs=6, schedule="step", step_size=2, gamma=0.5), steps)
    assert [f(e * steps) for e in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert f(steps - 1) == 1  # constant within an epoch
    f = lr_factor(tiny_config(epochs=4, schedule="cosine", warmup_epochs=1), steps)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)  # linear warm-up over 10 steps
    assert f(10) == pytest.approx(1.0) and f(40) == pytest.approx(0.0, abs=1e-12)
    f = lr_factor(tiny_config(epochs=4, schedule="onecycle"), steps)
    assert f(0) == pytest.approx(1 / 25)
    assert f(10) == pytest.approx(1.0)  # the peak at 25 % of 40 steps
    assert f(39) < 0.01
    f = lr_factor(tiny_config(epochs=4, schedule="none", warmup_epochs=0.5), steps)
    assert [f(k) for k in (0, 4, 5, 30)] == [0.2, 1.0, 1.0, 1.0]


def test_optimizers_and_weight_decay_groups():
    model = new_model()
    sgd = build_optimizer(model, tiny_config(optimizer="sgd", weight_decay=0.0))
    assert sgd.defaults["momentum"] == 0 and not sgd.defaults["nesterov"]
    mom = build_optimizer(model, tiny_config(optimizer="momentum", weight_decay=1e-3))
    assert mom.defaults["nesterov"] and mom.defaults["momentum"] == 0.9
    decayed, plain = mom.param_groups
    assert decayed["weight_decay"] == 1e-3 and all(p.ndim > 1 for p in decayed["params"])
    assert plain["weight_decay"] == 0.0 and all(p.ndim == 1 for p in plain["params"])
    assert isinstance(build_optimizer(model, tiny_config(optimizer="adamw")), torch.optim.AdamW)
    assert type(build_optimizer(model, tiny_config(optimizer="adam"))) is torch.optim.Adam


def test_xavier_init_is_applied_on_a_fresh_run_only(blocks):
    model = new_model()
    before = model[0].weight.detach().clone()
    fit(model, blocks, tiny_config(epochs=1, init="xavier", lr=1e-9, optimizer="sgd"))
    bound = math.sqrt(6 / (1 * 25 + 8 * 25))  # xavier_uniform_ bound of the 5x5 conv, 1 -> 8 channels
    after = model[0].weight.detach()
    assert not torch.equal(before, after)
    assert after.abs().max() <= bound
    assert after.abs().max() > 0.8 * bound


@pytest.mark.parametrize(("stop_epochs", "stop_steps"), [(1, 0), (1, 3)], ids=["after-epoch-1", "mid-epoch-2"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(blocks, tmp_path, stop_epochs, stop_steps):
    config = tiny_config()
    reference_model = new_model()
    reference = fit(reference_model, blocks, config)

    stop, capture = StopAfter(stop_epochs, stop_steps), Capture()
    first = fit(new_model(), blocks, config, callbacks=[stop, capture], should_stop=stop)
    assert len(first) == stop_epochs
    torch.manual_seed(1234)  # a resumed process starts from unrelated RNG states
    np.random.seed(99)
    random.seed(5)
    path = save_checkpoint(tmp_path / "last.pt", capture.payload)
    ckpt = load_checkpoint(path)
    assert (ckpt["train"]["partial"] is not None) == (stop_steps > 0)
    model = new_model(seed=77)
    model.load_state_dict(ckpt["model_state"])
    resumed = fit(model, blocks, config, resume=ckpt["train"])

    assert metrics_only(resumed) == metrics_only(reference)
    for (name, a), b in zip(reference_model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_records_whitening_and_muon_fit_once_and_resume_bit_identically(blocks, tmp_path, monkeypatch):
    """speednet(whiten=True) with Muon, as the record recipe trains it: the whitening is fitted to the training
    images at the start of a new run (not on resume, which restores it), and Muon's state round-trips."""
    fits = []
    real_fit = PatchWhitening.fit
    monkeypatch.setattr(PatchWhitening, "fit", lambda self, images: fits.append(len(images)) or real_fit(self, images))
    config = resolve_config(
        "speednet", "record", {"epochs": 2, "batch_size": 64, "device": "cpu", "precision": "fp32", "val_size": 0}
    )
    assert config.optimizer == "muon" and config.model_kwargs == {"whiten": True}

    def build(seed):
        torch.manual_seed(seed)
        return create_model("speednet", **config.model_kwargs)

    reference_model = build(0)
    unfitted = reference_model.features[0].weight.clone()
    reference = fit(reference_model, blocks, config)
    assert not torch.equal(reference_model.features[0].weight, unfitted)
    assert fits == [len(blocks.train_images)]
    stop, capture = StopAfter(1, 2), Capture()
    fit(build(0), blocks, config, callbacks=[stop, capture], should_stop=stop)
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "last.pt", capture.payload))
    model = build(77)
    model.load_state_dict(ckpt["model_state"])
    resumed = fit(model, blocks, config, resume=ckpt["train"])
    assert len(fits) == 2  # the reference run's and the interrupted run's; the resumed one reads the state dict
    assert metrics_only(resumed) == metrics_only(reference)
    for (name, a), b in zip(reference_model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_divergence_raises_and_keeps_the_last_good_checkpoint(blocks, tmp_path):
    class Explode(Callback):
        def on_epoch_end(self, state):  # after epoch 1 is saved: a learning rate no network survives
            state.scheduler.base_lrs = [1e30 for _ in state.scheduler.base_lrs]

    config = tiny_config(optimizer="sgd", schedule="none", augment="none")
    recorder = RunDirectory(tmp_path, data=blocks, config=config, environment={}, input_size=28)
    with pytest.raises(TrainingDivergedError) as info:
        fit(new_model(), blocks, config, callbacks=[recorder, Explode()])
    message = str(info.value)
    assert "lower learning rate" in message and "--lr" in message and "\n" not in message
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["train"]["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in ckpt["model_state"].values() if t.is_floating_point())
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def test_evaluate_gives_accuracy_loss_and_confusion_and_restores_train_mode(blocks):
    model = new_model()
    fit(model, blocks, tiny_config(epochs=2))
    model.train()
    result = evaluate(model, blocks, tiny_config())
    assert model.training
    assert result.count == 256 and result.confusion.shape == (10, 10)
    assert int(result.confusion.sum()) == 256
    assert result.confusion.sum(dim=1).tolist() == torch.bincount(blocks.test_labels, minlength=10).tolist()
    assert result.accuracy == pytest.approx(float(result.confusion.diagonal().sum()) / 256)
    assert result.loss > 0 and len(result.per_class_accuracy) == 10
    # the same numbers from an explicit iterable of batches
    batches = make_batches(blocks, tiny_config(), split="test", setup=CPU, resize=28)
    again = evaluate(model, batches)
    assert again.accuracy == result.accuracy and torch.equal(again.confusion, result.confusion)


class Recorder(nn.Module):
    """Sums each view it is shown: its logits tell which views tta_logits fed it, with which weights."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return x.flatten(1)[:, :4]


def test_tta_views_are_the_image_its_mirror_and_both_moved_a_pixel_each_way():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    model = Recorder()
    assert torch.equal(tta_logits(model, x, "none"), x.flatten(1)[:, :4]) and len(model.seen) == 1
    model.seen.clear()
    flip = tta_logits(model, x, "flip")
    assert [torch.equal(v, w) for v, w in zip(model.seen, [x, x.flip(3)], strict=True)] == [True, True]
    assert torch.allclose(flip, (x.flatten(1)[:, :4] + x.flip(3).flatten(1)[:, :4]) / 2)
    model.seen.clear()
    tta_logits(model, x, "flip+shift")
    assert len(model.seen) == 6
    down = model.seen[2]  # moved one pixel down-right, the top row and left column repeat the edge
    assert torch.equal(down[:, :, 1:, 1:], x[:, :, :-1, :-1])
    assert torch.equal(down[:, :, 0, 1:], x[:, :, 0, :-1]) and torch.equal(down[:, :, 1:, 0], x[:, :, :-1, 0])
    up = model.seen[4]
    assert torch.equal(up[:, :, :-1, :-1], x[:, :, 1:, 1:])
    assert torch.equal(model.seen[3], down.flip(3)) and torch.equal(model.seen[5], up.flip(3))
    nhwc = x.contiguous(memory_format=torch.channels_last)
    model.seen.clear()
    tta_logits(model, nhwc, "flip+shift")
    assert model.seen[2].is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="tta"):
        tta_logits(model, x, "rotate")


def test_tta_weights_the_views_half_the_image_pair_and_a_quarter_each_moved_pair():
    x = torch.randn(3, 1, 6, 6)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 10))
    views = [x, x.flip(3)]
    for d in (1, -1):
        moved = torch.roll(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), (d, d), (2, 3))[:, :, 1:7, 1:7]
        views += [moved, moved.flip(3)]
    with torch.no_grad():
        logits = [model(v) for v in views]
        expected = (logits[0] + logits[1]) / 4 + sum(logits[2:]) / 8
        assert torch.allclose(tta_logits(model, x, "flip+shift"), expected, atol=1e-6)


def test_evaluation_uses_the_configured_test_time_views(blocks):
    model = new_model()
    fit(model, blocks, tiny_config(epochs=1))
    plain = evaluate(model, blocks, tiny_config())
    flipped = evaluate(model, blocks, tiny_config(tta="flip"))
    shifted = evaluate(model, blocks, tiny_config(tta="flip+shift"))
    assert plain.count == flipped.count == shifted.count == 256
    # the blocks' class is where the block is: a mirror moves it, so the views change the answers
    assert (plain.loss, plain.accuracy) != (flipped.loss, flipped.accuracy)
    assert flipped.loss != shifted.loss
    # fit: only the last epoch's figures use the views (each costs a forward pass)
    again = new_model()
    history = fit(again, blocks, tiny_config(epochs=2, tta="flip"))
    twin = new_model()
    plain_history = fit(twin, blocks, tiny_config(epochs=2))
    assert history[0]["test_loss"] == plain_history[0]["test_loss"]
    assert history[1]["test_loss"] != plain_history[1]["test_loss"]
    assert history[1]["test_loss"] == pytest.approx(evaluate(again, blocks, tiny_config(tta="flip")).loss)


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


def test_epoch_totals_round_trip():
    t = EpochTotals(torch.tensor(3.5), torch.tensor(7), count=10, seconds=1.5, step=2, last_lr=0.1)
    back = EpochTotals.from_dict(t.to_dict(), torch.device("cpu"))
    assert dataclasses.asdict(back).keys() == dataclasses.asdict(t).keys()
    assert float(back.loss_sum) == 3.5 and int(back.correct) == 7 and (back.count, back.step) == (10, 2)
