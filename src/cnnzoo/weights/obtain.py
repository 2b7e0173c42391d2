"""Getting a weight that is not shipped: fetch the published file from a mirror, or build it on this machine.

**fetch** downloads ``MIRROR/FILE`` (``FILE`` the catalog's file name) with the data layer's bounded
downloader (:mod:`cnnzoo.data.download`: a deadline, a minimum rate, at most the catalog's size), into a
temporary file beside its target that becomes ``~/.cache/cnnzoo/weights/FILE`` only once its SHA-256 is the
catalog's; nothing else is ever written, and an existing file is not replaced unless it is damaged.

**build** trains the weight's own command (its card's) into ``~/.cache/cnnzoo/weights/runs/NAME-seedS`` (a
stopped build resumes there), stores its ``best.pt`` as the catalog says (fp16, int8...) in the cache, and
records beside it (``FILE.built.json``) the file's SHA-256 and the test accuracy it reaches here, next to the
card's: a build is a new training, so its figures are its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnzoo.base.atomic import atomic_write_bytes, atomic_write_text
from cnnzoo.base.errors import CheckpointError, ConfigError, DataNotFoundError
from cnnzoo.data.download import Limits, reason, stream
from cnnzoo.data.fashion_mnist import DOWNLOAD_DEADLINE, MIN_RATE, RATE_WINDOW
from cnnzoo.train.checkpoint import load_checkpoint, model_from_checkpoint
from cnnzoo.train.config import config_from_dict
from cnnzoo.weights.catalog import Weight
from cnnzoo.weights.files import built_record, cached_file
from cnnzoo.weights.publish import evaluate_fp32, weight_file_of
from cnnzoo.weights.storage import decode, file_sha256

__all__ = ["build_argv", "build_dir", "describe_sources", "fetch_weight", "finish_build"]


def fetch_weight(
    weight: Weight, mirror: str, *, timeout: float = 30.0, progress: bool = True, deadline: float | None = None
) -> Path:
    """Download ``weight``'s published file from ``mirror`` (a base URL) into the cache; its path."""
    target = cached_file(weight)
    if target.is_file() and file_sha256(target) == weight.sha256:
        return target
    if target.exists() or target.is_symlink():
        raise CheckpointError(f"{target} exists and is not {weight.name}'s published file: remove it, then fetch again")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create {target.parent}: {exc.strerror}") from None
    url = mirror if mirror.endswith(weight.file) else mirror.rstrip("/") + "/" + weight.file
    limits = Limits(deadline=deadline or DOWNLOAD_DEADLINE, min_rate=MIN_RATE, window=RATE_WINDOW,
                    max_bytes=weight.bytes)  # fmt: skip
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{weight.file}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            stream(url, out, limits=limits, timeout=timeout, progress=progress, label=weight.file)
        digest = file_sha256(tmp)
        if digest != weight.sha256:
            raise OSError(f"its SHA-256 {digest[:16]}... is not the catalog's {weight.sha256[:16]}... (another file)")
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:  # ValueError: a malformed URL
        raise DataNotFoundError(f"could not fetch {weight.name} from {url}: {reason(exc)}: check the mirror, or "
                                f"build it here with `cnnzoo weights build {weight.name}`") from None  # fmt: skip
    finally:
        tmp.unlink(missing_ok=True)
    return target


def build_dir(weight: Weight) -> Path:
    """The run directory ``cnnzoo weights build`` trains ``weight`` in."""
    return cached_file(weight).parent / "runs" / f"{weight.name}-seed{weight.meta['seed']}"


def build_argv(weight: Weight, out: Path) -> list[str]:
    """The card's command (without ``cnnzoo``) for the file's seed, training into ``out``; resuming when
    ``out`` holds a stopped build."""
    words = shlex.split(str(weight.meta["command"]).format(seed=weight.meta["seed"]))
    if words[:2] != ["cnnzoo", "train"]:
        raise ConfigError(f"{weight.name}: its command is not a `cnnzoo train` command: {weight.meta['command']}")
    if "--out" in words:  # the published run's own directory means nothing here
        i = words.index("--out")
        del words[i : i + 2]
    if (out / "last.pt").is_file():
        return ["train", "--resume", str(out)]
    return [*words[1:], "--out", str(out)]


def finish_build(weight: Weight, run_dir: Path, data: Any) -> dict[str, Any]:
    """Store the finished build's ``best.pt`` in the cache as ``weight``'s file and record what it measured."""
    ckpt = load_checkpoint(run_dir / "best.pt")
    if ckpt["model_name"] != weight.model or ckpt["preprocess"]["input_size"] != weight.input_size:
        raise CheckpointError(f"{run_dir} did not train {weight.name}: remove it and build again")
    blob = weight_file_of(ckpt, weight.storage, weight.name)
    target = atomic_write_bytes(cached_file(weight), blob)
    state, _ = decode(blob, str(target))  # what the file holds, read back as a user will
    model = model_from_checkpoint({**ckpt, "model_state": state})
    result = evaluate_fp32(model, data, config_from_dict(ckpt["config"]), "test")
    record = {
        "written_by": "cnnzoo weights build",
        "weight": weight.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "test_acc": result.accuracy,
        "card_test_acc": weight.test_acc,
        "run": str(run_dir),
        "date": dt.date.today().isoformat(),
    }
    atomic_write_text(built_record(weight), json.dumps(record, indent=1) + "\n")
    return record


def describe_sources(weights: Sequence[Weight]) -> dict[str, str]:
    """Where each weight is now: shipped, fetched, built here, or not here."""
    out = {}
    for w in weights:
        if w.shipped:
            out[w.name] = "shipped"
        elif built_record(w).is_file():
            out[w.name] = "built here"
        elif cached_file(w).is_file():
            out[w.name] = "fetched"
        else:
            out[w.name] = "build or fetch"
    return out
