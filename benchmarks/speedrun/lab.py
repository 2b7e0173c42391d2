"""The speed record's technique lab: one short training run per call, on the validation split only.

A deliberately small loop (the whole 55,000-image training split as one tensor, bf16 autocast and
channels_last where the CPU has bf16 units) so that each record-holder technique can be switched on alone
and measured on the 5,000 stratified validation images (the run layer's split). The test set is never
loaded. What wins here is then built into the engine (``cnnzoo train``) and re-measured there; the
records come from ``run.py`` only.

    python benchmarks/speedrun/lab.py --model speednet --epochs 7
    python benchmarks/speedrun/lab.py --model speednet --epochs 7 --aug altflip --translate 2 --ema 0.99

Every run appends one JSON line to ``benchmarks/speedrun/lab.jsonl``: the settings, the validation
accuracy of each test-time view set (plain, mirror, mirror + shifts) and of the EMA weights, and the seconds.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnzoo.data import load_fashion_mnist
from cnnzoo.data.dataset import hold_out_validation
from cnnzoo.models.speednet import SpeedNet, conv_bn
from cnnzoo.train.loop import tta_logits

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "lab.jsonl"


class Net(nn.Module):
    """SpeedNet's layout with free widths and depths: stride-2 stem, pool, ``depth`` convs at 7x7, pool,
    ``depth3`` convs at 3x3, global average pool, linear (``speednet`` is widths 32/64/128, depths 2/1)."""

    def __init__(self, widths, depth: int = 2, depth3: int = 1, scale: float = 1.0):
        super().__init__()
        stem, mid, last = widths
        layers = [conv_bn(1, stem, nn.BatchNorm2d, stride=2), nn.MaxPool2d(2)]
        c = stem
        for _ in range(depth):
            layers.append(conv_bn(c, mid, nn.BatchNorm2d))
            c = mid
        layers.append(nn.MaxPool2d(2))
        for _ in range(depth3):
            layers.append(conv_bn(c, last, nn.BatchNorm2d))
            c = last
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)) * self.scale


def build(args) -> nn.Module:
    widths = tuple(int(w) for w in args.widths.split(","))
    model = Net(widths, args.depth, args.depth3, args.logit_scale)
    if args.freeze_bn_scale:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.requires_grad_(False)
    if args.bn_momentum is not None:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = args.bn_momentum
    if args.dirac:
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.stride == (1, 1):
                w = m.weight.data
                k = min(w.shape[0], w.shape[1])
                torch.nn.init.dirac_(w[:k])
                w[:k] += 0.0  # keep the rest of the default init
    return model


def translate(x: Tensor, pad: int, gen: torch.Generator) -> Tensor:
    """Shift each image by a random offset in [-pad, pad] both ways (zero fill)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    off = torch.randint(0, 2 * pad + 1, (b, 2), generator=gen)
    rows = off[:, 0:1] + torch.arange(h)
    cols = off[:, 1:2] + torch.arange(w)
    idx = torch.arange(b).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[idx, rows.view(b, h, 1), cols.view(b, 1, w)].permute(0, 3, 1, 2)


def lr_at(step: int, total: int, kind: str, warm: float) -> float:
    if kind == "onecycle":  # the engine's (cnnzoo.train.optim.lr_factor)
        up = max(1, int(0.25 * total))
        start, end = 1 / 25, 1 / (25 * 1e4)
        if step < up:
            return start + (1 - start) * (1 - math.cos(math.pi * step / up)) / 2
        t = min(1.0, (step - up) / max(1, total - up))
        return end + (1 - end) * (1 + math.cos(math.pi * t)) / 2
    up = max(1, int(warm * total))  # linear: airbench's triangle
    if step < up:
        return (step + 1) / up
    return max(0.0, (total - step) / max(1, total - up))


@torch.inference_mode()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, views: str) -> float:
    """Validation accuracy with the engine's test-time views (:func:`cnnzoo.train.loop.tta_logits`)."""
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], 1000):
        with torch.autocast("cpu", torch.bfloat16):
            logits = tta_logits(model, x[i : i + 1000], views)
        correct += int((logits.argmax(1) == y[i : i + 1000]).sum())
    model.train()
    return correct / x.shape[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="32,64,128")
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--depth3", type=int, default=1)
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.3)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--schedule", default="onecycle", choices=["onecycle", "linear"])
    p.add_argument("--warm", type=float, default=0.2)
    p.add_argument("--aug", default="none", choices=["none", "flip", "altflip"])
    p.add_argument("--translate", type=int, default=0)
    p.add_argument("--ema", type=float, default=0.0, help="EMA decay per 5 steps (0: off)")
    p.add_argument("--freeze-bn-scale", action="store_true")
    p.add_argument("--bn-momentum", type=float, default=None)
    p.add_argument("--dirac", action="store_true")
    p.add_argument("--logit-scale", type=float, default=1.0)
    p.add_argument("--fp32", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    split = hold_out_validation(load_fashion_mnist(download=False), 5000)
    xtr = split.train_images.float().div_(255).unsqueeze(1)
    mean, std = xtr.mean(), xtr.std()
    xtr = ((xtr - mean) / std).contiguous(memory_format=torch.channels_last)
    ytr = split.train_labels.long()
    xva = ((split.val_images.float().unsqueeze(1) / 255 - mean) / std).contiguous(memory_format=torch.channels_last)
    yva = split.val_labels.long()
    model = build(args).to(memory_format=torch.channels_last)
    decay = [q for q in model.parameters() if q.ndim > 1 and q.requires_grad]
    rest = [q for q in model.parameters() if q.ndim <= 1 and q.requires_grad]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.wd}, {"params": rest, "weight_decay": 0.0}],
        lr=args.lr, momentum=args.momentum, nesterov=True,
    )  # fmt: skip
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.smoothing)
    n = xtr.shape[0]
    steps = n // args.batch
    total = steps * args.epochs
    ema = copy.deepcopy(model) if args.ema else None
    gen = torch.Generator().manual_seed(args.seed + 1)
    flip_mask = torch.rand(n, generator=gen) < 0.5
    amp = torch.autocast("cpu", torch.bfloat16, enabled=not args.fp32)
    start = time.perf_counter()
    step = 0
    for epoch in range(args.epochs):
        order = torch.randperm(n, generator=gen)
        if args.aug == "flip":
            flips = torch.rand(n, generator=gen) < 0.5
        elif args.aug == "altflip":
            flips = flip_mask ^ bool(epoch % 2)
        for b in range(steps):
            idx = order[b * args.batch : (b + 1) * args.batch]
            x, y = xtr[idx], ytr[idx]
            if args.translate:
                x = translate(x, args.translate, gen)
            if args.aug != "none":
                x = torch.where(flips[idx].view(-1, 1, 1, 1), x.flip(3), x)
            x = x.contiguous(memory_format=torch.channels_last)
            for g in opt.param_groups:
                g["lr"] = args.lr * lr_at(step, total, args.schedule, args.warm)
            with amp:
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if ema is not None and step % 5 == 0:
                with torch.no_grad():
                    for pe, pm in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
                        if pe.dtype.is_floating_point:
                            pe.lerp_(pm, 1 - args.ema)
                        else:
                            pe.copy_(pm)
    train_s = time.perf_counter() - start
    t0 = time.perf_counter()
    out = {"plain": accuracy(model, xva, yva, "none")}
    eval_s = time.perf_counter() - t0
    out["flip"] = accuracy(model, xva, yva, "flip")
    out["shift"] = accuracy(model, xva, yva, "flip+shift")
    if ema is not None:
        out["ema"] = accuracy(ema, xva, yva, "none")
        out["ema_shift"] = accuracy(ema, xva, yva, "flip+shift")
    row = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "loadavg": round(os.getloadavg()[0], 2),
           "settings": {k: v for k, v in vars(args).items() if k != "tag"}, "tag": args.tag,
           "val": out, "train_s": round(train_s, 1), "eval_s": round(eval_s, 2),
           "params": sum(q.numel() for q in model.parameters())}  # fmt: skip
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    assert SpeedNet  # the layout Net reproduces
    sys.exit(main())
