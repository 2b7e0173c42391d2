"""The leaderboard's files: rows merged into ``leaderboard.json``, and the page and figure drawn from them.

:func:`update_leaderboard` merges rows (made by :func:`cnnzoo.leaderboard.plan.run_leaderboard`) into
``leaderboard.json``, the source of truth, and rewrites ``leaderboard.md`` and ``leaderboard.png`` from all
of its rows, so CPU rows and GPU rows measured later, elsewhere, sit side by side. A row is keyed by what
was measured: model (with its keyword arguments), input size, recipe, dataset, device and budget (its
epochs, or its minutes per run: :func:`row_key`); a rerun replaces the row with the same key, unless the
rerun measured less (fewer seeds, or fewer epochs in the same time budget) and ``replace`` is not given.
The files are written only where :func:`cnnzoo.base.outputs.claim_output` allows (the page carries a
``<!-- written by cnnzoo ... -->`` line, the figure a ``Software: cnnzoo`` chunk, the JSON its
``format``). Every row carries its own provenance (command, date, machine, torch version,
device). The page sets the book's and the public benchmark's figures (:mod:`cnnzoo.models.references`) beside
the Fashion-MNIST rows, labelled as not ours.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

from cnnzoo.base.atomic import atomic_write_text
from cnnzoo.base.errors import ConfigError
from cnnzoo.base.outputs import claim_output, marker_comment
from cnnzoo.base.plots import save_figure
from cnnzoo.base.reading import LIMIT, read_json
from cnnzoo.models.inspection import human
from cnnzoo.models.references import D2L_FIGURES, PUBLIC_BEST, PUBLIC_FIGURES, PUBLIC_SOURCE, reference_key

__all__ = [
    "FORMAT",
    "budget_group",
    "check_outputs",
    "leaderboard_figure",
    "leaderboard_paths",
    "load_rows",
    "merge_rows",
    "point_label",
    "render_markdown",
    "row_budget",
    "row_key",
    "update_leaderboard",
]

FORMAT = "cnnzoo-leaderboard/1"


# ------------------------------------------------------------------------------------------------
# rows: keyed, merged, loaded
# ------------------------------------------------------------------------------------------------
def _budget_amount(row: Mapping[str, Any]) -> tuple[bool, float]:
    """``(False, epochs)``, or ``(True, minutes)`` per run with ``--budget-minutes`` (rows written before
    budgets were keyed have ``epochs_planned``, or their runs' epochs)."""
    if row.get("budget_minutes") is not None:
        return True, row["budget_minutes"]
    epochs = row.get("epochs_planned")
    return False, max(r["epochs"] for r in row["runs"]) if epochs is None else epochs


def row_budget(row: Mapping[str, Any]) -> str:
    """The budget a row was measured with: ``"12 epochs"`` (``"1 epoch"``), or ``"5 min"`` per run."""
    minutes, amount = _budget_amount(row)
    return f"{amount:g} min" if minutes else f"{amount:g} epoch" + ("s" if amount != 1 else "")


def _budget_order(row: Mapping[str, Any]) -> tuple[bool, float]:
    """Epoch budgets first, then minutes budgets; the longest first in each."""
    minutes, amount = _budget_amount(row)
    return minutes, -amount


def budget_group(row: Mapping[str, Any]) -> str:
    """The rows a row is ranked among: those of its budget (:func:`row_budget`), and for a minutes budget
    those of its device too (a faster device fits more epochs into the same minutes)."""
    budget = f"{row_budget(row)} per run"
    return f"{budget} on {row['device']}" if row.get("budget_minutes") is not None else budget


def row_key(row: Mapping[str, Any]) -> tuple:
    """What makes two rows the same measurement (a rerun replaces it): model, side, recipe, data, device,
    budget (:func:`row_budget`)."""
    return (row["model"], row["input_size"], row["recipe"], row["dataset"], row["device"], row_budget(row))


def _measured(row: Mapping[str, Any]) -> tuple[int, float]:
    """How much a row measured: its seeds, and its runs' mean epochs."""
    runs = row.get("runs") or []
    epochs = sum(r["epochs"] for r in runs) / len(runs) if runs else 0.0
    return len(row.get("seeds") or runs), epochs


def _smaller(new: Mapping[str, Any], old: Mapping[str, Any]) -> str | None:
    """Why ``new`` measured less than ``old`` (fewer seeds, or fewer epochs), or None."""
    (new_seeds, new_epochs), (old_seeds, old_epochs) = _measured(new), _measured(old)
    if new_seeds < old_seeds:
        return f"over {old_seeds} seeds, this run over {new_seeds}"
    if new_epochs < old_epochs:
        return f"with {old_epochs:g} epochs per seed, this run with {new_epochs:g}"
    return None


def merge_rows(
    old: Sequence[Mapping[str, Any]],
    new: Sequence[Mapping[str, Any]],
    *,
    replace: bool = False,
    source: str = "the leaderboard",
) -> list[dict[str, Any]]:
    """``old`` with each row of ``new`` replacing the row of the same :func:`row_key`, or appended.

    A row that measured less than the one it would replace (fewer seeds, or fewer epochs) is refused with a
    :class:`ConfigError` unless ``replace``; ``source`` names the file in the message."""
    merged = {row_key(r): dict(r) for r in old}
    for r in new:
        key = row_key(r)
        why = _smaller(r, merged[key]) if key in merged and not replace else None
        if why is not None:
            raise ConfigError(
                f"{source} has {r['model']}@{r['input_size']} ({r['recipe']}, {row_budget(r)}, {r['device']}) "
                f"measured {why}: pass --replace to replace it, or measure at least as much"
            )
        merged[key] = dict(r)
    return list(merged.values())


def load_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a leaderboard JSON; ``[]`` when the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        doc = read_json(path, limit=LIMIT["leaderboard"])
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot read {path} ({exc}): fix it, move it away or choose another --output") from None
    rows = doc.get("rows") if isinstance(doc, dict) and doc.get("format") == FORMAT else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"{path} is not a cnnzoo leaderboard ({FORMAT}): move it away or choose another --output")
    for number, row in enumerate(rows, start=1):
        problem = _row_problem(row)
        if problem is not None:
            raise ConfigError(f"{path}: row {number}: {problem}: fix it or move it away")
    return rows


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v < 1 << 62


_PROVENANCE = ("date", "command", "machine", "platform", "python", "torch", "cnnzoo", "device")
_TEXT = (lambda v: isinstance(v, str), "text")
_NUM = (_is_num, "a number")
_NUM_OR_NONE = (lambda v: v is None or _is_num(v), "a number or null")
_COUNT = (_is_count, "a positive whole number")
_FRACTION = (lambda v: _is_num(v) and 0 <= v <= 1, "a fraction from 0 to 1")
_ROW = {  # what every row must hold, and what each part of it is (rows are drawn and tabulated from these)
    "model": _TEXT,
    "dataset": _TEXT,
    "input_size": _COUNT,
    "params": _COUNT,
    "macs": _COUNT,
    "recipe": _TEXT,
    "seeds": (
        lambda v: isinstance(v, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in v),
        "a list of seeds",
    ),
    "runs": (
        lambda v: isinstance(v, list) and 0 < len(v) < 10_000 and all(isinstance(r, dict) for r in v),
        "a list of runs",
    ),
    "test_acc_mean": _FRACTION,
    "test_acc_std": _NUM_OR_NONE,
    "train_seconds_mean": _NUM,
    "train_seconds_std": _NUM_OR_NONE,
    "device": _TEXT,
    "precision": _TEXT,
    "provenance": (
        lambda v: isinstance(v, dict) and all(isinstance(v.get(k), str) for k in _PROVENANCE),
        "an object of " + ", ".join(_PROVENANCE),
    ),
}
_OPTIONAL = {"budget_minutes": _NUM_OR_NONE, "epochs_planned": (lambda v: v is None or _is_count(v), "a count or null")}
_RUN = {"epochs": _COUNT}
_RUN_OPTIONAL = {"test_acc": _FRACTION, "train_seconds": _NUM}


def _row_problem(row: Mapping[str, Any]) -> str | None:
    """What is wrong with a leaderboard row read from a file, in a few words; None when nothing is."""
    for key, (ok, what) in _ROW.items():
        if key not in row:
            return f"it has no {key!r}"
        if not ok(row[key]):
            return f"{key} is {str(row[key])[:40]!r}, not {what}"
    for key, (ok, what) in _OPTIONAL.items():
        if key in row and not ok(row[key]):
            return f"{key} is {str(row[key])[:40]!r}, not {what}"
    for number, run in enumerate(row["runs"], start=1):
        for key, (ok, what) in [*_RUN.items(), *((k, c) for k, c in _RUN_OPTIONAL.items() if k in run)]:
            if not ok(run.get(key)):
                return f"run {number}: {key} is {str(run.get(key))[:40]!r}, not {what}"
    return None


def _sorted(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Fashion-MNIST first, then by dataset; in each, by budget (:func:`_budget_order`, then
    :func:`budget_group`), then by test accuracy: a ranking only ever within one budget."""

    def key(r: Mapping[str, Any]) -> tuple:
        dataset = r["dataset"]
        return (dataset != "fashion-mnist", dataset, _budget_order(r), budget_group(r), -r["test_acc_mean"], r["model"])

    return sorted(rows, key=key)


def leaderboard_paths(output: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """``(X.md, X.json, X.png)`` for ``output`` ``X.md``; anything else is a :class:`ConfigError`."""
    md = Path(output)
    if md.suffix != ".md":
        raise ConfigError(f"--output {md}: give a Markdown file name ending in .md (the .json and .png go beside it)")
    return md, md.with_suffix(".json"), md.with_suffix(".png")


def check_outputs(output: str | os.PathLike[str], *, force: bool = False) -> tuple[Path, Path, Path]:
    """The three files of ``output`` when cnnzoo may write them: the JSON must be a leaderboard (or absent),
    the page and figure cnnzoo's own (or absent, or ``force``): :func:`cnnzoo.base.outputs.claim_output`."""
    if not str(output).strip():
        raise ConfigError("--output is empty (an unset variable?): give a Markdown file name ending in .md")
    md, js, png = leaderboard_paths(output)
    load_rows(js)  # the rows' source: a file that is not a leaderboard is refused, never forced over
    claim_output(md, "markdown", flag="--output", force=force)
    claim_output(png, "png", flag="--output's figure", force=force)
    return md, js, png


def update_leaderboard(
    output: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]] = (),
    *,
    replace: bool = False,
    force: bool = False,
) -> tuple[Path, Path, Path, list[dict[str, Any]]]:
    """Merge ``rows`` into the JSON beside ``output`` (``X.md`` -> ``X.json``), then rewrite ``X.md`` and
    ``X.png`` from every row there. Returns the three paths and all rows. With no rows: a redraw.

    ``replace``: a row may replace one that measured more (see :func:`merge_rows`); ``force``: the page and
    figure may replace files cnnzoo did not write (:func:`check_outputs`)."""
    md, js, png = check_outputs(output, force=force)
    merged = _sorted(merge_rows(load_rows(js), rows, replace=replace, source=str(js)))
    if not merged:
        raise ConfigError(f"{js} has no rows to draw: run `cnnzoo leaderboard` with some models first")
    atomic_write_text(js, json.dumps({"format": FORMAT, "rows": merged}, indent=2) + "\n")
    save_figure(leaderboard_figure(merged), png)
    atomic_write_text(md, render_markdown(merged, png_name=png.name, json_name=js.name))
    return md, js, png, [dict(r) for r in merged]


# ------------------------------------------------------------------------------------------------
# the page
# ------------------------------------------------------------------------------------------------
def _acc(row: Mapping[str, Any]) -> str:
    std = row.get("test_acc_std")
    return f"{row['test_acc_mean']:.4f} ± {std:.4f}" if std is not None else f"{row['test_acc_mean']:.4f}"


def _seconds(s: float) -> str:
    return f"{s:,.0f} s" if s >= 100 else f"{s:.1f} s"


def _epochs(row: Mapping[str, Any]) -> str:
    counts = [r["epochs"] for r in row["runs"]]
    text = str(counts[0]) if len(set(counts)) == 1 else "/".join(map(str, counts))
    if row.get("budget_minutes") is not None:
        text += f" ({row['budget_minutes']:.3g}-min budget)"
    if any(r.get("stopped_by_budget") for r in row["runs"]):
        text += ", cut short"
    return text


def _d2l_cell(row: Mapping[str, Any]) -> str:
    figures = D2L_FIGURES.get(reference_key(row["name"], row["family"]), ())
    if not figures:
        return "–"
    return ", ".join(
        f"{f.test_acc:.3f} ({f.short})" if f.test_acc is not None else f"– ({f.short}: plot only)" for f in figures
    )


def _public_cell(row: Mapping[str, Any]) -> str:
    figure = PUBLIC_FIGURES.get(reference_key(row["name"], row["family"]))
    return f"{figure.test_acc:.3f} ({figure.architecture})" if figure else "–"


_HEAD = ["#", "model", "input", "params", "MACs", "recipe", "budget", "epochs", "seeds", "test acc (mean ± std)"]
_HEAD += ["best"]
_HEAD += ["train time", "images/s", "device", "run"]
_REFERENCE_HEAD = ["d2l's figure", "public figure (not ours)"]
_RIGHT = {"#", "input", "params", "MACs", "epochs", "test acc (mean ± std)", "best", "train time", "images/s"}


def _run_id(row: Mapping[str, Any]) -> str:
    return json.dumps(row["provenance"], sort_keys=True)


def _cells(rank: int, r: Mapping[str, Any], run: int, refs: bool) -> list[str]:
    cells = [
        str(rank),
        r["model"],
        f"{r['input_size']}x{r['input_size']}",
        f"{r['params']:,}",
        human(r["macs"]),
        r["recipe"],
        row_budget(r),
        _epochs(r),
        " ".join(map(str, r["seeds"])),
        _acc(r),
        f"{r['test_acc_best']:.4f}",
        _seconds(r["train_seconds_mean"]),
        f"{r['images_per_sec_mean']:,.0f}",
        f"{r['device']}, {r['precision']}",
        f"[{run}]",
    ]
    return [*cells, _d2l_cell(r), _public_cell(r)] if refs else cells


def _dataset_section(dataset: str, group: Sequence[Mapping[str, Any]], runs: Mapping[str, int]) -> list[str]:
    """One dataset's tables, one per budget (:func:`budget_group`), each ranked on its own, and its training
    set-ups (reference columns for Fashion-MNIST only). ``group`` is sorted (:func:`_sorted`)."""
    refs = dataset == "fashion-mnist"
    head = _HEAD + (_REFERENCE_HEAD if refs else [])
    out = [f"## {dataset}", ""]
    for budget in dict.fromkeys(map(budget_group, group)):
        out += [f"### {budget}", ""]
        out += ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if h in _RIGHT else "---" for h in head) + "|"]
        ranked = [r for r in group if budget_group(r) == budget]
        out += ["| " + " | ".join(_cells(rank, r, runs[_run_id(r)], refs)) + " |" for rank, r in enumerate(ranked, 1)]
        out.append("")
    out += ["Training set-ups:", ""]
    out += [
        f"- {r['model']}@{r['input_size']} · {r['recipe']} · {row_budget(r)} · {r['device']}: {r['setting']}"
        for r in group
    ]
    out.append("")
    if not refs:
        out += ["(No reference figures: the book's figures and the public table are for Fashion-MNIST.)", ""]
    return out


def _intro(png_name: str, json_name: str) -> list[str]:
    return [
        marker_comment("leaderboard").rstrip("\n"),
        "# Leaderboard",
        "",
        "Generated by `cnnzoo leaderboard` from "
        f"`{json_name}` (beside this file: every row with its per-seed results); `cnnzoo leaderboard --redraw` "
        "rewrites this page and the figure from it, and a run with other models adds rows to it.",
        "",
        "- **budget**: what each run was given: a number of epochs, or minutes of training (`--budget-minutes`). "
        "Rows of different budgets are not a ranking: a network trained for 12 epochs above one trained for 3 "
        "says nothing about which network is better. So each dataset's rows are set out in one table per "
        "budget, the longest first, and **#** ranks a row among the rows of its own budget only (a minutes "
        "budget also per device: a faster device fits more epochs into the same minutes). In the figure each "
        "budget has its own marker and colour.",
        "- **test acc**: each seed's last-epoch test accuracy (never the best epoch), mean ± sample standard "
        "deviation over the random seeds; **best**: the best seed's.",
        "- **train time**: the training epochs' wall time (data preparation included, evaluation excluded), mean "
        "over the random seeds; **images/s**: training images over that time. A few untimed probe steps warm the "
        "device up before each model's runs.",
        "- **epochs**: the epochs each seed ran; with a minutes budget, as many whole epochs as a short probe "
        'said fit in it (the schedule is laid over them); "cut short": a run stopped at an epoch\'s end to keep '
        "to the budget.",
        "- **d2l's figure** and **public figure** are not ours: reference numbers with other set-ups and "
        "(public) other architectures, listed below.",
        "",
        f"![test accuracy against MACs and against training time, a marker per budget]({png_name})",
        "",
    ]


def render_markdown(
    rows: Sequence[Mapping[str, Any]], *, png_name: str = "leaderboard.png", json_name: str = "leaderboard.json"
) -> str:
    """The leaderboard page: one table per dataset, the reference figures, and each run's provenance."""
    rows = _sorted(rows)
    runs: dict[str, int] = {}
    for r in rows:
        runs.setdefault(_run_id(r), len(runs) + 1)
    out = _intro(png_name, json_name)
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        out += _dataset_section(dataset, [r for r in rows if r["dataset"] == dataset], runs)
    if any(r["dataset"] == "fashion-mnist" for r in rows):
        out += _reference_section()
    out += ["## Runs", ""]
    for text, number in runs.items():
        p = json.loads(text)
        out.append(
            f"{number}. `{p['command']}` — {p['date']}; machine: {p['machine']} ({p['platform']}); "
            f"torch {p['torch']}, cnnzoo {p['cnnzoo']}, Python {p['python']}; device: {p['device']}"
        )
    return "\n".join(out) + "\n"


def _reference_section() -> list[str]:
    out = [
        "## Reference figures (not ours)",
        "",
        "**d2l's figures**: the test accuracy the book printed at the end of its own training run of each network "
        "(`train_ch6`: plain SGD, Xavier init, no normalisation or augmentation), on a GPU, and one figure of a d2l "
        'reader\'s ResNet-18 variant with its own set-up; "source" says which. "plot only": the book trains the '
        "network but shows its curves as an image, with no number.",
        "",
        "| network | source | set-up | test acc |",
        "|---|---|---|---:|",
    ]
    for figures in D2L_FIGURES.values():
        for f in figures:
            acc = f"{f.test_acc:.3f}" if f.test_acc is not None else "– (plot only)"
            out.append(f"| {f.network} | {f.source} | {f.setting} | {acc} |")
    out += [
        "",
        f"**Public figures**: the best test accuracy listed for an architecture of the family in {PUBLIC_SOURCE}. "
        "They are other people's results, not reproduced here, with their own architectures (VGG16 is not the "
        "book's VGG-11, DenseNet-BC is not the book's DenseNet), losses, preprocessing and training lengths.",
        "",
        "| family | architecture | preprocessing | test acc |",
        "|---|---|---|---:|",
    ]
    for family, f in PUBLIC_FIGURES.items():
        out.append(f"| {family} | {f.architecture} | {f.preprocessing} | {f.test_acc:.3f} |")
    out += [
        f"| (best overall) | {PUBLIC_BEST.architecture} | {PUBLIC_BEST.preprocessing} | {PUBLIC_BEST.test_acc:.3f} |",
        "",
    ]
    return out


# ------------------------------------------------------------------------------------------------
# the figure
# ------------------------------------------------------------------------------------------------
# Two panels (MACs, training time) with every row, a marker shape and colour per budget (longest budget first:
# a circle in C0) and a fill per device, rather than one panel per budget: the cost axes stay comparable
# across budgets, the page has a handful of rows per budget (a panel each would be mostly empty), and a
# budget's points are still picked out at a glance by shape and colour, named in the legend and in every
# label. The panels are stacked, not side by side: labels are wide ("densenet:small_input@28 · fast · 1 ep
# · cpu") and a full-width log axis gives them room beside their points. Other people's figures
# (cnnzoo.models.references) are not drawn: they sit in the page, marked as not ours.
_MARKERS = "osD^vPX*hp<>"
_FILLS = ("full", "none", "left", "bottom", "right", "top")
_MARKER_SIZE = 7.0  # points
_LABEL_SIZE = 7.0  # points
_CAP_SIZE = 3.0  # points: the error bars' caps reach this far either side
_LABEL_PAD = 2.0  # pixels kept free around every label and marker
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
_LEADER_FROM = 12.0  # points: a label placed further than this from its point gets a leader line
_LEADER_STEPS = 24  # a leader line is checked at this many points along it


def _short_device(device: str) -> str:
    """``cpu`` for ``cpu (2 threads)``, ``cuda:0`` for ``cuda:0 (NVIDIA H200)``: the labels' device."""
    return device.split(" (")[0]


def _short_budget(row: Mapping[str, Any]) -> str:
    minutes, amount = _budget_amount(row)
    return f"{amount:g} min" if minutes else f"{amount:g} ep"


def point_label(row: Mapping[str, Any], *, dataset: bool = False) -> str:
    """A row's label in the figure: ``resnet18@32 · fast · 3 ep · cpu`` (and its dataset, when the figure
    holds several): everything that keys it (:func:`row_key`) but the model's keyword arguments' values,
    which the model spec already shows (``densenet:small_input``)."""
    parts = [f"{row['model']}@{row['input_size']}", row["recipe"], _short_budget(row), _short_device(row["device"])]
    return " · ".join(parts + ([row["dataset"]] if dataset else []))


def _budget_legend(budget: str) -> str:
    return f"{budget} per run"


def _styles(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """``{budget: (marker, colour)}``, longest budget first, and ``{device: fill style}``."""
    budgets = list(dict.fromkeys(row_budget(r) for r in sorted(rows, key=_budget_order)))
    devices = list(dict.fromkeys(r["device"] for r in rows))
    styles = {b: (_MARKERS[i % len(_MARKERS)], f"C{i % 10}") for i, b in enumerate(budgets)}
    return styles, {d: _FILLS[i % len(_FILLS)] for i, d in enumerate(devices)}


def _legend_handles(styles: Mapping[str, tuple[str, str]], fills: Mapping[str, str]) -> list[Line2D]:
    """One entry per budget (its marker and colour), then one per device (a grey circle with its fill)."""
    handles = [
        Line2D([], [], linestyle="none", marker=m, color=c, markersize=_MARKER_SIZE, label=_budget_legend(b))
        for b, (m, c) in styles.items()
    ]
    handles += [
        Line2D([], [], linestyle="none", marker="o", color="0.35", fillstyle=f, markersize=_MARKER_SIZE, label=d)
        for d, f in fills.items()
    ]
    return handles


def _draw_points(ax, rows, xs, styles, fills, labels) -> list[tuple[float, float, float, float, str]]:
    """Each row's point with its error bars; the data line's gid is its label. Returns
    ``(x, y, xerr, yerr, label)`` for each."""
    points = []
    for r, (x, xerr), label in zip(rows, xs, labels):
        marker, color = styles[row_budget(r)]
        bars = ax.errorbar(x, r["test_acc_mean"], xerr=xerr, yerr=r["test_acc_std"] or 0.0, fmt=marker,
                           color=color, fillstyle=fills[r["device"]], capsize=_CAP_SIZE, markersize=_MARKER_SIZE,
                           elinewidth=1, zorder=3)  # fmt: skip
        bars.lines[0].set_gid(label)
        points.append((x, r["test_acc_mean"], xerr, r["test_acc_std"] or 0.0, label))
    return points


def _offsets() -> np.ndarray:
    """Candidate label offsets from a point, ``(N, 2)`` in points, nearest first (the first: up and to the
    right, just clear of the marker); a fixed list, so the placement is deterministic."""
    near = [(6, 3), (7, 0), (6, -3), (-6, 3), (-7, 0), (-6, -3), (0, 7), (0, -7)]
    steps = (0, 8, -8, 20, -20, 40, -40, 70, -70, 110, -110, 160, -160, 220, -220)
    far = sorted(((dx, dy) for dx in steps for dy in range(-240, 241, 4)), key=lambda o: (o[0] ** 2 + o[1] ** 2, o))
    return np.array(near + [o for o in far if o not in near and o != (0, 0)], dtype=float)


def _side(d: np.ndarray) -> np.ndarray:
    """Per offset, where its label lies: 1 (right of or above the point), 0 (centred on it), -1."""
    return np.sign(d)


def _candidates(px: float, py: float, w: float, h: float, offsets: np.ndarray, scale: float):
    """The pixel boxes ``(N, 4)`` of a ``w`` x ``h`` label at each of ``offsets`` (points) from ``(px, py)``,
    aligned by :func:`_align`, and the points along each one's leader line ``(N, S, 2)``: from the box's
    side facing the point (:func:`_relpos`) to the point, NaN where the label is beside its point."""
    sx, sy = _side(offsets[:, 0]), _side(offsets[:, 1])
    x0 = px + offsets[:, 0] * scale - w * (sx < 0) - w / 2 * (sx == 0)
    y0 = py + offsets[:, 1] * scale - h * (sy < 0) - h / 2 * (sy == 0)
    boxes = np.stack([x0, y0, x0 + w, y0 + h], axis=1)
    start = np.stack([x0 + w * (1 - sx) / 2, y0 + h * (1 - sy) / 2], axis=1)
    t = np.arange(1, _LEADER_STEPS)[None, :, None] / _LEADER_STEPS
    along = start[:, None, :] + (np.array([px, py]) - start)[:, None, :] * t
    along[(np.abs(offsets) <= _LEADER_FROM).all(axis=1)] = np.nan
    return boxes, along


def _align(dx: float, dy: float) -> tuple[str, str]:
    return ("left" if dx > 0 else "right" if dx < 0 else "center"), (
        "bottom" if dy > 0 else "top" if dy < 0 else "center"
    )


def _relpos(dx: float, dy: float) -> tuple[float, float]:
    """Where on its label a leader line starts (a fraction of the box): the corner or edge facing the point."""
    return (1 - np.sign(dx)) / 2, (1 - np.sign(dy)) / 2


def _overlap(boxes: np.ndarray, others) -> np.ndarray:
    """Per box of ``boxes`` ``(N, 4)``, whether it meets any of ``others`` (boxes, or points as ``(x, y, x,
    y)``) within :data:`_LABEL_PAD` pixels; NaN never meets anything."""
    o = np.asarray(others, dtype=float).reshape(-1, 4)
    b, o, p = boxes[:, None, :], o[None, :, :], _LABEL_PAD
    hit = (b[..., 0] < o[..., 2] + p) & (o[..., 0] < b[..., 2] + p) & (b[..., 1] < o[..., 3] + p)
    return (hit & (o[..., 1] < b[..., 3] + p)).any(axis=1)


def _crossed(along: np.ndarray, boxes) -> np.ndarray:
    """Per leader line (points ``(N, S, 2)``), whether any of its points lies in any of ``boxes``."""
    n, s, _ = along.shape
    points = np.concatenate([along, along], axis=2).reshape(n * s, 4)
    return _overlap(points, boxes).reshape(n, s).any(axis=1)


def _segments_cross(a0: np.ndarray, a1: np.ndarray, segments) -> np.ndarray:
    """Per segment ``a0[i]``-``a1[i]``, whether it properly crosses any of ``segments`` ``(x0, y0, x1, y1)``."""
    seg = np.asarray(segments, dtype=float).reshape(-1, 4)
    b0, b1 = seg[None, :, :2], seg[None, :, 2:]
    a0, a1 = a0[:, None, :], a1[:, None, :]

    def turn(o, p, q):
        return (p[..., 0] - o[..., 0]) * (q[..., 1] - o[..., 1]) - (p[..., 1] - o[..., 1]) * (q[..., 0] - o[..., 0])

    return ((turn(a0, a1, b0) * turn(a0, a1, b1) < 0) & (turn(b0, b1, a0) * turn(b0, b1, a1) < 0)).any(axis=1)


def _obstacles(ax, x: float, y: float, xerr: float, yerr: float) -> tuple[Box, Box]:
    """The pixel boxes of a point's marker, and of its marker and error bars with their caps together."""
    scale = ax.figure.dpi / 72.0
    (px, py), (x0, y0), (x1, y1) = ax.transData.transform([(x, y), (x - xerr, y - yerr), (x + xerr, y + yerr)])
    r, cap = (_MARKER_SIZE / 2 + 1) * scale, _CAP_SIZE * scale
    marker = (px - r, py - r, px + r, py + r)
    return marker, (min(px - r, x0 - cap), min(py - r, y0 - cap), max(px + r, x1 + cap), max(py + r, y1 + cap))


class _Labels:
    """The labels placed so far over the whole figure: their pixel boxes, the points along their leader
    lines and the lines themselves. :meth:`place` adds a panel's."""

    def __init__(self) -> None:
        self.boxes: list[Box] = []
        self.leader_points: list[Box] = []  # (x, y, x, y)
        self.leaders: list[Box] = []  # (x0, y0, x1, y1): from the label to its point

    def _choose(self, boxes, along, point, frame: Bbox, obstacles, own: int) -> int:
        """The first candidate of the strictest test any passes. Every test asks for a box clear of the labels
        placed so far and of their leader lines; the first also for a box inside the axes, a leader line
        clear of the labels and crossing none of their leader lines, and box and leader line clear of every
        other point's marker and error bars. The next ones drop, in turn: the error bars, the leader line's
        clearance of markers, the leader line's clearance of labels and lines (a crowd of points ringed by
        labels), the box's clearance of markers, the axes. 0 when none passes."""
        markers, bars = obstacles
        others = [markers[k] for k in range(len(markers)) if k != own]
        others_bars = [bars[k] for k in range(len(bars)) if k != own]
        clear = ~(_overlap(boxes, self.boxes) | _overlap(boxes, self.leader_points))
        inside = (boxes[:, 0] >= frame.x0) & (boxes[:, 2] <= frame.x1) & (boxes[:, 1] >= frame.y0)
        ok = clear & inside & (boxes[:, 3] <= frame.y1)
        start = along[:, 0]
        lead = ~_crossed(along, self.boxes) & ~_segments_cross(start, np.broadcast_to(point, start.shape), self.leaders)
        off_markers = ~_overlap(boxes, markers)
        strict = ok & lead & off_markers & ~_crossed(along, others)
        tests = (strict & ~_overlap(boxes, bars) & ~_crossed(along, others_bars), strict, ok & lead & off_markers)
        for test in (*tests, ok & off_markers, ok, clear):
            if test.any():
                return int(np.argmax(test))
        return 0

    def place(self, ax, points: Sequence[tuple[float, float, float, float, str]], renderer) -> None:
        """Label every point of ``ax`` at the first of a fixed list of offsets (:func:`_offsets`, nearest first)
        that passes the strictest test of :meth:`_choose` any passes, the label's size measured by the
        renderer. A label that is not beside its point gets a leader line."""
        scale = ax.figure.dpi / 72.0
        frame = ax.get_window_extent(renderer)
        obstacles = tuple(zip(*(_obstacles(ax, *point[:4]) for point in points)))
        offsets = _offsets()
        for i, (x, y, *_, label) in enumerate(points):
            px, py = ax.transData.transform((x, y))
            probe = ax.text(0, 0, label, fontsize=_LABEL_SIZE)
            extent = probe.get_window_extent(renderer)
            probe.remove()
            boxes, along = _candidates(px, py, extent.width, extent.height, offsets, scale)
            k = self._choose(boxes, along, (px, py), frame, obstacles, i)
            dx, dy = offsets[k]
            leader = not np.isnan(along[k, 0, 0])
            arrow = {"arrowstyle": "-", "color": "0.45", "lw": 0.6, "relpos": _relpos(dx, dy), "shrinkA": 0}
            arrow["shrinkB"] = _MARKER_SIZE / 2 + 1
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(dx, dy), ha=_align(dx, dy)[0],
                        va=_align(dx, dy)[1], fontsize=_LABEL_SIZE, arrowprops=arrow if leader else None,
                        zorder=4)  # fmt: skip
            self.boxes.append(tuple(boxes[k]))
            if leader:
                self.leader_points += [(x_, y_, x_, y_) for x_, y_ in along[k]]
                self.leaders.append((*along[k, 0], px, py))


def leaderboard_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Test accuracy against MACs per image and against training time (both log x), error bars = the
    standard deviation over the random seeds; a marker shape and colour per budget (epochs, or minutes, per
    run) and a fill per device, both named in the legend, and each point labelled with what keys its row
    (:func:`point_label`), the labels placed apart (:meth:`_Labels.place`)."""
    fig = Figure(figsize=(12, 10))
    FigureCanvasAgg(fig)  # a renderer to measure the labels with, before the figure is saved
    ax_macs, ax_time = fig.subplots(2, 1)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    styles, fills = _styles(rows)
    labels = [point_label(r, dataset=len(datasets) > 1) for r in rows]
    panels = (
        (ax_macs, [(r["macs"], 0.0) for r in rows], "MACs per image (log scale)", "accuracy against cost"),
        (ax_time, [(r["train_seconds_mean"], r["train_seconds_std"] or 0.0) for r in rows],
         "training time per run, s (log scale)", "accuracy against training time"),
    )  # fmt: skip
    drawn = []
    for ax, xs, xlabel, title in panels:
        drawn.append(_draw_points(ax, rows, xs, styles, fills, labels))
        ax.set_xscale("log")
        ax.margins(x=0.25, y=0.12)  # room for the labels of the outermost points
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (mean ± std over seeds)")
        ax.set_title(f"{', '.join(datasets)}: {title}")
        ax.grid(True, which="both", alpha=0.3)
    ax_macs.legend(handles=_legend_handles(styles, fills), title="budget, then device", fontsize="small",
                   loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)  # fmt: skip
    fig.suptitle("Each point is trained for its own budget (its marker): compare points of one budget only; "
                 "a longer budget is not a better network", fontsize="medium")  # fmt: skip
    fig.tight_layout()
    fig.canvas.draw()  # the layout is final: the labels are placed in pixels from here on
    renderer, placed = fig.canvas.get_renderer(), _Labels()  # one for both panels: none crosses into the other
    for (ax, *_), points in zip(panels, drawn):
        ax.set(xlim=ax.get_xlim(), ylim=ax.get_ylim())
        placed.place(ax, points, renderer)
    return fig
