"""Where a speedrun epoch's time goes: one epoch of a recipe under ``torch.profiler``, its CPU time grouped by kind.

    python benchmarks/speedrun/epoch_profile.py [--model speednet] [--recipe record] [--steps 0] [--threads 2]

It trains ``--model`` with ``--recipe`` (cnnzoo.train.recipes; the record's by default) through cnnzoo's own loop
pieces (the device-resident batches, the recipe's network options such as the whitening layer, fitted as a run fits
it, its optimizer, autocast and memory format) for one epoch of the 55,000 training images
(or ``--steps`` steps), under the profiler, then sums the *self* time of every operator into: convolutions
(forward and backward), batch norm, the other layers (ReLU, pooling, linear, loss), the optimizer step, the data
(batch gathering, augmentation, normalisation) and the rest; what the operators do not account for of the
wall time is Python and framework overhead. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

import cnnzoo
from cnnzoo.base.devices import setup_device
from cnnzoo.data import DeviceBatches
from cnnzoo.models.whitening import fit_whitening
from cnnzoo.train.optim import build_optimizer
from cnnzoo.train.recipes import resolve_config

# (kind, substrings of operator names), the first match wins
DATA_OPS = (
    "index",
    "gather",
    "randperm",
    "flip",
    "where",
    "sub",
    "div",
    "copy_",
    "to_copy",
    "empty_like",
    "contiguous",
)
LAYER_OPS = ("relu", "threshold", "pool", "addmm", "mm", "linear", "log_softmax", "nll", "cross_entropy", "mean", "sum")
KINDS = (
    ("convolutions", ("conv", "mkldnn_convolution", "onednn")),
    ("batch norm", ("batch_norm",)),
    ("optimizer step", ("_foreach", "sgd", "addcmul", "lerp", "optimizer.step")),
    ("data: gather, augment, normalise", DATA_OPS),
    ("other layers: ReLU, pooling, linear, loss", LAYER_OPS),
)


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, keys in KINDS:
        if any(k in low for k in keys):
            return kind
    return "other operators"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="speednet")
    p.add_argument("--recipe", default="record", help="the recipe whose set-up is profiled (fast: the earlier one)")
    p.add_argument("--steps", type=int, default=0, help="profile this many steps (default: one epoch)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = resolve_config(args.model, args.recipe)
    setup = setup_device("cpu", config.precision, config.channels_last)
    data = cnnzoo.load_dataset("fashion-mnist")
    mean, std = data.stats
    model = setup.place(cnnzoo.create_model(args.model, **config.model_kwargs))
    batches = DeviceBatches(data.train_images[:55_000], data.train_labels[:55_000], batch_size=config.batch_size,
                            mean=mean, std=std, channels_last=setup.channels_last, drop_last=True)  # fmt: skip
    fit_whitening(model, batches.first_images, batches.output_shape)
    optimizer = build_optimizer(model, config)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    model.train()

    def epoch(limit: int) -> int:
        steps = 0
        for x, y in batches:
            with setup.autocast():
                loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if limit and steps >= limit:
                break
        return steps

    epoch(20)  # warm-up: oneDNN's kernels chosen, the allocator settled
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        steps = epoch(args.steps)
        wall = time.perf_counter() - start
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        totals[kind_of(event.key)] = totals.get(kind_of(event.key), 0.0) + event.self_cpu_time_total / 1e6
    ops = sum(totals.values())
    # The optimizer's whole step, the matrix products of Muon's orthogonalisation included (counted above as "mm").
    whole_step = sum(e.cpu_time_total for e in prof.key_averages() if e.key.startswith("Optimizer.step#")) / 1e6
    threads = torch.get_num_threads()
    layout = "channels_last" if setup.channels_last else "NCHW"
    print(f"{args.model} --recipe {args.recipe} ({config.optimizer}), {config.precision} ({setup.precision}), "
          f"{layout}, "
          f"batch {config.batch_size}, {threads} threads: {steps} steps in {wall:.2f} s wall "
          f"({steps * config.batch_size / wall:,.0f} img/s under the profiler)\n")  # fmt: skip
    print("| where | seconds | share of the operators' time |\n|---|---:|---:|")
    for kind, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {seconds:.2f} | {100 * seconds / ops:.0f} % |")
    print(f"\nThe operators' self time (timed on the thread that calls them; their OpenMP helpers work within it) "
          f"adds up to {ops:.2f} s of the {wall:.2f} s wall: the other {max(0.0, wall - ops):.2f} s "
          f"({100 * max(0.0, wall - ops) / wall:.0f} %) is Python and dispatch between operators.")  # fmt: skip
    print(f"\nThe optimizer's step as a whole, every operator it calls included: {whole_step:.2f} s.")
    print("\nThe top operators:\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
