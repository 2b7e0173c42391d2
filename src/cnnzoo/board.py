"""The leaderboard's files: rows merged into ``leaderboard.json``, and the page and figure drawn from them.

:func:`update_leaderboard` merges rows (made by :func:`cnnzoo.leaderboard.run_leaderboard`) into
``leaderboard.json``, the source of truth, and rewrites ``leaderboard.md`` and ``leaderboard.png`` from all
of its rows, so CPU rows and GPU rows measured later, elsewhere, sit side by side. A row is keyed by what
was measured: model (with its keyword arguments), input size, recipe, dataset, device and budget (its
epochs, or its minutes per run: :func:`row_key`); a rerun replaces the row with the same key, unless the
rerun measured less (fewer seeds, or fewer epochs in the same time budget) and ``replace`` is not given.
The files are written only where :func:`cnnzoo.outputs.claim_output` allows (the page carries a
``<!-- written by cnnzoo ... -->`` line, the figure a ``Software: cnnzoo`` chunk, the JSON its
``format``). Every row carries its own provenance (command, date, machine, torch version,
device). The page sets the book's and the public benchmark's figures (:mod:`cnnzoo.references`) beside
the Fashion-MNIST rows, labelled as not ours.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from cnnzoo.atomic import atomic_write_text
from cnnzoo.errors import ConfigError
from cnnzoo.inspection import human
from cnnzoo.outputs import claim_output, marker_comment
from cnnzoo.plots import save_figure
from cnnzoo.references import D2L_FIGURES, PUBLIC_BEST, PUBLIC_FIGURES, PUBLIC_SOURCE, reference_key

__all__ = [
    "FORMAT",
    "check_outputs",
    "leaderboard_figure",
    "leaderboard_paths",
    "load_rows",
    "merge_rows",
    "render_markdown",
    "row_budget",
    "row_key",
    "update_leaderboard",
]

FORMAT = "cnnzoo-leaderboard/1"


# ------------------------------------------------------------------------------------------------
# rows: keyed, merged, loaded
# ------------------------------------------------------------------------------------------------
def row_budget(row: Mapping[str, Any]) -> str:
    """The budget a row was measured with: ``"12 epochs"``, or ``"5 min"`` per run with ``--budget-minutes``
    (rows written before budgets were keyed have ``epochs_planned``, or their runs' epochs)."""
    if row.get("budget_minutes") is not None:
        return f"{row['budget_minutes']:g} min"
    epochs = row.get("epochs_planned")
    if epochs is None:
        epochs = max(r["epochs"] for r in row["runs"])
    return f"{epochs} epochs"


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
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path} ({exc}): fix it, move it away or choose another --output") from None
    rows = doc.get("rows") if isinstance(doc, dict) and doc.get("format") == FORMAT else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"{path} is not a cnnzoo leaderboard ({FORMAT}): move it away or choose another --output")
    try:
        for r in rows:
            row_key(r)
    except KeyError as exc:
        raise ConfigError(f"{path}: a row has no {exc.args[0]!r}: fix it or move it away") from None
    return rows


def _sorted(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(rows, key=lambda r: (r["dataset"] != "fashion-mnist", r["dataset"], -r["test_acc_mean"], r["model"]))


def leaderboard_paths(output: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """``(X.md, X.json, X.png)`` for ``output`` ``X.md``; anything else is a :class:`ConfigError`."""
    md = Path(output)
    if md.suffix != ".md":
        raise ConfigError(f"--output {md}: give a Markdown file name ending in .md (the .json and .png go beside it)")
    return md, md.with_suffix(".json"), md.with_suffix(".png")


def check_outputs(output: str | os.PathLike[str], *, force: bool = False) -> tuple[Path, Path, Path]:
    """The three files of ``output`` when cnnzoo may write them: the JSON must be a leaderboard (or absent),
    the page and figure cnnzoo's own (or absent, or ``force``): :func:`cnnzoo.outputs.claim_output`."""
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


_HEAD = ["#", "model", "input", "params", "MACs", "recipe", "epochs", "seeds", "test acc (mean ± std)", "best"]
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
    """One dataset's table and its training set-ups (reference columns for Fashion-MNIST only)."""
    refs = dataset == "fashion-mnist"
    head = _HEAD + (_REFERENCE_HEAD if refs else [])
    out = [f"## {dataset}", ""]
    out += ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if h in _RIGHT else "---" for h in head) + "|"]
    for rank, r in enumerate(group, 1):
        out.append("| " + " | ".join(_cells(rank, r, runs[_run_id(r)], refs)) + " |")
    out += ["", "Training set-ups:", ""]
    out += [f"- {r['model']} @ {r['input_size']} ({r['recipe']}): {r['setting']}" for r in group]
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
        "- **test acc**: each seed's last-epoch test accuracy (never the best epoch), mean ± sample standard "
        "deviation over the random seeds; **best**: the best seed's.",
        "- **train time**: the training epochs' wall time (data preparation included, evaluation excluded), mean "
        "over the random seeds; **images/s**: training images over that time. A few untimed probe steps warm the "
        "device up before each model's runs.",
        "- **epochs**: with a budget, as many whole epochs as a short probe said fit in it (the schedule is laid "
        'over them); "cut short": a run stopped at an epoch\'s end to keep to the budget.',
        "- **d2l's figure** and **public figure** are not ours: reference numbers with other set-ups and "
        "(public) other architectures, listed below.",
        "",
        f"![test accuracy against MACs and against training time]({png_name})",
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
def leaderboard_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Test accuracy against MACs per image and against training time (both log x), error bars = the
    standard deviation over the random seeds; one colour per device, each point labelled with its model."""
    fig = Figure(figsize=(13, 5))
    ax_macs, ax_time = fig.subplots(1, 2)
    devices = list(dict.fromkeys(r["device"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    colors = [f"C{i % 10}" for i in range(len(devices))]
    markers = "osD^v<>ph*"
    for r in rows:
        color = colors[devices.index(r["device"])]
        marker = markers[datasets.index(r["dataset"]) % len(markers)]
        yerr = r["test_acc_std"] or 0.0
        label = f"{r['model']}@{r['input_size']}"
        for ax, x, xerr in (
            (ax_macs, r["macs"], 0.0),
            (ax_time, r["train_seconds_mean"], r["train_seconds_std"] or 0.0),
        ):
            ax.errorbar(x, r["test_acc_mean"], xerr=xerr, yerr=yerr, fmt=marker, color=color, capsize=3, markersize=6)
            ax.annotate(label, (x, r["test_acc_mean"]), textcoords="offset points", xytext=(5, 4), fontsize=7)
    for ax, xlabel in ((ax_macs, "MACs per image (log scale)"), (ax_time, "training time per run, s (log scale)")):
        ax.set_xscale("log")
        ax.margins(x=0.15, y=0.08)  # room for the labels of the outermost points
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (mean ± std over seeds)")
        ax.grid(True, which="both", alpha=0.3)
    handles = [ax_macs.errorbar([], [], yerr=[], fmt="o", color=colors[i], label=d) for i, d in enumerate(devices)]
    ax_macs.legend(handles=handles, loc="best", fontsize="small", title="device")
    title = ", ".join(datasets)
    ax_macs.set_title(f"{title}: accuracy against cost")
    ax_time.set_title(f"{title}: accuracy against training time")
    fig.tight_layout()
    return fig
