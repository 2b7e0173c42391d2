"""The flags of ``cnnzoo train`` (what the command does is in :mod:`cnnzoo.cli.train`)."""

from __future__ import annotations

import argparse

from cnnzoo.cli.flags.shared import (
    add_batch_size,
    add_channels_last,
    add_input_size,
    add_precision,
)
from cnnzoo.train.config import AUGMENTS, INITS, OPTIMIZERS, RECIPE_NAMES, SCHEDULES, TTAS

__all__ = ["add_train"]


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on Fashion-MNIST and leave a run directory",
        description="Train MODEL with a recipe (fast: the best known set-up; d2l: the book's exact set-up); "
        "explicit flags override the recipe. Leaves runs/<model>-<time>/ (or --out) with config, metrics, "
        "curves, checkpoints and a report. Ctrl-C saves a resumable checkpoint.",
    )
    p.add_argument(
        "model",
        nargs="?",
        help="registered model name (see `cnnzoo models`), default lenet_bn; NAME:KWARG[=VALUE],... passes keyword "
        "arguments and NAME@SIDE sets the input side, e.g. resnet18:small_input (a 3x3 stem for 28x28 images)",
    )
    p.add_argument("--recipe", choices=RECIPE_NAMES, help="hyperparameter set to start from (default fast)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<model>-<time>)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    _add_optimisation(p.add_argument_group("optimisation (default: the recipe's value)"))
    _add_data(p.add_argument_group("data"))
    _add_machine(p.add_argument_group("machine"))
    p.set_defaults(func="cnnzoo.cli.train:cmd_train")


def _add_optimisation(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--epochs", type=int, help="with --resume: the new total (a length-aware schedule is recomputed)")
    add_batch_size(g)
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--optimizer", choices=OPTIMIZERS)
    g.add_argument("--momentum", type=float, help="for --optimizer momentum (Nesterov) or muon")
    g.add_argument("--muon-lr", type=float, help="--optimizer muon: the conv filters' peak learning rate")
    g.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule, stepped per batch")
    g.add_argument("--warmup", dest="warmup_epochs", type=float, metavar="EPOCHS", help="linear warm-up")
    g.add_argument("--step-size", type=int, metavar="EPOCHS", help="--schedule step: decay interval")
    g.add_argument("--gamma", type=float, help="--schedule step: decay factor")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the global gradient norm (0: off)")
    g.add_argument("--init", choices=INITS, help="xavier: d2l's xavier_uniform_ init")
    g.add_argument("--init-from", metavar="RUN|WEIGHT", help="fine-tune: start from a trained model's parameters (a "
                   "run directory, checkpoint or weight name, e.g. lenet_bn.fashion_mnist); a new head for your "
                   "classes; a lower --lr often helps")  # fmt: skip


def _add_data(g: argparse._ArgumentGroup) -> None:
    add_input_size(g, "input side (default: the model's input size); --resize is the same flag")
    g.add_argument(
        "--augment",
        choices=AUGMENTS,
        help="flip: mirror a random half of each batch; altflip: a fixed half in even epochs, the other half in odd "
        "ones (airbench's); crop: shift by up to --crop-padding pixels",
    )
    g.add_argument("--crop-padding", type=int, metavar="PX")
    g.add_argument(
        "--tta",
        choices=TTAS,
        help="test-time augmentation of the final figures (the last epoch's evaluation, cnnzoo eval): flip "
        "averages each image with its mirror, flip+shift adds both moved a pixel either way (6 passes); for "
        "networks trained with flips",
    )
    g.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument(
        "--dataset",
        metavar="NAME",
        help="fashion-mnist (default), mnist, kmnist, cifar10, or folder:PATH for your own images in the "
        "ImageFolder layout (PATH/<class>/*.png, or PATH/train/<class>/ and PATH/test/<class>/); the model gets "
        "the dataset's channels and classes",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        metavar="F",
        help="folder:PATH without a test/ folder: share of each class held out for testing (default 0.1)",
    )
    g.add_argument(
        "--val-size",
        type=int,
        metavar="N",
        help="validation images held out of the training split, stratified, the same images whatever --seed; "
        "best.pt and --patience use them, never the test set (default: a tenth of the training images, at most "
        "5,000; the d2l recipe: 0, the book's set-up; 0: none)",
    )
    g.add_argument("--data-root", metavar="DIR", help="directory with the dataset's files (default: the user cache)")


def _add_machine(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--device", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps")
    add_precision(g)
    add_channels_last(g)
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument("--seed", type=int)
    g.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="deterministic kernels, so the seed reproduces a CUDA run too; costs speed on CUDA (slower "
        "convolutions, no cuDNN autotuning), little on CPU, which is reproducible already (docs/reliability.md)",
    )
    g.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: the cores other programs leave free)")
    g.add_argument(
        "--dist-timeout",
        type=float,
        metavar="SECONDS",
        help="under torchrun: how long a rank waits for a stalled one before the job ends (default 1800)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    g.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="also log scalars for TensorBoard to RUN_DIR/tensorboard (pip install 'cnnzoo[tensorboard]'); "
        "view with: tensorboard --logdir runs",
    )
    g.add_argument(
        "--snapshots",
        metavar="N|all|none",
        help="keep a light copy (fp16) of the weights after each epoch in RUN_DIR/snapshots, for the studio's epoch "
        "scrubber: auto (default) keeps every epoch while they fit in 256 MB, else as many as fit, spread over the "
        "run; all; none; or at most N",
    )
    g.add_argument(
        "--target-acc",
        type=float,
        metavar="ACC",
        help="time to accuracy on the test set, as DAWNBench and airbench measure it: stop after the first epoch "
        "whose test accuracy reaches ACC (e.g. 0.91) and report the training + evaluation time it took (a "
        "measurement, not a model choice); with --resume, a higher ACC trains a run that reached its target on",
    )
    g.add_argument(
        "--patience",
        type=int,
        metavar="EPOCHS",
        help="early stopping: end the run after EPOCHS epochs without a better validation accuracy",
    )
    g.add_argument(
        "--sync-bn",
        action="store_true",
        default=None,
        help="under torchrun on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm; docs/scaling.md)",
    )
