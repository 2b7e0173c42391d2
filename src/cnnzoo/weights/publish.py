"""From finished runs to a named weight: the file, and the catalog entry its card is generated from.

A weight comes from one or more runs of the same command that differ only in ``--seed``. Each seed's ``best.pt``
(the first epoch with the best *validation* accuracy) is evaluated again here in fp32 on the CPU, on the
validation and test splits. The shipped file is the seed with the best validation accuracy (the test set
chooses nothing), stored as fp32, fp16 or int8 (:mod:`cnnzoo.weights.storage`), and the stored file is
evaluated once more, in fp32 on the CPU, exactly as ``cnnzoo eval NAME`` will: that is the card's test
accuracy. The seeds' test accuracies give the mean and spread.

``cnnzoo weights build`` uses :func:`weight_file_of` on the run it trained; the maintainers' script
``benchmarks/weights/publish.py`` uses :func:`publish_runs` to write the catalog.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnzoo._version import __version__
from cnnzoo.base.devices import DeviceSetup
from cnnzoo.base.errors import CheckpointError
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.models.inspection import count_macs
from cnnzoo.models.registry import get_model_info
from cnnzoo.train.checkpoint import export_metadata, load_checkpoint, model_from_checkpoint
from cnnzoo.train.config import TrainConfig, config_from_dict
from cnnzoo.train.loop import evaluate_batches, make_batches
from cnnzoo.train.metrics import low_confidence_bound, per_class_rows
from cnnzoo.train.state import EvalResult
from cnnzoo.weights.catalog import weight_name
from cnnzoo.weights.storage import decode, encode

__all__ = [
    "SAMPLE",
    "SeedRun",
    "evaluate_fp32",
    "first_test_images",
    "publish_runs",
    "read_seed_run",
    "single_view_bound",
    "weight_file_of",
]

_HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr",
                 "images_per_sec", "train_seconds")  # fmt: skip


SAMPLE = 2000  # the first test images: a quick check that a weight file still computes what its card says


def first_test_images(data: ImageDataset) -> ImageDataset:
    """``data`` with only its first :data:`SAMPLE` test images."""
    return dataclasses.replace(data, test_images=data.test_images[:SAMPLE], test_labels=data.test_labels[:SAMPLE])


def evaluate_fp32(model: torch.nn.Module, data: ImageDataset, config: TrainConfig, split: str) -> EvalResult:
    """``model`` on ``data``'s ``split`` (val or test) in fp32 on the CPU, prepared as ``config`` says: the
    figures a card quotes, the same on any machine."""
    setup = DeviceSetup(torch.device("cpu"))
    cfg = dataclasses.replace(config, precision="fp32", channels_last="no", device="cpu")
    batches = make_batches(data, cfg, split=split, setup=setup, resize=cfg.resize or model.default_input_size)
    return evaluate_batches(model.cpu().float(), batches, setup=setup, num_classes=data.num_classes, tta=cfg.tta)


@dataclass
class SeedRun:
    """One finished run of a weight's command: its best checkpoint, evaluated again in fp32."""

    directory: Path
    config: TrainConfig
    checkpoint: dict[str, Any]
    record: dict[str, Any]  # the run's config.json (environment, command, data)
    best_epoch: int
    val_acc: float
    test_acc: float
    history: list[dict[str, Any]]

    @property
    def train_seconds(self) -> float:
        return float(sum(row.get("train_seconds", 0.0) for row in self.history))


def read_seed_run(directory: str | os.PathLike[str], data: ImageDataset) -> SeedRun:
    """The finished run in ``directory`` (it must have its report), its ``best.pt`` evaluated on ``data``."""
    directory = Path(directory)
    if not (directory / "report.md").is_file() or not (directory / "best.pt").is_file():
        raise CheckpointError(f"{directory}: not a finished run (no report.md or best.pt): finish it with --resume")
    ckpt = load_checkpoint(directory / "best.pt")
    last = load_checkpoint(directory / "last.pt")
    config = config_from_dict(ckpt["config"])
    model = model_from_checkpoint(ckpt)
    record = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    history = [{k: row[k] for k in _HISTORY_KEYS if k in row} for row in last["train"]["history"]]
    return SeedRun(
        directory=directory,
        config=config,
        checkpoint=ckpt,
        record=record,
        best_epoch=int(ckpt["train"]["epoch"]),
        val_acc=evaluate_fp32(model, data, config, "val").accuracy,
        test_acc=evaluate_fp32(model, data, config, "test").accuracy,
        history=history,
    )


def weight_file_of(ckpt: Mapping[str, Any], storage: str, name: str) -> bytes:
    """A checkpoint's weights as a weight file's bytes, with what loads them in its header."""
    header = {"cnnzoo.weight": name, **export_metadata(ckpt)}
    return encode(ckpt["model_state"], storage, header)


def _hardware(run: SeedRun) -> dict[str, Any]:
    env = run.record.get("environment", {})
    return {
        "device": env.get("device", ""),
        "cpu": env.get("cpu", ""),
        "threads": env.get("threads"),
        "precision": run.config.precision,
    }


def single_view_bound(
    model: torch.nn.Module, data: ImageDataset, config: TrainConfig, val: EvalResult | None = None
) -> float | None:
    """The low-confidence bound of a weight (:func:`~cnnzoo.train.metrics.low_confidence_bound`) from its
    validation split seen one view at a time, as ``cnnzoo predict`` and the studio see each image, whatever
    test-time views (``config.tta``) its card's accuracy uses; ``val``: that evaluation when already made."""
    if val is None or config.tta != "none":
        val = evaluate_fp32(model, data, dataclasses.replace(config, tta="none"), "val")
    return low_confidence_bound(val.confidence)


def _stored_figures(data_bytes: bytes, run: SeedRun, data: ImageDataset) -> dict[str, Any]:
    state, _ = decode(data_bytes)
    ckpt = {**run.checkpoint, "model_state": state}
    model = model_from_checkpoint(ckpt)
    test = evaluate_fp32(model, data, run.config, "test")
    val = evaluate_fp32(model, data, run.config, "val")
    sample = evaluate_fp32(model, first_test_images(data), run.config, "test")
    return {
        "sample": {"images": sample.count, "correct": int(sample.confusion.diagonal().sum())},
        "test_acc": test.accuracy,
        "test_loss": test.loss,
        "val_acc": val.accuracy,
        "low_confidence": single_view_bound(model, data, run.config, val),
        "per_class": per_class_rows(test.confusion, data.classes),
        "confusion": test.confusion.tolist(),
    }


def publish_runs(
    runs: Sequence[SeedRun],
    data: ImageDataset,
    *,
    storage: str,
    shipped: bool,
    command: str,
    notes: Sequence[str] = (),
    load: str = "idle",
    license: str = "MIT",
) -> tuple[dict[str, Any], bytes]:
    """The catalog entry and the file of the weight made from ``runs`` (seeds of one command)."""
    chosen = max(runs, key=lambda r: (r.val_acc, -r.config.seed))  # validation decides; ties: the lower seed
    cfg = chosen.config
    info = get_model_info(cfg.model)
    name = weight_name(cfg.model, cfg.resize or info.default_input_size, cfg.dataset, info.default_input_size)
    blob = weight_file_of(chosen.checkpoint, storage, name)
    stored = _stored_figures(blob, chosen, data)
    model = model_from_checkpoint(chosen.checkpoint)
    tests = [r.test_acc for r in runs]
    pre = chosen.checkpoint["preprocess"]
    meta = {
        **stored,
        "full_precision_test_acc": chosen.test_acc,
        "seed": cfg.seed,
        "seeds": [
            {
                "seed": r.config.seed,
                "val_acc": r.val_acc,
                "test_acc": r.test_acc,
                "best_epoch": r.best_epoch,
                "train_seconds": r.train_seconds,
            }
            for r in runs
        ],
        "test_acc_mean": statistics.fmean(tests),
        "test_acc_std": statistics.stdev(tests) if len(tests) > 1 else None,
        "params": sum(p.numel() for p in model.parameters()),
        "macs": count_macs(model, pre["input_size"]),
        "recipe": cfg.recipe,
        "command": command,
        "epochs": cfg.epochs,
        "best_epoch": chosen.best_epoch,
        "train_seconds": chosen.train_seconds,
        "hardware": {**_hardware(chosen), "load": load},
        "versions": {"cnnzoo": __version__, "torch": str(chosen.record.get("environment", {}).get("torch", ""))},
        "date": dt.date.today().isoformat(),
        "history": chosen.history,
        "notes": list(notes),
    }
    entry = {
        "name": name,
        "model": cfg.model,
        "model_kwargs": dict(chosen.checkpoint["model_kwargs"]),
        "dataset": cfg.dataset,
        "input_size": int(pre["input_size"]),
        "in_channels": int(pre["in_channels"]),
        "classes": list(pre["classes"]),
        "mean": pre["mean"],
        "std": pre["std"],
        "file": f"{name}.safetensors",
        "shipped": shipped,
        "storage": storage,
        "bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "license": license,
        "config": cfg.to_dict(),
        "default": True,
        "meta": meta,
    }
    return entry, blob
