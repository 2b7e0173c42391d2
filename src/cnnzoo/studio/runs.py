"""The runs page's API: the run directories under the studio's root, their metrics (live while they train) and
a fixed list of their files.

A run id is the name of a directory directly under the root (or the root's own name when the root is one run).
It is checked as text (no separator, no leading dot) and then as a path: resolved, symlinks included, it must
still be a child of the root, so no id, encoded or not, reaches a file outside it. Only the files in
:data:`RUN_FILES` are served, and only when they too resolve inside their run. Nothing here writes.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cnnzoo.base.errors import CnnzooError, MetricsFileError
from cnnzoo.base.reading import LIMIT, read_bytes, read_json, read_text
from cnnzoo.base.rundirs import is_run_dir, lock_holder
from cnnzoo.models.registry import parse_number
from cnnzoo.run.live import read_live
from cnnzoo.studio.schemas import MetricsOut, RunDetailOut, RunOut
from cnnzoo.train.metrics import read_metrics

__all__ = ["RUN_FILES", "NotFoundError", "RunIndex", "clean", "router"]

# What the studio serves from a run directory, and as what.
RUN_FILES = {
    "curves.png": "image/png",
    "confusion.png": "image/png",
    "top_losses.png": "image/png",
    "explained.png": "image/png",
    "per_class.csv": "text/csv; charset=utf-8",
    "metrics.csv": "text/csv; charset=utf-8",
    "report.md": "text/markdown; charset=utf-8",
    "config.json": "application/json",
}
_RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+@=-]{0,254}")


class NotFoundError(CnnzooError):
    """A run, model or file the studio does not have (answered with 404)."""


def clean(value: Any) -> Any:
    """``value`` with NaN and infinities as None: JSON has no such numbers (an epoch without images has a NaN
    rate), and a JSON encoder would refuse the whole answer."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


class RunIndex:
    """The runs under ``root``: a directory of run directories, or one run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.single = is_run_dir(self.root)

    def ids(self) -> list[str]:
        """Run ids, the most recently changed first."""
        if self.single:
            return [self.root.name]
        try:
            children = [p for p in self.root.iterdir() if _RUN_ID.fullmatch(p.name) and p.is_dir() and is_run_dir(p)]
        except OSError:
            return []
        children = [p for p in children if p.resolve().parent == self.root]
        return [p.name for p in sorted(children, key=_changed, reverse=True)]

    def path(self, run_id: str) -> Path:
        """The directory of ``run_id``, or :class:`NotFoundError` (unknown, malformed, or outside the root)."""
        unknown = NotFoundError(
            f"unknown run {run_id[:80]!r}: see GET /api/runs for the runs under the studio's root {self.root}"
        )
        if not _RUN_ID.fullmatch(run_id):
            raise unknown
        if self.single:
            if run_id != self.root.name:
                raise unknown
            return self.root
        path = self.root / run_id
        try:
            inside = path.resolve().parent == self.root
        except (OSError, RuntimeError):  # a symlink loop
            inside = False
        if not inside or not path.is_dir() or not is_run_dir(path):
            raise unknown
        return path

    def file(self, run_id: str, name: str) -> Path:
        """A file of :data:`RUN_FILES` in the run, or :class:`NotFoundError`."""
        run = self.path(run_id)
        if name not in RUN_FILES:
            served = ", ".join(RUN_FILES)
            raise NotFoundError(f"{name[:80]!r} is not a run file the studio serves: ask for one of {served}")
        path = run / name
        try:
            inside = path.resolve().parent == run.resolve()
        except (OSError, RuntimeError):
            inside = False
        if not inside or not path.is_file():
            raise NotFoundError(f"run {run_id!r} has no {name} (yet): it appears when the run writes it")
        return path

    # -- what the pages show ------------------------------------------------------------------------------
    def summary(self, run_id: str) -> dict[str, Any]:
        path = self.path(run_id)
        record = _config(path, self.root)
        config = record.get("config") if isinstance(record.get("config"), dict) else {}
        rows = _metrics(path, self.root)
        model = record.get("model") if isinstance(record.get("model"), dict) else {}
        data = record.get("data") if isinstance(record.get("data"), dict) else {}
        vals = [r["val_acc"] for r in rows if isinstance(r.get("val_acc"), int | float)]
        return clean(
            {
                "id": run_id,
                "model": str(model.get("name") or config.get("model") or "?"),
                "status": _status(path),
                "epochs_done": len(rows),
                "epochs": config.get("epochs") if isinstance(config.get("epochs"), int) else None,
                "test_acc": rows[-1].get("test_acc") if rows else None,
                "best_val_acc": max(vals) if vals else None,
                "dataset": data.get("name") if isinstance(data.get("name"), str) else None,
                "started": record.get("started") if isinstance(record.get("started"), str) else None,
                "has_checkpoint": (path / "last.pt").is_file(),
            }
        )

    def detail(self, run_id: str) -> dict[str, Any]:
        path = self.path(run_id)
        record = _config(path, self.root)
        data = record.get("data") if isinstance(record.get("data"), dict) else {}
        classes = data.get("classes") if isinstance(data.get("classes"), list) else []
        return clean(
            {
                **self.summary(run_id),
                "config": record.get("config") if isinstance(record.get("config"), dict) else {},
                "classes": [str(c) for c in classes],
                "per_class": _per_class(path / "per_class.csv", self.root),
                "files": [name for name in RUN_FILES if (path / name).is_file()],
                "environment": record.get("environment") if isinstance(record.get("environment"), dict) else {},
            }
        )

    def metrics(self, run_id: str) -> dict[str, Any]:
        path = self.path(run_id)
        rows = _metrics(path, self.root)
        live = read_live(path, root=self.root)
        partial = []
        if live is not None:
            # rows of an epoch that has since become a metrics row are not live any more
            partial = [r for r in live["rows"] if r["epoch"] > len(rows)]
        return clean(
            {
                "run": run_id,
                "training": lock_holder(path) is not None,
                "epochs": rows,
                "live": partial,
                "live_state": live.get("state") if live is not None and partial else None,
            }
        )


def _changed(path: Path) -> float:
    try:
        names = ("config.json", "metrics.jsonl", "live.json")
        return max((path / n).stat().st_mtime for n in names if (path / n).exists())
    except (OSError, ValueError):
        return 0.0


def _config(path: Path, root: Path) -> dict[str, Any]:
    try:
        record = read_json(path / "config.json", limit=LIMIT["config"], root=root)
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _metrics(path: Path, root: Path) -> list[dict[str, Any]]:
    try:
        return read_metrics(path, root=root)
    except MetricsFileError:
        raise
    except OSError as exc:
        raise MetricsFileError(f"{path / 'metrics.jsonl'}: cannot read it ({exc.strerror})") from None


def _status(path: Path) -> str:
    if lock_holder(path) is not None:
        return "training"
    if (path / "report.md").is_file():
        return "finished"
    return "stopped" if (path / "last.pt").is_file() else "incomplete"


def _per_class(path: Path, root: Path) -> list[dict[str, Any]]:
    try:
        text = read_text(path, limit=LIMIT["table"], root=root)
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    out = []
    for row in rows[:1000]:
        out.append({k: parse_number(v) if isinstance(v, str) else None for k, v in row.items() if isinstance(k, str)})
    return out


# ------------------------------------------------------------------------------------------------
# routes
# ------------------------------------------------------------------------------------------------
router = APIRouter(prefix="/api", tags=["runs"])


def run_index(request: Request) -> RunIndex:
    """The studio's :class:`RunIndex` (one per app, made by :func:`cnnzoo.studio.create_app`)."""
    return request.app.state.runs


# A route asks for ``index: RunsDep``; a test swaps the index with ``app.dependency_overrides[run_index]``.
RunsDep = Annotated[RunIndex, Depends(run_index)]


@router.get("/runs", response_model=list[RunOut], summary="the runs under the studio's root")
def get_runs(index: RunsDep) -> list[dict[str, Any]]:
    out = []
    for run_id in index.ids():
        try:
            out.append(index.summary(run_id))
        except CnnzooError:  # a damaged run is listed by the runs that are fine, not a failure of the list
            continue
    return out


@router.get("/runs/{run_id}", response_model=RunDetailOut, summary="one run: config, per-class table, files")
def get_run(run_id: str, index: RunsDep) -> dict[str, Any]:
    return index.detail(run_id)


@router.get("/runs/{run_id}/metrics", response_model=MetricsOut, summary="completed epochs and the live rows")
def get_metrics(run_id: str, index: RunsDep) -> dict[str, Any]:
    return index.metrics(run_id)


FILE_LIMIT = {"image/png": 8 * 2**20}  # cnnzoo's figures are well under 1 MB; its text files, a few kB
TEXT_LIMIT = 4 * 2**20


@router.get(
    "/runs/{run_id}/files/{name}",
    summary="one of the run's files: " + ", ".join(RUN_FILES),
    response_class=Response,
)
def get_file(run_id: str, name: str, index: RunsDep) -> Response:
    path = index.file(run_id, name)
    media = RUN_FILES[name]
    try:  # read whole and bounded, the safe way: a file swapped for a FIFO or grown to gigabytes is not served
        body = read_bytes(path, limit=FILE_LIMIT.get(media, TEXT_LIMIT), root=index.root)
    except OSError as exc:
        raise NotFoundError(f"run {run_id!r}: {name} cannot be served ({exc})") from None
    return Response(body, media_type=media, headers={"Cache-Control": "no-cache"})
