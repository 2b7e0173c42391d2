"""``cnnzoo.explain`` and ``cnnzoo explain``: Grad-CAM, feature maps, filters and top losses for every model, and the
two figures every finished run's report gains."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import cnnzoo
import cnnzoo.run.directory as directory_mod
from cnnzoo.base.outputs import is_cnnzoo_output
from cnnzoo.cli import main
from cnnzoo.data import ModelView
from cnnzoo.explain import (
    CamResult,
    cam_figure,
    class_activation_maps,
    class_samples,
    first_conv_filters,
    model_inputs,
    stage_activations,
    top_losses,
    top_losses_figure,
)
from cnnzoo.explain.files import explain_images
from cnnzoo.models.inspection import shape_trace
from cnnzoo.models.whitening import PatchWhitening
from cnnzoo.serve.predictor import Predictor
from helpers_files import picture_folder


# ------------------------------------------------------------------------------------------------
# every registered model
# ------------------------------------------------------------------------------------------------
def _trace_shapes(model: nn.Module, side: int) -> list[list[int]]:
    """The shapes the book's shape trace prints, one per top-level stage call."""
    return [
        [int(d) for d in m.split(",")] for m in re.findall(r"torch\.Size\(\[([\d, ]+)\]\)", shape_trace(model, side))
    ]


@pytest.mark.parametrize("name", [*cnnzoo.list_models(), "speednet:whiten"])
def test_cam_stages_and_filters_work_for_every_model_and_leave_it_untouched(name, tmp_path):
    torch.manual_seed(0)
    name, _, option = name.partition(":")
    model = cnnzoo.create_model(name, num_classes=10, in_channels=1, **({option: True} if option else {}))
    side = model.min_input_size
    model.train()  # an explanation runs in eval mode, then gives the model back as it was
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}  # weights and BatchNorm running statistics
    x = torch.randn(2, 1, side, side)

    cam = class_activation_maps(model, x)
    assert cam.maps.shape == (2, side, side) and cam.maps.dtype == torch.float32
    assert bool(torch.isfinite(cam.maps).all()) and cam.maps.min() >= 0 and cam.maps.max() <= 1
    for m in cam.maps:  # each map is scaled to a peak of 1, or is all zero
        assert float(m.max()) in (0.0, 1.0)
    assert cam.probabilities.shape == (2, 10) and torch.allclose(cam.probabilities.sum(1), torch.ones(2))
    assert cam.targets == cam.probabilities.argmax(1).tolist()
    model.get_submodule(cam.layer)  # a real module name

    stages = stage_activations(model, x)
    expected = [[2, *shape[1:]] for shape in _trace_shapes(model, side)]
    assert [list(s.shape) for s in stages] == expected and len(stages) > 1
    assert all(list(s.output.shape) == list(s.shape) and s.output.device.type == "cpu" for s in stages)

    filters = first_conv_filters(model)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d | PatchWhitening))
    assert filters.shape == first.weight.shape and filters.shape[1] == 1  # the filters that see the pixels

    # the top-losses gallery: 28x28 uint8 pictures resized to the model's input, as evaluation prepares them
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3])
    mistakes = top_losses(model, images, labels, ModelView(side, [0.286], [0.353]), k=3)
    assert 0 < len(mistakes) <= 3 and all(m.predicted != m.true for m in mistakes)
    assert [m.loss for m in mistakes] == sorted((m.loss for m in mistakes), reverse=True)
    top_losses_figure(images, mistakes, [f"c{i}" for i in range(10)])

    # what `cnnzoo explain RUN picture.png` writes, with this model behind the predictor
    picture = tmp_path / "shoe.png"
    Image.fromarray(images[0, 0].numpy()).save(picture)
    predictor = Predictor(model=model, classes=[f"c{i}" for i in range(10)], input_size=side, in_channels=1,
                          mean=[0.286], std=[0.353], invert="no", checkpoint=tmp_path / "last.pt")  # fmt: skip
    records, filters_png = explain_images(predictor, [picture], tmp_path / "explain")
    written = [filters_png, *records[0].files]
    assert [p.name for p in written] == ["filters.png", "shoe-cam.png", "shoe-features.png"]
    assert all(is_cnnzoo_output(p, "png") for p in written)

    assert all(m.training for m in model.modules()) and not frozen.requires_grad
    assert all(p.requires_grad for p in model.parameters() if p is not frozen)
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_chosen_target_and_layer_are_used():
    torch.manual_seed(0)
    model = cnnzoo.create_model("speednet", num_classes=10, in_channels=1)
    x = torch.randn(2, 1, 28, 28)
    cam = class_activation_maps(model, x, [3, 7], layer="features.1")
    assert cam.targets == [3, 7] and cam.layer == "features.1" and cam.maps.shape == (2, 28, 28)
    with pytest.raises(cnnzoo.base.errors.ConfigError, match="no layer"):
        class_activation_maps(model, x, layer="nope")


# ------------------------------------------------------------------------------------------------
# the map points at the object
# ------------------------------------------------------------------------------------------------
def _bars(n: int, seed: int):
    """Class 0 a bright horizontal 2x10 bar, class 1 a vertical 10x2 one, anywhere on a dim noisy background."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 50, (n, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 2
    boxes = []
    for i in range(n):
        h, w = (2, 10) if labels[i] == 0 else (10, 2)
        r, c = (int(v) for v in torch.randint(0, 28 - max(h, w) + 1, (2,), generator=g))
        images[i, r : r + h, c : c + w] = 230
        boxes.append((r, c, h, w))
    return images, labels, boxes


def test_the_cam_of_a_briefly_trained_net_peaks_on_the_object():
    # Grad-CAM finds evidence that may lie anywhere (a bar's orientation, not its place): the blocks data,
    # whose class *is* the place, is the wrong test (its evidence is the absence of a block everywhere else).
    torch.manual_seed(0)
    train_images, train_labels, _ = _bars(384, 0)
    images, labels, boxes = _bars(48, 1)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2),
    )  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(3):
        for x, y in model_inputs(train_images, train_labels, view=ModelView(28), batch_size=64):
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            optimizer.step()
    x, _ = next(model_inputs(images, view=ModelView(28), batch_size=64))
    cam = class_activation_maps(net, x, labels.tolist())
    assert cam.layer == "3"  # the last 28x28 map
    hits = 0
    for m, (r, c, h, w) in zip(cam.maps, boxes):
        pr, pc = divmod(int(m.argmax()), 28)
        hits += r - 1 <= pr <= r + h and c - 1 <= pc <= c + w  # on the bar, or its 1-pixel rim
    assert hits >= 0.9 * len(boxes)


# ------------------------------------------------------------------------------------------------
# top losses, class samples
# ------------------------------------------------------------------------------------------------
def test_top_losses_are_the_mistakes_with_the_highest_loss_as_evaluation_prepares_them(blocks):
    torch.manual_seed(1)
    model = cnnzoo.create_model("speednet", num_classes=10, in_channels=1).eval()
    images, labels = blocks.test_images[:100], blocks.test_labels[:100]
    mean, std = (0.2,), (0.3,)
    found = top_losses(model, images, labels, ModelView(32, mean, std), k=10_000, batch_size=37)
    # brute force, written out: /255, bilinear to 32x32, normalise, all at once
    x = F.interpolate(images.unsqueeze(1).float() / 255, size=32, mode="bilinear", align_corners=False)
    with torch.no_grad():
        logits = model((x - 0.2) / 0.3)
    loss = F.cross_entropy(logits, labels, reduction="none")
    wrong = (logits.argmax(1) != labels).nonzero().flatten().tolist()
    expected = sorted(wrong, key=lambda i: -float(loss[i]))
    assert 0 < len(found) == len(wrong) < 100  # only mistakes, all of them
    assert [m.index for m in found] == expected
    assert [m.loss for m in found] == pytest.approx([float(loss[i]) for i in expected], rel=1e-4)
    assert all(m.true == int(labels[m.index]) != m.predicted == int(logits[m.index].argmax()) for m in found)
    assert [m.probability for m in found] == pytest.approx(
        [float(logits[i].softmax(0).max()) for i in expected], rel=1e-4
    )
    top3 = top_losses(model, images, labels, ModelView(32, mean, std), k=3)
    assert [m.index for m in top3] == expected[:3]


def test_class_samples_are_seeded_and_of_the_right_class():
    labels = torch.arange(200) % 10
    a = class_samples(labels, per_class=4, seed=3)
    assert a == class_samples(labels, per_class=4, seed=3) and a != class_samples(labels, per_class=4, seed=4)
    assert sorted(a) == list(range(10)) and all(len(v) == 4 and all(labels[i] == k for i in v) for k, v in a.items())
    assert class_samples(labels[:5], 4, num_classes=10)[7] == []


# ------------------------------------------------------------------------------------------------
# cnnzoo explain, and the report of a finished run
# ------------------------------------------------------------------------------------------------
def test_explain_writes_a_cam_and_feature_maps_per_picture_and_the_filters(trained_run, tmp_path, capsys):
    pictures = picture_folder(tmp_path / "pics", classes=(3, 7))
    out = tmp_path / "out"
    assert main(["explain", str(trained_run), str(pictures), "--out", str(out), "--target", "class7", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{pictures / 'class3.png'}: class3 ") and lines[1].startswith(
        f"{pictures}/class7.png: class7 "
    )
    assert f"{out / 'class3-cam.png'}, {out / 'class3-features.png'}" in lines[0]
    written = sorted(p.name for p in out.iterdir())
    assert written == ["class3-cam.png", "class3-features.png", "class7-cam.png", "class7-features.png", "filters.png"]
    assert all(is_cnnzoo_output(out / n, "png") for n in written)
    # again: its own files are replaced; a file of the user's in the way stops it before anything is written
    foreign = out / "class7-features.png"
    foreign.write_bytes(b"the user's own file")
    stamp = (out / "filters.png").stat().st_mtime_ns
    assert main(["explain", str(trained_run), str(pictures), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --out ") and "class7-features.png" in err[0]
    assert foreign.read_bytes() == b"the user's own file" and (out / "filters.png").stat().st_mtime_ns == stamp


def test_a_bad_target_is_one_line_naming_the_classes(trained_run, tmp_path, capsys):
    pictures = picture_folder(tmp_path / "pics", classes=(3,))
    assert main(["explain", str(trained_run), str(pictures), "--out", str(tmp_path / "o"), "--target", "shoe"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--target 'shoe'" in err[0] and "class0, class1" in err[0]
    assert not (tmp_path / "o").exists()


def test_top_losses_and_class_grid_go_to_the_run_directory(trained_run, tmp_path, capsys, fake_train_data):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["explain", str(run), "--top-losses", "--count", "5", "--class-grid"]) == 0
    out = capsys.readouterr().out
    assert "top losses: the " in out and "on 256 test images" in out and str(run / "explain" / "top_losses.png") in out
    assert is_cnnzoo_output(run / "explain" / "top_losses.png", "png")
    assert is_cnnzoo_output(run / "explain" / "class_grid.png", "png")


def test_a_finished_run_reports_its_top_losses_and_one_explained_example(trained_run):
    report = (trained_run / "report.md").read_text()
    assert "## What the model gets wrong" in report and "## One example explained" in report
    assert "(top_losses.png)" in report and "(explained.png)" in report
    assert is_cnnzoo_output(trained_run / "top_losses.png", "png")
    assert is_cnnzoo_output(trained_run / "explained.png", "png")
    assert re.search(r"Test image 0 \(the first; true class class\d\).* The model says class\d \d", report)


def test_a_failing_explanation_costs_the_figures_not_the_report(tmp_path, fake_train_data, test_models, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(directory_mod, "explain_run", broken)
    out = tmp_path / "run"
    argv = ["train", "tiny_test_net", "--epochs", "1", "--batch-size", "128", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    report = (out / "report.md").read_text()
    assert report.count("(unavailable: RuntimeError: boom)") == 2 and "second line" not in report
    assert not (out / "top_losses.png").exists()


def test_the_map_has_a_useful_resolution_and_an_empty_or_coarse_one_says_so():
    torch.manual_seed(0)
    lenet = cnnzoo.create_model("lenet_bn").eval()
    cam = class_activation_maps(lenet, torch.randn(1, 1, 28, 28))
    assert min(cam.grid) >= 7  # LeNet's late 8x8 map, not its last 4x4 or 5x5 one
    tiny = nn.Sequential(nn.Conv2d(1, 4, 3, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 7 * 7, 3))
    coarse = class_activation_maps(tiny.eval(), torch.randn(1, 1, 28, 28))
    assert coarse.grid == (7, 7) and (coarse.note(0) or "").startswith("coarse: the layer's map is 7x7")
    empty = CamResult(torch.zeros(1, 28, 28), [0], torch.full((1, 3), 1 / 3), "0", (7, 7))
    assert empty.note(0).startswith("empty: nothing in the picture raised")
    fig = cam_figure(torch.zeros(1, 1, 28, 28, dtype=torch.uint8), empty, ["a", "b", "c"])
    assert any("empty" in ax.get_xlabel() for ax in fig.axes)
