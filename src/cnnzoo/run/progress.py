"""What a person sees while a run trains, as :class:`~cnnzoo.train.state.Callback` objects: a progress bar, one line
per epoch, and in Jupyter the curves redrawn live in the cell (d2l's ``Animator``).

The engine prints nothing; a front end picks what to show. :func:`default_callbacks` is the usual choice:
a bar where someone watches (a terminal or a notebook; logs and CI get the epoch lines only), the epoch
lines, and the live plot inside a Jupyter kernel. Everything here is fed at log intervals and epoch ends,
never per batch, so the hot loop stays free of host syncs.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tqdm.std import tqdm as text_tqdm

from cnnzoo.base.plots import curves_figure, figure_png
from cnnzoo.train.history import best_row, run_images_per_sec, time_to_target
from cnnzoo.train.state import Callback, EpochTotals, TrainState

__all__ = [
    "LIVE_PLOT_MIN_EPOCH",
    "LIVE_PLOT_SECONDS",
    "ConsoleProgress",
    "LivePlot",
    "SlowdownWarning",
    "default_callbacks",
    "final_summary",
    "format_best",
    "format_epoch",
    "format_time_to_target",
    "in_notebook",
]


def format_epoch(row: Mapping[str, Any], epochs: int) -> str:
    """One summary line per epoch."""
    width = len(str(epochs))
    val = f"val acc {row['val_acc']:.4f}  " if row.get("val_acc") is not None else ""
    return (
        f"epoch {row['epoch']:>{width}}/{epochs}  loss {row['train_loss']:.4f}  train acc {row['train_acc']:.4f}  "
        f"{val}test acc {row['test_acc']:.4f}  lr {row['lr']:.3g}  {row['images_per_sec']:.1f} img/s  "
        f"({row['train_seconds']:.1f} s train, {row['eval_seconds']:.1f} s eval)"
    )


def final_summary(history: Sequence[Mapping[str, Any]], device_label: str) -> str:
    """d2l's two closing lines: the last epoch's loss and accuracies, then examples/sec over the run
    (:func:`~cnnzoo.train.history.run_images_per_sec`)."""
    last = history[-1]
    return (
        f"loss {last['train_loss']:.3f}, train acc {last['train_acc']:.3f}, test acc {last['test_acc']:.3f}\n"
        f"{run_images_per_sec(history):.1f} examples/sec on {device_label}"
    )


def format_best(history: Sequence[Mapping[str, Any]]) -> str | None:
    """Which epoch ``best.pt`` holds and why (None without a validation split: there is no best.pt)."""
    best = best_row(history)
    if best is None:
        return None
    return (
        f"best.pt: epoch {best['epoch']}, the best validation accuracy ({best['val_acc']:.4f}; its test acc "
        f"{best['test_acc']:.4f})"
    )


def format_time_to_target(history: Sequence[Mapping[str, Any]], target: float) -> str:
    """The closing line of a ``--target-acc`` run: when the target was reached, or that it was not."""
    hit = time_to_target(history, target)
    if hit is None:
        top = max(history, key=lambda r: r["test_acc"]) if history else None
        seen = f"; highest {top['test_acc']:.4f} at epoch {top['epoch']}" if top else ""
        return f"did not reach test acc {target:g} in {len(history)} epochs{seen}"
    return (
        f"reached test acc {hit['test_acc']:.4f} (target {target:g}) at epoch {hit['epoch']} after "
        f"{hit['seconds']:.1f} s (evaluation time included)"
    )


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython's ZMQ shell), where curves can be drawn in the cell."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _bar_class(notebook: bool) -> Callable[..., Any]:
    if notebook and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm  # lazy: it imports ipywidgets, an optional notebook package

        return tqdm
    return text_tqdm  # without ipywidgets tqdm.auto would warn "IProgress not found"; a text bar works in a cell


class ConsoleProgress(Callback):
    """A tqdm bar per epoch (``bar``: a terminal or a notebook is watching) and one line per epoch on stdout."""

    def __init__(self, *, bar: bool | None = None, notebook: bool | None = None) -> None:
        self.notebook = in_notebook() if notebook is None else notebook
        self.show_bar = (self.notebook or sys.stderr.isatty()) if bar is None else bar
        self._bar: Any = None

    def on_epoch_start(self, state: TrainState, steps: int) -> None:
        if self.show_bar:
            epochs = state.config.epochs
            self._bar = _bar_class(self.notebook)(
                total=steps, desc=f"epoch {state.epoch + 1}/{epochs}", unit="batch", leave=False, dynamic_ncols=True
            )

    def on_log(self, state: TrainState, totals: EpochTotals) -> None:
        if self._bar is None:
            return
        count = max(1, totals.count)
        self._bar.update(totals.step - self._bar.n)
        self._bar.set_postfix_str(
            f"loss {float(totals.loss_sum) / count:.4f}  acc {int(totals.correct) / count:.4f}  "
            f"{totals.count / max(totals.seconds, 1e-9):.0f} img/s",
            refresh=False,
        )

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_epoch_end(self, state: TrainState) -> None:
        self._close()
        text_tqdm.write(format_epoch(state.history[-1], state.config.epochs), file=sys.stdout)

    def on_stop(self, state: TrainState) -> None:
        self._close()


LIVE_PLOT_SECONDS = 0.5  # the live plot redraws at most twice a second within an epoch
LIVE_PLOT_MIN_EPOCH = 5.0  # ... and only in epochs that take at least this long (seconds)


class LivePlot(Callback):
    """Redraw the curves in the notebook cell as the run trains (d2l's ``Animator``): after every epoch, and
    within an epoch at the engine's log intervals, where the running train loss and accuracy of the epoch so far
    extend the curves as dashed lines.

    Within an epoch it redraws at most once every :data:`LIVE_PLOT_SECONDS`, and no sooner than ten times
    what the last drawing took (a matplotlib figure costs about 0.1 s of the training's CPU: the plot takes at
    most ~10 % of it), and only in an epoch projected to last :data:`LIVE_PLOT_MIN_EPOCH` or more: a shorter
    one is drawn at its end soon enough. The epoch's own last interval is left to the epoch-end drawing.

    ``display`` is ``IPython.display.display`` by default; it is called once with ``display_id=True``
    and the handle it returns is updated in place afterwards. Tests pass their own, and a ``clock``.
    """

    def __init__(
        self,
        display: Callable[..., Any] | None = None,
        *,
        interval: float = LIVE_PLOT_SECONDS,
        min_epoch: float = LIVE_PLOT_MIN_EPOCH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._display = display
        self._handle: Any = None
        self.interval = interval
        self.min_epoch = min_epoch
        self._draw_seconds = 0.0
        self.clock = clock
        self.figures_drawn = 0
        self._steps = 0
        self._partial: list[tuple[float, float, float]] = []  # (x, running loss, running accuracy)
        self._last_draw: float | None = None

    def on_train_start(self, state: TrainState) -> None:
        self._last_draw = self.clock()  # the first redraw comes an interval into the run, not at its first step

    def on_epoch_start(self, state: TrainState, steps: int) -> None:
        self._steps = steps
        self._partial = []

    def on_log(self, state: TrainState, totals: EpochTotals) -> None:
        if not self._steps or totals.step >= self._steps:
            return  # the epoch's end is drawn by on_epoch_end, with its test accuracy
        count = max(1, totals.count)
        x = state.epoch + totals.step / self._steps  # epoch ``state.epoch + 1`` is drawn at x = state.epoch + 1
        self._partial.append((x, float(totals.loss_sum) / count, int(totals.correct) / count))
        projected = totals.seconds / max(1, totals.step) * self._steps
        wait = max(self.interval, 10 * self._draw_seconds)
        if projected >= self.min_epoch and (self._last_draw is None or self.clock() - self._last_draw >= wait):
            self._draw(state)

    def on_epoch_end(self, state: TrainState) -> None:
        self._partial = []
        self._draw(state)

    def _draw(self, state: TrainState) -> None:
        start = self.clock()  # one clock for the waits and the drawing's cost (a test's fake one for both)
        fig = curves_figure(state.history, title=state.config.model, epochs=state.config.epochs)
        if self._partial:
            _add_partial(fig, state.history, self._partial, state.config.epochs)
        image = self._image(figure_png(fig, dpi=90))
        if self._handle is None:
            show = self._display or _ipython_display()
            self._handle = show(image, display_id=True)
        else:
            self._handle.update(image)
        self._last_draw = self.clock()
        self._draw_seconds = self._last_draw - start
        self.figures_drawn += 1

    def _image(self, png: bytes) -> Any:
        if self._display is not None:
            return png
        from IPython.display import Image  # lazy: only inside a notebook, where IPython is there

        return Image(data=png, format="png")


def _add_partial(fig: Any, history: Sequence[Mapping[str, Any]], partial: Sequence[tuple[float, float, float]],
                 epochs: int) -> None:  # fmt: skip
    """The epoch in progress on :func:`~cnnzoo.base.plots.curves_figure`'s axes: running train loss and accuracy,
    dashed, from the last completed epoch's point, in the colours of the train curves."""
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    last = history[-1] if history else None
    for label, key, column in (("train loss", "train_loss", 1), ("train acc", "train_acc", 2)):
        xs = ([float(last["epoch"])] if last else []) + [p[0] for p in partial]
        ys = ([float(last[key])] if last else []) + [p[column] for p in partial]
        color = lines[label].get_color() if label in lines else None
        ax.plot(xs, ys, linestyle="--", color=color)
    ax.set_xlim(0, max(epochs, 1) + 0.5)


def _ipython_display() -> Callable[..., Any]:
    from IPython.display import display  # lazy: only inside a notebook

    return display


SLOWDOWN = 3.0  # an epoch this many times slower than the run's first is worth a word


class SlowdownWarning(Callback):
    """One line on stderr, once, when an epoch trains :data:`SLOWDOWN` times slower than the first: the
    figures of such a run say more about the machine than about the model."""

    def __init__(self, factor: float = SLOWDOWN, stream: Any = None) -> None:
        self.factor = factor
        self.stream = stream
        self.warned = False

    def on_epoch_end(self, state: TrainState) -> None:
        first, last = state.history[0], state.history[-1]
        if self.warned or len(state.history) < 2 or not last["images_per_sec"] > 0:
            return
        slower = first["images_per_sec"] / last["images_per_sec"]
        if slower >= self.factor:
            self.warned = True
            print(
                f"warning: epoch {last['epoch']} trained {slower:.1f}x slower than epoch {first['epoch']} "
                f"({last['images_per_sec']:,.0f} against {first['images_per_sec']:,.0f} img/s): another program "
                "is probably busy on this machine; its timings are not this model's",
                file=self.stream or sys.stderr,
                flush=True,
            )


def default_callbacks(show: bool = True) -> list[Callback]:
    """What a person usually wants to see: the bar and epoch lines, a warning when the machine slows the run
    down, and the live curves in Jupyter."""
    if not show:
        return []
    notebook = in_notebook()
    return [ConsoleProgress(notebook=notebook), SlowdownWarning(), *([LivePlot()] if notebook else [])]
