"""Exploration for the CPU speedrun (issue 14 item 6): throughput bursts and short validation runs.

Nothing here looks at the test set. The 60,000 training images are split into 55,000 for training and a
stratified 5,000 (500 per class) for validation, the run layer's own split; the validation images go into the
``test`` slot of an :class:`~cnnzoo.data.dataset.ImageDataset`, so ``fit``'s per-epoch "test" accuracy is
validation accuracy.

    python benchmarks/speedrun/explore.py bench lenet_bn s32 s48 --seconds 3 --rounds 3
    python benchmarks/speedrun/explore.py train s32 --epochs 6 --lr 0.2 --batch-size 256

Every run appends one JSON line to ``benchmarks/speedrun/results.jsonl`` (with the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnzoo.base.devices import setup_device
from cnnzoo.data import load_fashion_mnist
from cnnzoo.data.dataset import ImageDataset, hold_out_validation
from cnnzoo.models.lenet import lenet_bn
from cnnzoo.models.speednet import conv_bn, speednet, speednet_wide
from cnnzoo.train.loop import fit, make_batches
from cnnzoo.train.optim import build_optimizer, build_scheduler
from cnnzoo.train.recipes import resolve_config

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.jsonl"
VAL_SIZE = 5000  # 500 per class: Fashion-MNIST's classes are balanced


def split_validation(data: ImageDataset, size: int = VAL_SIZE) -> ImageDataset:
    """The run layer's 55,000 / 5,000 split (:func:`cnnzoo.data.dataset.hold_out_validation`, stratified,
    seeded), with the validation images in the ``test`` slot and no test images at all."""
    split = hold_out_validation(data, size)
    return ImageDataset(
        name="fashion-mnist-55k-val5k",
        train_images=split.train_images,
        train_labels=split.train_labels,
        test_images=split.val_images,
        test_labels=split.val_labels,
        classes=data.classes,
    )


class Stages(nn.Module):
    """The exploration's general form: stages of 3x3 conv-BN-ReLU blocks, 2x2 max pooling after every
    stage but the last, the first conv optionally strided, then a global pool and one linear layer.
    ``speednet`` is ``Stages((32, 64, 128), (1, 2, 1), stem_stride=2)`` ("s32s2d")."""

    def __init__(self, widths, depths, *, head="avg", stem_stride=1):
        super().__init__()
        blocks, c = [], 1
        for i, (w, d) in enumerate(zip(widths, depths, strict=True)):
            for j in range(d):
                blocks.append(conv_bn(c, w, nn.BatchNorm2d, stride=stem_stride if i == j == 0 else 1))
                c = w
            if i < len(widths) - 1:
                blocks.append(nn.MaxPool2d(2))
        pool = nn.AdaptiveMaxPool2d(1) if head == "max" else nn.AdaptiveAvgPool2d(1)
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(pool, nn.Flatten(), nn.Linear(c, 10))

    def forward(self, x):
        return self.head(self.features(x))


def _sn(widths, depths=(1, 1, 1), **kw):
    return lambda: Stages(widths, depths, **kw)


def _t(stem, widths, head="avg", ceil=False):
    """A stride-2 3x3 stem to 14x14, then one 3x3 conv-BN-ReLU per width, max pooling between them."""

    def make():
        layers = [conv_bn(1, stem, nn.BatchNorm2d, stride=2)]
        c = stem
        for i, w in enumerate(widths):
            if i:
                layers.append(nn.MaxPool2d(2, ceil_mode=ceil))
            layers.append(conv_bn(c, w, nn.BatchNorm2d))
            c = w
        pool = nn.AdaptiveMaxPool2d(1) if head == "max" else nn.AdaptiveAvgPool2d(1)
        return nn.Sequential(*layers, pool, nn.Flatten(), nn.Linear(c, 10))

    return make


# Candidate networks by short name (see notes.md for what each is and what it measured).
CANDIDATES = {
    "lenet_bn": lambda: lenet_bn(),
    "speednet": lambda: speednet(),
    "speednet_wide": lambda: speednet_wide(),
    "s16": _sn((16, 32, 64)),
    "s24": _sn((24, 48, 96)),
    "s32": _sn((32, 64, 128)),
    "s48": _sn((48, 96, 192)),
    "s32max": _sn((32, 64, 128), head="max"),
    "s16x2": _sn((16, 32, 64), (1, 2, 2)),
    "s24x2": _sn((24, 48, 96), (1, 2, 2)),
    "s32x2": _sn((32, 64, 128), (1, 2, 2)),
    "s32s2": _sn((32, 64, 128), stem_stride=2),
    "s64s2": _sn((64, 128, 256), stem_stride=2),
    "s48s2": _sn((48, 96, 192), stem_stride=2),
    "s32s2d": _sn((32, 64, 128), (1, 2, 1), stem_stride=2),
    "t16": _t(16, (32, 64, 128)),
    "t24": _t(24, (32, 64, 128)),
    "t16c": _t(16, (32, 64, 128), ceil=True),
    "t24w": _t(24, (48, 96, 192)),
    "t32w": _t(32, (64, 128, 256)),
    "s48s2d": _sn((48, 96, 192), (1, 2, 1), stem_stride=2),
    "s40s2d": _sn((40, 80, 160), (1, 2, 1), stem_stride=2),
    "s48s2x2": _sn((48, 96, 192), (1, 2, 2), stem_stride=2),
    "s32_4": _sn((32, 64, 128, 256), (1, 1, 1, 1)),
    "s16_4": _sn((16, 32, 64, 128), (1, 1, 1, 1)),
}


def build(name: str) -> nn.Module:
    model = CANDIDATES[name]()
    model.default_input_size = 28
    model.model_name = name
    return model


def load() -> ImageDataset:
    return split_validation(load_fashion_mnist(download=False))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs(model: nn.Module, side: int = 28) -> int:
    """Multiply-accumulates of one forward pass through the conv and linear layers."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, side, side))
    for h in handles:
        h.remove()
    model.train()
    return total


def _log(row: dict) -> None:
    row = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "loadavg": os.getloadavg()[0], **row}
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")


def bench(names: list[str], seconds: float, rounds: int, batch_size: int, data: ImageDataset) -> None:
    """Paired training bursts on real batches (the engine's data path): img/s and the ratio to lenet_bn."""
    config = resolve_config("lenet_bn", "fast", {"batch_size": batch_size, "augment": "none", "device": "cpu"})
    setup = setup_device("cpu", "fp32", "no")
    names = ["lenet_bn", *[n for n in names if n != "lenet_bn"]]
    states = {}
    for name in names:
        model = build(name)
        cfg = resolve_config("lenet_bn", "fast", {"batch_size": batch_size, "augment": "none", "device": "cpu"})
        opt = build_optimizer(model, cfg)
        sched = build_scheduler(opt, cfg, 1000)
        states[name] = (model, opt, sched)
    batches = make_batches(data, config, split="train", setup=setup, resize=28)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    rates: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names:
            model, opt, sched = states[name]
            batches.set_epoch(r)
            it = iter(batches)
            for _ in range(3):  # warm-up
                x, y = next(it)
                loss = loss_fn(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            count, start = 0, time.perf_counter()
            for x, y in it:
                loss = loss_fn(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                count += y.shape[0]
                if time.perf_counter() - start > seconds:
                    break
            rates[name].append(count / (time.perf_counter() - start))
    base = float(np.median(rates["lenet_bn"]))
    for name in names:
        model = states[name][0]
        med = float(np.median(rates[name]))
        ratios = [a / b for a, b in zip(rates[name], rates["lenet_bn"], strict=True)]
        spread = [round(min(ratios), 3), round(max(ratios), 3)]
        row = {"kind": "bench", "model": name, "batch_size": batch_size, "img_per_s": round(med),
               "ratio": round(float(np.median(ratios)), 3), "ratio_range": spread,
               "params": n_params(model), "macs": macs(model)}  # fmt: skip
        _log(row)
        print(f"{name:10s} {med:8.0f} img/s  ratio {row['ratio']:.3f} {row['ratio_range']}  "
              f"params {row['params']:,}  MACs {row['macs']:,}   (lenet_bn {base:.0f})")  # fmt: skip


def train(name: str, overrides: dict, data: ImageDataset, tag: str = "") -> None:
    config = resolve_config("lenet_bn", "fast", {"device": "cpu", **overrides})
    model = build(name)
    history = fit(model, data, config)
    elapsed = 0.0
    for row in history:
        elapsed += row["train_seconds"] + row["eval_seconds"]
        print(f"  epoch {row['epoch']:2d} val {row['test_acc']:.4f} train_acc {row['train_acc']:.4f} "
              f"{row['images_per_sec']:7.0f} img/s  eval {row['eval_seconds']:.2f}s  cum {elapsed:6.1f}s")  # fmt: skip
    out = {"kind": "train", "model": name, "tag": tag, "overrides": overrides,
           "val_acc": [round(r["test_acc"], 4) for r in history],
           "img_per_s": round(float(np.median([r["images_per_sec"] for r in history]))),
           "seconds": round(elapsed, 1), "loadavg_end": os.getloadavg()[0]}  # fmt: skip
    _log(out)
    print(json.dumps(out))


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's, 2 here)")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("names", nargs="+")
    b.add_argument("--seconds", type=float, default=3.0)
    b.add_argument("--rounds", type=int, default=3)
    b.add_argument("--batch-size", type=int, default=128)
    t = sub.add_parser("train")
    t.add_argument("name")
    t.add_argument("--tag", default="")
    t.add_argument("set", nargs="*", help="TrainConfig overrides as key=value")
    args = p.parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    data = load()
    print(f"load average {os.getloadavg()}, threads {torch.get_num_threads()}", flush=True)
    if args.cmd == "bench":
        bench(args.names, args.seconds, args.rounds, args.batch_size, data)
    else:
        overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
        train(args.name, overrides, data, args.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
