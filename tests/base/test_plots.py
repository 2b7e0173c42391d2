"""Figures without a display: curves, confusion matrix, overlays, and the Jupyter live plot."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from cnnzoo import create_model
from cnnzoo.base.plots import (
    MAX_MATRIX_CLASSES,
    confusion_figure,
    curves_figure,
    figure_png,
    overlay_figure,
    save_figure,
    top_confusions,
)
from cnnzoo.run.progress import LivePlot, default_callbacks
from cnnzoo.train.loop import fit
from cnnzoo.train.recipes import resolve_config
from helpers_files import run_limited

pytestmark = pytest.mark.usefixtures("test_models")
PNG = b"\x89PNG\r\n\x1a\n"
HISTORY = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5 + e / 10, "test_acc": 0.45 + e / 10} for e in (1, 2, 3)]


def test_curves_figure_has_the_three_seed_curves(tmp_path):
    fig = curves_figure(HISTORY, title="lenet", epochs=10)
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["train loss", "train acc", "test acc"]
    assert list(ax.get_lines()[2].get_ydata()) == [0.55, 0.65, 0.75]
    assert ax.get_xlim() == (0.5, 10.5)
    path = save_figure(fig, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # written atomically, nothing left over


def test_figures_never_touch_pyplot_state():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    figure_png(curves_figure(HISTORY))
    figure_png(confusion_figure(torch.eye(3, dtype=torch.int64) * 5, ["a", "b", "c"]))
    assert plt.get_fignums() == before


def test_confusion_figure_annotates_counts():
    confusion = torch.tensor([[8, 2], [0, 10]])
    fig = confusion_figure(confusion, ["cat", "dog"], title="t")
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["10", "2", "8"]  # zero cells stay blank
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog"]


def test_overlay_figure_has_one_line_per_run_in_each_panel():
    other = [{**row, "test_acc": row["test_acc"] - 0.1} for row in HISTORY]
    fig = overlay_figure([("run-a", HISTORY), ("run-b", other)])
    assert [ax.get_title() for ax in fig.axes] == ["train loss", "train acc", "test acc"]
    assert all([line.get_label() for line in ax.get_lines()] == ["run-a", "run-b"] for ax in fig.axes)


class FakeHandle:
    def __init__(self):
        self.updates = []

    def update(self, obj):
        self.updates.append(obj)


def test_live_plot_displays_once_then_updates_in_place():
    shown, handle = [], FakeHandle()

    def display(obj, display_id=False):
        shown.append((obj, display_id))
        return handle

    live = LivePlot(display=display)
    state = types.SimpleNamespace(history=HISTORY[:1], config=resolve_config("lenet"))
    live.on_epoch_end(state)
    state.history = HISTORY
    live.on_epoch_end(state)
    assert len(shown) == 1 and shown[0][1] is True and shown[0][0][:8] == PNG
    assert len(handle.updates) == 1 and handle.updates[0][:8] == PNG
    assert live.figures_drawn == 2


@pytest.fixture
def fake_notebook(monkeypatch):
    """Just enough of IPython for fit to believe it runs in a Jupyter kernel (no display, no kernel)."""
    shown, handle = [], FakeHandle()

    class ZMQInteractiveShell:  # the class name is what identifies a notebook kernel
        pass

    class Image:
        def __init__(self, data, format):
            self.data, self.format = data, format

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: ZMQInteractiveShell()
    display_mod = types.ModuleType("IPython.display")
    display_mod.Image = Image
    display_mod.display = lambda obj, display_id=False: shown.append(obj) or handle
    ipython.display = display_mod
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display_mod)
    return shown, handle


def test_fit_draws_the_curves_live_in_a_notebook(fake_notebook, blocks):
    shown, handle = fake_notebook
    torch.manual_seed(0)
    config = resolve_config("tiny_test_net", "fast", {"epochs": 2, "batch_size": 128, "device": "cpu"})
    fit(create_model("tiny_test_net"), blocks, config, callbacks=default_callbacks())
    assert len(shown) == 1 and shown[0].data[:8] == PNG and shown[0].format == "png"
    assert len(handle.updates) == 1  # redrawn in the same output after epoch 2


def test_no_live_plot_outside_a_notebook(blocks, monkeypatch):
    import cnnzoo.run.progress

    drawn = []
    monkeypatch.setattr(cnnzoo.run.progress.LivePlot, "on_epoch_end", lambda self, state: drawn.append(state))
    config = resolve_config("tiny_test_net", "fast", {"epochs": 1, "batch_size": 128, "device": "cpu"})
    fit(create_model("tiny_test_net"), blocks, config, callbacks=default_callbacks())
    assert drawn == []


def test_top_confusions_names_the_most_frequent_mistakes():
    confusion = torch.tensor([[8, 2, 0], [5, 5, 0], [0, 1, 9]])
    rows = top_confusions(confusion, ["a", "b", "c"], n=2)
    assert rows == [
        {"true": "b", "predicted": "a", "count": 5, "share": 0.5},
        {"true": "a", "predicted": "b", "count": 2, "share": 0.2},
    ]
    assert top_confusions(torch.eye(3, dtype=torch.int64), ["a", "b", "c"]) == []  # no mistakes, no bars


def test_many_classes_get_a_chart_of_top_mistakes_not_a_giant_matrix(tmp_path):
    """300 classes once took 11 GB as a matrix; the chart's size does not grow with the classes."""
    few = confusion_figure(torch.eye(MAX_MATRIX_CLASSES, dtype=torch.int64) * 3, [str(i) for i in range(30)])
    assert len(few.axes[0].images) == 1  # a matrix up to the limit
    code = f"""
        import torch
        from cnnzoo.base.plots import confusion_figure, save_figure
        k = 300
        g = torch.Generator().manual_seed(0)
        confusion = torch.randint(0, 5, (k, k), generator=g) + torch.eye(k, dtype=torch.int64) * 50
        fig = confusion_figure(confusion, [f"class {{i}}" for i in range(k)], title="many")
        assert not fig.axes[0].images and len(fig.axes[0].patches) == 25, fig.axes
        w, h = fig.get_size_inches()
        save_figure(fig, {str(tmp_path / "c.png")!r})
        print(w, h)
    """
    done = run_limited(code, headroom_mb=400, timeout=60)
    assert done.returncode == 0, done.stderr
    w, h = map(float, done.stdout.split())
    assert w <= 10 and h <= 10
    assert (tmp_path / "c.png").stat().st_size < 500_000
