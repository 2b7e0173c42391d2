"""How close cnnzoo's LeNet epoch is to the network's own arithmetic (benchmarks/cpu-2core-xeon.md, section 1).

Prints the median time of one training step (batch 256, 28x28, forward + backward + SGD) for the book's LeNet in
several forms, then one epoch of ``cnnzoo.fit`` against a bare loop over the same device batches. Run it on an idle
machine (PyTorch's threads slow down many times over beside other work):

    python benchmarks/lenet_step_bound.py [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import cnnzoo
from cnnzoo.base.devices import setup_device
from cnnzoo.train.loop import fit, make_batches
from cnnzoo.train.optim import xavier_init

BATCH = 256


def median_ms(step: Callable[[], None], steps: int = 40, warmup: int = 30) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def train_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd steps (slow to start)")
    args = parser.parse_args()
    torch.manual_seed(0)
    x, y = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, fp32")

    forms = {"eager NCHW": (False, False), "eager channels_last": (True, False)}
    if args.compile:
        forms |= {"compiled NCHW": (False, True), "compiled channels_last": (True, True)}
    for name, (channels_last, compiled) in forms.items():
        model, inputs = cnnzoo.create_model("lenet"), x
        if channels_last:
            model, inputs = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        step = train_step(torch.compile(model) if compiled else model, inputs, y)
        print(f"one step, {name}: {median_ms(step):.2f} ms")

    w1 = torch.randn(6, 1, 5, 5, requires_grad=True)
    w2 = torch.randn(16, 6, 5, 5, requires_grad=True)
    h = torch.randn(BATCH, 6, 14, 14, requires_grad=True)
    layers = {
        "conv1 as a convolution": lambda: F.conv2d(x, w1, padding=2).sum().backward(),
        "conv1 as unfold + matmul": lambda: (w1.view(6, 25) @ F.unfold(x, 5, padding=2)).sum().backward(),
        "conv2 as a convolution": lambda: F.conv2d(h, w2).sum().backward(),
        "conv2 as unfold + matmul": lambda: (w2.view(16, 150) @ F.unfold(h, 5)).sum().backward(),
    }
    for name, step in layers.items():
        print(f"forward + backward, {name}: {median_ms(step):.2f} ms")

    data = cnnzoo.data.load_dataset("fashion-mnist")
    config = cnnzoo.resolve_config("lenet", "d2l", {"epochs": 1, "device": "cpu"})
    setup = setup_device("cpu")
    model = cnnzoo.create_model("lenet")
    xavier_init(model)
    fit(model, data, config, progress=False, setup=setup)  # warm-up epoch
    start = time.perf_counter()
    row = fit(model, data, config, progress=False, setup=setup)[-1]
    total = time.perf_counter() - start
    print(
        f"cnnzoo.fit, one epoch: {total:.2f} s ({row['train_seconds']:.2f} s training, "
        f"{row['eval_seconds']:.2f} s evaluation)"
    )
    batches = make_batches(data, config, split="train", setup=setup, resize=28)
    start = time.perf_counter()
    count = sum(1 for _ in batches)
    print(f"making the {count} training batches alone: {time.perf_counter() - start:.3f} s")
    opt = torch.optim.SGD(model.parameters(), lr=0.9)
    start = time.perf_counter()
    for xb, yb in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    print(f"bare loop over the same batches: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
