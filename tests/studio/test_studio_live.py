"""Live curves within an epoch: ``RUN/live.json`` (:mod:`cnnzoo.run.live`) as a run trains, and the Jupyter
:class:`~cnnzoo.run.progress.LivePlot` redrawing at log intervals, both throttled."""

from __future__ import annotations

import itertools
import json
import types

import torch

import cnnzoo.train.loop
from cnnzoo import create_model, fit, resolve_config
from cnnzoo.cli import main
from cnnzoo.run.live import LiveCurves, read_live
from cnnzoo.run.progress import LivePlot
from cnnzoo.train.state import Callback, EpochTotals


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _state(epoch=0, epochs=3, history=()):
    config = resolve_config("lenet")
    config = types.SimpleNamespace(model="lenet", epochs=epochs, **{k: getattr(config, k) for k in ("seed",)})
    return types.SimpleNamespace(epoch=epoch, history=list(history), config=config)


def _totals(step, count, loss_sum, correct, seconds=1.0):
    return EpochTotals(torch.tensor(loss_sum), torch.tensor(correct), count, seconds, step)


def test_live_json_holds_the_epoch_in_progress_at_most_twice_a_second(tmp_path):
    clock = Clock()
    live = LiveCurves(tmp_path, clock=clock)
    state = _state()
    live.on_train_start(state)
    live.on_epoch_start(state, steps=100)
    for step in range(10, 60, 10):  # five log intervals, 0.3 s apart
        clock.now += 0.3
        live.on_log(state, _totals(step, step * 8, step * 8 * 2.0, step * 4))
    record = read_live(tmp_path)
    assert live.writes == 3  # train start (t=0), t=0.6 and t=1.2: never two within 0.5 s
    assert [r["step"] for r in record["rows"]] == [10, 20, 30, 40]  # every interval kept; step 50 waits its turn
    assert record["rows"][-1] == {"epoch": 1, "fraction": 0.4, "step": 40, "train_loss": 2.0, "train_acc": 0.5}
    assert record["state"] == "training" and record["epoch"] == 1 and record["epochs"] == 3
    state.epoch = 1
    live.on_epoch_end(state)
    assert read_live(tmp_path)["rows"] == []  # the epoch is a metrics row now
    live.on_stop(state)
    live.close()
    assert read_live(tmp_path)["state"] == "stopped"  # a stopped run keeps its file; a finished one does not
    (tmp_path / "live.json").write_text("{not json")
    assert read_live(tmp_path) is None


def test_a_training_run_writes_live_json_while_it_trains_and_removes_it_at_the_end(
    tmp_path, fake_train_data, test_models, monkeypatch
):
    """`cnnzoo train` gets the callback from start_training: live.json exists mid-epoch, is gone at the end."""
    import cnnzoo.cli.train

    out = tmp_path / "run"
    seen = []

    class Peek(Callback):
        def on_log(self, state, totals):
            record = read_live(out)
            seen.append((totals.step, [r["step"] for r in record["rows"]] if record else None))

    monkeypatch.setattr(cnnzoo.train.loop, "LOG_EVERY", 4)
    monkeypatch.setattr(LiveCurves, "__init__", _no_throttle(LiveCurves.__init__))
    monkeypatch.setattr(cnnzoo.cli.train, "default_callbacks", lambda show=True: [Peek()])  # what cnnzoo train uses
    argv = ["train", "tiny_test_net", "--epochs", "1", "--batch-size", "32", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    mid = [(step, rows) for step, rows in seen if rows]
    assert len(mid) >= 2 and all(rows[-1] == step for step, rows in mid)  # the run layer's callback runs first
    assert not (out / "live.json").exists()  # finished: the directory holds what it held before


def _no_throttle(init):
    def patched(self, directory, **kw):
        init(self, directory, **{**kw, "interval": 0.0})

    return patched


def test_live_plot_redraws_within_a_long_epoch_at_most_twice_a_second():
    clock = Clock()
    drawn = []  # the clock at every drawing
    handle = types.SimpleNamespace(update=lambda image: drawn.append((clock.now, image)))
    plot = LivePlot(display=lambda image, display_id: drawn.append((clock.now, image)) or handle, clock=clock)
    history = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.6, "test_acc": 0.5}]
    state = _state(epoch=1, history=history)
    plot.on_train_start(state)
    plot.on_epoch_start(state, steps=1000)
    for step in range(20, 600, 20):  # 29 log intervals 0.25 s apart, in an epoch of ~20 s
        clock.now += 0.25
        plot.on_log(state, _totals(step, step * 8, step * 8 * 0.8, step * 6, seconds=step * 0.02))
    times = [t for t, _ in drawn]
    assert len(times) >= 2 and all(b - a >= 0.5 for a, b in itertools.pairwise(times)), times
    assert all(image[:8] == b"\x89PNG\r\n\x1a\n" for _, image in drawn)
    before = plot.figures_drawn
    plot.on_log(state, _totals(1000, 8000, 6400.0, 6000, seconds=20.0))  # the epoch's last interval: left to its end
    clock.now += 100
    plot.on_log(state, _totals(1000, 8000, 6400.0, 6000, seconds=20.0))
    assert plot.figures_drawn == before == len(drawn)


def test_live_plot_waits_ten_times_what_its_last_drawing_took():
    clock = Clock()
    drawn = []

    def draw(image, display_id=None):  # each drawing costs 0.2 s of the (fake) clock
        clock.now += 0.2
        drawn.append(clock.now)
        return handle

    handle = types.SimpleNamespace(update=lambda image: draw(image))
    plot = LivePlot(display=draw, clock=clock)
    state = _state(epoch=1, history=[{"epoch": 1, "train_loss": 1.0, "train_acc": 0.6, "test_acc": 0.5}])
    plot.on_train_start(state)
    plot.on_epoch_start(state, steps=1000)
    for step in range(20, 900, 20):
        clock.now += 0.25
        plot.on_log(state, _totals(step, step * 8, step * 8 * 0.8, step * 6, seconds=step * 0.02))
    assert len(drawn) >= 2 and all(b - a >= 2.0 for a, b in itertools.pairwise(drawn)), drawn


def test_live_plot_does_not_redraw_within_a_short_epoch():
    handle = types.SimpleNamespace(update=lambda image: None)
    clock = Clock()
    plot = LivePlot(display=lambda image, display_id: handle, clock=clock)
    state = _state()
    plot.on_train_start(state)
    plot.on_epoch_start(state, steps=100)
    for step in range(20, 100, 20):
        clock.now += 1.0
        plot.on_log(state, _totals(step, step * 8, 1.0, 1, seconds=step * 0.01))  # a 1 s epoch
    assert plot.figures_drawn == 0


def test_fit_with_live_curves_and_a_stop_keeps_the_half_epoch(tmp_path, blocks, test_models, monkeypatch):
    monkeypatch.setattr(cnnzoo.train.loop, "LOG_EVERY", 2)
    config = resolve_config("tiny_test_net", "fast", {"epochs": 2, "batch_size": 32, "device": "cpu"})
    steps = []
    live = LiveCurves(tmp_path, interval=0)
    fit(create_model("tiny_test_net"), blocks, config, callbacks=[live],
        should_stop=lambda: steps.append(1) or len(steps) >= 7)  # fmt: skip
    live.close()
    record = json.loads((tmp_path / "live.json").read_text())
    assert record["state"] == "stopped" and [r["step"] for r in record["rows"]] == [2, 4, 6, 7]
