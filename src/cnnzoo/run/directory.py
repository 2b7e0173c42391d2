"""The run directory: what a training run leaves for the user to inspect, resume and reuse.

``runs/<model>-<YYYYmmdd-HHMMSS>/`` (or ``--out DIR``) holds

=================  ===========================================================================
config.json        resolved config, model, data, versions, device, seed, command
metrics.csv/.jsonl one row per completed epoch (rewritten from the checkpoint's history)
curves.png         train loss, train, validation and test accuracy against epoch (redrawn every epoch)
live.json          the epoch in progress: running train loss and accuracy at each log interval (at most
                   twice a second; :mod:`cnnzoo.run.live`), for a viewer such as ``cnnzoo studio``
last.pt            the last completed epoch, or the step Ctrl-C stopped at (resumable)
best.pt            the epoch with the best *validation* accuracy so far (none without a validation split:
                   the test set never chooses a model)
confusion.png      at the end: confusion matrix of the final model on the test set
per_class.csv      at the end: per-class accuracy
top_losses.png     at the end: the test images the final model is most confidently wrong about
explained.png      at the end: the first test image with its Grad-CAM map and top 3 classes
report.md          at the end: the page that ties them together with the model summary
=================  ===========================================================================

Per epoch the order is last.pt, best.pt, metrics, curves: a metrics row therefore never exists without
its checkpoint, and a crash between two writes loses nothing that ``--resume`` needs. This callback does
all the file I/O of training; give it to rank 0 only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnzoo.atomic import atomic_write, atomic_write_text
from cnnzoo.checkpoint import checkpoint_payload, load_checkpoint, save_checkpoint
from cnnzoo.config import TrainConfig
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.engine import HISTORY_KEYS, Callback, EvalResult, TrainState, best_row, time_to_target
from cnnzoo.errors import CheckpointError, ConfigError, OutputError, RunLockedError
from cnnzoo.explain.files import explain_run
from cnnzoo.metrics import read_metrics, write_metrics, write_per_class
from cnnzoo.plots import confusion_figure, curves_figure, save_figure
from cnnzoo.reading import LIMIT, read_json
from cnnzoo.report import write_report
from cnnzoo.rundirs import is_run_record

try:
    import fcntl
except ImportError:  # not POSIX (Windows): RunLock falls back to a pid file with a liveness check
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_NAME",
    "RunDirectory",
    "RunLock",
    "check_new_run_target",
    "check_unlocked",
    "lock_holder",
    "new_run_dir",
    "resolve_run_dir",
]

LOCK_NAME = ".lock"  # held by the process training in the run directory (RunLock)


def new_run_dir(model: str, out: str | os.PathLike[str] | None = None, root: str = "runs") -> Path:
    """``out`` if given, else a fresh ``runs/<model>-<time>``.

    ``out`` must not exist, or be an empty directory (or one a run was killed in before its first checkpoint:
    starting it again is the fix :func:`resolve_run_dir` gives). A directory that holds a run is refused
    (resume it), as is one a live process trains in (:class:`RunLock`), an empty ``out`` (an unset variable
    would put the run's files into the current directory) and any other non-empty directory: nothing of the
    user's is written over.
    """
    if out is not None:
        if not str(out).strip():
            raise ConfigError(
                '--out "" is empty (an unset variable?): give a directory for the run, or leave --out out '
                "for a fresh runs/<model>-<time>"
            )
        path = Path(out)
        check_new_run_target(path)
        _make_writable_dir(path, exist_ok=True)
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{model}-{stamp}"
    path, n = base, 1
    while True:
        try:
            _make_writable_dir(path, exist_ok=False)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


# What a directory may hold and still take a new run: a run killed before its first checkpoint leaves these.
_RESTARTABLE = {"config.json", LOCK_NAME, "tensorboard", "live.json"}


def check_new_run_target(path: Path, *, locked_by_us: bool = False) -> None:
    """Refuse ``path`` as a new run's directory unless it is absent, empty, or a run killed before its first
    checkpoint (see :func:`new_run_dir`); ``locked_by_us``: this process holds its lock already."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise ConfigError(f"--out {path} is a file, not a directory: choose another path for the run")
    if not locked_by_us:
        check_unlocked(path)
    if (path / "last.pt").exists() or (path / "metrics.jsonl").exists():
        raise ConfigError(f"--out {path} already holds a run: resume it with --resume {path} or pick another")
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError as exc:
        raise ConfigError(f"cannot read --out {path} ({exc.strerror}): choose another directory") from None
    foreign = [n for n in names if n not in _RESTARTABLE and not (n.startswith(".") and n.endswith(".tmp"))]
    if not foreign and ("config.json" not in names or is_run_record(path / "config.json")):
        return
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    raise OutputError(
        f"--out {path} is not empty and is not a cnnzoo run (it holds {shown or 'config.json'}): "
        "choose another directory or empty it"
    )


# ------------------------------------------------------------------------------------------------
# the lock: one process trains in a run directory at a time
# ------------------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists, owned by someone else (or the check is not possible here: assume alive)
    return True


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_LOCK_BYTES = 4096  # a lock file cnnzoo wrote holds two short lines


class _ForeignLock(ConfigError):
    """``DIR/.lock`` is not a lock file cnnzoo made: a link, a FIFO or device, or another file's contents."""


def _open_lock(path: Path, flags: int) -> int:
    """``os.open`` of a lock file that never follows a symbolic link, never blocks on a FIFO, and leaves only a
    regular file with one name open (a hard link to a user's file would otherwise be truncated)."""
    try:
        fd = os.open(path, flags | _NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _ForeignLock(f"{path} is a symbolic link, not cnnzoo's lock file: remove it (cnnzoo makes its "
                               "own), then start again") from None  # fmt: skip
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        what = "has other names (a hard link)" if stat.S_ISREG(info.st_mode) else "is not a regular file"
        raise _ForeignLock(f"{path} {what}, not cnnzoo's lock file: remove it (cnnzoo makes its own), then start again")
    return fd


def _read_holder(path: Path) -> dict[str, str]:
    try:
        fd = _open_lock(path, os.O_RDONLY)
    except (OSError, ConfigError):
        return {}
    try:
        text = os.read(fd, _LOCK_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return {}
    finally:
        os.close(fd)
    holder = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key in ("pid", "started"):
            holder[key] = value.strip()
    return holder


def _locked_error(directory: Path, holder: Mapping[str, str]) -> RunLockedError:
    pid = holder.get("pid", "?")
    started = holder.get("started", "at an unknown time")
    return RunLockedError(
        f"{directory} is being trained by process {pid} (started {started}): wait for it to finish or stop it"
    )


class RunLock:
    """The advisory lock a training process holds on its run directory, in ``DIR/.lock``.

    ``fcntl.flock`` where there is one: the kernel releases it when the process dies however it dies
    (``kill -9`` included), so a lock left behind is stale by construction and the next process takes it
    over. The file records ``pid`` and ``started`` for the message a refused process prints. Without
    ``fcntl`` the file is created exclusively and a lock whose process is gone is taken over.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _record(self) -> bytes:
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        return f"pid {os.getpid()}\nstarted {started}\n".encode()

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunLockedError` naming the live process that holds it."""
        if self._fd is not None:
            return self
        for _ in range(20):  # retried only when the file was removed by its holder between open and lock
            fd = self._acquire_flock() if fcntl is not None else self._acquire_pidfile()
            if fd is not None:
                self._fd = fd
                os.ftruncate(fd, 0)
                os.write(fd, self._record())
                return self
        raise _locked_error(self.directory, _read_holder(self.path))

    def _acquire_flock(self) -> int | None:
        try:
            fd = _open_lock(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise ConfigError(
                f"cannot lock the run directory {self.directory} ({exc.strerror}): choose a writable place"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise _locked_error(self.directory, _read_holder(self.path)) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # its holder released (and removed) it meanwhile: lock the file that is there now
            os.close(fd)
            return None
        head = os.pread(fd, _LOCK_BYTES + 1, 0)
        if head and (not head.startswith(b"pid ") or len(head) > _LOCK_BYTES):  # never truncate what is not ours
            os.close(fd)
            raise _ForeignLock(f"{self.path} holds something cnnzoo did not write: move it away, then start again")
        return fd

    def _acquire_pidfile(self) -> int | None:
        try:
            return _open_lock(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            holder = _read_holder(self.path)
            pid = holder.get("pid", "")
            if pid.isdigit() and _alive(int(pid)) and int(pid) != os.getpid():
                raise _locked_error(self.directory, holder) from None
            self.path.unlink(missing_ok=True)  # stale: its process is gone
            return None
        except OSError as exc:
            raise ConfigError(
                f"cannot lock the run directory {self.directory} ({exc.strerror}): choose a writable place"
            ) from None

    def release(self) -> None:
        """Remove the lock file and let the lock go (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)  # removed while still locked, so no one locks a dying file
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(directory: str | os.PathLike[str]) -> dict[str, str] | None:
    """``{"pid": ..., "started": ...}`` of the live process training in ``directory``, or None (no lock, or a
    stale one left by a process that died)."""
    path = Path(directory) / LOCK_NAME
    if not path.exists():
        return None
    if fcntl is None:
        holder = _read_holder(path)
        pid = holder.get("pid", "")
        return holder if pid.isdigit() and _alive(int(pid)) and int(pid) != os.getpid() else None
    try:
        fd = _open_lock(path, os.O_RDONLY)
    except (OSError, ConfigError):  # not a lock cnnzoo made: nobody trains through it (taking it says why)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read_holder(path) or {}
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_unlocked(directory: str | os.PathLike[str]) -> None:
    """Raise :class:`RunLockedError` when a live process trains in ``directory``."""
    holder = lock_holder(directory)
    if holder is not None:
        raise _locked_error(Path(directory), holder)


def _make_writable_dir(path: Path, *, exist_ok: bool) -> None:
    """mkdir -p, refusing (before any training) a place the run could not be written to."""
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except FileExistsError:
        raise
    except OSError as exc:
        raise ConfigError(
            f"cannot create the run directory {path} ({exc.strerror}): choose a writable place with --out DIR"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"the run directory {path} is not writable: choose a writable place with --out DIR")


def resolve_run_dir(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(run_dir, checkpoint)`` for a run directory (its ``last.pt``) or a checkpoint file in one."""
    p = Path(path)
    if p.is_dir():
        ckpt = p / "last.pt"
        if not ckpt.exists():
            if (p / "config.json").exists():  # a run killed before its first checkpoint: nothing to resume
                raise CheckpointError(
                    f"{p} has no last.pt: its run stopped before the first checkpoint; start it again with the "
                    f"same command (cnnzoo train ... --out {p})"
                )
            raise CheckpointError(f"{p} has no last.pt: not a cnnzoo run directory; give a run directory or a .pt file")
        return p, ckpt
    if not p.exists():
        raise CheckpointError(f"{p}: no such run directory or checkpoint")
    return p.parent, p


class RunDirectory(Callback):
    """Writes a run's files as :func:`cnnzoo.fit` reports progress (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        data: ImageDataset,
        config: TrainConfig,
        environment: Mapping[str, Any],
        command: Sequence[str] | None = None,
        input_size: int,
    ) -> None:
        self.path = Path(path)
        self.data = data
        self.config = config
        self.environment = dict(environment)
        self.command = list(command) if command is not None else None
        self.input_size = int(input_size)
        self.mean, self.std = data.stats if config.normalize else (None, None)
        self.state: TrainState | None = None

    # -- files ------------------------------------------------------------------------------------
    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    def _payload(self, state: TrainState) -> dict[str, Any]:
        return checkpoint_payload(
            state,
            classes=self.data.classes,
            mean=self.mean,
            std=self.std,
            input_size=self.input_size,
            in_channels=self.data.in_channels,
        )

    def write_config(self, state: TrainState) -> None:
        path = self.path / "config.json"
        previous: dict[str, Any] = {}
        if path.is_file():
            try:
                previous = read_json(path, limit=LIMIT["config"])
            except (OSError, ValueError):
                previous = {}
        if not isinstance(previous, dict):  # a hand-damaged file: what it said of earlier sessions is lost, not trusted
            previous = {}
        if not isinstance(previous.get("resumed", []), list) or not isinstance(previous.get("started", ""), str):
            previous = {k: v for k, v in previous.items() if k not in ("resumed", "started")}
        model = state.model
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        record = {
            "config": self.config.to_dict(),
            "seed": self.config.seed,
            "model": {
                "name": getattr(model, "model_name", self.config.model),
                "kwargs": dict(getattr(model, "model_kwargs", {})),
                "parameters": sum(p.numel() for p in model.parameters()),
                "input_size": self.input_size,
            },
            "data": {
                "name": self.data.name,
                "source": self.data.source,
                "verified": self.data.verified,
                "train_images": int(self.data.train_images.shape[0]),
                "val_images": int(self.data.val_labels.numel()) if self.data.val_labels is not None else 0,
                "validation": self.data.extra.get("validation"),
                "test_images": int(self.data.test_images.shape[0]),
                "classes": list(self.data.classes),
                "mean": list(self.mean) if self.mean is not None else None,
                "std": list(self.std) if self.std is not None else None,
            },
            "environment": self.environment,
            "command": self.command,
            "started": previous.get("started", now),
            "resumed": [*previous.get("resumed", []), *([now] if previous else [])],
            "throughput_note": "images_per_sec: training images / training wall time of the epoch, "
            "data preparation included, evaluation excluded (eval_seconds)",
        }
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")

    # -- callback hooks ---------------------------------------------------------------------------
    def on_train_start(self, state: TrainState) -> None:
        self.state = state
        for stale in self.path.glob(".*.tmp"):  # left by a process killed mid-write; one writer per run
            stale.unlink(missing_ok=True)
        self.write_config(state)
        self._repair_best(state)
        self._repair_metrics(state)

    def on_epoch_end(self, state: TrainState) -> None:
        self.state = state
        save_checkpoint(self.last, self._payload(state))
        history = state.history
        if best_row(history) is history[-1]:
            _copy_atomic(self.last, self.best)
        write_metrics(self.path, history, HISTORY_KEYS)
        self.write_curves(history)

    def on_stop(self, state: TrainState) -> None:
        self.state = state
        save_checkpoint(self.last, self._payload(state))

    def write_curves(self, history: Sequence[Mapping[str, Any]]) -> None:
        save_figure(
            curves_figure(history, title=self.config.model, epochs=self.config.epochs), self.path / "curves.png"
        )

    def _repair_metrics(self, state: TrainState) -> None:
        """After a crash between writing last.pt and the metrics, the metrics lack the checkpoint's last
        epoch; rewrite them (and the curves) from its history. Mid-run the next epoch would do it, but not
        when the crash came after the final epoch."""
        if not state.history:
            return
        try:
            rows = read_metrics(self.path)
        except ValueError:  # a damaged metrics.jsonl: the checkpoint's history is the source of truth
            rows = []
        if len(rows) != len(state.history):
            write_metrics(self.path, state.history, HISTORY_KEYS)
            self.write_curves(state.history)

    def _repair_best(self, state: TrainState) -> None:
        """After a crash between writing last.pt and best.pt, best.pt may lag the history: fix it when
        the best epoch is the one last.pt holds (otherwise its weights are gone and best.pt stays)."""
        if not state.history or state.partial is not None or not self.last.exists():
            return
        best = best_row(state.history)
        if best is None or best["epoch"] != state.history[-1]["epoch"]:
            return
        best_epoch = best["epoch"]
        try:
            have = load_checkpoint(self.best)["train"]["epoch"] if self.best.exists() else None
        except CheckpointError:
            have = None
        if have != best_epoch:
            _copy_atomic(self.last, self.best)

    # -- the end of a run -------------------------------------------------------------------------
    def finish(self, state: TrainState, result: EvalResult, model_summary: str) -> dict[str, Path]:
        """Write confusion.png, per_class.csv, top_losses.png, explained.png and report.md for the final model."""
        classes = self.data.classes
        save_figure(
            confusion_figure(
                result.confusion, classes, title=f"{self.config.model}: test accuracy {result.accuracy:.4f}"
            ),
            self.path / "confusion.png",
        )
        rows = write_per_class(self.path / "per_class.csv", result.confusion, classes)
        # report.md is the "finished" mark --resume checks, so everything else is written before it.
        if self.config.target_acc is not None:
            self._record_time_to_target(state)
        explanation = self._explain(state, result)
        write_report(
            self.path / "report.md",
            config=self.config.to_dict(),
            history=state.history,
            per_class=rows,
            final_accuracy=result.accuracy,
            environment=self.environment,
            model_summary=model_summary,
            run_dir=str(self.path),
            command=self.command,
            explanation=explanation,
        )
        names = ["confusion.png", "per_class.csv", "report.md"]
        names += ["top_losses.png", "explained.png"] if not isinstance(explanation, str) else []
        return {name: self.path / name for name in names}

    def _explain(self, state: TrainState, result: EvalResult) -> dict[str, Any] | str:
        """top_losses.png and explained.png (one pass over the test split, one Grad-CAM) for the report, or why
        not: after a long run, a failure here must cost these two figures, not the report."""
        wrong = result.count - int(result.confusion.diagonal().sum())
        try:
            return explain_run(
                state.model,
                self.data,
                self.path,
                mean=self.mean,
                std=self.std,
                input_size=self.input_size,
                wrong=wrong,
                batch_size=self.config.eval_batch_size,
            ).to_dict()
        except Exception as exc:  # any failure: the report says it instead
            return f"{type(exc).__name__}: {exc}".splitlines()[0]

    def _record_time_to_target(self, state: TrainState) -> None:
        """``--target-acc``: add when the target was reached (or that it was not) to config.json."""
        path = self.path / "config.json"
        try:
            record = read_json(path, limit=LIMIT["config"])
        except (OSError, ValueError):  # written by this run a moment ago: only a hand or a full disk damages it
            record = {}
        record = record if isinstance(record, dict) else {}
        hit = time_to_target(state.history, self.config.target_acc)
        record["time_to_target"] = (
            {**hit, "reached": True, "counts": "training + evaluation wall time; start-up and file writes excluded"}
            if hit is not None
            else {"target": self.config.target_acc, "reached": False, "epochs": len(state.history)}
        )
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def _copy_atomic(src: Path, dst: Path) -> None:
    with open(src, "rb") as f:
        atomic_write(dst, lambda out: shutil.copyfileobj(f, out, 1 << 20))
