"""The ``cnnzoo`` command line: a thin shell over the library.

This is the only module that touches process-wide state (argv, stdout, exit codes, signals). Every
subcommand has an ``_add_<name>`` function that declares its flags and a ``_cmd_<name>`` function that
runs it and returns the exit status. User-caused errors (:class:`~cnnzoo.errors.CnnzooError`) print one
line ``error: ...`` and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cnnzoo.errors import CnnzooError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error format (argparse already exits 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="find, verify and describe Fashion-MNIST (or download it with --fetch)",
        description="Show where Fashion-MNIST was found, its checksum status and per-class counts.",
    )
    p.add_argument("--root", help="directory holding the four IDX files (.gz or raw)")
    p.add_argument("--fetch", action="store_true", help="download the dataset into the user cache first")
    p.set_defaults(func=_cmd_data)


def _cmd_data(args: argparse.Namespace) -> int:
    from cnnzoo.data import fetch_fashion_mnist, load_fashion_mnist

    if args.fetch:
        path = fetch_fashion_mnist(args.root)
        print(f"fetched into {path}")
    ds = load_fashion_mnist(args.root, download=False)
    print(f"dataset:   {ds.name}")
    print(f"found in:  {ds.source}")
    print(f"checksums: {'verified (MD5 of the uncompressed content)' if ds.verified else 'NOT verified'}")
    print(f"train:     {tuple(ds.train_images.shape)} uint8, test: {tuple(ds.test_images.shape)} uint8")
    train, test = ds.class_counts("train"), ds.class_counts("test")
    width = max(len(c) for c in ds.classes)
    print(f"\n{'label':>5}  {'class':<{width}}  {'train':>6}  {'test':>6}")
    for i, name in enumerate(ds.classes):
        print(f"{i:>5}  {name:<{width}}  {train[i]:>6}  {test[i]:>6}")
    print(f"{'':>5}  {'total':<{width}}  {sum(train):>6}  {sum(test):>6}")
    return 0


# ----------------------------------------------------------------------------------------------
# models, summary  (issue 3)
# ----------------------------------------------------------------------------------------------
def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list every model with its input size, parameters and MACs")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> int:
    from cnnzoo.inspection import format_models_table, models_table

    print(format_models_table(models_table()))
    print("\ninput: the default input size (the CLI resizes to it); accepts: the input sides the network takes.")
    print("params: 1 input channel, 10 classes; MACs: conv + linear multiply-accumulates, one image at input.")
    return 0


def _add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="print a model's shape trace and per-layer table")
    p.add_argument("model")
    p.add_argument("--input-size", help="CxHxW (or H) — defaults to the model's own input size")
    p.add_argument("--depth", type=int, help="show modules nested at most this deep (default: all)")
    p.set_defaults(func=_cmd_summary)


def _cmd_summary(args: argparse.Namespace) -> int:
    import torch

    from cnnzoo.inspection import parse_input_size, shape_trace, summary
    from cnnzoo.registry import create_model, get_model_info

    get_model_info(args.model)  # an unknown name fails here, with close matches, before any parsing
    size = parse_input_size(args.input_size) if args.input_size else None
    # Shapes, parameter counts and MACs need no real weights: build on the meta device (instant, no memory).
    with torch.device("meta"):
        model = create_model(args.model, in_channels=size[0] if size else 1)
    print(shape_trace(model, size))
    print()
    print(summary(model, size, depth=args.depth))
    return 0


# ----------------------------------------------------------------------------------------------
# train, eval, predict, plot  (issue 4)
# ----------------------------------------------------------------------------------------------
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

# Flags whose value may change when a run is resumed; everything else belongs to the run.
_RESUMABLE = ("epochs", "device", "precision", "compile", "channels_last", "target_acc", "sync_bn", "tensorboard")


def _add_train(sub: argparse._SubParsersAction) -> None:
    from cnnzoo.config import AUGMENTS, CHANNELS_LAST, INITS, OPTIMIZERS, PRECISIONS, RECIPES, SCHEDULES

    p = sub.add_parser(
        "train",
        help="train a model on Fashion-MNIST and leave a run directory",
        description="Train MODEL with a recipe (fast: the best known set-up; d2l: the seeds' exact set-up); "
        "explicit flags override the recipe. Leaves runs/<model>-<time>/ (or --out) with config, metrics, "
        "curves, checkpoints and a report. Ctrl-C saves a resumable checkpoint.",
    )
    p.add_argument(
        "model",
        nargs="?",
        help="registered model name (see `cnnzoo models`), default lenet_bn; NAME:KWARG[=VALUE],... passes keyword "
        "arguments and NAME@SIDE sets the input side, e.g. resnet18:small_input (a 3x3 stem for 28x28 images)",
    )
    p.add_argument("--recipe", choices=sorted(RECIPES), help="hyperparameter set to start from (default fast)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<model>-<time>)")
    g = p.add_argument_group("optimisation (default: the recipe's value)")
    g.add_argument("--epochs", type=int, help="with --resume: the new total (a length-aware schedule is recomputed)")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--optimizer", choices=OPTIMIZERS)
    g.add_argument("--momentum", type=float, help="for --optimizer momentum (Nesterov)")
    g.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule, stepped per batch")
    g.add_argument("--warmup", dest="warmup_epochs", type=float, metavar="EPOCHS", help="linear warm-up")
    g.add_argument("--step-size", type=int, metavar="EPOCHS", help="--schedule step: decay interval")
    g.add_argument("--gamma", type=float, help="--schedule step: decay factor")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the global gradient norm (0: off)")
    g.add_argument("--init", choices=INITS, help="xavier: the seeds' xavier_uniform_ init")
    g = p.add_argument_group("data")
    g.add_argument("--resize", type=int, metavar="SIDE", help="input side (default: the model's input size)")
    g.add_argument("--augment", choices=AUGMENTS)
    g.add_argument("--crop-padding", type=int, metavar="PX")
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
    g.add_argument("--data-root", metavar="DIR", help="directory with the dataset's files (default: the user cache)")
    g = p.add_argument_group("machine")
    g.add_argument("--device", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps")
    g.add_argument("--precision", choices=PRECISIONS)
    g.add_argument("--channels-last", choices=CHANNELS_LAST)
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument("--seed", type=int)
    g.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="deterministic kernels, so the seed reproduces a CUDA run too; costs speed on CUDA (slower "
        "convolutions, no cuDNN autotuning), little on CPU, which is reproducible already (docs/reliability.md)",
    )
    g.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: all cores)")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    g.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="also log scalars for TensorBoard to RUN_DIR/tensorboard (pip install 'cnnzoo[tensorboard]'); "
        "view with: tensorboard --logdir runs",
    )
    g.add_argument(
        "--target-acc",
        type=float,
        metavar="ACC",
        help="time to accuracy: stop after the first epoch whose test accuracy reaches ACC (e.g. 0.91) and report "
        "the training + evaluation time it took; with --resume, a higher ACC trains a run that reached its target on",
    )
    g.add_argument(
        "--sync-bn",
        action="store_true",
        default=None,
        help="under torchrun on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm; docs/scaling.md)",
    )
    p.set_defaults(func=_cmd_train)


def _train_overrides(args: argparse.Namespace) -> dict:
    from cnnzoo.config import TrainConfig

    names = [f for f in TrainConfig.__dataclass_fields__ if f not in ("model", "model_kwargs", "recipe")]
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _load_data(config, root: str | None, in_channels: int | None = None):
    """The dataset ``config`` names, as a training run or an evaluation of its checkpoint sees it.

    Folders are decoded at the run's input size, and split with the run's seed and ``val_fraction``, so
    ``cnnzoo eval`` rebuilds exactly the test split the run was tested on. ``in_channels`` None keeps the
    dataset's own (a fresh run builds its model to match); a checkpoint passes the channels it was trained on.
    """
    import cnnzoo.data as data_mod  # looked up at call time, so tests can substitute tiny data

    if data_mod.dataset_name(config.dataset) == "fashion-mnist" and in_channels in (None, 1):
        return data_mod.load_fashion_mnist(root)
    return data_mod.load_dataset(
        config.dataset,
        root=root,
        image_size=config.resize,
        in_channels=in_channels,
        seed=config.seed,
        val_fraction=config.val_fraction,
    )


def _fit_model_to_data(config, data):
    """A fresh run on another dataset: the model takes its channels and classes (and says so in its kwargs,
    which the checkpoint keeps, so ``eval``/``predict``/``export`` rebuild the same network)."""
    import dataclasses

    from cnnzoo.data import dataset_name

    if dataset_name(config.dataset) == "fashion-mnist":
        return config
    kwargs = {"in_channels": data.in_channels, "num_classes": data.num_classes, **config.model_kwargs}
    return dataclasses.replace(config, model_kwargs=kwargs)


class _StopFlag:
    """SIGINT handler: the first Ctrl-C asks fit to stop after the current step; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\ninterrupted: finishing the current step and saving a checkpoint (Ctrl-C again to abort)",
            file=sys.stderr,
            flush=True,
        )


def _cmd_train(args: argparse.Namespace) -> int:
    import dataclasses
    import signal

    import torch

    from cnnzoo.checkpoint import load_checkpoint, model_from_checkpoint
    from cnnzoo.config import DEFAULT_MODEL, config_from_dict, resolve_config, validate_config
    from cnnzoo.devices import enable_determinism, setup_device
    from cnnzoo.distributed import from_env
    from cnnzoo.engine import evaluate, final_summary, fit, format_time_to_target, time_to_target
    from cnnzoo.errors import ConfigError, FileWriteError, TrainingDivergedError
    from cnnzoo.inspection import summary
    from cnnzoo.registry import create_model, meta_model, parse_model_spec
    from cnnzoo.run import RunDirectory, environment_info, new_run_dir, resolve_run_dir

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads {args.threads}: must be at least 1")
        torch.set_num_threads(args.threads)
    overrides = _train_overrides(args)
    resume = None
    if args.resume:
        run_dir, ckpt_path = resolve_run_dir(args.resume)
        ckpt = load_checkpoint(ckpt_path)
        saved = config_from_dict(ckpt["config"])
        if args.model and parse_model_spec(args.model).name != saved.model:
            raise ConfigError(f"{run_dir} trained {saved.model}, not {args.model}: drop MODEL when resuming")
        fixed = sorted(k for k in overrides if k not in _RESUMABLE)
        if args.out or args.recipe or fixed:
            flags = [f"--{k.replace('_', '-')}" for k in fixed] + (["--out"] if args.out else [])
            flags += ["--recipe"] if args.recipe else []
            raise ConfigError(
                f"{', '.join(flags)} cannot change when resuming {run_dir} (only --epochs, --device, --precision, "
                "--channels-last, --compile, --target-acc, --sync-bn can): start a new run instead"
            )
        config = validate_config(dataclasses.replace(saved, **overrides))
        done = ckpt["train"]["epoch"]
        # A run killed after its last epoch but before its report resumes to write the report.
        finished = (run_dir / "report.md").exists()
        if done >= config.epochs and finished:
            raise ConfigError(
                f"{run_dir} already finished {done} of {config.epochs} epochs: "
                f"pass --epochs {done + 5} to train further"
            )
        hit = time_to_target(ckpt["train"]["history"], config.target_acc) if config.target_acc else None
        if hit is not None and finished:
            raise ConfigError(
                f"{run_dir} reached --target-acc {config.target_acc:g} at epoch {hit['epoch']} "
                f"(test acc {hit['test_acc']:.4f}) and stopped there: pass a higher --target-acc to train further"
            )
        model = model_from_checkpoint(ckpt)
        resume = ckpt["train"]
        data = _load_data(config, args.data_root, in_channels=ckpt["preprocess"]["in_channels"])
    else:
        spec = parse_model_spec(args.model or DEFAULT_MODEL)
        if spec.input_size is not None:
            if "resize" in overrides and overrides["resize"] != spec.input_size:
                raise ConfigError(f"{args.model} and --resize {overrides['resize']} disagree: give the side once")
            overrides["resize"] = spec.input_size
        if spec.kwargs:
            meta_model(spec.name, spec.kwargs)  # an unknown keyword fails here, naming the ones it takes
            overrides["model_kwargs"] = dict(spec.kwargs)
        config = resolve_config(spec.name, args.recipe or "fast", overrides)
        data = _load_data(config, args.data_root)
        config = _fit_model_to_data(config, data)
        torch.manual_seed(config.seed)  # the model's own init; fit seeds again before training
        model = create_model(config.model, **config.model_kwargs)
        run_dir = None
    if config.deterministic:
        enable_determinism()  # before anything runs on the device (CUBLAS_WORKSPACE_CONFIG)
    if config.tensorboard:
        from cnnzoo.tensorboard import TensorBoardLogger, summary_writer_class

        summary_writer_class()  # a missing extra is reported before anything is written
    ddp = from_env()  # launched by torchrun: data parallel (cnnzoo.distributed); None when alone
    device = ddp.device_for(config) if ddp is not None else config.device
    setup = setup_device(device, config.precision, config.channels_last)
    fit_extra: dict = {}
    if ddp is not None:
        ddp.start(setup.device)
        model = ddp.prepare_model(model, sync_bn=config.sync_bn, device=setup.device)
        fit_extra = ddp.fit_kwargs(setup)
    if ddp is not None and not ddp.is_main:
        return _train_worker(model, data, config, resume, setup, ddp, fit_extra)
    if run_dir is None:
        run_dir = new_run_dir(config.model, args.out)
    env = environment_info(setup.describe())
    recorder = RunDirectory(
        run_dir, data=data, config=config, environment=env, command=["cnnzoo", *sys.argv[1:]], input_size=config.resize
    )
    callbacks = [recorder]
    if config.tensorboard:
        callbacks.append(TensorBoardLogger(run_dir / "tensorboard"))
    quiet = args.quiet
    if not quiet:
        params = sum(p.numel() for p in model.parameters())
        what = f"resuming {run_dir} at epoch {resume['epoch'] + 1}" if resume else f"run directory {run_dir}"
        print(f"training {config.model} ({params:,} parameters) on {setup.describe()}; {what}")
        print(
            f"recipe {config.recipe}: {config.epochs} epochs, batch {config.batch_size}, {config.optimizer} "
            f"lr {config.lr:g}, schedule {config.schedule}, input {config.resize}x{config.resize}, "
            f"augment {config.augment}; img/s counts data time, not evaluation",
            flush=True,
        )
        if ddp is not None:
            print(
                f"data parallel: {ddp.world_size} processes ({ddp.backend}), global batch {config.batch_size} = "
                f"{config.batch_size // ddp.world_size} per process; rank 0 writes the run directory",
                flush=True,
            )
    stop = _StopFlag()
    previous = signal.signal(signal.SIGINT, stop.handle)
    should_stop = ddp.agreed_stop(stop, setup.device) if ddp is not None else stop
    try:
        history = fit(
            model,
            data,
            config,
            resume=resume,
            callbacks=callbacks,
            progress=not quiet,
            should_stop=should_stop,
            setup=setup,
            **fit_extra,
        )
    except TrainingDivergedError as exc:
        kept = f"the last good checkpoint is {recorder.last}" if recorder.last.exists() else "no epoch finished"
        raise TrainingDivergedError(f"{exc}; {kept}") from None
    except FileWriteError as exc:  # a full disk: the previous checkpoint is intact
        then = f"resume with --resume {run_dir}" if recorder.last.exists() else "start the run again"
        raise FileWriteError(f"{exc}, then {then}") from None
    except KeyboardInterrupt:  # the second Ctrl-C
        print(f"aborted; the last completed epoch is in {recorder.last}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
        for cb in callbacks[1:]:
            cb.close()
    state = recorder.state
    if state.stopped:
        print(f"checkpoint saved: {recorder.last}\nresume with: cnnzoo train --resume {run_dir}", flush=True)
        return EXIT_INTERRUPTED
    try:
        model_text = str(summary(model, config.resize))
    except Exception as exc:  # the report should not be lost to a summary failure after a long run
        model_text = f"(model summary unavailable: {exc})"
    if state.last_eval is None:  # resumed after the last epoch: evaluate the final model for the report
        state.last_eval = evaluate(model, data, config, setup=setup)
    recorder.finish(state, state.last_eval, model_text)
    print(f"run directory: {run_dir} ({', '.join(sorted(p.name for p in run_dir.iterdir() if p.is_file()))})")
    print(final_summary(history, setup.label), flush=True)
    if config.target_acc is not None:
        print(format_time_to_target(history, config.target_acc), flush=True)
    return 0


def _train_worker(model, data, config, resume, setup, ddp, fit_extra) -> int:
    """A torchrun rank other than 0: train in lockstep with rank 0; write nothing, print nothing.

    Ctrl-C reaches every rank of a terminal's process group; here it only raises the flag that
    :meth:`~cnnzoo.distributed.Distributed.agreed_stop` shares, so all ranks stop after the same step.
    """
    import signal

    from cnnzoo.engine import fit

    stop = _StopFlag()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: setattr(stop, "requested", True))
    try:
        fit(
            model,
            data,
            config,
            resume=resume,
            progress=False,
            should_stop=ddp.agreed_stop(stop, setup.device),
            setup=setup,
            **fit_extra,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    return EXIT_INTERRUPTED if stop.requested else 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="test accuracy, per-class accuracy and confusion matrix of a checkpoint",
        description="Rebuild the model a checkpoint describes, evaluate it on the test split of the dataset it was "
        "trained on (Fashion-MNIST unless the run said --dataset; a folder's held-out split is drawn again with the "
        "run's seed), print the accuracy and a per-class table, and write a confusion-matrix PNG. A run directory "
        "means its last.pt.",
    )
    p.add_argument("checkpoint", metavar="RUN_DIR|CKPT")
    p.add_argument("--device", default="auto")
    p.add_argument("--png", metavar="PATH", help="confusion matrix PNG (default: eval-<ckpt>-confusion.png beside it)")
    p.add_argument("--data-root", metavar="DIR", help="where the dataset's files are (as given to train)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    from pathlib import Path

    import torch

    from cnnzoo.checkpoint import load_checkpoint, model_from_checkpoint
    from cnnzoo.config import config_from_dict
    from cnnzoo.devices import setup_device
    from cnnzoo.engine import evaluate
    from cnnzoo.errors import CheckpointError
    from cnnzoo.metrics import per_class_rows
    from cnnzoo.plots import confusion_figure, save_figure
    from cnnzoo.run import resolve_run_dir

    _, ckpt_path = resolve_run_dir(args.checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    config = dataclasses.replace(config_from_dict(ckpt["config"]), device=args.device)
    setup = setup_device(config.device, config.precision, config.channels_last)
    model = model_from_checkpoint(ckpt).to(setup.device)
    if setup.channels_last:
        model.to(memory_format=torch.channels_last)
    data = _load_data(config, args.data_root, in_channels=ckpt["preprocess"]["in_channels"])
    classes = ckpt["preprocess"]["classes"]
    if list(data.classes) != list(classes):
        raise CheckpointError(f"{ckpt_path}: trained on classes {classes}, but the dataset has {data.classes}")
    result = evaluate(model, data, config, setup=setup)
    png = Path(args.png) if args.png else ckpt_path.with_name(f"eval-{ckpt_path.stem}-confusion.png")
    title = f"{ckpt['model_name']} ({ckpt_path.name}, epoch {ckpt['train']['epoch']}): {result.accuracy:.4f}"
    save_figure(confusion_figure(result.confusion, classes, title=title), png)
    rows = per_class_rows(result.confusion, classes)
    if args.json:
        out = {"checkpoint": str(ckpt_path), "model": ckpt["model_name"], "epoch": ckpt["train"]["epoch"],
               "test_acc": result.accuracy, "test_loss": result.loss, "images": result.count,
               "per_class": rows, "confusion": result.confusion.tolist(), "confusion_png": str(png)}  # fmt: skip
        print(json.dumps(out, indent=2))
        return 0
    print(f"{ckpt_path}: {ckpt['model_name']}, epoch {ckpt['train']['epoch']}, on {setup.describe()}")
    width = max(len(c) for c in classes)
    print(f"\n{'label':>5}  {'class':<{width}}  {'images':>6}  {'accuracy':>8}  most often mistaken for")
    for r in rows:
        confused = f"{r['most_confused_with']} ({r['confused_count']})" if r["most_confused_with"] else "-"
        print(f"{r['label']:>5}  {r['class']:<{width}}  {r['images']:>6}  {r['accuracy']:>8.4f}  {confused}")
    print(f"\nconfusion matrix: {png}")
    correct = int(result.confusion.diagonal().sum())
    print(f"test acc {result.accuracy:.4f} ({correct}/{result.count}), test loss {result.loss:.4f}")
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify your own images with a trained checkpoint",
        description="PNG/JPEG of any size or mode -> grayscale, polarity matched to Fashion-MNIST (light object on "
        "a dark background), padded square, resized to the model's input; prints the top classes.",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint file, or a run directory (its last.pt)")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.add_argument("--top-k", type=int, default=3, metavar="K")
    p.add_argument(
        "--invert",
        choices=("auto", "yes", "no"),
        help="auto: decide by the border (the default for models trained on Fashion-MNIST, MNIST or KMNIST, whose "
        "objects are light on black); no: keep the pixels (the default for other datasets, your own folders)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    import json

    import torch

    from cnnzoo.checkpoint import load_checkpoint, model_from_checkpoint
    from cnnzoo.data import MNIST_LIKE, dataset_name
    from cnnzoo.devices import resolve_device
    from cnnzoo.errors import ConfigError
    from cnnzoo.predict import format_records, load_image, predict_tensors, prediction_records
    from cnnzoo.run import resolve_run_dir

    if args.top_k < 1:
        raise ConfigError(f"--top-k {args.top_k}: must be at least 1")
    _, ckpt_path = resolve_run_dir(args.checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    pre = ckpt["preprocess"]
    invert = args.invert
    if invert is None:
        dataset = ckpt["config"].get("dataset", "fashion-mnist")
        invert = "auto" if dataset_name(dataset) in MNIST_LIKE else "no"
    images = [
        load_image(path, size=pre["input_size"], in_channels=pre["in_channels"], invert=invert) for path in args.images
    ]
    model = model_from_checkpoint(ckpt).to(resolve_device(args.device))
    values, indices = predict_tensors(
        model, torch.stack([img.pixels for img in images]), mean=pre["mean"], std=pre["std"], top_k=args.top_k
    )
    records = prediction_records(images, values, indices, pre["classes"])
    print(json.dumps(records, indent=2) if args.json else format_records(records))
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a checkpoint as ONNX (for onnxruntime and friends) or safetensors (the weights)",
        description="ONNX: the network in eval mode, input 'input' [batch, C, S, S] (normalised as the checkpoint "
        "says: mean/std in the model's metadata), output 'logits' [batch, classes], dynamic batch; checked against "
        "onnxruntime when it is installed. safetensors: the state_dict with the same metadata. Needs "
        "pip install 'cnnzoo[export]'.",
    )
    p.add_argument("checkpoint", metavar="RUN_DIR|CKPT", help="a checkpoint file, or a run directory (its last.pt)")
    p.add_argument("--format", dest="fmt", choices=("onnx", "safetensors"), default="onnx", help="default onnx")
    p.add_argument("--output", metavar="PATH", help="default: the checkpoint's path with .onnx or .safetensors")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from cnnzoo.errors import ModelError
    from cnnzoo.export import export_checkpoint, verify_onnx

    path = export_checkpoint(args.checkpoint, args.fmt, args.output)
    print(f"wrote {path} ({path.stat().st_size:,} bytes, {args.fmt})")
    if args.fmt == "onnx":
        diff = verify_onnx(path, args.checkpoint)
        if diff is None:
            print("not checked: onnxruntime is not installed (pip install onnxruntime to check the export)")
        elif diff > 1e-4:
            raise ModelError(f"{path}: onnxruntime's logits differ from PyTorch's by {diff:.2e} (> 1e-4): a bug")
        else:
            print(f"checked with onnxruntime at batch sizes 1 and 5: max |difference| from PyTorch {diff:.1e}")
    return 0


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="overlay several runs' curves in one PNG")
    p.add_argument("runs", metavar="RUN_DIR", nargs="+")
    p.add_argument("--out", default="compare.png", metavar="PNG", help="output file (default compare.png)")
    p.set_defaults(func=_cmd_plot)


def _cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnzoo.errors import ConfigError
    from cnnzoo.metrics import read_metrics
    from cnnzoo.plots import overlay_figure, save_figure

    runs = []
    for arg in args.runs:
        path = Path(arg)
        rows = read_metrics(path) if path.is_dir() else []
        if not rows:
            raise ConfigError(f"{path}: not a run directory with metrics (no metrics.jsonl rows)")
        runs.append((path.name, rows))
    out = save_figure(overlay_figure(runs), args.out)
    best = ", ".join(f"{name} {max(r['test_acc'] for r in rows):.4f}" for name, rows in runs)
    print(f"wrote {out} ({len(runs)} runs; best test acc: {best})")
    return 0


# ----------------------------------------------------------------------------------------------
# bench  (issue 5)
# ----------------------------------------------------------------------------------------------
def _add_bench(sub: argparse._SubParsersAction) -> None:
    from cnnzoo.config import PRECISIONS

    p = sub.add_parser(
        "bench",
        help="throughput of models on synthetic input, or cnnzoo's training raced against the seeds' pipeline",
        description="Without --pipeline: images/s, ms/step, parameters, MACs and peak memory of each MODEL (or "
        "all) on synthetic input, after warm-up and with device synchronisation; out of memory retries at half "
        "the batch. With --pipeline MODEL: one epoch of cnnzoo's training against one of the seeds' pipeline "
        "(torchvision + DataLoader(4 workers) + train_ch6), interleaved, and the median ratio.",
    )
    p.add_argument("models", metavar="MODEL", nargs="*", help="registered model names, or all (the default)")
    p.add_argument("--pipeline", metavar="MODEL", help="race cnnzoo's training against the seeds' pipeline")
    p.add_argument("--mode", choices=("train", "infer", "both"), default="train", help="default train")
    p.add_argument("--batch-size", type=int, help="default 16 on CPU, 256 on GPU; --pipeline: the seeds' batch")
    p.add_argument("--input-size", type=int, metavar="SIDE", help="default: each model's own; clipped into its range")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None, help="default auto")
    p.add_argument("--compile", action="store_true", help="torch.compile (compilation happens in the warm-up)")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: all cores)")
    g = p.add_argument_group("timing (throughput)")
    g.add_argument("--warmup", type=int, default=3, metavar="STEPS", help="untimed steps first (default 3)")
    g.add_argument("--steps", type=int, default=10, help="timed steps, at least (default 10)")
    g.add_argument("--min-time", type=float, default=0.0, metavar="S", help="keep timing for at least S seconds")
    g = p.add_argument_group("--pipeline")
    g.add_argument("--rounds", type=int, default=3, help="interleaved epochs of each side (default 3)")
    g.add_argument("--train-images", type=int, metavar="N", help="training images per epoch (default all)")
    g.add_argument("--test-images", type=int, metavar="N", help="test images per epoch (default all, or N/6)")
    g.add_argument("--lr", type=float, help="learning rate of both sides (default: the seeds')")
    g.add_argument("--workers", type=int, default=4, help="the seeds' DataLoader workers (default 4, as d2l)")
    g.add_argument("--data-root", metavar="DIR")
    g = p.add_argument_group("output")
    g.add_argument("--csv", metavar="PATH")
    g.add_argument("--json", metavar="PATH")
    g.add_argument("--markdown", metavar="PATH")
    g.add_argument("--png", metavar="PATH", help="bar chart (default: beside --csv/--json/--markdown)")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from cnnzoo import bench
    from cnnzoo.atomic import atomic_write_text
    from cnnzoo.devices import setup_device
    from cnnzoo.errors import ConfigError
    from cnnzoo.registry import get_model_info, list_models

    for flag in ("batch_size", "input_size", "warmup", "steps", "rounds", "train_images", "test_images", "threads"):
        value = getattr(args, flag)
        if value is not None and (value < 1 if flag not in ("warmup",) else value < 0):
            raise ConfigError(f"--{flag.replace('_', '-')} {value}: must be a positive whole number")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    layout = {None: "auto", True: "yes", False: "no"}[args.channels_last]
    outputs = {k: Path(v) for k, v in (("csv", args.csv), ("json", args.json), ("markdown", args.markdown)) if v}

    if args.pipeline:
        if args.models:
            raise ConfigError("--pipeline takes one model (--pipeline MODEL); drop the other model names")
        from cnnzoo.data import load_fashion_mnist

        get_model_info(args.pipeline)
        data = load_fashion_mnist(args.data_root)
        result = bench.compare_pipelines(
            args.pipeline,
            data,
            batch_size=args.batch_size,
            input_size=args.input_size,
            lr=args.lr,
            device=args.device,
            precision=args.precision,
            channels_last=layout,
            compile=args.compile,
            rounds=args.rounds,
            train_images=args.train_images,
            test_images=args.test_images,
            workers=args.workers,
            on_round=lambda k, r: print(
                f"round {k + 1}/{args.rounds}: seeds {r.seeds_seconds:.2f} s, cnnzoo {r.cnnzoo_seconds:.2f} s "
                f"({r.ratio:.2f}x)",
                flush=True,
            ),
        )
        print(bench.format_pipeline(result))
        command = "cnnzoo " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None
        if "json" in outputs:
            atomic_write_text(outputs["json"], json.dumps(result.to_dict(), indent=2) + "\n")
        if "markdown" in outputs:
            atomic_write_text(outputs["markdown"], bench.pipeline_markdown(result, command))
        if "csv" in outputs:
            raise ConfigError("--pipeline writes --json or --markdown, not --csv")
        for path in outputs.values():
            print(f"wrote {path}")
        return 0

    names = args.models or ["all"]
    if "all" in names:
        names = list_models()
    for name in names:
        get_model_info(name)  # unknown names fail before anything runs
    setup = setup_device(args.device, args.precision, layout)
    batch = args.batch_size or bench.default_bench_batch_size(setup.device)
    modes = bench.BENCH_MODES if args.mode == "both" else (args.mode,)
    print(f"benchmarking {len(names)} model(s), {'/'.join(modes)}, batch {batch} on {setup.describe()}", flush=True)
    rows = bench.bench(
        names,
        modes=modes,
        batch_size=batch,
        input_size=args.input_size,
        setup=setup,
        compile=args.compile,
        warmup=args.warmup,
        steps=args.steps,
        min_seconds=args.min_time,
        on_row=lambda r: print(f"  {r.model} {r.mode}: {r.images_per_sec:,.1f} images/s", flush=True),
    )
    print()
    print(bench.format_bench_table(rows))
    writers = {"csv": bench.rows_to_csv, "json": bench.rows_to_json, "markdown": bench.rows_to_markdown}
    for kind, path in outputs.items():
        atomic_write_text(path, writers[kind](rows))
        print(f"wrote {path}")
    png = Path(args.png) if args.png else (next(iter(outputs.values())).with_suffix(".png") if outputs else None)
    if png is not None:
        from cnnzoo.plots import save_figure

        save_figure(bench.bench_chart(rows), png)
        print(f"wrote {png}")
    return 0


def _add_leaderboard(sub: argparse._SubParsersAction) -> None:
    from cnnzoo.config import PRECISIONS, RECIPES
    from cnnzoo.leaderboard import DEFAULT_MODELS

    p = sub.add_parser(
        "leaderboard",
        help="train several models over several seeds and write a leaderboard table, figure and JSON",
        description="Train each MODEL with one recipe and budget, once per seed, and merge the rows (test accuracy "
        "mean ± std and best, training time, images/s, params, MACs, device) into --output's JSON; the Markdown "
        "table (with the seed notes' and public reference figures beside each family) and the PNG (accuracy "
        "against MACs and against training time) are rewritten from all of its rows. Rows are keyed by model, "
        "input size, recipe, dataset and device: rerunning other models, or on another device, adds rows.",
        epilog="MODEL is NAME[:KWARG[=VALUE],...][@SIDE]: resnet18:small_input is create_model('resnet18', "
        "small_input=True) (a 3x3 stride-1 stem for 28x28 inputs: slow on a CPU, meant for GPUs), googlenet@32 "
        "trains at 32x32, densenet:small_input@28 both. A VALUE of true/false/a number is converted.",
    )
    p.add_argument(
        "models",
        metavar="MODEL",
        nargs="*",
        help=f"models to train (default, CPU-sized: {' '.join(DEFAULT_MODELS)})",
    )
    p.add_argument("--recipe", choices=sorted(RECIPES), default="fast", help="hyperparameter set (default fast)")
    p.add_argument("--epochs", type=int, help="epochs per run, at most with a budget (default: the recipe's)")
    p.add_argument(
        "--budget-minutes",
        type=float,
        metavar="M",
        help="wall-time budget per run (training + evaluation): a probe of a few steps picks how many whole epochs "
        "fit, and the schedule is laid over them; a run never stops mid-epoch",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="SEED", help="default 0 1 2")
    p.add_argument(
        "--input-size", type=int, metavar="SIDE", help="input side for models without @SIDE (default: their own)"
    )
    p.add_argument("--batch-size", type=int, help="default: the recipe's")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    p.add_argument("--device", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: all cores)")
    p.add_argument("--dataset", metavar="NAME", help="fashion-mnist (default), mnist, kmnist, cifar10 or folder:PATH")
    p.add_argument("--data-root", metavar="DIR", help="directory with the dataset's files (default: the user cache)")
    p.add_argument(
        "--output",
        default="benchmarks/leaderboard.md",
        metavar="PATH",
        help="the Markdown table (default benchmarks/leaderboard.md); the .json and .png go beside it",
    )
    p.add_argument("--redraw", action="store_true", help="train nothing: rewrite the .md and .png from the .json")
    p.add_argument("--quiet", action="store_true", help="no progress bars and no per-epoch lines")
    p.set_defaults(func=_cmd_leaderboard)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    import shlex

    import torch

    from cnnzoo import leaderboard
    from cnnzoo.config import TrainConfig
    from cnnzoo.errors import ConfigError

    if args.redraw:
        if args.models:
            raise ConfigError("--redraw trains nothing: drop the model names, or drop --redraw to train them")
        md, js, png, rows = leaderboard.update_leaderboard(args.output)
        print(f"redrew {md} and {png} from the {len(rows)} rows of {js}")
        return 0
    for flag in ("epochs", "input_size", "batch_size", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} {value}: must be a positive whole number")
    if args.budget_minutes is not None and not 0 < args.budget_minutes < float("inf"):
        raise ConfigError(f"--budget-minutes {args.budget_minutes:g}: must be a positive number of minutes")
    if not args.output.endswith(".md"):
        raise ConfigError(f"--output {args.output}: give a Markdown file name ending in .md")
    specs = [leaderboard.parse_model_spec(m) for m in args.models or leaderboard.DEFAULT_MODELS]  # fail fast
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    overrides = _train_overrides(args)
    data = _load_data(TrainConfig(dataset=args.dataset or TrainConfig.dataset, resize=args.input_size), args.data_root)
    argv = sys.argv[1:] if sys.argv[1:2] == ["leaderboard"] else _leaderboard_argv(args)
    command = "cnnzoo " + shlex.join(argv)
    budget = f", {args.budget_minutes:g}-minute budget per run" if args.budget_minutes else ""
    print(
        f"leaderboard: {len(specs)} model(s) x seeds {' '.join(map(str, args.seeds))}, recipe {args.recipe}{budget}, "
        f"on {data.name}; rows go to {args.output}",
        flush=True,
    )

    def write(row: dict) -> None:
        md, js, png, _ = leaderboard.update_leaderboard(args.output, [row])
        print(f"{row['model']}@{row['input_size']}: wrote its row to {js}, {md} and {png}", flush=True)

    rows = leaderboard.run_leaderboard(
        specs,
        data,
        recipe=args.recipe,
        overrides=overrides,
        seeds=args.seeds,
        budget_seconds=args.budget_minutes * 60 if args.budget_minutes else None,
        input_size=args.input_size,
        command=command,
        progress=not args.quiet,
        log=lambda line: print(line, flush=True),
        on_row=write,
    )
    print()
    for r in rows:
        spread = f" ± {r['test_acc_std']:.4f}" if r["test_acc_std"] is not None else ""
        print(
            f"{r['model']}@{r['input_size']}: test acc {r['test_acc_mean']:.4f}{spread} "
            f"(best {r['test_acc_best']:.4f}) over {len(r['seeds'])} seed(s), "
            f"{r['train_seconds_mean']:.1f} s training, {r['images_per_sec_mean']:,.0f} images/s on {r['device']}"
        )
    return 0


def _leaderboard_argv(args: argparse.Namespace) -> list[str]:
    """The command line equivalent to ``args`` (for the record, when cnnzoo was not started from a shell)."""
    argv = ["leaderboard", *args.models, "--recipe", args.recipe, "--seeds", *map(str, args.seeds)]
    for flag in ("epochs", "budget_minutes", "input_size", "batch_size", "lr", "device", "precision", "threads"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    for flag in ("dataset", "data_root"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    return [*argv, "--output", args.output]


# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnnzoo",
        description="The classic CNNs of Dive into Deep Learning, built, inspected and trained.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands = (_add_data, _add_models, _add_summary, _add_train, _add_eval, _add_predict, _add_export, _add_plot,
                _add_bench, _add_leaderboard)  # fmt: skip
    for add in commands:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except CnnzooError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `cnnzoo models | head`
        return 0
