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
import functools
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnzoo.data import load_fashion_mnist
from cnnzoo.data.batches import _random_crop
from cnnzoo.data.dataset import hold_out_validation
from cnnzoo.models.speednet import SpeedNet, conv_bn
from cnnzoo.train.config import TrainConfig
from cnnzoo.train.loop import tta_logits
from cnnzoo.train.optim import Muon, lr_factor  # the engine's Muon, its filters group alone

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "lab.jsonl"


class Whiten(nn.Module):
    """airbench's first layer for one channel: a frozen 2x2 convolution whose filters are the training patches'
    eigenvectors scaled by 1/sqrt(eigenvalue), each with its negative (8 channels); its bias trains."""

    def __init__(self, images: Tensor, eps: float = 5e-4, channels: int = 8, act: bool = False):
        super().__init__()
        self.act = act
        patches = images[:10000].unfold(2, 2, 1).unfold(3, 2, 1).reshape(-1, 4).double()
        vals, vecs = torch.linalg.eigh(patches.T @ patches / patches.shape[0])
        w = (vecs.T / torch.sqrt(vals + eps).unsqueeze(1)).float().view(4, 1, 2, 2)
        self.conv = nn.Conv2d(1, channels, 2, bias=True)
        self.conv.weight.data.copy_(torch.cat([w, -w]) if channels == 8 else w)
        self.conv.weight.requires_grad_(False)
        self.conv.bias.data.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv(x)) if self.act else self.conv(x)


class Net(nn.Module):
    """SpeedNet's layout with free widths and depths: stride-2 stem, pool, ``depth`` convs at 7x7, pool,
    ``depth3`` convs at 3x3, global average pool, linear (``speednet`` is widths 32/64/128, depths 2/1)."""

    def __init__(self, widths, depth: int = 2, depth3: int = 1, scale: float = 1.0, whiten: nn.Module | None = None):
        super().__init__()
        stem, mid, last = widths
        first = (
            [whiten, conv_bn(whiten.conv.out_channels, stem, nn.BatchNorm2d, stride=2)]
            if whiten
            else [conv_bn(1, stem, nn.BatchNorm2d, stride=2)]
        )
        layers = [*first, nn.MaxPool2d(2)]
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


def build(args, images: Tensor) -> nn.Module:
    widths = tuple(int(w) for w in args.widths.split(","))
    whiten = Whiten(images, channels=args.whiten_channels, act=args.whiten_act) if args.whiten else None
    model = Net(widths, args.depth, args.depth3, args.logit_scale, whiten)
    if args.whiten and args.whiten_frozen_bias:
        model.features[0].conv.bias.requires_grad_(False)
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
    """Shift each image by a random offset in [-pad, pad] both ways (zero fill), as the engine's random crop."""
    return _random_crop(x, torch.randint(0, 2 * pad + 1, (x.shape[0], 2), generator=gen), pad)


@functools.cache
def _one_cycle(total: int):
    """The engine's one-cycle multiplier over ``total`` steps (:func:`cnnzoo.train.optim.lr_factor`)."""
    return lr_factor(TrainConfig(epochs=1, schedule="onecycle"), total)


def lr_at(step: int, total: int, kind: str, warm: float) -> float:
    if kind == "onecycle":
        return _one_cycle(total)(step)
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
    p.add_argument("--whiten", action="store_true", help="a frozen 2x2 patch-whitening first layer")
    p.add_argument("--whiten-channels", type=int, default=8, choices=(4, 8), help="8: with the negatives")
    p.add_argument("--whiten-frozen-bias", action="store_true", help="the whitening bias stays 0")
    p.add_argument("--whiten-act", action="store_true", help="ReLU after the whitening layer")
    p.add_argument("--muon", type=float, default=0.0, help="Muon for the conv filters at this lr (0: off)")
    p.add_argument("--lookahead", type=int, default=0, help="Lookahead every K steps, alpha 0.5 (0: off)")
    p.add_argument("--progressive", type=int, default=0, help="the first half of the epochs at this side")
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
    model = build(args, xtr).to(memory_format=torch.channels_last)
    muon = None
    if args.muon:
        filters = [q for q in model.parameters() if q.ndim == 4 and q.requires_grad]
        muon = Muon([{"params": filters, "orthogonal": True}], lr=args.muon)
        ids = {id(q) for q in filters}
    decay = [q for q in model.parameters() if q.ndim > 1 and q.requires_grad and not (muon and id(q) in ids)]
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
    slow = [q.detach().clone() for q in model.parameters()] if args.lookahead else None
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
            if args.progressive and epoch < args.epochs // 2:
                side = (args.progressive, args.progressive)
                x = F.interpolate(x, size=side, mode="bilinear", align_corners=False, antialias=True)
            x = x.contiguous(memory_format=torch.channels_last)
            factor = lr_at(step, total, args.schedule, args.warm)
            for g in opt.param_groups:
                g["lr"] = args.lr * factor
            with amp:
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if muon is not None:
                muon.param_groups[0]["lr"] = args.muon * factor
                muon.step()
                muon.zero_grad(set_to_none=True)
            step += 1
            if slow is not None and step % args.lookahead == 0:
                with torch.no_grad():
                    for q, sq in zip(model.parameters(), slow, strict=True):
                        sq.lerp_(q, 0.5)
                        q.copy_(sq)
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
