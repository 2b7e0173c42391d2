"""Model cards, generated from the catalog: ``docs/weights/NAME.md`` for each weight, ``docs/weights.md`` for all.

A card follows the Hugging Face model-card sections (what the weight is, how to use it, how it was trained,
evaluation, limits and out-of-scope uses) and ends with a timm-style stats block. Every figure in it comes
from the weight's catalog entry (:mod:`cnnzoo.weights.catalog`); its pictures (curves, confusion matrix,
top-losses gallery) are drawn by :func:`draw_card_images` when the weight is published. A test holds the
files in ``docs/`` to :func:`render_card` and :func:`render_table`, so a card never disagrees with its entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cnnzoo.base.atomic import atomic_write_text
from cnnzoo.base.outputs import marker_comment
from cnnzoo.base.plots import confusion_figure, curves_figure, save_figure
from cnnzoo.data.batches import ModelView
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.explain.files import write_top_losses
from cnnzoo.models.inspection import human
from cnnzoo.models.references import D2L_FIGURES, PUBLIC_FIGURES, reference_key
from cnnzoo.models.registry import get_model_info
from cnnzoo.train.checkpoint import model_from_checkpoint
from cnnzoo.weights.catalog import Weight, list_weights
from cnnzoo.weights.files import weight_checkpoint

__all__ = ["DOCS", "draw_card_images", "render_card", "render_table", "write_cards"]

DOCS = Path(__file__).resolve().parents[3] / "docs"  # in a clone; an installed wheel has no docs to write
IMAGES = "images"  # docs/weights/images/NAME-*.png


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _mean_std(meta: dict[str, Any]) -> str:
    n = len(meta.get("seeds", []))
    if meta.get("test_acc_std") is None:
        return f"{meta['test_acc_mean']:.4f} (1 seed)"
    return f"{meta['test_acc_mean']:.4f} ± {meta['test_acc_std']:.4f} ({n} seeds)"


def _book(w: Weight) -> str:
    key = reference_key(w.model, get_model_info(w.model).family)
    figures = [f for f in D2L_FIGURES.get(key, ()) if f.source.startswith("d2l (")]
    if not figures:
        return "–"
    f = figures[0]
    return f"{f.test_acc:.3f}" if f.test_acc is not None else "– (plot only)"


def _public(w: Weight) -> str:
    key = reference_key(w.model, get_model_info(w.model).family)
    f = PUBLIC_FIGURES.get(key)
    return f"{f.test_acc:.3f} ({f.architecture})" if f else "–"


def _kwargs(w: Weight) -> str:
    own = {k: v for k, v in w.model_kwargs.items() if k not in ("num_classes", "in_channels")}
    return f" ({', '.join(f'{k}={v!r}' for k, v in own.items())})" if own else ""


def _weights_arg(w: Weight) -> str:
    """What ``create_model(model, weights=...)`` takes for ``w``: the dataset for a default weight."""
    return w.dataset.replace("-", "_") if w.default else w.name


def _where(w: Weight) -> str:
    return "shipped in the package" if w.shipped else "not shipped: `cnnzoo weights build` or `fetch`"


def _where(w: Weight) -> str:
    return "shipped in the package" if w.shipped else "not shipped: `cnnzoo weights build` or `fetch`"


def _side(w: Weight) -> str:
    return f"{w.input_size}x{w.input_size}"


def _hours(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _warning_row(meta: dict) -> list[str]:
    """The card's row on the low-confidence warning (cnnzoo.train.metrics.low_confidence_bound), when it has one."""
    bound = meta.get("low_confidence")
    if bound is None:
        return []
    return [f"| low-confidence warning | below a top probability of {bound:g}, where its validation predictions "
            "were right at most half the time |"]  # fmt: skip


def render_card(w: Weight) -> str:
    """The Markdown card of ``w``."""
    m = dict(w.meta)
    hw = m["hardware"]
    book_side = get_model_info(w.model).default_input_size
    use = "cnnzoo weights build" if not w.shipped else ""
    lines = [
        marker_comment("model card (cnnzoo.weights.cards, from src/cnnzoo/weights/catalog.json)"),
        f"# {w.name}",
        "",
        f"**{w.model}** ({get_model_info(w.model).description.rstrip('.')}) trained on **{w.dataset}** at "
        f"{_side(w)}" + (f" (the book's side is {book_side})" if w.input_size != book_side else "") + ". "
        f"Test accuracy of this file: **{w.test_acc:.4f}**; over the recipe's seeds {_mean_std(m)}. "
        f"The book's figure: {_book(w)}; the public table's: {_public(w)}.",
        "",
        "## Model details",
        "",
        "| | |",
        "|---|---|",
        f"| network | `{w.model}`{_kwargs(w)}, {len(w.classes)} classes, {w.in_channels} input channel(s) |",
        f"| input | {w.in_channels} channel(s), {_side(w)}, pixels / 255, then (x - mean) / std per channel |",
        f"| mean, std | {list(w.mean) if w.mean else '–'}, {list(w.std) if w.std else '–'} |",
        f"| classes | {', '.join(w.classes)} |",
        f"| file | `{w.file}`, {w.bytes:,} bytes, {w.storage}, {_where(w)} |",
        f"| sha256 | `{w.sha256}` |",
        f"| license | {w.license} |",
        *_warning_row(m),
        "",
        "## How to use it",
        "",
        "```python",
        "import cnnzoo",
        "",
        f'model = cnnzoo.create_model("{w.model}", weights="{_weights_arg(w)}").eval()  # the nn.Module',
        f'cnnzoo.load_model("{w.name}").predict("shoe.jpg")  # with the picture preparation below',
        "```",
        "",
        "```console",
        *([f"$ cnnzoo weights build {w.name}     # not shipped: trains it here with the command below"] if use else []),
        f"$ cnnzoo predict {w.name} shoe.jpg",
        f"$ cnnzoo explain {w.name} shoe.jpg",
        f"$ cnnzoo eval {w.name}               # prints the test accuracy above",
        f"$ cnnzoo export {w.name} --format onnx --output {w.model}.onnx",
        "```",
        "",
        "Pictures are prepared as `cnnzoo predict` prepares them: grayscale, a light background inverted to the "
        "dataset's light-on-black, the paper's lighting levelled, cropped to the object, padded square, resized "
        f"to {_side(w)} (`--preprocess none` keeps the whole picture).",
        "",
        "## How it was trained",
        "",
        "```console",
        f"$ {m['command'].format(seed=m['seed'])}",
        "```",
        "",
        f"- recipe: `{m['recipe']}`: {_recipe_line(w)}",
        f"- seeds: {', '.join(str(s['seed']) for s in m['seeds'])} (the command with `--seed` of each); this file "
        f"is seed {m['seed']}, the seed with the best validation accuracy (the test set chooses nothing)",
        f"- epochs: {m['epochs']}; this file is `best.pt`, epoch {m['best_epoch']} (the first epoch with the best "
        "validation accuracy)",
        f"- training time: {_hours(m['train_seconds'])} for this seed (training epochs, evaluation excluded)",
        f"- hardware: {hw['cpu']}; {hw['device']}; precision setting `{hw['precision']}`; the machine was {hw['load']}",
        f"- cnnzoo {m['versions']['cnnzoo']}, torch {m['versions']['torch']}, {m['date']}",
        "",
        "## Evaluation",
        "",
        "Accuracies are of `best.pt` evaluated again in fp32 on the CPU (as `cnnzoo eval` does); the validation "
        f"split is the {int(w.config.get('val_size') or 5000):,} training images every cnnzoo run holds out.",
        "",
        "| | accuracy |",
        "|---|---:|",
        f"| test, this file ({w.storage}) | **{w.test_acc:.4f}** |",
        f"| test, the fp32 checkpoint it was stored from | {m['full_precision_test_acc']:.4f} |",
        f"| validation, this file | {m['val_acc']:.4f} |",
        f"| test, mean ± std over seeds | {_mean_std(m)} |",
        f"| the book's figure (its own recipe) | {_book(w)} |",
        f"| the public table's figure (another set-up) | {_public(w)} |",
        "",
        "| seed | validation | test | best epoch | training time |",
        "|---:|---:|---:|---:|---:|",
        *[
            f"| {s['seed']} | {s['val_acc']:.4f} | {s['test_acc']:.4f} | {s['best_epoch']} | "
            f"{_hours(s['train_seconds'])} |"
            for s in m["seeds"]
        ],
        "",
        "Per class (test):",
        "",
        "| class | accuracy | most often mistaken for |",
        "|---|---:|---|",
        *[
            f"| {r['class']} | {r['accuracy']:.3f} | {r['most_confused_with'] or '–'} ({r['confused_count']}) |"
            for r in m["per_class"]
        ],
        "",
        f"![training curves]({IMAGES}/{w.name}-curves.png)",
        f"![confusion matrix]({IMAGES}/{w.name}-confusion.png)",
        f"![the test images it is most confidently wrong about]({IMAGES}/{w.name}-top-losses.png)",
        "",
        "## Limits and out-of-scope uses",
        "",
        f"- It knows the {len(w.classes)} classes above and nothing else: any picture gets one of them. A picture "
        "unlike the training data (not a single garment, several objects, a drawing, text) gets a warning from "
        "`cnnzoo predict`, but not always (docs/interpretation.md, benchmarks/photos.md).",
        "- Fashion-MNIST is 28x28 grayscale product photos on a plain background, centred: phone photos work after "
        "the preparation above, scenes and people wearing clothes are out of scope.",
        "- Not for decisions about people; a teaching and baseline model.",
        *[f"- {note}" for note in m.get("notes", [])],
        "",
        "## Stats",
        "",
        "```",
        f"Params (M): {m['params'] / 1e6:.3f}",
        f"GMACs: {m['macs'] / 1e9:.4f}",
        f"Image size: {w.in_channels} x {w.input_size} x {w.input_size}",
        f"Dataset: {w.dataset}",
        f"Test acc: {w.test_acc:.4f}",
        "```",
        "",
    ]
    return "\n".join(lines)


def _recipe_line(w: Weight) -> str:
    c = w.config
    aug = c.get("augment", "none")
    return (
        f"{c['optimizer']} lr {c['lr']:g}, schedule {c['schedule']}, batch {c['batch_size']}, weight decay "
        f"{c['weight_decay']:g}, label smoothing {c['label_smoothing']:g}, augment {aug}, init {c['init']}, "
        f"{'normalised' if c.get('normalize') else 'not normalised'}, precision `{c['precision']}`, channels_last "
        f"`{c['channels_last']}`"
    )


def render_table(weights: Sequence[Weight]) -> str:
    """``docs/weights.md``: every weight beside the book's and the public figure."""
    rows = [
        "| weight | input | params | MACs | test acc (this file) | seeds: mean ± std | book | public table | "
        "file | where |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for w in weights:
        m = w.meta
        where = "shipped" if w.shipped else "`cnnzoo weights build`"
        rows.append(
            f"| [{w.name}](weights/{w.name}.md) | {_side(w)} | {human(m['params'])} | {human(m['macs'])} | "
            f"**{w.test_acc:.4f}** | {_mean_std(m)} | {_book(w)} | {_public(w)} | "
            f"{w.bytes / 1e6:.1f} MB {w.storage} | {where} |"
        )
    shipped = sum(w.bytes for w in weights if w.shipped)
    return "\n".join(
        [
            marker_comment("weights table (cnnzoo.weights.cards, from src/cnnzoo/weights/catalog.json)"),
            "# Trained weights",
            "",
            "The zoo's networks trained on Fashion-MNIST, each with its card. `cnnzoo weights` lists them;",
            "a weight's name goes wherever a run directory does (`cnnzoo predict lenet_bn.fashion_mnist shoe.jpg`),",
            "and",
            '`cnnzoo.create_model("resnet18", weights="fashion_mnist")` builds the network with them.',
            "",
            "Test accuracy is of the file itself, evaluated in fp32 on the CPU (`cnnzoo eval NAME` prints it); the",
            "recipes and the epoch of each file were chosen on the validation split. **book**: the accuracy d2l",
            "printed with its own recipe (10 epochs of SGD at its own input side), **public table**: the best entry",
            "for that family in the Fashion-MNIST benchmark table (other set-ups, not ours).",
            "",
            *rows,
            "",
            f"Shipped files: {shipped / 1e6:.1f} MB in all.",
            "",
        ]
    )


def write_cards(docs: Path = DOCS) -> list[Path]:
    """Write every card and the table from the catalog; the files written."""
    weights = list_weights()
    out = [atomic_write_text(docs / "weights.md", render_table(weights))]
    for w in weights:
        out.append(atomic_write_text(docs / "weights" / f"{w.name}.md", render_card(w)))
    return out


def draw_card_images(w: Weight, data: ImageDataset, history: Sequence[dict[str, Any]], docs: Path = DOCS) -> None:
    """The card's curves, confusion matrix and top-losses gallery, from the weight's file and ``data``."""
    folder = docs / "weights" / IMAGES
    folder.mkdir(parents=True, exist_ok=True)
    save_figure(curves_figure(history, title=w.name), folder / f"{w.name}-curves.png")
    confusion = torch.tensor(w.meta["confusion"])
    title = f"{w.name}: test accuracy {w.test_acc:.4f}"
    save_figure(confusion_figure(confusion, list(w.classes), title=title), folder / f"{w.name}-confusion.png")
    model = model_from_checkpoint(weight_checkpoint(w)).eval()
    write_top_losses(model, data.test_images, data.test_labels, folder / f"{w.name}-top-losses.png",
                     classes=list(w.classes), view=ModelView(w.input_size, w.mean, w.std), count=16,
                     title=f"the {{n}} test images {w.name} is most confidently wrong about")  # fmt: skip
