"""The race: cnnzoo's training path against the book's pipeline, one epoch each, interleaved.

:func:`compare_pipelines` (``cnnzoo bench --pipeline MODEL``) asks *how much faster does cnnzoo train
than d2l's code*: one epoch of each, end to end, on the same model, batch size, input size, device and
torch thread settings, interleaved (d2l, cnnzoo, d2l, cnnzoo, ...) after an untimed warm-up, and the
median of the per-round ratios. The book's side is rebuilt faithfully: ``d2l.load_data_fashion_mnist``
(torchvision's ``FashionMNIST`` dataset, ``transforms.Resize`` when the book resizes, then ``ToTensor``, a
shuffling ``DataLoader`` with d2l's 4 workers, started anew each epoch as d2l's loaders are) and
``train_ch6``'s epoch (plain SGD, cross-entropy, ``d2l.Accumulator`` fed ``float(l * X.shape[0])`` and
``d2l.accuracy`` every batch: two host syncs per batch, then ``evaluate_accuracy_gpu`` over the test
loader). Left out, in the book's favour: the ``Animator`` live plot and the prints. cnnzoo's side is
:func:`cnnzoo.fit` for one epoch with the ``d2l`` recipe's optimisation (plain SGD, no normalisation, no
augmentation), so the two sides differ only in the input pipeline and the loop: device-resident batches,
no per-batch host sync, evaluation in large batches. Both times are whole epochs (data loader start-up,
training, test evaluation); the training-only figures are reported too.

torchvision reads the IDX files itself, so the book's side gets its own copy: the four uncompressed
files that ``torchvision.datasets.FashionMNIST`` expects in ``<root>/FashionMNIST/raw/`` are written
once from cnnzoo's verified tensors (:func:`d2l_dataset_root`); nothing is downloaded.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils import data as tud

from cnnzoo.base.atomic import atomic_write_bytes
from cnnzoo.base.devices import setup_device
from cnnzoo.data.cache import cache_dir
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.data.idx import write_idx
from cnnzoo.models.registry import create_model, get_model_info
from cnnzoo.train.loop import fit
from cnnzoo.train.optim import xavier_init
from cnnzoo.train.recipes import d2l_models, recipe_values, resolve_config

__all__ = [
    "D2L_WORKERS",
    "PipelineResult",
    "PipelineRound",
    "compare_pipelines",
    "d2l_dataset_root",
    "d2l_loaders",
    "d2l_train_epoch",
    "format_pipeline",
    "format_round",
    "pipeline_markdown",
]

D2L_WORKERS = 4  # d2l.get_dataloader_workers()


# ------------------------------------------------------------------------------------------------
# the book's pipeline, rebuilt (d2l.load_data_fashion_mnist + train_ch6)
# ------------------------------------------------------------------------------------------------
_RAW_FILES = (
    ("train_images", "train-images-idx3-ubyte"),
    ("train_labels", "train-labels-idx1-ubyte"),
    ("test_images", "t10k-images-idx3-ubyte"),
    ("test_labels", "t10k-labels-idx1-ubyte"),
)


def d2l_dataset_root(data: ImageDataset, root: str | os.PathLike[str] | None = None) -> Path:
    """A directory ``torchvision.datasets.FashionMNIST(root, download=False)`` loads ``data`` from.

    torchvision looks for the four *uncompressed* IDX files in ``<root>/FashionMNIST/raw/`` (its
    ``_check_exists``); they are written from ``data``'s tensors under a key made of their content, in
    the user cache by default, and reused while they match.
    """
    tensors = {key: getattr(data, key).cpu().contiguous() for key, _ in _RAW_FILES}
    digest = hashlib.md5()
    for key, _ in _RAW_FILES:
        digest.update(repr(tuple(tensors[key].shape)).encode())
        digest.update(tensors[key].numpy().tobytes())
    base = Path(root) if root is not None else cache_dir("d2l-torchvision")
    top = base / f"{data.name}-{digest.hexdigest()[:12]}"
    raw = top / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for key, stem in _RAW_FILES:
        path = raw / stem
        array = tensors[key].numpy()
        if key.endswith("labels"):
            array = array.astype("uint8")
        content = write_idx(array)
        if not path.exists() or path.stat().st_size != len(content):
            atomic_write_bytes(path, content)
    return top


def d2l_loaders(
    root: Path, batch_size: int, resize: int | None, train_images: int, test_images: int, workers: int
) -> tuple[tud.DataLoader, tud.DataLoader]:
    """``d2l.load_data_fashion_mnist(batch_size, resize)``, limited to the first images of each split."""
    # Lazy: importing torchvision adds about 2 s to every `cnnzoo` command (measured: `import cnnzoo.cli`
    # 2.4 s, with torchvision 4.4 s), and only the race needs it.
    import torchvision
    from torchvision import transforms

    trans = [transforms.ToTensor()]
    if resize:
        trans.insert(0, transforms.Resize(resize))
    trans = transforms.Compose(trans)
    mnist_train = torchvision.datasets.FashionMNIST(root=str(root), train=True, transform=trans, download=False)
    mnist_test = torchvision.datasets.FashionMNIST(root=str(root), train=False, transform=trans, download=False)
    # Shorter splits (ResNet on a CPU): keep the first images. Slicing the dataset's own tensors keeps
    # its __getitem__ (PIL image, transforms) exactly as it is.
    mnist_train.data, mnist_train.targets = mnist_train.data[:train_images], mnist_train.targets[:train_images]
    mnist_test.data, mnist_test.targets = mnist_test.data[:test_images], mnist_test.targets[:test_images]
    return (
        tud.DataLoader(mnist_train, batch_size, shuffle=True, num_workers=workers),
        tud.DataLoader(mnist_test, batch_size, shuffle=False, num_workers=workers),
    )


class _Accumulator:
    """``d2l.Accumulator``: sums ``n`` variables as Python floats (``float(tensor)`` syncs the host)."""

    def __init__(self, n: int) -> None:
        self.data = [0.0] * n

    def add(self, *args: Any) -> None:
        self.data = [a + float(b) for a, b in zip(self.data, args)]

    def __getitem__(self, idx: int) -> float:
        return self.data[idx]


def _d2l_accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """``d2l.accuracy``: the number of correct predictions, as a Python float (a host sync)."""
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def _d2l_evaluate_accuracy_gpu(net: nn.Module, data_iter: Iterable, device: torch.device) -> float:
    """The book's ``evaluate_accuracy_gpu``."""
    net.eval()
    metric = _Accumulator(2)
    with torch.no_grad():
        for X, y in data_iter:
            X = X.to(device)
            y = y.to(device)
            metric.add(_d2l_accuracy(net(X), y), y.numel())
    return metric[0] / metric[1]


def d2l_train_epoch(
    net: nn.Module, train_iter: Iterable, test_iter: Iterable, lr: float, device: torch.device
) -> dict[str, float]:
    """One epoch of the book's ``train_ch6`` (``num_epochs=1``): its init, SGD, per-batch float() metrics
    and test evaluation; without the ``Animator`` and the prints. Returns seconds and accuracies."""

    def init_weight(m: nn.Module) -> None:
        if type(m) is nn.Linear or type(m) is nn.Conv2d:
            nn.init.xavier_uniform_(m.weight)

    start = time.perf_counter()
    net.apply(init_weight)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    metric = _Accumulator(3)
    net.train()
    train_l = train_acc = float("nan")
    for X, y in train_iter:
        optimizer.zero_grad()
        X, y = X.to(device), y.to(device)
        y_hat = net(X)
        l = loss(y_hat, y)  # noqa: E741  (the book's name)
        l.backward()
        optimizer.step()
        with torch.no_grad():
            metric.add(l * X.shape[0], _d2l_accuracy(y_hat, y), X.shape[0])
        train_l = metric[0] / metric[2]
        train_acc = metric[1] / metric[2]
    trained = time.perf_counter()
    test_acc = _d2l_evaluate_accuracy_gpu(net, test_iter, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    end = time.perf_counter()
    return {
        "seconds": end - start,
        "train_seconds": trained - start,
        "images": metric[2],
        "train_loss": train_l,
        "train_acc": train_acc,
        "test_acc": test_acc,
    }


# ------------------------------------------------------------------------------------------------
# the race
# ------------------------------------------------------------------------------------------------
@dataclass
class PipelineRound:
    """One timed round: an epoch of each side. Seconds are whole epochs (start-up, training, test)."""

    d2l_seconds: float
    cnnzoo_seconds: float
    d2l_train_seconds: float
    cnnzoo_train_seconds: float
    d2l_test_acc: float
    cnnzoo_test_acc: float

    @property
    def ratio(self) -> float:
        return self.d2l_seconds / self.cnnzoo_seconds

    @property
    def train_ratio(self) -> float:
        return self.d2l_train_seconds / self.cnnzoo_train_seconds


@dataclass
class PipelineResult:
    """Both sides' throughput (medians over rounds) and the median per-round ratio."""

    model: str
    batch_size: int
    input_size: int
    lr: float
    device: str
    precision: str
    channels_last: bool
    threads: int
    workers: int
    train_images: int
    test_images: int
    torch_version: str
    compiled: bool = False
    rounds: list[PipelineRound] = field(default_factory=list)

    def _rate(self, attr: str) -> float:
        return statistics.median(self.train_images / getattr(r, attr) for r in self.rounds)

    @property
    def d2l_images_per_sec(self) -> float:
        return self._rate("d2l_seconds")

    @property
    def cnnzoo_images_per_sec(self) -> float:
        return self._rate("cnnzoo_seconds")

    @property
    def ratio(self) -> float:
        """Median over rounds of d2l epoch time / cnnzoo epoch time (how many times faster cnnzoo is)."""
        return statistics.median(r.ratio for r in self.rounds)

    @property
    def train_ratio(self) -> float:
        return statistics.median(r.train_ratio for r in self.rounds)

    @property
    def ratio_range(self) -> tuple[float, float]:
        return min(r.ratio for r in self.rounds), max(r.ratio for r in self.rounds)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["rounds"] = [{**dataclasses.asdict(r), "ratio": r.ratio, "train_ratio": r.train_ratio} for r in self.rounds]
        d.update(
            d2l_images_per_sec=self.d2l_images_per_sec,
            cnnzoo_images_per_sec=self.cnnzoo_images_per_sec,
            ratio=self.ratio,
            ratio_min=self.ratio_range[0],
            ratio_max=self.ratio_range[1],
            train_ratio=self.train_ratio,
        )
        return d


def _subset(data: ImageDataset, train_images: int, test_images: int) -> ImageDataset:
    return dataclasses.replace(
        data,
        train_images=data.train_images[:train_images],
        train_labels=data.train_labels[:train_images],
        test_images=data.test_images[:test_images],
        test_labels=data.test_labels[:test_images],
        extra={},
    )


def _split_sizes(data: ImageDataset, train_images: int | None, test_images: int | None) -> tuple[int, int]:
    """Every image by default; a cut training split gets a test split in the real 6:1 proportion."""
    n_train = min(train_images or data.train_images.shape[0], data.train_images.shape[0])
    default_test = data.test_images.shape[0] if n_train == data.train_images.shape[0] else max(1, n_train // 6)
    return n_train, min(test_images or default_test, data.test_images.shape[0])


def compare_pipelines(
    model_name: str,
    data: ImageDataset,
    *,
    batch_size: int | None = None,
    input_size: int | None = None,
    lr: float | None = None,
    device: str = "auto",
    precision: str = "auto",
    channels_last: str = "auto",
    compile: bool = False,
    rounds: int = 3,
    train_images: int | None = None,
    test_images: int | None = None,
    warmup_batches: int = 3,
    workers: int = D2L_WORKERS,
    d2l_root: str | os.PathLike[str] | None = None,
    on_round: Callable[[int, PipelineRound], None] | None = None,
) -> PipelineResult:
    """Race one epoch of cnnzoo's training (:func:`cnnzoo.fit`) against one of the book's (see the module
    docstring), ``rounds`` times, interleaved, after an untimed warm-up of ``warmup_batches`` batches each.

    Defaults: the ``d2l`` recipe's batch size, input size and learning rate for the model (256, its
    own input size and 0.1 for a model the book does not train), every training image, and a test split
    in the real 6:1 proportion when the training split is cut. ``precision``/``channels_last``/``compile``
    apply to cnnzoo's side only: the book's code has no such settings (fp32, NCHW, eager). ``torch.compile``
    compiles during the untimed warm-up, so the timed epochs measure the compiled steady state; the
    compilation itself (tens of seconds on a CPU) is paid once per process and is not in the figures.
    """
    book = recipe_values("d2l", model_name) if model_name in d2l_models() else {}
    batch_size = batch_size or book.get("batch_size", 256)
    input_size = input_size or book.get("resize") or get_model_info(model_name).default_input_size
    lr = lr or book.get("lr", 0.1)
    n_train, n_test = _split_sizes(data, train_images, test_images)
    config = resolve_config(
        model_name,
        "d2l",
        {
            "batch_size": batch_size,
            "lr": lr,
            "resize": input_size,
            "epochs": 1,
            "device": device,
            "precision": precision,
            "channels_last": channels_last,
            "compile": compile,
        },
    )
    setup = setup_device(config.device, config.precision, config.channels_last)
    root = d2l_dataset_root(data, d2l_root)
    resize = input_size if input_size != data.image_size[0] else None  # the book passes resize only to resize

    torch.manual_seed(0)
    base = create_model(model_name)
    xavier_init(base)
    d2l_net, cnnzoo_net = copy.deepcopy(base), copy.deepcopy(base)

    def d2l_side(n: int, m: int) -> dict[str, float]:
        with warnings.catch_warnings():
            # d2l's 4 workers on a 2-core machine make PyTorch warn at every epoch; it is the point here.
            warnings.filterwarnings("ignore", message="This DataLoader will create")
            train_iter, test_iter = d2l_loaders(root, batch_size, resize, n, m, workers)
            return d2l_train_epoch(d2l_net, train_iter, test_iter, lr, setup.device)

    def cnnzoo_side(n: int, m: int) -> dict[str, float]:
        part = _subset(data, n, m)
        setup.synchronize()
        start = time.perf_counter()
        history = fit(cnnzoo_net, part, config, setup=setup)
        setup.synchronize()
        row = history[-1]
        return {"seconds": time.perf_counter() - start, "train_seconds": row["train_seconds"], **row}

    warm = min(n_train, warmup_batches * batch_size)
    d2l_side(warm, min(n_test, warm))
    cnnzoo_side(warm, min(n_test, warm))

    result = PipelineResult(
        model=model_name,
        batch_size=batch_size,
        input_size=input_size,
        lr=lr,
        **setup.table_fields(),
        compiled=compile,
        threads=torch.get_num_threads(),
        workers=workers,
        train_images=n_train,
        test_images=n_test,
        torch_version=torch.__version__,
    )
    for k in range(rounds):
        s = d2l_side(n_train, n_test)
        c = cnnzoo_side(n_train, n_test)
        r = PipelineRound(
            d2l_seconds=s["seconds"],
            cnnzoo_seconds=c["seconds"],
            d2l_train_seconds=s["train_seconds"],
            cnnzoo_train_seconds=c["train_seconds"],
            d2l_test_acc=s["test_acc"],
            cnnzoo_test_acc=c["test_acc"],
        )
        result.rounds.append(r)
        if on_round is not None:
            on_round(k, r)
    return result


def format_pipeline(result: PipelineResult) -> str:
    """The headline lines: both throughputs, the ratio and its spread, and what was held equal."""
    lo, hi = result.ratio_range
    layout = "channels_last" if result.channels_last else "NCHW"
    n = len(result.rounds)
    return "\n".join(
        [
            f"{result.model}, batch {result.batch_size}, {result.input_size}x{result.input_size}, {result.device}, "
            f"{result.threads} torch threads, {result.train_images:,} training + {result.test_images:,} test "
            f"images per epoch, {n} interleaved round{'s' if n != 1 else ''} after a warm-up",
            f"  d2l's pipeline (torchvision + DataLoader({result.workers} workers) + train_ch6, fp32, NCHW): "
            f"{result.d2l_images_per_sec:,.0f} images/s",
            f"  cnnzoo (device-resident batches + engine, {result.precision}, {layout}"
            f"{', torch.compile' if result.compiled else ''}): "
            f"{result.cnnzoo_images_per_sec:,.0f} images/s",
            f"  cnnzoo is {result.ratio:.2f}x faster (median of {n}; range {lo:.2f}-{hi:.2f}); "
            f"training alone {result.train_ratio:.2f}x",
            "  (whole epochs: loader start-up, training and test evaluation; images/s = training images / epoch time)",
        ]
    )


def format_round(k: int, rounds: int, r: PipelineRound) -> str:
    """The progress line of round ``k`` (0-based) of ``rounds``."""
    return f"round {k + 1}/{rounds}: d2l {r.d2l_seconds:.2f} s, cnnzoo {r.cnnzoo_seconds:.2f} s ({r.ratio:.2f}x)"


def pipeline_markdown(result: PipelineResult, command: str | None = None) -> str:
    """One Markdown table row set for ``benchmarks/``."""
    lo, hi = result.ratio_range
    lines = [
        "| model | batch | input | device | precision / layout (cnnzoo) | d2l img/s | cnnzoo img/s | ratio "
        "(median, range) | training-only ratio |",
        "|---|---:|---:|---|---|---:|---:|---|---:|",
        f"| {result.model} | {result.batch_size} | {result.input_size} | {result.device} | {result.precision} / "
        f"{'channels_last' if result.channels_last else 'NCHW'}{' / compiled' if result.compiled else ''} | "
        f"{result.d2l_images_per_sec:,.0f} | "
        f"{result.cnnzoo_images_per_sec:,.0f} | {result.ratio:.2f}x ({lo:.2f}-{hi:.2f}) | {result.train_ratio:.2f}x |",
    ]
    if command:
        lines = [f"`{command}`", "", *lines]
    return "\n".join(lines) + "\n"
