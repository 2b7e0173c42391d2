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
_RESUMABLE = ("epochs", "device", "precision", "compile", "channels_last", "target_acc", "sync_bn")


def _add_train(sub: argparse._SubParsersAction) -> None:
    from cnnzoo.config import AUGMENTS, CHANNELS_LAST, INITS, OPTIMIZERS, PRECISIONS, RECIPES, SCHEDULES

    p = sub.add_parser(
        "train",
        help="train a model on Fashion-MNIST and leave a run directory",
        description="Train MODEL with a recipe (fast: the best known set-up; d2l: the seeds' exact set-up); "
        "explicit flags override the recipe. Leaves runs/<model>-<time>/ (or --out) with config, metrics, "
        "curves, checkpoints and a report. Ctrl-C saves a resumable checkpoint.",
    )
    p.add_argument("model", nargs="?", help="registered model name (see `cnnzoo models`); default lenet_bn")
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
    g.add_argument("--data-root", metavar="DIR", help="directory with the Fashion-MNIST files")
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
        "--target-acc",
        type=float,
        metavar="ACC",
        help="time to accuracy: stop after the first epoch whose test accuracy reaches ACC (e.g. 0.91) and report "
        "the training + evaluation time it took",
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
    from cnnzoo.data import load_fashion_mnist
    from cnnzoo.devices import enable_determinism, setup_device
    from cnnzoo.distributed import from_env
    from cnnzoo.engine import evaluate, final_summary, fit, format_time_to_target
    from cnnzoo.errors import ConfigError, FileWriteError, TrainingDivergedError
    from cnnzoo.inspection import summary
    from cnnzoo.registry import create_model
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
        if args.model and args.model != saved.model:
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
        if done >= config.epochs and (run_dir / "report.md").exists():
            raise ConfigError(
                f"{run_dir} already finished {done} of {config.epochs} epochs: "
                f"pass --epochs {done + 5} to train further"
            )
        model = model_from_checkpoint(ckpt)
        resume = ckpt["train"]
    else:
        config = resolve_config(args.model or DEFAULT_MODEL, args.recipe or "fast", overrides)
        torch.manual_seed(config.seed)  # the model's own init; fit seeds again before training
        model = create_model(config.model, **config.model_kwargs)
        run_dir = None
    if config.deterministic:
        enable_determinism()  # before anything runs on the device (CUBLAS_WORKSPACE_CONFIG)
    ddp = from_env()  # launched by torchrun: data parallel (cnnzoo.distributed); None when alone
    device = ddp.device_for(config) if ddp is not None else config.device
    setup = setup_device(device, config.precision, config.channels_last)
    fit_extra: dict = {}
    if ddp is not None:
        ddp.start(setup.device)
        model = ddp.prepare_model(model, sync_bn=config.sync_bn, device=setup.device)
        fit_extra = ddp.fit_kwargs(setup)
    data = load_fashion_mnist(args.data_root)
    if ddp is not None and not ddp.is_main:
        return _train_worker(model, data, config, resume, setup, ddp, fit_extra)
    if run_dir is None:
        run_dir = new_run_dir(config.model, args.out)
    env = environment_info(setup.describe())
    recorder = RunDirectory(
        run_dir, data=data, config=config, environment=env, command=["cnnzoo", *sys.argv[1:]], input_size=config.resize
    )
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
            callbacks=[recorder],
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
        description="Rebuild the model a checkpoint describes, evaluate it on the Fashion-MNIST test set, print "
        "the accuracy and a per-class table, and write a confusion-matrix PNG. A run directory means its last.pt.",
    )
    p.add_argument("checkpoint", metavar="RUN_DIR|CKPT")
    p.add_argument("--device", default="auto")
    p.add_argument("--png", metavar="PATH", help="confusion matrix PNG (default: eval-<ckpt>-confusion.png beside it)")
    p.add_argument("--data-root", metavar="DIR")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    from pathlib import Path

    import torch

    from cnnzoo.checkpoint import load_checkpoint, model_from_checkpoint
    from cnnzoo.config import config_from_dict
    from cnnzoo.data import load_fashion_mnist
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
    data = load_fashion_mnist(args.data_root)
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
    p.add_argument("--invert", choices=("auto", "yes", "no"), default="auto", help="auto: decide by the border")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    import json

    import torch

    from cnnzoo.checkpoint import load_checkpoint, model_from_checkpoint
    from cnnzoo.devices import resolve_device
    from cnnzoo.errors import ConfigError
    from cnnzoo.predict import format_records, load_image, predict_tensors, prediction_records
    from cnnzoo.run import resolve_run_dir

    if args.top_k < 1:
        raise ConfigError(f"--top-k {args.top_k}: must be at least 1")
    _, ckpt_path = resolve_run_dir(args.checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    pre = ckpt["preprocess"]
    images = [
        load_image(path, size=pre["input_size"], in_channels=pre["in_channels"], invert=args.invert)
        for path in args.images
    ]
    model = model_from_checkpoint(ckpt).to(resolve_device(args.device))
    values, indices = predict_tensors(
        model, torch.stack([img.pixels for img in images]), mean=pre["mean"], std=pre["std"], top_k=args.top_k
    )
    records = prediction_records(images, values, indices, pre["classes"])
    print(json.dumps(records, indent=2) if args.json else format_records(records))
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


# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnnzoo",
        description="The classic CNNs of Dive into Deep Learning, built, inspected and trained.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_add_data, _add_models, _add_summary, _add_train, _add_eval, _add_predict, _add_plot, _add_bench):
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
