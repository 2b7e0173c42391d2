"""`cnnzoo bench --pipeline`: the race of cnnzoo's training against the book's pipeline at tiny scale (its
mechanics, not its timing), and the book's torchvision copy of the data."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torchvision

from cnnzoo.bench import race
from cnnzoo.cli import main
from cnnzoo.models.registry import create_model


# ------------------------------------------------------------------------------------------------
# the pipeline race (mechanics at tiny scale; the timing itself is recorded in benchmarks/)
# ------------------------------------------------------------------------------------------------
def test_the_d2l_torchvision_copy_holds_exactly_the_verified_tensors(blocks, tmp_path):
    root = race.d2l_dataset_root(blocks, tmp_path)
    raw = root / "FashionMNIST" / "raw"
    expected = {
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    }
    assert {p.name for p in raw.iterdir()} == expected  # uncompressed, as torchvision's _check_exists wants
    train = torchvision.datasets.FashionMNIST(str(root), train=True, download=False)
    test = torchvision.datasets.FashionMNIST(str(root), train=False, download=False)
    assert torch.equal(train.data, blocks.train_images) and torch.equal(train.targets, blocks.train_labels)
    assert torch.equal(test.data, blocks.test_images) and torch.equal(test.targets, blocks.test_labels)
    stamp = (raw / "train-images-idx3-ubyte").stat().st_mtime_ns
    assert race.d2l_dataset_root(blocks, tmp_path) == root  # reused, not rewritten
    assert (raw / "train-images-idx3-ubyte").stat().st_mtime_ns == stamp


def test_the_d2l_epoch_is_train_ch6_and_learns(blocks, tmp_path):
    root = race.d2l_dataset_root(blocks, tmp_path)
    train_iter, test_iter = race.d2l_loaders(root, 16, None, 512, 256, workers=0)
    x, _ = next(iter(train_iter))
    assert x.dtype == torch.float32 and x.shape == (16, 1, 28, 28) and 0 <= float(x.min()) <= float(x.max()) <= 1.0
    torch.manual_seed(0)
    out = race.d2l_train_epoch(create_model("lenet_bn"), train_iter, test_iter, lr=0.1, device=torch.device("cpu"))
    assert out["images"] == 512 and out["seconds"] >= out["train_seconds"] > 0
    assert out["train_acc"] > 0.5 and out["test_acc"] > 0.9  # the blocks data is learnable in one epoch


def test_pipeline_race_at_tiny_scale(fake_train_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    js, md = tmp_path / "p.json", tmp_path / "p.md"
    argv = ["bench", "--pipeline", "lenet", "--rounds", "2", "--train-images", "192", "--batch-size", "64"]
    argv += ["--device", "cpu", "--workers", "2", "--json", str(js), "--markdown", str(md)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert re.search(r"^round 1/2: d2l [\d.]+ s, cnnzoo [\d.]+ s \([\d.]+x\)$", stdout, re.M)
    assert re.search(r"cnnzoo is [\d.]+x faster \(median of 2; range [\d.]+-[\d.]+\); training alone", stdout)
    result = json.loads(js.read_text())
    assert (result["model"], result["batch_size"], result["input_size"], result["train_images"]) == (
        "lenet",
        64,
        28,
        192,
    )
    assert result["test_images"] == 32  # cut in the real 6:1 proportion
    assert result["workers"] == 2 and result["threads"] == torch.get_num_threads()
    assert len(result["rounds"]) == 2 and all(
        r["d2l_seconds"] > 0 and r["cnnzoo_seconds"] > 0 for r in result["rounds"]
    )
    ratios = sorted(r["ratio"] for r in result["rounds"])
    assert result["ratio"] == pytest.approx(sum(ratios) / 2)  # the median of two
    assert "| lenet | 64 | 28 | cpu" in md.read_text()
    assert (tmp_path / "cache" / "cnnzoo" / "d2l-torchvision").is_dir()


def test_pipeline_defaults_follow_the_book(blocks, tmp_path):
    result = race.compare_pipelines(
        "lenet", blocks, device="cpu", rounds=1, train_images=128, warmup_batches=1, workers=0, d2l_root=tmp_path
    )
    assert (result.batch_size, result.input_size, result.lr) == (256, 28, 0.9)  # the book's LeNet call
    assert result.train_images == 128 and len(result.rounds) == 1
    text = race.format_pipeline(result)
    assert "d2l's pipeline (torchvision + DataLoader(0 workers) + train_ch6, fp32, NCHW)" in text
