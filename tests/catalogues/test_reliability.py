"""Reliability beyond single bad inputs (issue 6): checkpoints are data, crashes lose nothing, seeds reproduce.

* **Checkpoints are data, not code.** A checkpoint whose pickle would create a file when unpickled is fed to
  every path that loads checkpoints; each refuses it with a one-line error and the file never appears. The
  source is scanned for any load that could unpickle code.
* **Crash safety.** SIGKILL at random moments (:func:`test_sigkill_at_random_moments_never_loses_the_run`,
  marked ``killloop``: it runs in CI, ``-m "not killloop"`` skips it locally); a full disk while a
  checkpoint is written; a kill after the last epoch, before the report.
* **Determinism.** The same seed gives the same ``metrics.csv`` on CPU; ``--deterministic`` sets PyTorch's
  flags.

:data:`SCENARIOS` lists what is tried and what the user should do; ``docs/reliability.md`` is generated from
it (``python tests/catalogues/test_reliability_doc.py --write``).
"""

from __future__ import annotations

import ast
import csv
import errno
import json
import multiprocessing
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo.base.atomic as atomic
from cnnzoo.base.atomic import atomic_write, atomic_write_text
from cnnzoo.base.errors import CheckpointError, CnnzooError, FileWriteError
from cnnzoo.cli import main
from cnnzoo.data.cache import cache_dir
from cnnzoo.train.checkpoint import FORMAT, load_checkpoint, model_from_checkpoint
from cnnzoo.train.history import TIMING_KEYS
from cnnzoo.train.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[2]
RUN_FILES = {"config.json", "metrics.csv", "metrics.jsonl", "curves.png", "last.pt", "best.pt", "confusion.png",
             "per_class.csv", "top_losses.png", "explained.png", "report.md", "snapshots"}  # fmt: skip

# (id, scenario, what cnnzoo does, what the user should do, the test that shows it)
SCENARIOS = [
    ("pickle-every-loader", "A checkpoint from a stranger whose pickle would create a file when unpickled "
     "(`open(path, 'w')` or `os.system('touch ...')`, in a torch zip or as a bare pickle), given to `cnnzoo eval`, "
     "`cnnzoo predict`, `cnnzoo train --resume`, `export_checkpoint` (ONNX, safetensors) and `load_checkpoint`",
     "Refused with one line, `refused to load: it contains pickled objects other than tensors and plain data`; "
     "exit 2; the file is never created", "Do not use the file; ask for a checkpoint written by `cnnzoo train`.",
     "test_a_checkpoint_carrying_code_is_refused_by_every_loader"),
    ("pickle-best", "The same payload as a run's `best.pt`, met while resuming the run",
     "Not unpickled (weights_only); the run resumes and `best.pt` is rewritten from `last.pt` when its epoch is "
     "the best", "Nothing.", "test_a_poisoned_best_pt_is_never_run_while_resuming"),
    ("pickle-end-to-end", "The payload given to a fresh `python -m cnnzoo eval`",
     "Exit 2, one line, no file created", "Nothing.", "test_a_checkpoint_carrying_code_is_refused_end_to_end"),
    ("pickle-cache", "A poisoned decoded-data cache file (`~/.cache/cnnzoo/.../decoded-*.pt`)",
     "Not unpickled; decoded again from the IDX files and replaced", "Nothing.",
     "test_a_poisoned_decoded_cache_is_never_run"),
    ("pickle-source-scan", "Every `torch.load` in the source",
     "`weights_only=True` on each; no `pickle.load`, `weights_only=False`, `allow_pickle=True`, `eval` or `exec`",
     "-", "test_the_source_never_unpickles_anything_but_plain_data"),
    ("kill-loop", "SIGKILL at random moments of a training run (start-up, training, evaluation, checkpoint and "
     "plot writes, the final report), at least 20 times, also while resuming",
     "After every kill the run directory holds a loadable checkpoint, or none yet when the kill came before "
     "the first epoch ended (then `--resume` says to start the run again); `--resume` finishes the run; the final "
     "weights and `metrics.csv` equal an uninterrupted run's exactly (CPU)",
     "`cnnzoo train --resume RUN_DIR`; if it says the run stopped before its first checkpoint, run the original "
     "command again.", "test_sigkill_at_random_moments_never_loses_the_run"),
    ("kill-after-last-epoch", "A kill after the last epoch's checkpoint, before the metrics and the report",
     "`--resume` rewrites the missing metrics rows from the checkpoint, evaluates the final model and writes the "
     "report; the files equal an uninterrupted run's", "`cnnzoo train --resume RUN_DIR`.",
     "test_a_run_killed_after_its_last_epoch_resumes_to_write_its_report"),
    ("disk-full-checkpoint", "The disk fills while `last.pt` is written (inside `torch.save`, or at `fsync`)",
     "`error: cannot write RUN/last.pt: No space left on device; the previous last.pt is intact: free some disk "
     "space, then resume with --resume RUN`; exit 2; `last.pt` byte-identical to the previous epoch's, no "
     "temporary file left, metrics not ahead of it; `--resume` then finishes with the uninterrupted run's numbers",
     "Free some space, then `cnnzoo train --resume RUN_DIR`.",
     "test_a_full_disk_while_writing_a_checkpoint_keeps_the_previous_one"),
    ("disk-full-any-file", "Any file cnnzoo writes (checkpoints, metrics, plots, report, config, exports) on a "
     "full, read-only or forbidden disk", "`FileWriteError`, one line naming the file and the fix; the previous "
     "version intact; no temporary file left", "Free space or choose a writable place.",
     "test_atomic_writes_report_a_full_or_forbidden_disk_and_keep_the_old_file"),
    ("disk-full-cache", "The disk fills while the decoded dataset is cached", "Ignored: the cache is best effort; "
     "the data loads, and the next run decodes again", "Nothing (free space to get the cache back).",
     "test_a_full_disk_while_caching_the_decoded_dataset_is_ignored"),
    ("same-seed", "Two CPU runs with the same seed", "Identical `metrics.csv` except the wall-clock columns "
     "(`images_per_sec`, `train_seconds`, `eval_seconds`) and identical weights; another seed differs",
     "Pass `--seed N` to vary a run on purpose.", "test_the_same_seed_gives_the_same_metrics_on_cpu"),
    ("deterministic-flag", "`cnnzoo train --deterministic`", "Sets `torch.use_deterministic_algorithms(True, "
     "warn_only=True)`, `cudnn.deterministic`, no `cudnn.benchmark` and `CUBLAS_WORKSPACE_CONFIG`; recorded in "
     "config.json and the checkpoint; on CPU the numbers are the same as without it",
     "Use it on CUDA when you need run-to-run identical numbers and can pay the speed.",
     "test_deterministic_sets_pytorchs_flags_and_changes_nothing_on_cpu"),
    ("deterministic-cuda", "`--deterministic` twice on CUDA (runs only where a GPU is present)",
     "Identical metrics except wall-clock columns", "-", "test_deterministic_cuda_runs_repeat_exactly"),
]  # fmt: skip


def metrics_without_timing(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in csv.DictReader(f)]


def same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_checkpoint(a)["model_state"], load_checkpoint(b)["model_state"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ================================================================================================
# checkpoints are data, not code
# ================================================================================================
class CodeOnUnpickle:
    """Unpickling this calls ``func(*args)``: ``open(marker, "w")`` or ``os.system("touch marker")``."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def evil_checkpoint(path: Path, marker: Path, kind: str = "open") -> Path:
    """A file that looks like a cnnzoo checkpoint and would create ``marker`` if unpickled unsafely.

    ``open``/``system``: torch's zip format with the payload among real keys; ``pickle``: a bare pickle
    (protocol 4) calling ``os.system``.
    """
    if kind in ("system", "pickle"):
        payload = CodeOnUnpickle(os.system, (f"touch {marker}",))
    else:
        payload = CodeOnUnpickle(open, (str(marker), "w"))
    ckpt = {"format": FORMAT, "version": 1, "model_name": "lenet_bn", "model_kwargs": {}, "model_state": payload,
            "preprocess": {}, "config": {}, "train": {"epoch": 1}}  # fmt: skip
    if kind == "pickle":
        path.write_bytes(pickle.dumps(ckpt))
    else:
        torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("kind", ["open", "system", "pickle"])
def test_the_payload_really_runs_code_when_loaded_unsafely(tmp_path, kind):
    """The control: without weights_only the file *is* created, so the refusals below mean something."""
    marker = tmp_path / "code-ran"
    evil_checkpoint(tmp_path / "evil.pt", marker, kind)
    if kind == "pickle":
        pickle.loads((tmp_path / "evil.pt").read_bytes())
    else:
        torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def _photo(path: Path) -> Path:
    Image.fromarray(np.full((28, 28), 30, np.uint8)).save(path)
    return path


LOADERS = ["load_checkpoint", "eval", "predict", "train --resume", "export onnx", "export safetensors"]


@pytest.mark.parametrize("kind", ["open", "system", "pickle"])
@pytest.mark.parametrize("loader", LOADERS)
def test_a_checkpoint_carrying_code_is_refused_by_every_loader(loader, kind, tmp_path, capsys, fake_train_data):
    from cnnzoo.serve.export import export_checkpoint

    marker = tmp_path / "code-ran"
    run = tmp_path / "run"
    run.mkdir()
    ckpt = evil_checkpoint(run / "last.pt", marker, kind)
    if loader in ("load_checkpoint", "export onnx", "export safetensors"):
        with pytest.raises(CheckpointError) as info:
            if loader == "load_checkpoint":
                load_checkpoint(ckpt)
            else:
                export_checkpoint(ckpt, loader.split()[1], tmp_path / "out")
        message = str(info.value)
        assert not (tmp_path / "out").exists()
    else:
        argv = {"eval": ["eval", str(ckpt)], "predict": ["predict", str(ckpt), str(_photo(tmp_path / "p.png"))],
                "train --resume": ["train", "--resume", str(run)]}[loader]  # fmt: skip
        assert main(argv) == 2
        message = capsys.readouterr().err
        assert message.startswith("error: ") and message.count("\n") == 1
    assert "refused to load" in message and "weights_only=True" in message and "\n" not in message.strip()
    assert not marker.exists()


def test_a_poisoned_best_pt_is_never_run_while_resuming(trained_run, tmp_path, capsys, fake_train_data):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    marker = tmp_path / "code-ran"
    evil_checkpoint(run / "best.pt", marker)
    assert main(["train", "--resume", str(run), "--epochs", "4", "--quiet"]) == 0
    assert not marker.exists()
    load_checkpoint(run / "best.pt")  # whatever it holds now is a real checkpoint again


def test_a_checkpoint_carrying_code_is_refused_end_to_end(tmp_path):
    marker = tmp_path / "code-ran"
    evil_checkpoint(tmp_path / "evil.pt", marker, "pickle")  # torch would also warn about its protocol
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "cnnzoo", "eval", "evil.pt"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: evil.pt: refused to load")
    assert not marker.exists()


def test_a_poisoned_decoded_cache_is_never_run(fake_fashion):
    from cnnzoo.data import fashion_mnist as fm

    cached = cache_dir("fashion-mnist") / f"decoded-{fm._cache_key(fake_fashion.files)}.pt"
    cached.parent.mkdir(parents=True)
    marker = fake_fashion.directory / "code-ran"
    torch.save({"format": 1, "tensors": CodeOnUnpickle(open, (str(marker), "w"))}, cached)
    ds = fm.load_fashion_mnist(fake_fashion.directory, download=False)
    assert ds.train_images.shape == (60, 28, 28)
    assert not marker.exists()
    assert torch.load(cached, weights_only=True)["format"] == 1  # replaced by a good one


UNSAFE_CALLS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.load", "marshal.loads", "dill.load",
                "dill.loads", "cloudpickle.load", "cloudpickle.loads", "yaml.load", "eval", "exec",
                "torch.jit.load", "jit.load"}  # fmt: skip


def unsafe_loads(source: str, name: str = "<src>") -> list[str]:
    """Calls in ``source`` that could unpickle or run code from a file."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "load" for a in node.names):
            found.append(f"{name}:{node.lineno}: from torch import load")
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        keywords = {k.arg: k.value for k in node.keywords}
        where = f"{name}:{node.lineno}: {ast.unparse(node)[:80]}"
        if func in UNSAFE_CALLS:
            found.append(where)
        elif func.endswith("torch.load") or (func == "load" and "weights_only" in keywords):
            value = keywords.get("weights_only")
            if not (isinstance(value, ast.Constant) and value.value is True):
                found.append(where)
        else:
            allow_pickle, weights_only = keywords.get("allow_pickle"), keywords.get("weights_only")
            if (isinstance(allow_pickle, ast.Constant) and allow_pickle.value is True) or (
                isinstance(weights_only, ast.Constant) and weights_only.value is False
            ):
                found.append(where)
    return found


def test_the_source_never_unpickles_anything_but_plain_data():
    files = [*sorted((ROOT / "src" / "cnnzoo").rglob("*.py")), ROOT / "hubconf.py"]
    assert len(files) > 20
    found = [hit for f in files for hit in unsafe_loads(f.read_text(), str(f.relative_to(ROOT)))]
    assert found == []
    loads = sum(f.read_text().count("torch.load(") for f in files)
    assert loads >= 3  # checkpoint, fashion-mnist cache, folder cache: the scan saw them
    # the scanner itself finds what it looks for
    bad = "torch.load(p)\ntorch.load(p, weights_only=False)\npickle.loads(b)\nnp.load(p, allow_pickle=True)"
    assert len(unsafe_loads(bad)) == 4


# ================================================================================================
# crash safety
# ================================================================================================
class FullDisk:
    """Stands in for ``os`` and ``tempfile`` inside :mod:`cnnzoo.base.atomic`: from the ``nth`` write of a file
    named ``target`` on, the disk is full, either inside the writer (``stage="write"``: after 2 kB, within
    ``torch.save``) or when the file is fsync'ed (``stage="fsync"``)."""

    def __init__(self, target: str, nth: int, stage: str) -> None:
        self.target, self.nth, self.stage = target, nth, stage
        self.count = 0
        self.failing = False
        self.previous: bytes | None = None  # the target's bytes when the failing write began

    def mkstemp(self, **kw):
        fd, name = tempfile.mkstemp(**kw)
        tmp = Path(name)
        self.failing = False
        if tmp.name.startswith(f".{self.target}"):
            self.count += 1
            if self.count >= self.nth:
                self.failing = True
                real = tmp.parent / self.target
                self.previous = real.read_bytes() if real.exists() else None
        return fd, name

    def fdopen(self, fd, mode):
        f = os.fdopen(fd, mode)
        return _FillingFile(f) if self.failing and self.stage == "write" else f

    def fsync(self, fd):
        if self.failing and self.stage == "fsync":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.fsync(fd)

    def __getattr__(self, name):
        return getattr(os, name)


class _FillingFile:
    def __init__(self, f, room: int = 2048) -> None:
        self.f, self.room = f, room

    def write(self, data):
        data = bytes(data)
        if len(data) > self.room:
            self.f.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


def fill_disk(monkeypatch, disk: FullDisk) -> None:
    monkeypatch.setattr(atomic, "os", disk)
    monkeypatch.setattr(atomic, "tempfile", disk)


def free_disk(monkeypatch) -> None:
    monkeypatch.setattr(atomic, "os", os)
    monkeypatch.setattr(atomic, "tempfile", tempfile)


TINY = ["train", "tiny_test_net", "--epochs", "3", "--batch-size", "64", "--device", "cpu", "--quiet"]


@pytest.mark.parametrize("stage", ["write", "fsync"])
def test_a_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(
    stage, fake_train_data, test_models, tmp_path, monkeypatch, capsys
):
    reference = tmp_path / "reference"
    assert main([*TINY, "--out", str(reference)]) == 0
    out = tmp_path / "run"
    disk = FullDisk("last.pt", nth=2, stage=stage)  # epoch 1's last.pt is written, epoch 2's is not
    fill_disk(monkeypatch, disk)
    assert main([*TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: cannot write {out / 'last.pt'}: No space left on device; the previous last.pt is intact: "
        f"free some disk space, then resume with --resume {out}\n"
    )
    free_disk(monkeypatch)
    assert disk.previous is not None and (out / "last.pt").read_bytes() == disk.previous
    assert load_checkpoint(out / "last.pt")["train"]["epoch"] == 1
    assert load_checkpoint(out / "best.pt")["train"]["epoch"] == 1
    assert [r["epoch"] for r in read_metrics(out)] == [1]  # nothing ahead of the checkpoint
    assert json.loads((out / "config.json").read_text())["config"]["epochs"] == 3
    assert not list(out.glob(".*.tmp"))
    # space freed: the run resumes and ends exactly where an uninterrupted one does
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert metrics_without_timing(out) == metrics_without_timing(reference)
    assert same_weights(out / "last.pt", reference / "last.pt")
    assert {p.name for p in out.iterdir()} == RUN_FILES


def test_atomic_writes_report_a_full_or_forbidden_disk_and_keep_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.csv"
    atomic_write_text(target, "old\n")
    fill_disk(monkeypatch, FullDisk("metrics.csv", nth=1, stage="write"))
    with pytest.raises(FileWriteError) as info:
        atomic_write(target, lambda f: torch.save({"w": torch.zeros(10_000)}, f))  # torch makes it a RuntimeError
    free_disk(monkeypatch)
    error = info.value
    assert isinstance(error, OSError) and isinstance(error, CnnzooError) and error.errno == errno.ENOSPC
    assert str(error) == f"cannot write {target}: No space left on device; the previous metrics.csv is intact: " \
                         "free some disk space"  # fmt: skip
    assert target.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["metrics.csv"]

    def forbidden(**kw):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", forbidden)
    with pytest.raises(FileWriteError, match=r"new\.png: Permission denied; no new\.png was written: make the "):
        atomic_write_text(tmp_path / "new.png", "x")
    monkeypatch.undo()
    with pytest.raises(ZeroDivisionError):  # a bug in the writer stays a bug, with its traceback
        atomic_write(target, lambda f: 1 / 0)
    assert target.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["metrics.csv"]


def test_a_full_disk_while_caching_the_decoded_dataset_is_ignored(fake_fashion, monkeypatch):
    from cnnzoo.data import fashion_mnist as fm

    fill_disk(monkeypatch, FullDisk("decoded-", nth=1, stage="write"))
    ds = fm.load_fashion_mnist(fake_fashion.directory, download=False)
    assert ds.train_images.shape == (60, 28, 28)
    free_disk(monkeypatch)
    cache = cache_dir("fashion-mnist")
    assert not list(cache.glob("decoded-*.pt")) and not list(cache.glob(".*.tmp"))


def test_a_run_killed_after_its_last_epoch_resumes_to_write_its_report(trained_run, tmp_path, capsys, fake_train_data):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    # the state a kill leaves between the final last.pt and the rest: metrics one row short, no report
    history = load_checkpoint(run / "last.pt")["train"]["history"]
    from cnnzoo.train.history import HISTORY_KEYS
    from cnnzoo.train.metrics import write_metrics

    write_metrics(run, history[:-1], HISTORY_KEYS)
    for name in ("report.md", "confusion.png", "per_class.csv"):
        (run / name).unlink()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert {p.name for p in run.iterdir()} == RUN_FILES
    for name in ("metrics.csv", "metrics.jsonl", "per_class.csv"):
        assert (run / name).read_bytes() == (trained_run / name).read_bytes(), name
    assert "already finished 3 of 3" in _resume_error(run, capsys)  # and now it is finished


def _resume_error(run: Path, capsys) -> str:
    assert main(["train", "--resume", str(run)]) == 2
    return capsys.readouterr().err


# -- the kill loop ---------------------------------------------------------------------------------
EPOCHS = 3
KILL_TRAIN = ["train", "slow_test_net", "--epochs", str(EPOCHS), "--batch-size", "64", "--device", "cpu", "--quiet",
              "--threads", "1"]  # fmt: skip
KILLS = 24
# What a CLI run imports, so the forkserver's children need not: torch._dynamo alone (imported by the first
# optimizer) takes over a second, matplotlib's font manager (built on import) and renderer a few tenths.
_PRELOAD = ["helpers_train", "cnnzoo.cli", "cnnzoo.cli.train", "cnnzoo.train.checkpoint", "cnnzoo.train.loop",
            "cnnzoo.run", "cnnzoo.base.plots", "cnnzoo.run.report", "cnnzoo.models.inspection", "cnnzoo.models",
            "cnnzoo.data", "torch._dynamo", "matplotlib.font_manager", "matplotlib.backends.backend_agg"]  # fmt: skip


class Forker:
    """Starts CLI runs as children of a forkserver that has imported torch and cnnzoo already."""

    def __init__(self, root: Path) -> None:
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(_PRELOAD)
        self.root = root
        self.n = 0

    def run(self, argv: list[str], kill_after: float | None = None) -> tuple[int, str]:
        """Run ``cnnzoo argv`` in ``root``; SIGKILL it ``kill_after`` seconds after its start. Returns the
        exit code (``-SIGKILL`` when killed) and its output."""
        import helpers_train

        self.n += 1
        log = self.root / f"log-{self.n}.txt"
        p = self.ctx.Process(target=helpers_train.cli_in_forked_child, args=(argv, str(self.root), str(log)))
        p.start()
        p.join(timeout=kill_after if kill_after is not None else 120)
        if p.is_alive():
            p.kill() if kill_after is not None else p.terminate()
            p.join()
        return p.exitcode, log.read_text() if log.exists() else ""


def assert_recoverable(out: Path) -> int:
    """What a kill must leave: a loadable last.pt (and best.pt) with metrics never ahead of it, or no
    checkpoint yet and nothing that pretends otherwise. Returns the epochs the checkpoint holds (0: none)."""
    if not (out / "last.pt").exists():
        assert not (out / "metrics.jsonl").exists() and not (out / "best.pt").exists()
        return 0
    ckpt = load_checkpoint(out / "last.pt")
    model_from_checkpoint(ckpt)
    history = ckpt["train"]["history"]
    assert 1 <= ckpt["train"]["epoch"] == len(history) <= EPOCHS
    rows = read_metrics(out)
    assert len(history) - 1 <= len(rows) <= len(history)
    assert rows == history[: len(rows)]  # the metrics are the checkpoint's history, never ahead of it
    if (out / "best.pt").exists():
        model_from_checkpoint(load_checkpoint(out / "best.pt"))
    return len(history)


@pytest.mark.killloop
def test_sigkill_at_random_moments_never_loses_the_run(tmp_path, test_models):
    """Kill -9 a short run at random moments, check what it left, resume (killing some resumes too) until it
    finishes, compare with an uninterrupted run; repeat until at least :data:`KILLS` kills have landed."""
    forker = Forker(tmp_path)
    reference = tmp_path / "reference"
    forker.run(["train", "tiny_test_net", "--epochs", "1", "--quiet", "--out", str(tmp_path / "warm-up")])
    start = time.monotonic()
    status, log = forker.run([*KILL_TRAIN, "--out", str(reference)])
    duration = time.monotonic() - start
    assert status == 0, log
    rng = random.Random(6)
    kills = trials = before_first_checkpoint = 0
    while kills < KILLS:
        trials += 1
        assert trials <= 3 * KILLS, f"only {kills} kills landed in {trials} runs of {duration:.1f} s"
        out = tmp_path / f"run-{trials}"
        fresh = [*KILL_TRAIN, "--out", str(out)]
        # the first kill is certain to come before the first checkpoint (8 steps of >= 40 ms come first)
        status, log = forker.run(fresh, kill_after=rng.uniform(0.01, 0.25 if trials == 1 else duration))
        while status == -signal.SIGKILL:
            kills += 1
            done = assert_recoverable(out)
            if (out / "report.md").exists():  # the kill came after the run had written everything
                status, log = forker.run(["train", "--resume", str(out)])
                assert status == 2 and "already finished" in log, log
                status = 0
                break
            if not done:
                before_first_checkpoint += 1
                if out.exists():  # --resume says what to do, in one line
                    status, log = forker.run(["train", "--resume", str(out)])
                    assert status == 2 and log.count("\n") == 1, log
                    assert "start it again with the same command" in log or "not a cnnzoo run directory" in log
                argv = fresh
            else:
                argv = ["train", "--resume", str(out), "--quiet", "--threads", "1"]
            # most resumes are killed too, at a random moment of what is left of the run
            kill_again = rng.random() < 0.75 and kills < KILLS
            left = duration * (EPOCHS - done) / EPOCHS + 0.3  # + evaluation and the final report
            status, log = forker.run(argv, kill_after=rng.uniform(0.01, left) if kill_again else None)
        assert status == 0, log
        assert metrics_without_timing(out) == metrics_without_timing(reference)
        assert same_weights(out / "last.pt", reference / "last.pt")
        assert same_weights(out / "best.pt", reference / "best.pt")
        assert {p.name for p in out.iterdir()} == RUN_FILES  # every file there, no stray temporary file
        snapshots = sorted(p.name for p in (out / "snapshots").iterdir())  # every epoch's, none half-written
        assert snapshots == [f"epoch-{e:03d}.safetensors" for e in range(1, EPOCHS + 1)], snapshots
    print(f"{kills} kills in {trials} runs of {duration:.1f} s, {before_first_checkpoint} before the first checkpoint")
    assert before_first_checkpoint >= 1


# ================================================================================================
# determinism
# ================================================================================================
SEEDED = ["train", "tiny_test_net", "--epochs", "2", "--batch-size", "64", "--device", "cpu", "--quiet",
          "--augment", "flip+crop"]  # fmt: skip


@pytest.fixture
def restore_determinism_flags():
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             os.environ.get("CUBLAS_WORKSPACE_CONFIG"))  # fmt: skip
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
    if saved[4] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]


def test_the_same_seed_gives_the_same_metrics_on_cpu(fake_train_data, test_models, tmp_path):
    runs = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        runs[name] = tmp_path / name
        assert main([*SEEDED, "--seed", seed, "--out", str(runs[name])]) == 0
    assert metrics_without_timing(runs["a"]) == metrics_without_timing(runs["b"])
    assert same_weights(runs["a"] / "last.pt", runs["b"] / "last.pt")
    assert metrics_without_timing(runs["a"]) != metrics_without_timing(runs["c"])  # the seed does matter
    timing = [{k: r[k] for k in TIMING_KEYS} for r in read_metrics(runs["a"])]
    assert timing != [{k: r[k] for k in TIMING_KEYS} for r in read_metrics(runs["b"])]  # and these are clocks


def test_deterministic_sets_pytorchs_flags_and_changes_nothing_on_cpu(
    fake_train_data, test_models, tmp_path, restore_determinism_flags
):
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    plain, det = tmp_path / "plain", tmp_path / "det"
    assert main([*SEEDED, "--out", str(plain)]) == 0
    assert not torch.are_deterministic_algorithms_enabled()
    assert main([*SEEDED, "--deterministic", "--out", str(det)]) == 0
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert json.loads((det / "config.json").read_text())["config"]["deterministic"] is True
    assert load_checkpoint(det / "last.pt")["config"]["deterministic"] is True
    assert metrics_without_timing(det) == metrics_without_timing(plain)
    assert same_weights(det / "last.pt", plain / "last.pt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_deterministic_cuda_runs_repeat_exactly(fake_train_data, test_models, tmp_path, restore_determinism_flags):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        argv = ["train", "lenet_bn", "--epochs", "2", "--batch-size", "64", "--quiet", "--device", "cuda"]
        assert main([*argv, "--deterministic", "--out", str(run)]) == 0
    assert metrics_without_timing(runs[0]) == metrics_without_timing(runs[1])
