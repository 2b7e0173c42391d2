"""The flags of ``cnnzoo eval``, ``predict``, ``export`` and ``plot`` (what the commands do is in
:mod:`cnnzoo.cli.runs`)."""

from __future__ import annotations

import argparse

__all__ = ["add_eval", "add_export", "add_plot", "add_predict"]


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
    p.set_defaults(func="cnnzoo.cli.runs:cmd_eval")


def add_force(p: argparse.ArgumentParser, flag: str) -> None:
    """``--force``: let an output flag replace an existing file cnnzoo did not write (never a checkpoint)."""
    p.add_argument(
        "--force",
        action="store_true",
        help=f"replace {flag}'s file even when cnnzoo did not write it (never a directory, checkpoint or input)",
    )


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
    p.set_defaults(func="cnnzoo.cli.runs:cmd_predict")


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
    p.set_defaults(func="cnnzoo.cli.runs:cmd_export")


def add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="overlay several runs' curves in one PNG (runs without metrics yet are skipped)")
    p.add_argument("runs", metavar="RUN_DIR", nargs="+")
    p.add_argument("--out", default="compare.png", metavar="PNG", help="output file (default compare.png)")
    add_force(p, "--out")
    p.set_defaults(func="cnnzoo.cli.runs:cmd_plot")
