"""``cnnzoo eval``, ``predict``, ``export`` and ``plot``: using what a run left."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnzoo.errors import CnnzooError, ConfigError, ModelError
from cnnzoo.outputs import claim_output


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="test accuracy, per-class accuracy and confusion matrix of a checkpoint",
        description="Rebuild the model a checkpoint describes, evaluate it on the test split of the dataset it was "
        "trained on (Fashion-MNIST unless the run said --dataset; a folder's held-out split is drawn again with the "
        "run's seed), print the accuracy and a per-class table, and write a confusion-matrix PNG. A run directory "
        "means its last.pt; a weight's name (lenet_bn.fashion_mnist) means that trained weight, evaluated in fp32.",
    )
    p.add_argument(
        "checkpoint",
        metavar="RUN_DIR|CKPT|WEIGHT",
        help="a run directory (its last.pt), a checkpoint "
        "file, or a weight's name (cnnzoo weights): a weight prints its card's test accuracy",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--png", metavar="PATH", help="confusion matrix PNG (default: eval-<ckpt>-confusion.png beside it)")
    p.add_argument("--data-root", metavar="DIR", help="where the dataset's files are (as given to train)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    add_force(p, "--png")
    p.set_defaults(func=cmd_eval)


def add_force(p: argparse.ArgumentParser, flag: str) -> None:
    """``--force``: let an output flag replace an existing file cnnzoo did not write (never a checkpoint)."""
    p.add_argument(
        "--force",
        action="store_true",
        help=f"replace {flag}'s file even when cnnzoo did not write it (never a directory, checkpoint or input)",
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from cnnzoo.devices import setup_device
    from cnnzoo.engine import evaluate
    from cnnzoo.plots import confusion_figure, save_figure
    from cnnzoo.run import open_run
    from cnnzoo.weights import get_weight

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
    from cnnzoo.metrics import per_class_rows

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


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify your own images with a trained checkpoint",
        description="PNG/JPEG of any size or mode -> grayscale, polarity matched to Fashion-MNIST (light object on "
        "a dark background), background levelled and cropped to the object (a photo of paper: --preprocess), padded "
        "square, resized to the model's input; prints the top classes, and a warning where the picture does not "
        "look like the training data or the model is unsure.",
    )
    p.add_argument(
        "checkpoint",
        metavar="RUN_DIR|CKPT|WEIGHT",
        help="a run directory (its last.pt), a checkpoint file, or a weight's name (cnnzoo weights)",
    )
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files, directories of images, or glob patterns")
    p.add_argument("--top-k", type=int, default=3, metavar="K")
    p.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        help="auto: decide by the border (the default for models trained on Fashion-MNIST, MNIST or KMNIST, whose "
        "objects are light on black); no: keep the pixels (the default for other datasets, your own folders)",
    )
    p.add_argument(
        "--preprocess",
        choices=("auto", "none"),
        help="auto: level the background and crop to the object, so it fills the frame as in the training data "
        "(the default for Fashion-MNIST, MNIST and KMNIST models); none: the whole picture as it is (the default "
        "for other datasets, your own folders)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--save-input",
        metavar="DIR",
        help="also write each picture exactly as the model sees it (its input size, before normalisation) to DIR",
    )
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from cnnzoo.predict import format_records, warning_summary
    from cnnzoo.predictor import load_model

    predictor = load_model(args.checkpoint, device=args.device, invert=args.invert, preprocess=args.preprocess)
    records = predictor.predict(args.images, top_k=args.top_k, save_input=args.save_input)
    print(json.dumps(records, indent=2) if args.json else format_records(records))
    if args.save_input is not None and not args.json:
        print(f"what the model saw: {len(records)} PNG(s) in {args.save_input}")
    if (summary := warning_summary(records)) is not None:
        print(summary, file=sys.stderr)
    return 0


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a checkpoint as ONNX (for onnxruntime and friends) or safetensors (the weights)",
        description="ONNX: the network in eval mode, input 'input' [batch, C, S, S] (normalised as the checkpoint "
        "says: mean/std in the model's metadata), output 'logits' [batch, classes], dynamic batch; checked against "
        "onnxruntime when it is installed. Every step that prepares a picture is in the metadata's "
        "cnnzoo.preprocess (JSON). safetensors: the state_dict with the same metadata. ONNX needs "
        "pip install 'cnnzoo[export]'.",
    )
    p.add_argument(
        "checkpoint",
        metavar="RUN_DIR|CKPT|WEIGHT",
        help="a run directory (its last.pt), a checkpoint file, or a weight's name (cnnzoo weights)",
    )
    p.add_argument("--format", dest="fmt", choices=("onnx", "safetensors"), default="onnx", help="default onnx")
    p.add_argument(
        "--output",
        metavar="PATH",
        help="default: the checkpoint's path with .onnx or .safetensors (a weight: NAME.onnx here)",
    )
    p.add_argument(
        "--with-preprocessing",
        action="store_true",
        help="ONNX: the graph takes uint8 pictures 'image' [batch, C, H, W] of any size (padded to a square) and "
        "resizes and normalises them itself; the other steps are in the metadata's cnnzoo.preprocess",
    )
    add_force(p, "--output")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from cnnzoo.export import export_checkpoint, verify_onnx

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


def add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="overlay several runs' curves in one PNG (runs without metrics yet are skipped)")
    p.add_argument("runs", metavar="RUN_DIR", nargs="+")
    p.add_argument("--out", default="compare.png", metavar="PNG", help="output file (default compare.png)")
    add_force(p, "--out")
    p.set_defaults(func=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    from cnnzoo.metrics import read_metrics
    from cnnzoo.plots import overlay_figure, save_figure

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
