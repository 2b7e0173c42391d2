"""The training engine: :func:`train_one_epoch`, :func:`evaluate` and :func:`fit`.

Explicit arguments, no CLI, no files, no printing: everything a run writes or shows happens in callbacks
(the run directory in :mod:`cnnzoo.run`, the progress bar, epoch lines and live plot in :mod:`cnnzoo.run.progress`).

What it keeps from d2l's ``train_ch6``: cross-entropy, optional Xavier-uniform init, and the four
numbers per epoch (train loss, train accuracy, test accuracy, examples per second). What it does
differently, and why:

* **Data**: batches come from :class:`~cnnzoo.data.DeviceBatches` (the whole split on the device, a batch
  is an index slice), not a DataLoader.
* **No per-batch host syncs**: d2l calls ``float(loss)`` (via their Accumulator) every batch, which
  stalls an accelerator each step. Here loss sum and correct count accumulate in device tensors and are
  read once per log interval (every :data:`LOG_EVERY` batches or :data:`LOG_SECONDS` seconds, whichever
  comes first; only for the progress bar's live figures and the divergence check) and once per epoch.
* **Honest throughput**: images/s is the epoch's training samples over the epoch's whole wall time,
  data preparation included (d2l's timer excluded nothing but ran only around the step), after a
  device synchronisation; evaluation is excluded and timed separately (``eval_seconds``).
* **Every step is resumable**: a :class:`TrainState` holds model, optimizer, per-batch LR schedule,
  progress within the epoch and the RNG states; on CPU a resumed run is bit-identical to an
  uninterrupted one (the batch order is a function of ``(seed, epoch)`` in the data layer).
* **Data parallel**: a :class:`~cnnzoo.train.distributed.ParallelContext` shards the training batches by rank and
  sums the epoch's metric tensors across ranks; callbacks (and so all file I/O) are for rank 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnzoo.base.devices import DeviceSetup, ThreadGovernor, setup_device, threads_adapt
from cnnzoo.base.errors import TrainingDivergedError
from cnnzoo.base.modes import eval_mode
from cnnzoo.data.batches import Augment, DeviceBatches
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.models.whitening import fit_whitening
from cnnzoo.train.config import TrainConfig
from cnnzoo.train.distributed import ParallelContext
from cnnzoo.train.history import patience_reached, time_to_target
from cnnzoo.train.metrics import confidence_histogram, confusion_matrix
from cnnzoo.train.optim import build_optimizer, build_scheduler, xavier_init
from cnnzoo.train.state import Callback, EpochTotals, EvalResult, TrainState, seed_everything

__all__ = [
    "LOG_EVERY",
    "EvalResult",
    "evaluate",
    "evaluate_batches",
    "fit",
    "make_batches",
    "random_batch",
    "train_one_epoch",
    "training_step",
    "tta_logits",
]

LOG_EVERY = 20  # batches between reads of the device accumulators (progress bar, divergence check)
LOG_SECONDS = 0.5  # ... or this many seconds, whichever comes first


def make_batches(
    data: ImageDataset,
    config: TrainConfig,
    *,
    split: str,
    setup: DeviceSetup,
    resize: int,
    rank: int = 0,
    world_size: int = 1,
) -> DeviceBatches:
    """The device-resident batches of ``split`` (``"train"``: shuffled, augmented, sharded by rank;
    ``"val"`` and ``"test"``: in order, unaugmented).

    ``config.batch_size`` is the global batch: each of ``world_size`` ranks takes ``batch_size //
    world_size`` images per step, so the ranks' step-``k`` batches make up the single-process one.

    Normalisation uses the training split's mean and std (when ``config.normalize``), for both splits.
    """
    mean, std = data.stats if config.normalize else (None, None)
    common = dict(
        device=setup.device, mean=mean, std=std, resize=resize, channels_last=setup.channels_last, seed=config.seed
    )
    if split == "train":
        augment = Augment(
            hflip="flip" in config.augment,
            crop_padding=config.crop_padding if "crop" in config.augment else 0,
            alternate="altflip" in config.augment,
        )
        per_rank = math.ceil(data.train_images.shape[0] / world_size)
        if config.batch_size % world_size:
            raise ValueError(f"the global batch {config.batch_size} does not divide over {world_size} ranks")
        batch = config.batch_size // world_size  # config.batch_size is the global batch
        return DeviceBatches(
            data.train_images,
            data.train_labels,
            batch_size=batch,
            shuffle=True,
            # A last batch of one sample would make BatchNorm's batch variance undefined (PyTorch
            # raises); dropping it costs one image per epoch and only when the sizes line up so.
            drop_last=per_rank % batch == 1,
            augment=augment,
            rank=rank,
            world_size=world_size,
            **common,
        )
    if split in ("val", "test"):
        images, labels = (data.val_images, data.val_labels) if split == "val" else (data.test_images, data.test_labels)
        if labels is None:
            raise ValueError(f"{data.name} has no validation split")
        return DeviceBatches(images, labels, batch_size=config.eval_batch_size, shuffle=False, **common)
    raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")


# ------------------------------------------------------------------------------------------------
# the loops
# ------------------------------------------------------------------------------------------------
def train_one_epoch(
    model: nn.Module | Callable[[Tensor], Tensor],
    batches: Iterable[tuple[Tensor, Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: nn.Module,
    *,
    setup: DeviceSetup,
    totals: EpochTotals | None = None,
    grad_clip: float = 0.0,
    should_stop: Callable[[], bool] | None = None,
    on_log: Callable[[EpochTotals], None] | None = None,
    params: Sequence[Tensor] | None = None,
) -> tuple[EpochTotals, bool]:
    """Train over ``batches`` (skipping the ``totals.step`` batches already done); return totals and
    whether ``should_stop`` ended the epoch early.

    ``model`` may be a compiled wrapper of the module; ``params`` are what gradient clipping sees
    (defaults to ``optimizer``'s). The module must already be in train mode. Raises
    :class:`~cnnzoo.base.errors.TrainingDivergedError` once the loss sum is seen to be non-finite.
    """
    totals = totals if totals is not None else EpochTotals.zeros(setup.device)
    if params is None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
    it = iter(batches)
    if totals.step:
        # Resume mid-epoch: the order is a function of (seed, epoch), so skipping reproduces it exactly.
        it = itertools.islice(it, totals.step, None)
    setup.synchronize()
    start = last_log = time.perf_counter()
    seconds_before, logged_step = totals.seconds, totals.step
    stopped = False
    for x, y in it:
        with setup.autocast():
            logits = model(x)
            loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        totals.last_lr = optimizer.param_groups[0]["lr"]  # host float: no sync
        scheduler.step()
        with torch.no_grad():  # device-side accumulation: no .item() in the loop
            totals.loss_sum += loss.detach().float() * y.shape[0]
            totals.correct += (logits.argmax(dim=1) == y).sum()
        totals.count += y.shape[0]
        totals.step += 1
        if should_stop is not None and should_stop():
            stopped = True
            break
        now = time.perf_counter()
        if totals.step - logged_step >= LOG_EVERY or now - last_log >= LOG_SECONDS:
            # The one sync per log interval: the live figures and the divergence check.
            totals.seconds = seconds_before + now - start
            _check_finite(totals)
            if on_log is not None:
                on_log(totals)
            last_log, logged_step = now, totals.step
    setup.synchronize()
    totals.seconds = seconds_before + time.perf_counter() - start
    _check_finite(totals)
    return totals, stopped


def _world_totals(totals: EpochTotals, parallel: ParallelContext) -> EpochTotals:
    """The epoch's totals summed over the ranks (what a checkpoint stores); ``totals`` when alone."""
    if parallel.alone:
        return totals
    count = int(parallel.sum(torch.tensor(totals.count, device=totals.loss_sum.device)))
    return dataclasses.replace(
        totals, loss_sum=parallel.sum(totals.loss_sum), correct=parallel.sum(totals.correct), count=count
    )


def _check_finite(totals: EpochTotals) -> None:
    if not bool(torch.isfinite(totals.loss_sum)):
        raise TrainingDivergedError(
            f"the training loss became {float(totals.loss_sum)} by step {totals.step} of the epoch "
            f"(lr {totals.last_lr:g}): try a lower learning rate, e.g. --lr {totals.last_lr / 10:g}, "
            "or --grad-clip 1"
        )


def _shifted(x: Tensor, dy: int, dx: int) -> Tensor:
    """``x`` moved by ``(dy, dx)`` pixels, the uncovered border filled with the edge pixels (the background)."""
    h, w = x.shape[2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    out = padded[:, :, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]
    nhwc = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    return out.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)


def tta_logits(model: nn.Module | Callable[[Tensor], Tensor], x: Tensor, tta: str = "none") -> Tensor:
    """``model``'s float logits for ``x``, averaged over test-time views (airbench's test-time augmentation).

    ``none``: the image alone. ``flip``: the image and its mirror, averaged. ``flip+shift``: half of that,
    plus a quarter each of the same pair moved one pixel down-right and one pixel up-left (six forward passes).
    A network trained with flips sees a mirrored image as one more garment; one trained without them does not
    (benchmarks/speedrun/notes.md), so a recipe turns on ``flip`` only together with flip augmentation.
    """
    logits = model(x).float()
    if tta == "none":
        return logits
    logits = (logits + model(x.flip(3)).float()) / 2
    if tta == "flip":
        return logits
    if tta != "flip+shift":
        raise ValueError(f"tta must be one of none, flip, flip+shift, got {tta!r}")
    moved = [_shifted(x, d, d) for d in (1, -1)]
    pairs = [(model(m).float() + model(m.flip(3)).float()) / 2 for m in moved]
    return logits / 2 + (pairs[0] + pairs[1]) / 4


def evaluate_batches(
    model: nn.Module | Callable[[Tensor], Tensor],
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    setup: DeviceSetup | None = None,
    num_classes: int | None = None,
    tta: str = "none",
) -> EvalResult:
    """Accuracy, mean cross-entropy and the confusion matrix of ``model`` over ``batches`` (the logits
    averaged over ``tta``'s test-time views, :func:`tta_logits`).

    Runs under ``torch.inference_mode()`` with the module in eval mode (restored afterwards); all
    sums stay on the device and are read once at the end.
    """
    module = model if isinstance(model, nn.Module) else getattr(model, "_orig_mod", None)
    if setup is None:
        first = next(iter(module.parameters())) if module is not None else None
        setup = DeviceSetup(first.device if first is not None else torch.device("cpu"))
    guard = eval_mode(module) if module is not None else contextlib.nullcontext()
    setup.synchronize()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=setup.device, dtype=torch.float64 if setup.device.type == "cpu" else None)
    confusion: Tensor | None = None
    confidence: Tensor | None = None
    count = 0
    with guard, torch.inference_mode():
        for x, y in batches:
            with setup.autocast():
                logits = tta_logits(model, x, tta)
            k = num_classes or logits.shape[1]
            loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").to(loss_sum.dtype)
            batch_confusion = confusion_matrix(logits.argmax(dim=1), y, k)
            confusion = batch_confusion if confusion is None else confusion + batch_confusion
            batch_confidence = confidence_histogram(logits, y)
            confidence = batch_confidence if confidence is None else confidence + batch_confidence
            count += y.shape[0]
    if confusion is None:
        raise ValueError("evaluate got no batches")
    confusion = confusion.cpu()
    setup.synchronize()
    return EvalResult(
        accuracy=float(confusion.diagonal().sum()) / count,
        loss=float(loss_sum) / count,
        count=count,
        confusion=confusion,
        seconds=time.perf_counter() - start,
        confidence=confidence.cpu() if confidence is not None else None,
    )


def evaluate(
    model: nn.Module,
    data: ImageDataset | Iterable[tuple[Tensor, Tensor]],
    config: TrainConfig | None = None,
    *,
    setup: DeviceSetup | None = None,
) -> EvalResult:
    """Evaluate ``model`` on ``data``'s test split (or on any iterable of ``(images, labels)`` batches).

    With a dataset, the images are prepared as ``config`` says (input size, normalisation, eval batch
    size), the same way :func:`fit` prepared them; ``config`` defaults to :class:`TrainConfig`'s
    defaults for the model. The model stays on its device; bf16 autocast follows ``config.precision``.
    """
    config = config or TrainConfig(model=getattr(model, "model_name", TrainConfig.model))
    if setup is None:
        device = next(model.parameters()).device
        setup = setup_device(str(device), config.precision, "no")
        setup = DeviceSetup(device, setup.amp_dtype, model_uses_channels_last(model))
    if isinstance(data, ImageDataset):
        resize = config.resize or model.default_input_size
        batches = make_batches(data, config, split="test", setup=setup, resize=resize)
        return evaluate_batches(model, batches, setup=setup, num_classes=data.num_classes, tta=config.tta)
    return evaluate_batches(model, data, setup=setup, tta=config.tta)


def random_batch(setup: DeviceSetup, batch: int, in_channels: int, side: int, classes: int) -> tuple[Tensor, Tensor]:
    """A batch of random images and labels on ``setup``'s device (in its memory format), for timing a step."""
    x = torch.randn(batch, in_channels, side, side, device=setup.device)
    if setup.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, classes, (batch,), device=setup.device)


def training_step(
    forward: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, optimizer: torch.optim.Optimizer, setup: DeviceSetup
) -> Callable[[], None]:
    """One plain step on the fixed batch ``(x, y)``: cross-entropy under ``setup``'s autocast, backward, an
    optimizer step. What the throughput benchmark and a run's time estimate measure."""
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with setup.autocast():
            loss = loss_fn(forward(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def model_uses_channels_last(model: nn.Module) -> bool:
    """Whether the model's first 4-D parameter is stored channels_last."""
    for p in model.parameters():
        if p.dim() == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


# ------------------------------------------------------------------------------------------------
# fit
# ------------------------------------------------------------------------------------------------
@dataclass
class _Loop:
    """What :func:`fit` builds once and every epoch uses."""

    state: TrainState
    train_batches: DeviceBatches
    val_batches: DeviceBatches | None  # None without a validation split
    test_batches: DeviceBatches
    forward: nn.Module | Callable[[Tensor], Tensor]  # the (wrapped, compiled) module that trains
    evaluator: nn.Module | Callable[[Tensor], Tensor]  # what evaluates (never DDP: it would sync buffers)
    loss_fn: nn.Module
    params: list[Tensor]
    num_classes: int


def _prepare(model, data, config, resume, setup, parallel) -> _Loop:
    if resume is None:
        seed_everything(config.seed)
        if config.init == "xavier" and config.init_from is None:  # else the run layer did it, under the loaded tensors
            xavier_init(model)
    setup.place(model)
    resize = config.resize or model.default_input_size
    train_batches = make_batches(
        data, config, split="train", setup=setup, resize=resize, rank=parallel.rank, world_size=parallel.world_size
    )
    test_batches = make_batches(data, config, split="test", setup=setup, resize=resize)
    val_batches = make_batches(data, config, split="val", setup=setup, resize=resize) if data.has_validation else None
    if resume is None:
        # A layer fitted to data (speednet's patch whitening) sees the training images before the first step,
        # unless --init-from loaded it fitted already.
        fit_whitening(model, train_batches.first_images, train_batches.output_shape)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, len(train_batches))
    state = TrainState(model, optimizer, scheduler, config, setup)
    if setup.device.type == "cpu" and parallel.alone and not config.deterministic and threads_adapt():
        state.threads = ThreadGovernor()  # the free cores now, not only at start-up (cnnzoo.base.devices)
    if resume is not None:
        state.load_resume_dict(resume)
        if parallel.rank != 0 and state.partial is not None:
            # The checkpoint holds the whole world's partial sums: rank 0 carries them on, the others
            # add only their own (the epoch-end all-reduce then counts every image once).
            zero = EpochTotals.zeros(setup.device)
            state.partial = dataclasses.replace(state.partial, loss_sum=zero.loss_sum, correct=zero.correct, count=0)
    wrapped = parallel.wrap(model) if parallel.wrap is not None else model
    forward = torch.compile(wrapped) if config.compile else wrapped
    return _Loop(
        state=state,
        train_batches=train_batches,
        val_batches=val_batches,
        test_batches=test_batches,
        forward=forward,
        evaluator=forward if parallel.wrap is None else model,
        loss_fn=nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        params=[p for p in model.parameters() if p.requires_grad],
        num_classes=data.num_classes,
    )


def _epoch_row(
    epoch: int, totals: EpochTotals, result: EvalResult, val: EvalResult | None, parallel: ParallelContext
) -> dict[str, Any]:
    """One history row; with ranks, the training sums are summed over them before the one read."""
    world = _world_totals(totals, parallel)
    count = world.count
    return {
        "epoch": epoch + 1,
        "train_loss": float(world.loss_sum) / count,
        "train_acc": int(world.correct) / count,
        "val_loss": val.loss if val is not None else None,
        "val_acc": val.accuracy if val is not None else None,
        "test_loss": result.loss,
        "test_acc": result.accuracy,
        "lr": totals.last_lr,
        "images_per_sec": count / totals.seconds if totals.seconds > 0 else float("nan"),
        "train_seconds": totals.seconds,
        "eval_seconds": result.seconds + (val.seconds if val is not None else 0.0),
    }


def _stop(state: TrainState, callbacks: Sequence[Callback]) -> None:
    state.stopped = True
    for cb in callbacks:
        cb.on_stop(state)


def fit(
    model: nn.Module,
    data: ImageDataset,
    config: TrainConfig,
    *,
    resume: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    should_stop: Callable[[], bool] | None = None,
    setup: DeviceSetup | None = None,
    parallel: ParallelContext | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` on ``data`` as ``config`` says; return the history (one dict per epoch).

    A fresh run (no ``resume``) seeds the global generators with ``config.seed`` and applies the
    chosen init. ``resume`` is a checkpoint's training part (:meth:`TrainState.resume_dict`, the model
    weights already loaded by the caller): optimizer, schedule, progress, history and RNG states are
    restored and training continues from the exact step it stopped at.

    ``should_stop`` is polled after every step (a Ctrl-C flag); when it returns True, fit finishes that
    step, calls ``on_stop`` and returns. fit shows nothing itself: pass
    :func:`cnnzoo.run.progress.default_callbacks` for a progress bar, epoch lines and, in Jupyter, live curves.

    Each history row holds :data:`HISTORY_KEYS`. ``images_per_sec`` is training samples over the
    epoch's whole training wall time, data included and evaluation excluded (``eval_seconds``).

    Each epoch is evaluated on the validation split (when ``data`` has one) and on the test set; the last
    epoch with ``config.tta``'s test-time views (:func:`tta_logits`), the others with the image alone.
    ``config.patience``: training ends after that many epochs without a better validation accuracy
    (:func:`patience_reached`). ``config.target_acc``: training ends after the first epoch whose test
    accuracy reaches it (see :func:`time_to_target`). Data parallel (:mod:`cnnzoo.train.distributed`):
    ``parallel`` shards each epoch (``config.batch_size`` is the global batch), sums the metrics over the
    ranks and wraps the module for training (DDP); evaluation runs the unwrapped module on every rank.
    """
    setup = setup or setup_device(config.device, config.precision, config.channels_last)
    parallel = parallel or ParallelContext()
    loop = _prepare(model, data, config, resume, setup, parallel)
    state = loop.state
    for cb in callbacks:
        cb.on_train_start(state)
    target = config.target_acc
    if target is not None and time_to_target(state.history, target) is not None:
        return state.history  # resumed after the run reached its target: nothing left to train
    if patience_reached(state.history, config.patience):
        return state.history  # resumed after early stopping: nothing left to train
    while state.epoch < config.epochs and not state.stopped:
        if _run_epoch(loop, callbacks, should_stop, parallel):
            break
    return state.history


def _run_epoch(
    loop: _Loop, callbacks: Sequence[Callback], should_stop: Callable[[], bool] | None, parallel: ParallelContext
) -> bool:
    """Train and evaluate one epoch; True when the run ends here (stopped, or the target reached)."""
    state, config, setup = loop.state, loop.state.config, loop.state.setup
    epoch = state.epoch
    loop.train_batches.set_epoch(epoch)
    for cb in callbacks:
        cb.on_epoch_start(state, len(loop.train_batches))
    state.model.train()

    def on_log(totals: EpochTotals) -> None:
        if state.threads is not None:
            state.threads.poll()
        for cb in callbacks:
            cb.on_log(state, totals)

    totals, stopped = train_one_epoch(
        loop.forward,
        loop.train_batches,
        state.optimizer,
        state.scheduler,
        loop.loss_fn,
        setup=setup,
        totals=state.partial,
        grad_clip=config.grad_clip,
        should_stop=should_stop,
        on_log=on_log if callbacks or state.threads is not None else None,
        params=loop.params,
    )
    if callbacks or state.threads is not None:
        on_log(totals)  # the epoch's last interval (and a thread decision, however short the epoch)
    if stopped and totals.step < len(loop.train_batches):
        state.partial = _world_totals(totals, parallel)
        _stop(state, callbacks)
        return True
    # Test-time views (config.tta) cost a forward pass each: only the last epoch's figures, the run's final ones,
    # use them; the curve points before it are single-view.
    views = config.tta if epoch + 1 == config.epochs else "none"
    val = None
    if loop.val_batches is not None:
        val = evaluate_batches(loop.evaluator, loop.val_batches, setup=setup, num_classes=loop.num_classes, tta=views)
    result = evaluate_batches(loop.evaluator, loop.test_batches, setup=setup, num_classes=loop.num_classes, tta=views)
    state.history.append(_epoch_row(epoch, totals, result, val, parallel))
    state.epoch, state.partial, state.last_eval, state.last_val = epoch + 1, None, result, val
    for cb in callbacks:
        cb.on_epoch_end(state)
    if config.target_acc is not None and parallel.any(result.accuracy >= config.target_acc, setup.device):
        return True  # time to accuracy: the first epoch at the target ends the run (time_to_target reports it)
    if config.patience is not None and parallel.any(patience_reached(state.history, config.patience), setup.device):
        return True  # early stopping on validation accuracy
    if state.epoch < config.epochs and (stopped or (should_stop is not None and should_stop())):
        _stop(state, callbacks)
        return True
    return False
