"""``--init-from``: a new run starts from a trained model's parameters (a run, a checkpoint or a shipped weight)
with a new head for its own classes; everything else about the run is as usual."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.base.errors import ConfigError
from cnnzoo.cli import main
from cnnzoo.run import new_run


def _folder(root, per_class=12, seed=0, mode="L"):
    """Three classes of light shapes on dark (bar, block, cross) at random places: a folder of one's own."""
    rng = np.random.default_rng(seed)
    for name in ("bar", "block", "cross"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            a = np.zeros((28, 28), dtype=np.uint8)
            y, x = (int(v) for v in rng.integers(4, 16, 2))
            if name == "bar":
                a[y : y + 10, x : x + 3] = 220
            elif name == "block":
                a[y : y + 8, x : x + 8] = 220
            else:
                a[y + 4 : y + 6, x : x + 10] = 220
                a[y : y + 10, x + 4 : x + 6] = 220
            Image.fromarray(a).convert(mode).save(root / name / f"{i}.png")
    return root


def test_a_run_starts_from_a_shipped_weight_with_a_new_head_for_its_classes(tmp_path):
    folder = _folder(tmp_path / "shapes")
    run = new_run("lenet_bn", overrides={"dataset": f"folder:{folder}", "init_from": "lenet_bn.fashion_mnist",
                                         "epochs": 1})  # fmt: skip
    trained = cnnzoo.create_model("lenet_bn", weights="fashion_mnist").state_dict()
    state = run.model.state_dict()
    assert run.init.source == "lenet_bn.fashion_mnist" and run.model.model_kwargs["num_classes"] == 3
    head = [k for k in state if state[k].shape != trained[k].shape]
    assert set(run.init.new) == set(head) and len(head) == 2  # the last linear layer: weight and bias
    assert all(torch.equal(state[k], trained[k]) for k in run.init.copied)
    assert "started from lenet_bn.fashion_mnist: 28 of 30" in run.init.describe()


def test_an_rgb_folder_gets_the_grayscale_first_convolution_spread_over_its_channels(tmp_path):
    folder = _folder(tmp_path / "shapes", mode="RGB")
    run = new_run("lenet_bn", overrides={"dataset": f"folder:{folder}", "init_from": "lenet_bn.fashion_mnist"})
    (first,) = run.init.adapted
    gray = cnnzoo.create_model("lenet_bn", weights="fashion_mnist").state_dict()[first]
    spread = run.model.state_dict()[first]
    assert spread.shape[1] == 3 and torch.allclose(spread.sum(dim=1, keepdim=True), gray, atol=1e-6)


def test_init_from_another_network_is_one_line(tmp_path, capsys):
    folder = _folder(tmp_path / "shapes")
    with pytest.raises(ConfigError, match="it is a trained lenet, not a lenet_bn"):
        new_run("lenet_bn", overrides={"dataset": f"folder:{folder}", "init_from": "lenet.fashion_mnist"})
    argv = ["train", "lenet_bn", "--dataset", f"folder:{folder}", "--init-from", str(tmp_path / "nope"), "--quiet"]
    assert main(argv) == 2
    assert "no such run directory or checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_the_cli_fine_tunes_records_it_and_resumes_without_loading_again(tmp_path, capsys):
    folder = _folder(tmp_path / "shapes")
    out = tmp_path / "run"
    argv = ["train", "lenet_bn", "--dataset", f"folder:{folder}", "--init-from", "lenet_bn.fashion_mnist",
            "--epochs", "2", "--lr", "0.05", "-b", "8", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "started from lenet_bn.fashion_mnist: 28 of 30 tensors" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["config"]["init_from"] == "lenet_bn.fashion_mnist"
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0
    assert "started from" not in capsys.readouterr().out  # the checkpoint's parameters, not the weight's again


def test_a_small_folder_scales_the_recipe_and_a_very_small_one_warns(tmp_path):
    from cnnzoo.train.config import small_data_settings
    from cnnzoo.train.recipes import resolve_config

    base = resolve_config("lenet_bn", "fast")  # batch 128, lr 0.5, 12 epochs: chosen for 55,000 images
    assert small_data_settings(base, 55_000, set()) == {}
    scaled = small_data_settings(base, 162, set())
    assert scaled == {"batch_size": 8, "lr": 0.5 * 8 / 128, "epochs": 20}  # 20 epochs of 21 steps: >= 400 steps
    assert small_data_settings(base, 162, {"lr", "epochs"}) == {"batch_size": 8}  # the user's own stay
    adam = resolve_config("lenet", "fast")
    assert small_data_settings(adam, 1_000, set())["lr"] == pytest.approx(adam.lr * (32 / 128) ** 0.5)

    folder = _folder(tmp_path / "shapes", per_class=12)
    run = new_run("lenet_bn", overrides={"dataset": f"folder:{folder}"})
    assert run.config.batch_size == 8 and run.config.lr == pytest.approx(0.5 * 8 / 128)
    assert run.notes[0].startswith("the fast recipe scaled to 30 training images: batch size 8, lr 0.03125")
    assert "--init-from lenet_bn.fashion_mnist" in run.notes[1] and run.notes[1].startswith("warning: only 30")
    fine = new_run("lenet_bn", overrides={"dataset": f"folder:{folder}", "init_from": "lenet_bn.fashion_mnist"})
    assert len(fine.notes) == 1  # fine-tuning already: no warning
