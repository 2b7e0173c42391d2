"""The run layer (cnnzoo.run): one place that turns a model spec, a recipe, overrides and a dataset (or a run
directory) into a final config, a model and data, for every front end."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

import cnnzoo
from cnnzoo.base.errors import ConfigError
from cnnzoo.cli import main
from cnnzoo.run import Run, build_model, make_config, new_run, open_run, resume_run, start_training
from cnnzoo.run.progress import ConsoleProgress
from helpers_train import blocks_dataset


def _rgb(data, classes: int = 4):
    """``data`` as a 3-channel dataset of ``classes`` classes (what a folder of photos gives)."""
    keep_train, keep_test = data.train_labels < classes, data.test_labels < classes
    return dataclasses.replace(
        data,
        name="folder:photos",
        train_images=data.train_images[keep_train].unsqueeze(1).repeat(1, 3, 1, 1),
        train_labels=data.train_labels[keep_train],
        test_images=data.test_images[keep_test].unsqueeze(1).repeat(1, 3, 1, 1),
        test_labels=data.test_labels[keep_test],
        classes=data.classes[:classes],
    )


def test_make_config_takes_the_spec_side_and_kwargs():
    config = make_config("resnet18:small_input@32", overrides={"epochs": 2})
    assert (config.model, config.model_kwargs, config.resize, config.epochs) == (
        "resnet18",
        {"small_input": True},
        32,
        2,
    )


def test_the_spec_side_and_an_explicit_side_must_agree():
    with pytest.raises(ConfigError, match="give the side once"):
        make_config("resnet18@32", overrides={"resize": 48})


def test_one_input_size_check_serves_every_front_end():
    with pytest.raises(
        ConfigError, match=r"--input-size 64 is above lenet.s maximum input size 31 \(.*\): use --input-size 28"
    ):
        make_config("lenet@64")
    with pytest.raises(ConfigError, match="--input-size 64 is above lenet's maximum input size 31"):
        make_config("lenet", overrides={"resize": 64})


def test_a_dataset_of_other_shape_gets_a_network_built_for_it_and_the_config_says_so(blocks):
    photos = _rgb(blocks)
    run = new_run("lenet_bn", overrides={"epochs": 1, "dataset": "folder:photos"}, data=photos)
    assert run.config.model_kwargs == {"in_channels": 3, "num_classes": 4}
    assert run.model.model_kwargs == {"in_channels": 3, "num_classes": 4}
    assert run.model(torch.zeros(2, 3, 28, 28)).shape == (2, 4)


def test_fashion_mnist_shaped_data_keeps_the_default_network(blocks):
    run = new_run("lenet_bn", overrides={"epochs": 1}, data=blocks)
    assert run.config.model_kwargs == {}
    assert isinstance(run, Run) and run.data.test_images is blocks.test_images  # the test split as given
    assert run.data.val_labels.numel() + run.data.train_labels.numel() == blocks.train_labels.numel()


def test_build_model_is_seeded_by_the_config():
    config = make_config("lenet_bn", overrides={"seed": 3})
    a, b = build_model(config), build_model(config)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    other = build_model(dataclasses.replace(config, seed=4))
    assert not torch.equal(next(a.parameters()), next(other.parameters()))


def test_new_run_loads_the_data_its_config_names(fake_train_data):
    run = new_run("lenet_bn", overrides={"epochs": 1})
    assert run.data.test_images is fake_train_data.test_images and run.data.has_validation


def test_a_notebook_style_run_trains_and_shows_progress_only_when_asked(blocks, capsys):
    run = cnnzoo.new_run("lenet_bn", overrides={"epochs": 1, "batch_size": 64, "device": "cpu"}, data=blocks)
    history = run.fit()
    assert len(history) == 1 and capsys.readouterr().out == ""  # the engine prints nothing itself
    run = cnnzoo.new_run("lenet_bn", overrides={"epochs": 1, "batch_size": 64, "device": "cpu"}, data=blocks)
    run.fit(callbacks=[ConsoleProgress(bar=False)])
    assert capsys.readouterr().out.startswith("epoch 1/1  loss ")


def test_fit_with_out_leaves_a_run_directory_that_load_model_opens(blocks, tmp_path, capsys, monkeypatch):
    import cnnzoo.run.progress
    import cnnzoo.run.training as training

    # In a notebook, progress is shown by default (here the console part of it: no IPython display in pytest).
    monkeypatch.setattr(training, "in_notebook", lambda: True)
    monkeypatch.setattr(cnnzoo.run.progress, "in_notebook", lambda: False)
    run = cnnzoo.new_run("lenet_bn", overrides={"epochs": 2, "batch_size": 64, "device": "cpu"}, data=blocks)
    out = tmp_path / "my-run"
    history = run.fit(out=out)
    shown = capsys.readouterr().out
    assert "epoch 2/2  loss " in shown and f"run directory: {out}" in shown, shown
    assert run.out == out and len(history) == 2
    for name in ("config.json", "metrics.jsonl", "last.pt", "best.pt", "report.md", "curves.png"):
        assert (out / name).is_file(), name
    predictor = cnnzoo.load_model(out, device="cpu")
    picture = blocks.test_images[0]
    (record,) = predictor.predict(picture.numpy(), top_k=1)
    assert record["top"][0]["class"] in blocks.classes, record
    # the run it wrote is a run directory like any other: another fit may not write over it
    again = cnnzoo.new_run("lenet_bn", overrides={"epochs": 1, "batch_size": 64, "device": "cpu"}, data=blocks)
    with pytest.raises(ConfigError, match="my-run"):
        again.fit(out=out, progress=False)
    assert json.loads((out / "config.json").read_text())["config"]["epochs"] == 2


def test_fit_of_a_resumed_run_writes_into_its_own_directory(trained_run, tmp_path, fake_train_data):
    run_dir = _copy(trained_run, tmp_path)
    run = resume_run(run_dir, overrides={"epochs": 4, "device": "cpu"})
    with pytest.raises(ConfigError, match="resumes"):
        run.fit(out=tmp_path / "elsewhere")
    history = run.fit(out=True)
    assert run.out == run_dir and [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert not (tmp_path / "elsewhere").exists()


def _copy(trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    return out


def test_resume_run_refuses_settings_that_belong_to_the_run(trained_run, tmp_path, fake_train_data):
    run_dir = _copy(trained_run, tmp_path)
    with pytest.raises(ConfigError, match="--lr, --seed cannot change when resuming"):
        resume_run(run_dir, overrides={"lr": 0.5, "seed": 2, "epochs": 5})
    with pytest.raises(ConfigError, match="trained lenet_bn, not resnet18"):
        resume_run(run_dir, model="resnet18", overrides={"epochs": 5})
    with pytest.raises(ConfigError, match="already finished 3 of 3 epochs: pass --epochs 8"):
        resume_run(run_dir)


def test_resume_run_continues_from_the_checkpoint(trained_run, tmp_path, fake_train_data):
    run_dir = _copy(trained_run, tmp_path)
    run = resume_run(run_dir, overrides={"epochs": 4, "device": "cpu"})
    assert (run.directory, run.resume["epoch"], run.config.epochs) == (run_dir, 3, 4)
    outcome = start_training(run).train()
    assert [r["epoch"] for r in outcome.history] == [1, 2, 3, 4] and not outcome.stopped
    assert outcome.directory == run_dir and (run_dir / "report.md").exists()


def test_open_run_gives_the_trained_model_and_its_data(trained_run, fake_train_data):
    run = open_run(trained_run, device="cpu")
    assert run.config.device == "cpu" and run.checkpoint == trained_run / "last.pt"
    assert run.data.test_images is fake_train_data.test_images and run.resume["epoch"] == 3
    result = cnnzoo.evaluate(run.model, run.data, run.config)
    assert result.accuracy > 0.5


def test_print_config_prints_the_resolved_config_and_writes_nothing(tmp_path, capsys, monkeypatch, fake_train_data):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "resnet18@32", "-b", "64", "--input-size", "32", "--channels-last", "--print-config"]
    assert main(argv) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["model"], config["batch_size"], config["resize"], config["channels_last"]) == (
        "resnet18",
        64,
        32,
        "yes",
    )
    assert config["lr"] == 0.05 and config["recipe"] == "fast"
    assert list(tmp_path.iterdir()) == []  # no runs/ directory


def test_old_flag_spellings_keep_working(tmp_path, capsys, monkeypatch, fake_train_data):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "lenet", "--resize", "30", "--batch-size", "32", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["resize"], config["batch_size"]) == (30, 32)


def test_d2l_recipe_covers_the_books_hand_written_batchnorm_lenet(capsys, fake_train_data):
    assert main(["train", "lenet_bn_scratch", "--recipe", "d2l", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["lr"], config["batch_size"], config["resize"], config["init"]) == (1.0, 256, 28, "xavier")


def test_blocks_dataset_is_fashion_shaped():
    data = blocks_dataset(n_train=20, n_test=10)
    assert (data.in_channels, data.num_classes) == (1, 10)


def test_a_run_estimates_its_time_without_touching_its_model(blocks):
    from cnnzoo.run.training import format_duration

    run = cnnzoo.new_run("lenet_bn", overrides={"epochs": 3, "batch_size": 32, "device": "cpu"}, data=blocks)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    estimate = run.estimate(steps=2)
    assert all(torch.equal(before[k], v) for k, v in run.model.state_dict().items())  # a copy was timed
    assert estimate.epochs == 3 and estimate.batch_size == 32 and estimate.images_per_sec > 0
    assert estimate.train_images == blocks.train_labels.numel() - run.data.val_labels.numel()
    from cnnzoo.run.training import EPOCH_OVERHEAD

    per_epoch = (estimate.train_images + estimate.eval_images / 3) / estimate.images_per_sec + EPOCH_OVERHEAD
    assert estimate.seconds == pytest.approx(3 * per_epoch)
    assert str(estimate).startswith("estimated: about ") and "3 epoch(s) of" in str(estimate)
    assert [format_duration(s) for s in (0.4, 59, 61, 3599, 3725)] == ["0 s", "59 s", "1 min 01 s", "59 min 59 s",
                                                                       "1 h 02 min"]  # fmt: skip


def test_a_resumed_run_estimates_the_epochs_left(trained_run, tmp_path, fake_train_data):
    run_dir = _copy(trained_run, tmp_path)
    run = resume_run(run_dir, overrides={"epochs": 5, "device": "cpu"})
    assert run.estimate(steps=1).epochs == 2
