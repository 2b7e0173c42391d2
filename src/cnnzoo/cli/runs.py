"""``cnnzoo eval``, ``predict``, ``export`` and ``plot``: using what a run left."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnzoo.base.devices import setup_device
from cnnzoo.base.errors import CnnzooError, ConfigError, ModelError
from cnnzoo.base.outputs import claim_output
from cnnzoo.base.plots import confusion_figure, overlay_figure, save_figure
from cnnzoo.run import open_run
from cnnzoo.serve.export import export_checkpoint, verify_onnx
from cnnzoo.serve.predictor import format_records, load_model, warning_summary
from cnnzoo.train.loop import evaluate
from cnnzoo.train.metrics import per_class_rows, read_metrics
from cnnzoo.weights import get_weight

__all__ = ["cmd_eval", "cmd_export", "cmd_plot", "cmd_predict"]


def cmd_eval(args: argparse.Namespace) -> int:
    run = open_run(args.checkpoint, device=args.device, data_root=args.data_root)
    config, ckpt_path, epoch = run.config, run.checkpoint, run.resume["epoch"]
    weight = get_weight(args.checkpoint) if run.directory is None else None
    if args.png is not None:
        png = args.png
    else:  # beside a run's checkpoint; for a weight (whose file is the package's), here
        png = (
            Path(f"eval-{weight.name}-confusion.png")
            if weight
            else ckpt_path.with_name(f"eval-{ckpt_path.stem}-confusion.png")
        )
    png = claim_output(png, "png", flag="--png", force=args.force, inputs=[ckpt_path])  # before the work
    setup = setup_device(config.device, config.precision, config.channels_last)
    result = evaluate(setup.place(run.model), run.data, config, setup=setup)
    title = f"{config.model} ({ckpt_path.name}, epoch {epoch}): {result.accuracy:.4f}"
    save_figure(confusion_figure(result.confusion, run.data.classes, title=title), png)
    where = f"{weight.name} ({ckpt_path})" if weight else f"{ckpt_path}: {config.model}, epoch {epoch}"
    _print_eval(args, run, result, png, f"{where}, on {setup.describe()}", weight)
    return 0


def _print_eval(args: argparse.Namespace, run, result, png: Path, where: str, weight) -> None:
    """``cnnzoo eval``'s answer: JSON, or the per-class table, the accuracy and, for a weight, its card's."""

    classes, ckpt_path = run.data.classes, run.checkpoint
    rows = per_class_rows(result.confusion, classes)
    if args.json:
        out = {"checkpoint": str(ckpt_path), "weight": weight.name if weight else None, "model": run.config.model,
               "epoch": run.resume["epoch"], "test_acc": result.accuracy, "test_loss": result.loss,
               "images": result.count, "per_class": rows, "confusion": result.confusion.tolist(),
               "confusion_png": str(png)}  # fmt: skip
        print(json.dumps(out, indent=2))
        return
    print(where)
    _print_per_class(rows, classes)
    print(f"\nconfusion matrix: {png}")
    correct = int(result.confusion.diagonal().sum())
    print(f"test acc {result.accuracy:.4f} ({correct}/{result.count}), test loss {result.loss:.4f}")
    if weight is not None:
        same = "the same" if f"{result.accuracy:.4f}" == f"{weight.test_acc:.4f}" else "NOT the same"
        print(f"its card says {weight.test_acc:.4f}: {same} (docs/weights/{weight.name}.md)")


def _print_per_class(rows: list[dict], classes: list[str]) -> None:
    width = max(len(c) for c in classes)
    print(f"\n{'label':>5}  {'class':<{width}}  {'images':>6}  {'accuracy':>8}  most often mistaken for")
    for r in rows:
        confused = f"{r['most_confused_with']} ({r['confused_count']})" if r["most_confused_with"] else "-"
        print(f"{r['label']:>5}  {r['class']:<{width}}  {r['images']:>6}  {r['accuracy']:>8.4f}  {confused}")


def cmd_predict(args: argparse.Namespace) -> int:
    predictor = load_model(args.checkpoint, device=args.device, invert=args.invert, preprocess=args.preprocess)
    records = predictor.predict(args.images, top_k=args.top_k, save_input=args.save_input)
    print(json.dumps(records, indent=2) if args.json else format_records(records))
    if args.save_input is not None and not args.json:
        print(f"what the model saw: {len(records)} PNG(s) in {args.save_input}")
    if (summary := warning_summary(records)) is not None:
        print(summary, file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    path = export_checkpoint(
        args.checkpoint, args.fmt, args.output, force=args.force, with_preprocessing=args.with_preprocessing
    )
    print(f"wrote {path} ({path.stat().st_size:,} bytes, {args.fmt})")
    if args.fmt == "onnx":
        diff = verify_onnx(path, args.checkpoint)
        if diff is None:
            print("not checked: onnxruntime is not installed (pip install onnxruntime to check the export)")
        elif diff > 1e-4:
            raise ModelError(f"{path}: onnxruntime's logits differ from PyTorch's by {diff:.2e} (> 1e-4): a bug")
        else:
            print(f"checked with onnxruntime at batch sizes 1 and 5: max |difference| from PyTorch {diff:.1e}")
        print("how to prepare a picture for it: its metadata's cnnzoo.preprocess (docs/datasets-and-export.md)")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    out = claim_output(args.out, "png", flag="--out", force=args.force, inputs=args.runs)
    runs, skipped = [], []
    for arg in args.runs:  # runs/* may hold a run stopped before its first epoch: skip it, draw the others
        path = Path(arg)
        try:
            rows = read_metrics(path) if path.is_dir() else []
        except CnnzooError as exc:
            rows, why = [], str(exc)
        else:
            why = "not a run directory with metrics (no metrics.jsonl rows yet)"
        if rows:
            runs.append((path.name, rows))
        else:
            skipped.append(f"{path}: {why}")
    if not runs:
        raise ConfigError(skipped[0] if len(skipped) == 1 else f"none of the {len(skipped)} paths is a run with "
                          f"metrics ({skipped[0]}): give run directories that finished at least one epoch")  # fmt: skip
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    out = save_figure(overlay_figure(runs), out)
    best = ", ".join(f"{name} {max(r['test_acc'] for r in rows):.4f}" for name, rows in runs)
    print(f"wrote {out} ({len(runs)} runs; best test acc: {best})")
    return 0
