"""``report.md``: one page that ties a finished run together.

It links the figures and files the run directory already holds (curves, confusion matrix, per-class
table, metrics, checkpoints), shows what the final model gets most confidently wrong and one test image's
Grad-CAM (``top_losses.png``, ``explained.png``), states how throughput was measured, and ends with the model
summary and the exact commands that reproduce, evaluate and use the run.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnzoo.base.atomic import atomic_write_text
from cnnzoo.train.history import best_row, patience_reached, run_images_per_sec, time_to_target

__all__ = ["render_report", "write_report"]


def render_report(
    *,
    config: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    per_class: Sequence[Mapping[str, Any]],
    final_accuracy: float,
    environment: Mapping[str, Any],
    model_summary: str,
    run_dir: str,
    command: Sequence[str] | None = None,
    explanation: Mapping[str, Any] | str | None = None,
) -> str:
    """The Markdown text of ``report.md``.

    ``explanation``: what :func:`cnnzoo.explain.files.explain_run` wrote (its ``to_dict()``), for the sections
    "What the model gets wrong" and "One example explained"; a string says why they are unavailable; None
    leaves them out."""
    last = history[-1]
    best = best_row(history)
    train_s = sum(r["train_seconds"] for r in history)
    eval_s = sum(r["eval_seconds"] for r in history)
    name = config["model"]
    quoted = shlex.quote(run_dir)
    lines = [
        f"# {name}: {final_accuracy:.4f} test accuracy after {last['epoch']} epoch{'s' if last['epoch'] != 1 else ''}",
        "",
        f"Recipe `{config['recipe']}`, seed {config['seed']}, on {environment.get('device', '?')}.",
        "",
        "| | |",
        "|---|---|",
        f"| test accuracy (last epoch, `last.pt`) | {final_accuracy:.4f} |",
        *_selection_rows(config, history),
        f"| train loss / train accuracy (last epoch) | {last['train_loss']:.4f} / {last['train_acc']:.4f} |",
        f"| throughput | {run_images_per_sec(history):.1f} images/s |" if train_s > 0 else "| throughput | - |",
        f"| time | {train_s:.1f} s training, {eval_s:.1f} s evaluation |",
        *_target_rows(config, history),
        "",
        "Throughput is every training image over the summed training wall time of the epochs, data "
        "preparation included; evaluation is excluded and timed separately. The train loss is the "
        f"optimised objective (label smoothing {config['label_smoothing']}), averaged over the epoch "
        "while the weights changed; the test numbers use the weights at the end of the epoch.",
        "",
        "## Curves",
        "",
        "![training curves](curves.png)",
        "",
        "Per-epoch numbers: [metrics.csv](metrics.csv) (also [metrics.jsonl](metrics.jsonl)).",
        "",
        "| epoch | train loss | train acc | val acc | test acc | lr | images/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in history:
        val = f"{r['val_acc']:.4f}" if r.get("val_acc") is not None else "-"
        lines.append(
            f"| {r['epoch']} | {r['train_loss']:.4f} | {r['train_acc']:.4f} | {val} | {r['test_acc']:.4f} | "
            f"{r['lr']:.3g} | {r['images_per_sec']:.1f} |"
        )
    lines += [
        "",
        "## Per class (last epoch)",
        "",
        "![confusion matrix](confusion.png)",
        "",
        "From [per_class.csv](per_class.csv):",
        "",
        "| label | class | test images | accuracy | most often mistaken for |",
        "|---:|---|---:|---:|---|",
    ]
    for r in per_class:
        confused = f"{r['most_confused_with']} ({r['confused_count']})" if r["most_confused_with"] else "-"
        lines.append(f"| {r['label']} | {r['class']} | {r['images']} | {r['accuracy']:.4f} | {confused} |")
    lines += _explanation_lines(explanation, run_dir)
    lines += [
        "",
        "## Reproduce and use",
        "",
        "```sh",
    ]
    if command:
        lines.append("# the command that made this run")
        lines.append(" ".join(shlex.quote(a) for a in command))
    lines += [
        f"cnnzoo eval {quoted}                      # test accuracy, per-class table, confusion matrix",
        f"cnnzoo predict {quoted}/{'best' if best else 'last'}.pt IMAGE.png # top classes of your own picture",
        f"cnnzoo train --resume {quoted} --epochs {int(config['epochs']) + 5}   # train further",
        "```",
        "",
        "Checkpoints: `last.pt` (the last completed epoch, resumable)"
        + (
            " and `best.pt` (the best validation accuracy)."
            if best
            else "; no `best.pt`: without a validation split no epoch is chosen (the test set never chooses a model)."
        ),
        "",
        "## Configuration",
        "",
        "```json",
        json.dumps(dict(config), indent=2, sort_keys=True),
        "```",
        "",
        "Environment: " + ", ".join(f"{k} {v}" for k, v in environment.items()) + ".",
        "",
        "## Model",
        "",
        "```",
        model_summary.rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def _explanation_lines(explanation: Mapping[str, Any] | str | None, run_dir: str) -> list[str]:
    """The report's two sections on the final model's mistakes and one test image's Grad-CAM."""
    if explanation is None:
        return []
    if isinstance(explanation, str):
        why = f"(unavailable: {explanation})"
        return ["", "## What the model gets wrong", "", why, "", "## One example explained", "", why]
    mistakes, wrong, total = explanation["mistakes"], explanation["wrong"], explanation["total"]
    lines = ["", "## What the model gets wrong", "", "![the most confident mistakes](top_losses.png)", ""]
    if mistakes:
        lines += [
            f"{wrong} of {total} test images are misclassified by the final model (`last.pt`). Above, the "
            f"{len(mistakes)} with the highest loss: the ones it is most confidently wrong about, each with its true "
            "class, the class the model said and that class's probability. A gallery of one wrong class often "
            "shows a labelling convention or two classes that look alike at this size.",
            "",
            "| test image | true class | said | probability |",
            "|---:|---|---|---:|",
            *(f"| {m['index']} | {m['true']} | {m['predicted']} | {m['probability']:.1%} |" for m in mistakes),
        ]
    else:
        lines.append(f"Nothing: the final model (`last.pt`) classifies all {total} test images correctly.")
    example = explanation["example"]
    top = ", ".join(f"{name} {p:.1%}" for name, p in example["top"])
    lines += [
        "",
        "## One example explained",
        "",
        "![one test image, its Grad-CAM and its top classes](explained.png)",
        "",
        f"Test image {example['index']} (the first; true class {example['true']}), as the model sees it. The model "
        f"says {top}. The overlay is a Grad-CAM map of layer `{example['layer']}` for the predicted class: red where "
        "the evidence for that class lies (the gradient-weighted feature maps, upsampled to the input). "
        f"`cnnzoo explain {shlex.quote(run_dir)} IMAGE.png` does the same for your own pictures, with every stage's "
        "feature maps.",
    ]
    return lines


def _selection_rows(config: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> list[str]:
    """How the run chose its model: best.pt on validation accuracy, early stopping, or no choice at all."""
    best = best_row(history)
    if best is None:
        return [
            "| validation | none (the book's set-up, or `--val-size 0`): no `best.pt`, the last epoch is the model |"
        ]
    rows = [
        f"| best validation accuracy (`best.pt`) | {best['val_acc']:.4f} at epoch {best['epoch']} "
        f"(its test accuracy {best['test_acc']:.4f}) |"
    ]
    patience = config.get("patience")
    if patience_reached(history, patience):
        rows.append(
            f"| early stopping | stopped after epoch {history[-1]['epoch']} of {config['epochs']}: "
            f"{patience} epochs without a better validation accuracy |"
        )
    return rows


def _target_rows(config: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The time-to-accuracy row of a ``--target-acc`` run (none otherwise)."""
    target = config.get("target_acc")
    if target is None:
        return []
    hit = time_to_target(history, target)
    if hit is None:
        return [f"| time to test accuracy {target:g} | not reached in {len(history)} epochs |"]
    return [
        f"| time to test accuracy {target:g} | {hit['seconds']:.1f} s to {hit['test_acc']:.4f} at epoch "
        f"{hit['epoch']} (training + evaluation; start-up and file writes not counted; a time-to-accuracy "
        "measurement on the test set, not a model choice) |"
    ]


def write_report(path: str | os.PathLike[str], **fields: Any) -> Path:
    """Render and atomically write ``report.md`` (arguments as :func:`render_report`)."""
    return atomic_write_text(Path(path), render_report(**fields))
