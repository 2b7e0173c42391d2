"""What makes a directory a cnnzoo run, decided in one place and without torch: the data layer (a folder of runs
is never a class of pictures), the studio (which directories it lists) and the run layer (whether ``--out`` may
take a new run) all ask :func:`is_run_dir`.

A run directory holds ``last.pt`` (a checkpoint) or ``metrics.jsonl`` (an epoch's metrics), even damaged: at least
one epoch was done there; or a ``config.json`` that is a cnnzoo run record (a JSON object with ``config``,
``model`` and ``environment``: a run stopped before its first epoch ended). The record is read the safe way
(:mod:`cnnzoo.base.reading`): a FIFO, a link to a device or a nesting bomb named ``config.json`` is no record.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path

from cnnzoo.base.errors import CheckpointError, ConfigError, OutputError, RunLockedError
from cnnzoo.base.reading import LIMIT, read_json

try:
    import fcntl
except ImportError:  # not POSIX (Windows): RunLock falls back to a pid file with a liveness check
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "LOCK_NAME",
    "METRICS_NAME",
    "RunLock",
    "check_new_run_target",
    "check_unlocked",
    "is_run_dir",
    "is_run_record",
    "lock_holder",
    "new_run_dir",
    "resolve_run_dir",
]

CONFIG_NAME = "config.json"
CHECKPOINT_NAME = "last.pt"
METRICS_NAME = "metrics.jsonl"
_RECORD_KEYS = {"config", "model", "environment"}


def is_run_record(path: str | os.PathLike[str]) -> bool:
    """Whether the file ``path`` is a run's ``config.json`` as cnnzoo writes it."""
    try:
        record = read_json(path, limit=LIMIT["config"])
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(record, dict) and set(record) >= _RECORD_KEYS


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether the directory ``path`` holds a cnnzoo run (module docstring)."""
    path = Path(path)
    try:
        done = (path / CHECKPOINT_NAME).is_file() or (path / METRICS_NAME).is_file()
        return done or is_run_record(path / CONFIG_NAME)
    except OSError:
        return False


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
