"""The bad-input catalogue (issue 6): every way a user can point cnnzoo at the wrong thing, as a table.

Each :class:`Case` is a command a user might type in a scratch directory, the files it meets there (made by
``setup``), the fragments of the one-line message cnnzoo must answer with (the thing that is wrong and the
fix) and what the user should do. For every case the test asserts: exit status 2, exactly one line on
stderr starting with ``error: ``, every fragment in it, no traceback, and that nothing in the scratch
directory changed (before and after: every file's content, mode and mtime, every directory's mode). Most
cases run in-process through :func:`cnnzoo.cli.main` (fast); :data:`SUBPROCESS_CASES` run again through
a real ``python -m cnnzoo`` to show the same end to end, and ``--debug`` is shown to bring the traceback
back.

``docs/reliability.md`` is generated from :data:`CASES` (``python tests/catalogues/test_reliability_doc.py --write``);
``test_reliability_doc.py`` fails when the two disagree.

``data="fake"`` cases see the test-made blocks dataset (most fail before any data is read);
``data="real"`` cases see the real loader, isolated: no ``$CNNZOO_DATA``, a private cache, no system copy
and a mirror that refuses connections (``isolated_data`` in conftest), i.e. a machine without the dataset
and without network.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shlex
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.cli import main
from cnnzoo.train.checkpoint import load_checkpoint, save_checkpoint

from conftest import make_arrays, write_dataset

Setup = Callable[[Path, "Path | None"], None]


@dataclass(frozen=True)
class Case:
    id: str
    topic: str
    case: str  # the bad input, in words
    cmd: str  # the arguments after `cnnzoo`, run in the scratch directory
    expect: tuple[str, ...]  # fragments of the one-line message
    todo: str  # what the user should do
    setup: Setup | None = None  # (scratch directory, a finished run to copy or None) -> the files the user has
    data: str = "fake"  # "fake": the blocks stand-in; "real": the real loader on a machine without the dataset
    run: bool = False  # the setup needs a finished run (the session's trained_run)
    skip: Callable[[], str | None] | None = None


# ------------------------------------------------------------------------------------------------
# what the scratch directory holds
# ------------------------------------------------------------------------------------------------
def _files(**named: bytes | Callable[[], bytes]) -> Setup:
    def setup(d: Path, run: Path | None) -> None:
        for name, content in named.items():
            path = d / name.replace("__", "/").replace("_DOT_", ".")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content() if callable(content) else content)

    return setup


def _mkdir(*names: str) -> Setup:
    def setup(d: Path, run: Path | None) -> None:
        for name in names:
            (d / name).mkdir(parents=True)

    return setup


def _both(*setups: Setup) -> Setup:
    def setup(d: Path, run: Path | None) -> None:
        for s in setups:
            s(d, run)

    return setup


def _copy_run(d: Path, run: Path | None) -> None:
    assert run is not None
    shutil.copytree(run, d / "run")


def _run_with(change: Callable[[Path], None]) -> Setup:
    def setup(d: Path, run: Path | None) -> None:
        _copy_run(d, run)
        change(d / "run")

    return setup


def _checkpoint_as(name: str, change: Callable[[dict], None]) -> Setup:
    """A copy of the run's last.pt, edited, saved as ``name`` (and an image to predict on)."""

    def setup(d: Path, run: Path | None) -> None:
        ckpt = load_checkpoint(run / "last.pt")
        ckpt.pop("path")
        change(ckpt)
        save_checkpoint(d / name, ckpt)
        (d / "photo.png").write_bytes(_png_bytes())

    return setup


def _png_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    import io

    a = np.zeros(size[::-1], np.uint8)
    a[8:22, 12:28] = 220
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _animated(fmt: str) -> Callable[[], bytes]:
    def make() -> bytes:
        import io

        frames = [Image.fromarray(np.full((20, 20), v, np.uint8)) for v in (0, 128, 255)]
        buf = io.BytesIO()
        frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
        return buf.getvalue()

    return make


def _png_header_only(width: int, height: int) -> bytes:
    """A valid tiny PNG that *declares* ``width`` x ``height``: the shape of a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _truncated_photo() -> bytes:
    import io

    a = np.random.default_rng(0).integers(0, 255, (200, 200), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()[:2000]


def _dataset(damage: Callable[[Path], None] | None = None, gz: bool = True, drop: str | None = None) -> Setup:
    """Four valid IDX files in ``data/`` (not the real Fashion-MNIST: its checksums differ), then damaged."""

    def setup(d: Path, run: Path | None) -> None:
        paths = write_dataset(d / "data", make_arrays(n_train=20, n_test=10), gz=gz)
        if drop:
            paths[drop].unlink()
        if damage:
            damage(paths["train_images"])  # the first file read

    return setup


def _cut_gzip(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-20])


def _cut_raw(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-5])


def _wrong_magic(path: Path) -> None:
    path.write_bytes(b"\x89PNG" + path.read_bytes()[4:])


def _evil_checkpoint(d: Path, run: Path | None) -> None:
    from test_reliability import evil_checkpoint  # the payload would create a file when unpickled

    evil_checkpoint(d / "model.pt", d / "code-ran", kind="open")
    (d / "photo.png").write_bytes(_png_bytes())


def _read_only(name: str) -> Setup:
    def setup(d: Path, run: Path | None) -> None:
        (d / name).mkdir()
        (d / name).chmod(0o555)

    return setup


def _no_cuda() -> str | None:
    return "CUDA is available here" if torch.cuda.is_available() else None


def _no_mps() -> str | None:
    mps = getattr(torch.backends, "mps", None)
    return "MPS is available here" if mps and mps.is_available() else None


def _not_root() -> str | None:
    return "root ignores permission bits" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


# ------------------------------------------------------------------------------------------------
# the catalogue
# ------------------------------------------------------------------------------------------------
CASES: list[Case] = [
    # -- the command line ---------------------------------------------------------------------
    Case("unknown-subcommand", "command line", "a subcommand that does not exist", "fit lenet",
         ("invalid choice: 'fit'", "see `cnnzoo --help`"), "Use one of the subcommands listed; `cnnzoo --help`."),
    Case("unknown-flag", "command line", "a misspelt flag", "train lenet_bn --epocs 3",
         ("unrecognized arguments: --epocs 3", "see `cnnzoo --help`"), "Check the spelling in `cnnzoo train --help`."),
    Case("missing-argument", "command line", "a required argument left out", "predict run",
         ("the following arguments are required: IMAGE",), "Name at least one image after the checkpoint.",
         setup=_copy_run, run=True),
    Case("unknown-model-train", "command line", "an unknown model name", "train lenett",
         ("unknown model 'lenett'", "did you mean lenet"), "Use a name from `cnnzoo models` (close matches are "
         "suggested)."),
    Case("unknown-model-summary", "command line", "an unknown model name in `summary`", "summary restnet18",
         ("unknown model 'restnet18'", "did you mean resnet18"), "Use a name from `cnnzoo models`."),
    # -- numbers ----------------------------------------------------------------------------------
    Case("epochs-zero", "numbers", "zero epochs", "train lenet_bn --epochs 0",
         ("--epochs 0: must be a positive whole number",), "Give at least 1 epoch."),
    Case("epochs-negative", "numbers", "negative epochs", "train lenet_bn --epochs -3",
         ("--epochs -3: must be a positive whole number",), "Give at least 1 epoch."),
    Case("epochs-not-a-number", "numbers", "epochs that are not a number", "train lenet_bn --epochs ten",
         ("argument --epochs: invalid int value: 'ten'",), "Give a whole number."),
    Case("patience-zero", "numbers", "early stopping after zero epochs", "train lenet_bn --patience 0",
         ("--patience 0: must be a positive number of epochs",), "Give at least 1 epoch."),
    Case("patience-without-validation", "numbers", "`--patience` with the d2l recipe, which holds no validation "
         "images out", "train lenet --recipe d2l --patience 3",
         ("--patience 3 stops on validation accuracy", "the d2l recipe", "drop --patience or give --val-size"),
         "Drop --patience, or hold validation images out with --val-size."),
    Case("val-size-negative", "numbers", "a negative validation split", "train lenet_bn --val-size -5",
         ("--val-size -5: must be 0 (no validation split) or a number of images",), "Give 0 or a positive size."),
    Case("val-size-too-large", "numbers", "a validation split as large as the training set",
         "train lenet_bn --val-size 512", ("--val-size 512 is not smaller than the 512 training images",
                                           "give e.g. --val-size 51"), "Give a smaller --val-size."),
    Case("batch-size-zero", "numbers", "batch size zero", "train lenet_bn --batch-size 0",
         ("--batch-size 0: must be a positive whole number",), "Give a batch size of at least 1 (e.g. 128)."),
    Case("batch-size-negative", "numbers", "negative batch size", "train lenet_bn --batch-size -64",
         ("--batch-size -64: must be a positive whole number",), "Give a batch size of at least 1 (e.g. 128)."),
    Case("lr-zero", "numbers", "learning rate zero", "train lenet_bn --lr 0",
         ("--lr 0.0: the learning rate must be a positive finite number",), "Give a positive learning rate, e.g. "
         "0.05, or leave --lr out for the recipe's."),
    Case("lr-negative", "numbers", "negative learning rate", "train lenet_bn --lr -0.1",
         ("--lr -0.1: the learning rate must be a positive finite number",), "Give a positive learning rate."),
    Case("lr-nan", "numbers", "learning rate NaN", "train lenet_bn --lr nan",
         ("--lr nan: the learning rate must be a positive finite number",), "Give a positive finite learning rate."),
    Case("label-smoothing-range", "numbers", "label smoothing of 1 or more", "train lenet_bn --label-smoothing 1.5",
         ("--label-smoothing 1.5: must be in [0, 1)",), "Use a value below 1, typically 0.1."),
    Case("threads-zero", "numbers", "zero CPU threads", "train lenet_bn --threads 0",
         ("--threads 0: must be at least 1",), "Give at least 1 thread, or leave --threads out (the free cores)."),
    Case("top-k-zero", "numbers", "`--top-k 0` for predict", "predict run photo.png --top-k 0",
         ("--top-k 0: must be at least 1",), "Ask for at least the top 1 class.",
         setup=_both(_copy_run, _files(photo_DOT_png=_png_bytes)), run=True),
    # -- input size -------------------------------------------------------------------------------
    Case("resize-below-minimum", "input size", "an input size below the model's minimum",
         "train alexnet --resize 64", ("--input-size 64 is below alexnet's minimum input size 193",
                                       "use --input-size 224"),
         "Use the size suggested, or a model that takes small inputs (`cnnzoo models`, column accepts)."),
    Case("resize-above-maximum", "input size", "an input size above a fixed-classifier model's maximum",
         "train lenet --input-size 64", ("--input-size 64 is above lenet's maximum input size 31",
                                       "use --input-size 28"),
         "Use the size suggested (LeNet, AlexNet and VGG have a fixed-size classifier)."),
    Case("summary-input-too-small", "input size", "`summary` at an input below the minimum",
         "summary alexnet --input-size 32", ("alexnet needs inputs of at least 193x193 pixels, got 32x32",
                                              "--input-size 224"), "Use at least the minimum the message names."),
    Case("summary-input-malformed", "input size", "a malformed `--input-size`", "summary lenet --input-size 28x",
         ("invalid input size '28x'", "expected CxHxW, HxW or H"), "Write it as 1x28x28, 28x28 or 28."),
    # -- choices ----------------------------------------------------------------------------------
    Case("unknown-optimizer", "choices", "an unknown optimizer", "train lenet_bn --optimizer rmsprop",
         ("argument --optimizer: invalid choice: 'rmsprop'", "choose from"), "Pick one of the listed optimizers."),
    Case("unknown-schedule", "choices", "an unknown learning-rate schedule", "train lenet_bn --schedule linear",
         ("argument --schedule: invalid choice: 'linear'", "choose from"), "Pick one of the listed schedules."),
    Case("unknown-device", "choices", "an unknown device", "train lenet_bn --device tpu",
         ("--device tpu: unknown device", "choose auto, cpu, cuda, cuda:N or mps"), "Use auto, cpu, cuda, cuda:N "
         "or mps."),
    Case("unknown-precision", "choices", "an unknown precision", "train lenet_bn --precision fp16",
         ("argument --precision: invalid choice: 'fp16'", "choose from 'auto', 'fp32', 'bf16'"),
         "Use fp32 or bf16 (bf16 needs no loss scaling, which is why fp16 is not offered)."),
    Case("unknown-recipe", "choices", "an unknown recipe", "train lenet_bn --recipe quick",
         ("argument --recipe: invalid choice: 'quick'",), "Use fast, d2l or record."),
    Case("d2l-recipe-untrained-model", "choices", "the d2l recipe for a model the book never trains",
         "train resnet34 --recipe d2l", ("the book does not train 'resnet34', so the d2l recipe has no set-up",
                                          "use --recipe fast or give --lr and --batch-size"),
         "Use --recipe fast, or give --lr and --batch-size yourself."),
    Case("record-recipe-other-model", "choices", "the speed record's recipe for a network it was not made for",
         "train lenet_bn --recipe record", ("the record recipe is the speed record's set-up for speednet and "
                                            "speednet_wide only, not 'lenet_bn'", "use --recipe fast"),
         "Use --recipe fast, or train speednet or speednet_wide."),
    Case("predict-invert", "choices", "an unknown `--invert` value", "predict run photo.png --invert maybe",
         ("argument --invert: invalid choice: 'maybe'",), "Use auto, yes or no.",
         setup=_both(_copy_run, _files(photo_DOT_png=_png_bytes)), run=True),
    # -- hardware ---------------------------------------------------------------------------------
    Case("cuda-absent-train", "hardware", "CUDA asked for on a machine without it", "train lenet_bn --device cuda",
         ("--device cuda: CUDA is not available on this machine", "use --device cpu or auto"),
         "Use --device cpu (or auto); cnnzoo never falls back silently, so CPU numbers are never reported as GPU "
         "numbers.", skip=_no_cuda),
    Case("cuda-index-absent", "hardware", "a GPU index that does not exist", "train lenet_bn --device cuda:7",
         ("--device cuda:7",), "Use an index below the number of GPUs (`nvidia-smi`), or --device cpu.",
         skip=lambda: "8 GPUs here" if torch.cuda.device_count() > 7 else None),
    Case("cuda-absent-eval", "hardware", "CUDA asked for by `eval`", "eval run --device cuda",
         ("--device cuda: CUDA is not available on this machine",), "Use --device cpu.", setup=_copy_run, run=True,
         skip=_no_cuda),
    Case("cuda-absent-predict", "hardware", "CUDA asked for by `predict`", "predict run photo.png --device cuda",
         ("--device cuda: CUDA is not available on this machine",), "Use --device cpu (the default).",
         setup=_both(_copy_run, _files(photo_DOT_png=_png_bytes)), run=True, skip=_no_cuda),
    Case("mps-absent", "hardware", "Apple MPS asked for where there is none", "train lenet_bn --device mps",
         ("--device mps: Apple MPS is not available on this machine",), "Use --device cpu or auto.", skip=_no_mps),
    # -- dataset ----------------------------------------------------------------------------------
    Case("dataset-missing", "dataset", "no Fashion-MNIST anywhere (`data`)", "data",
         ("Fashion-MNIST not found (looked in:", "user cache",
          "sudo apt-get install dataset-fashion-mnist", "set CNNZOO_DATA"),
         "Install the package, put the four files in a directory and set CNNZOO_DATA, or `cnnzoo data --fetch`.",
         data="real"),
    Case("dataset-missing-no-network", "dataset", "no Fashion-MNIST and no network (`train` tries to download)",
         "train lenet_bn", ("Fashion-MNIST not found", "download failed", "Connection refused",
                            "set CNNZOO_DATA"),
         "Copy the four files from a machine that has them and set CNNZOO_DATA, or install the package.",
         data="real"),
    Case("fetch-no-network", "dataset", "`data --fetch` without network", "data --fetch --root data",
         ("could not download Fashion-MNIST into data", "check the network, or set CNNZOO_MIRROR"),
         "Check the connection, set CNNZOO_MIRROR to a reachable mirror, or copy the files by hand.",
         setup=_mkdir("data"), data="real"),
    Case("dataset-root-empty", "dataset", "`--root` pointing at a directory without the files", "data --root data",
         ("root argument data (no files)", "set CNNZOO_DATA"), "Point --root at the directory holding the four "
         "files.", setup=_mkdir("data"), data="real"),
    Case("dataset-root-missing", "dataset", "`--root` pointing at a directory that does not exist",
         "data --root nowhere", ("root argument nowhere (no such directory)",), "Fix the path.", data="real"),
    Case("dataset-incomplete", "dataset", "three of the four files", "data --root data",
         ("root argument data (only 3 of 4 files)",), "Copy the missing file (the message lists all four names).",
         setup=_dataset(drop="test_labels"), data="real"),
    Case("dataset-truncated-gzip", "dataset", "a half-downloaded `.gz` file", "data --root data",
         ("train-images-idx3-ubyte.gz: damaged gzip data", "fetch it again"), "Download that file again; "
         "cnnzoo never modifies it.", setup=_dataset(_cut_gzip), data="real"),
    Case("dataset-truncated-raw", "dataset", "a truncated uncompressed IDX file", "data --root data",
         ("train-images-idx3-ubyte: truncated payload", "fetch it again"), "Copy that file again.",
         setup=_dataset(_cut_raw, gz=False), data="real"),
    Case("dataset-wrong-magic", "dataset", "a file that is not IDX at all (wrong magic number)", "data --root data",
         ("train-images-idx3-ubyte: not an IDX file (magic number starts 8950",), "Replace it with the official "
         "file of that name.", setup=_dataset(_wrong_magic, gz=False), data="real"),
    Case("dataset-wrong-checksum", "dataset", "valid IDX files that are not the official ones (checksum mismatch)",
         "train lenet_bn --data-root data", ("checksum mismatch", "expected f4a8712d7a061bf5bd6d2ca38dc4d50a",
                                             "replace it"),
         "Replace the named file with the official Fashion-MNIST one.", setup=_dataset(), data="real"),
    Case("dataset-root-is-a-file", "dataset", "`--data-root` naming a file", "train lenet_bn --data-root notes.txt",
         ("notes.txt is a file", "give the directory that holds the four Fashion-MNIST files"),
         "Give the directory that holds the files.",
         setup=_files(notes_DOT_txt=b"not a directory\n"), data="real"),
    # -- images for predict -------------------------------------------------------------------------
    Case("image-empty", "images", "an empty image file (0 bytes)", "predict run photo.png",
         ("photo.png: the file is empty (0 bytes", "copy the image again"), "Copy or download the image again.",
         setup=_both(_copy_run, _files(photo_DOT_png=b"")), run=True),
    Case("image-truncated", "images", "a truncated PNG (an interrupted copy)", "predict run photo.png",
         ("photo.png: truncated or corrupt image",), "Copy the image again, or re-export it.",
         setup=_both(_copy_run, _files(photo_DOT_png=_truncated_photo)), run=True),
    Case("image-not-an-image", "images", "a file that is not an image", "predict run notes.png",
         ("notes.png: not an image file PIL can read",), "Give a PNG, JPEG, BMP, GIF, TIFF or WebP picture.",
         setup=_both(_copy_run, _files(notes_DOT_png=b"shopping list: milk, eggs\n")), run=True),
    Case("image-animated-gif", "images", "an animated GIF", "predict run clip.gif",
         ("clip.gif: an animated GIF (3 frames)", "save the frame you want as a PNG or JPEG"),
         "Save the frame you want as a still image.", setup=_both(_copy_run, _files(clip_DOT_gif=_animated("GIF"))),
         run=True),
    Case("image-animated-png", "images", "an animated PNG (APNG)", "predict run clip.png",
         ("clip.png: an animated PNG (3 frames)",), "Save the frame you want as a still image.",
         setup=_both(_copy_run, _files(clip_DOT_png=_animated("PNG"))), run=True),
    Case("image-over-limit", "images", "a 60-megapixel image (over cnnzoo's 50 MP limit)", "predict run huge.png",
         ("huge.png: 10000x6000 is over the 50-megapixel limit", "shrink it first"),
         "Shrink the picture first; classification works at 28-224 pixels anyway.",
         setup=_both(_copy_run, _files(huge_DOT_png=lambda: _png_header_only(10000, 6000))), run=True),
    Case("image-decompression-bomb", "images", "a decompression bomb (a small file declaring 400 megapixels)",
         "predict run bomb.png", ("bomb.png: refused as a possible decompression bomb",),
         "Do not trust the file; if it is a genuine huge image, shrink it first.",
         setup=_both(_copy_run, _files(bomb_DOT_png=lambda: _png_header_only(20000, 20000))), run=True),
    Case("image-directory", "images", "a directory without pictures instead of an image", "predict run pictures",
         ("pictures: no images in this directory", "give image files, or a directory that holds some"),
         "Name image files, or a directory that holds some (PNG, JPEG, ...).",
         setup=_both(_copy_run, _mkdir("pictures")), run=True),
    Case("image-missing", "images", "an image path that does not exist", "predict run missing.png",
         ("missing.png: no such file",), "Fix the path.", setup=_copy_run, run=True),
    # -- checkpoints ------------------------------------------------------------------------------
    Case("checkpoint-other-model", "checkpoints", "a checkpoint whose weights belong to another model",
         "eval lenet.pt", ("weights do not fit model 'lenet'",), "Use the checkpoint the run wrote; a file edited or "
         "mixed up by hand cannot be loaded.", setup=_checkpoint_as("lenet.pt", lambda c: c.update(model_name="lenet")),
         run=True),
    Case("checkpoint-unknown-model", "checkpoints", "a checkpoint of a model this cnnzoo does not have",
         "predict future.pt photo.png", ("cannot rebuild model 'resnet9000'", "unknown model"),
         "Upgrade cnnzoo to the version that wrote it.",
         setup=_checkpoint_as("future.pt", lambda c: c.update(model_name="resnet9000")), run=True),
    Case("checkpoint-newer-format", "checkpoints", "a checkpoint written by a newer cnnzoo", "eval new.pt",
         ("checkpoint format 99 is newer than this cnnzoo reads", "upgrade cnnzoo"), "Upgrade cnnzoo.",
         setup=_checkpoint_as("new.pt", lambda c: c.update(version=99)), run=True),
    Case("checkpoint-truncated", "checkpoints", "a truncated checkpoint (an interrupted copy)", "eval half.pt",
         ("half.pt: truncated or corrupt checkpoint", "copy it again"), "Copy it again, or use the run's best.pt.",
         setup=lambda d, run: (d / "half.pt").write_bytes((run / "last.pt").read_bytes()[:60_000]), run=True),
    Case("checkpoint-empty", "checkpoints", "an empty checkpoint file", "eval empty.pt",
         ("empty.pt: the file is empty",), "Copy it again.", setup=_files(empty_DOT_pt=b"")),
    Case("checkpoint-not-torch", "checkpoints", "a file that is not a checkpoint at all", "eval notes.pt",
         ("notes.pt: not a PyTorch checkpoint file", "give a last.pt or best.pt"),
         "Give a last.pt or best.pt from a run directory.", setup=_files(notes_DOT_pt=b"meeting notes\n")),
    Case("checkpoint-bare-state-dict", "checkpoints", "a PyTorch file that is not a cnnzoo checkpoint (a bare "
         "state_dict from elsewhere)", "eval weights.pt", ("a PyTorch file, but not a cnnzoo checkpoint",
                                                           "load_state_dict"),
         "Load it in Python into `cnnzoo.create_model(name)`; cnnzoo's CLI reads its own checkpoints only.",
         setup=_files(weights_DOT_pt=lambda: _torch_bytes({"fc.weight": torch.ones(2, 2)}))),
    Case("checkpoint-carries-code", "checkpoints", "a checkpoint from a stranger whose pickle would run code",
         "predict model.pt photo.png", ("refused to load", "could run code", "weights_only=True"),
         "Do not use the file. Nothing in it ran: cnnzoo loads checkpoints with weights_only=True only.",
         setup=_evil_checkpoint),
    Case("checkpoint-missing", "checkpoints", "a checkpoint path that does not exist", "eval nothing.pt",
         ("nothing.pt: no such run directory or checkpoint",), "Fix the path."),
    Case("eval-not-a-run", "checkpoints", "a directory that is not a run", "eval photos",
         ("photos has no last.pt: not a cnnzoo run directory",), "Give a run directory or a .pt file.",
         setup=_mkdir("photos")),
    # -- the run directory ------------------------------------------------------------------------
    Case("out-is-a-file", "run directory", "`--out` naming an existing file", "train lenet_bn --out notes.txt",
         ("--out notes.txt is a file, not a directory",), "Choose another path for the run.",
         setup=_files(notes_DOT_txt=b"keep me\n")),
    Case("out-below-a-file", "run directory", "`--out` below a file (cannot be created)",
         "train lenet_bn --out notes.txt/run", ("cannot create the run directory notes.txt/run (Not a directory)",
                                                "choose a writable place with --out DIR"),
         "Choose a writable place.", setup=_files(notes_DOT_txt=b"keep me\n")),
    Case("out-read-only", "run directory", "`--out` in a read-only directory", "train lenet_bn --out locked/run",
         ("cannot create the run directory locked/run (Permission denied)",), "Choose a writable place.",
         setup=_read_only("locked"), skip=_not_root),
    Case("runs-read-only", "run directory", "the default `runs/` directory read-only",
         "train lenet_bn", ("cannot create the run directory runs/lenet_bn-", "Permission denied", "--out DIR"),
         "Run from a writable directory or pass --out.", setup=_read_only("runs"), skip=_not_root),
    Case("out-holds-a-run", "run directory", "`--out` naming a directory that already holds a run",
         "train lenet_bn --out run", ("--out run already holds a run", "resume it with --resume run"),
         "Resume it, or pick another directory.", setup=_copy_run, run=True),
    # -- resuming ----------------------------------------------------------------------------------
    Case("resume-no-checkpoint", "resume", "`--resume` of a directory with no checkpoint", "train --resume photos",
         ("photos has no last.pt: not a cnnzoo run directory",), "Give the run directory that `cnnzoo train` made.",
         setup=_mkdir("photos")),
    Case("resume-before-first-checkpoint", "resume", "`--resume` of a run killed before its first checkpoint",
         "train --resume run", ("run has no last.pt: its run stopped before the first checkpoint",
                                "start it again with the same command"),
         "Run the original command again (same --out); nothing was lost but part of one epoch.",
         setup=_files(run__config_DOT_json=b'{"config": {}}\n')),
    Case("resume-missing", "resume", "`--resume` of a path that does not exist", "train --resume runs/old",
         ("runs/old: no such run directory or checkpoint",), "Fix the path (`ls runs/`)."),
    Case("resume-truncated-checkpoint", "resume", "`--resume` when last.pt was damaged outside cnnzoo",
         "train --resume run", ("last.pt: truncated or corrupt checkpoint", "best.pt"),
         "Resume from the best epoch instead: `cnnzoo train --resume run/best.pt`.",
         setup=_run_with(lambda r: (r / "last.pt").write_bytes((r / "last.pt").read_bytes()[:50_000])), run=True),
    Case("resume-finished", "resume", "`--resume` of a run that already finished", "train --resume run",
         ("already finished 3 of 3 epochs", "pass --epochs 8 to train further"), "Pass a larger --epochs.",
         setup=_copy_run, run=True),
    # -- conflicting flags ------------------------------------------------------------------------
    Case("resume-other-model", "conflicting flags", "a model name that differs from the run being resumed",
         "train lenet --resume run", ("trained lenet_bn, not lenet", "drop MODEL when resuming"),
         "Drop the model name: the run knows its model.", setup=_copy_run, run=True),
    Case("resume-changed-hyperparameter", "conflicting flags", "a hyperparameter changed on resume",
         "train --resume run --lr 0.5 --epochs 5", ("--lr cannot change when resuming", "start a new run instead"),
         "Resume unchanged (the message lists the flags that may change) or start a new run.", setup=_copy_run,
         run=True),
    Case("momentum-without-momentum-optimizer", "conflicting flags", "`--momentum` with an optimizer that has none",
         "train lenet_bn --optimizer adam --momentum 0.5", ("--momentum applies to --optimizer momentum or muon only",
                                                            "drop one of them"), "Drop one of the two flags."),
    Case("muon-lr-without-muon", "conflicting flags", "`--muon-lr` with an optimizer other than Muon",
         "train lenet_bn --optimizer momentum --muon-lr 0.1",
         ("--muon-lr applies to --optimizer muon only", "drop one of them"), "Drop --muon-lr or use --optimizer muon."),
    Case("step-size-without-step", "conflicting flags", "`--step-size` with a schedule other than step",
         "train lenet_bn --schedule cosine --step-size 3", ("--step-size applies to --schedule step only",),
         "Use --schedule step, or drop --step-size."),
    Case("crop-padding-without-crop", "conflicting flags", "`--crop-padding` without crop augmentation",
         "train lenet_bn --augment none --crop-padding 3", ("--crop-padding needs --augment crop or flip+crop",),
         "Add crop augmentation or drop --crop-padding."),
    Case("onecycle-with-warmup", "conflicting flags", "`--warmup` with the one-cycle schedule",
         "train lenet_bn --schedule onecycle --warmup 1", ("--schedule onecycle has its own warm-up",
                                                           "drop --warmup"), "Drop --warmup or pick another schedule."),
    Case("warmup-longer-than-run", "conflicting flags", "a warm-up as long as the run",
         "train lenet_bn --schedule cosine --epochs 5 --warmup 5", ("--warmup 5.0: warm-up must be >= 0 and "
                                                                    "shorter than the 5 epochs",),
         "Make the warm-up shorter than the run."),
    Case("plot-not-a-run", "conflicting flags", "`plot` of a directory that is not a run", "plot photos",
         ("photos: not a run directory with metrics",), "Give run directories.", setup=_mkdir("photos")),
]  # fmt: skip


def _torch_bytes(obj: object) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


#: Cases run again through a real ``python -m cnnzoo`` (no fake data, no monkeypatching).
SUBPROCESS_CASES = [
    "unknown-subcommand",
    "epochs-zero",
    "image-animated-gif",
    "checkpoint-truncated",
    "dataset-root-empty",
]  # fmt: skip
BY_ID = {c.id: c for c in CASES}


# ------------------------------------------------------------------------------------------------
# the checks
# ------------------------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and directory under ``root``: content hash, mode and mtime (a rewrite counts as a change)."""
    state = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = p.relative_to(root).as_posix()
        if p.is_dir():
            state[rel + "/"] = ("dir", st.st_mode)
        else:
            state[rel] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mode, st.st_mtime_ns)
    return state


def assert_one_line_error(status: object, err: str, case: Case) -> None:
    assert status == 2, f"exit status {status}, stderr:\n{err}"
    assert "Traceback" not in err, err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, repr(err)
    for fragment in case.expect:
        assert fragment in err, f"{fragment!r} not in {err!r}"


def prepare(case: Case, request: pytest.FixtureRequest, scratch: Path) -> None:
    if case.skip and (reason := case.skip()):
        pytest.skip(reason)
    request.getfixturevalue("fake_train_data" if case.data == "fake" else "isolated_data")
    run = None
    if case.run:
        run = request.getfixturevalue("trained_run")
    scratch.mkdir()
    if case.setup:
        case.setup(scratch, run)


def check_case(case: Case, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch, capsys) -> None:
    """Run ``case`` in-process in a scratch directory: exit 2, one ``error:`` line with every fragment, no
    traceback, nothing in the scratch directory changed. The other catalogues
    (``test_bad_inputs_*.py``) run their cases through this too."""
    scratch = tmp_path / "scratch"
    prepare(case, request, scratch)
    monkeypatch.chdir(scratch)
    before = snapshot(scratch)
    try:
        status = main(shlex.split(case.cmd))
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    err = capsys.readouterr().err
    assert_one_line_error(status, err, case)
    assert snapshot(scratch) == before
    assert not (scratch / "code-ran").exists()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, request, tmp_path, monkeypatch, capsys):
    check_case(case, request, tmp_path, monkeypatch, capsys)


def _subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg-cache"), CNNZOO_MIRROR="http://127.0.0.1:9/")
    env.pop("CNNZOO_DATA", None)
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_input_end_to_end_in_a_real_process(case_id, request, tmp_path):
    case = BY_ID[case_id]
    scratch = tmp_path / "scratch"
    prepare(case, request, scratch)
    before = snapshot(scratch)
    proc = subprocess.run(
        [sys.executable, "-m", "cnnzoo", *shlex.split(case.cmd)],
        cwd=scratch,
        env=_subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(proc.returncode, proc.stderr, case)
    assert snapshot(scratch) == before


def test_debug_shows_the_traceback_instead(tmp_path, capsys):
    with pytest.raises(Exception, match="--epochs 0: must be a positive whole number") as info:
        main(["--debug", "train", "lenet_bn", "--epochs", "0"])
    assert type(info.value).__name__ == "ConfigError"
    proc = subprocess.run(
        [sys.executable, "-m", "cnnzoo", "--debug", "train", "lenet_bn", "--epochs", "0"],
        cwd=tmp_path,
        env=_subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1  # an uncaught exception: Python's own status
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert "cnnzoo.base.errors.ConfigError: --epochs 0: must be a positive whole number" in proc.stderr


def test_the_catalogue_is_large_and_well_formed():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 40
    for c in CASES:
        assert c.expect and all(c.expect) and c.todo.endswith(".") and c.data in ("fake", "real"), c.id
    assert set(SUBPROCESS_CASES) <= set(ids)


def test_gzip_helpers_damage_what_they_say(tmp_path):
    """The data setups make what the catalogue says they make (else a case could pass for the wrong reason)."""
    _dataset(_cut_gzip)(tmp_path, None)
    with pytest.raises(EOFError):
        gzip.decompress((tmp_path / "data" / "train-images-idx3-ubyte.gz").read_bytes())
