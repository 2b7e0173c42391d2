"""The bad-output catalogue (issue 13): every way a command could write over something of the user's, as a
table in the format of ``test_bad_inputs.py``. Each case must end in one ``error:`` line, exit status 2 and
an unchanged scratch directory."""

from __future__ import annotations

import importlib.util
import json

import pytest
from test_bad_inputs import Case, _both, _copy_run, _files, _png_bytes, check_case

from cnnzoo.base.rundirs import RunLock
from cnnzoo.cli import main

_HELD: list[RunLock] = []  # locks this test process holds, as a training process would


def _locked_run(d, run) -> None:
    _copy_run(d, run)
    _HELD.append(RunLock(d / "run").acquire())


def _leaderboard_of_two_seeds(d, run) -> None:
    argv = ["leaderboard", "lenet_bn", "--seeds", "0", "1", "--epochs", "1", "--batch-size", "32", "--lr", "0.1"]
    assert main([*argv, "--device", "cpu", "--quiet", "--output", str(d / "lb.md")]) == 0


def _no_export_extra() -> str | None:
    return None if importlib.util.find_spec("safetensors") else "needs the export extra"


_USER_JSON = json.dumps({"my": "results"}).encode()
_NOT_OURS = "exists and is not"
_FORCE = "or pass --force to replace it"

CASES: list[Case] = [
    # -- new run directories ---------------------------------------------------------------------
    Case("out-empty", "run directory", '`--out ""` (an unset variable)', 'train lenet_bn --out ""',
         ('--out "" is empty', "give a directory for the run"), "Give --out a directory, or leave it out."),
    Case("out-foreign-directory", "run directory", "--out a non-empty directory that is not a run",
         "train lenet_bn --out mine", ("--out mine is not empty and is not a cnnzoo run", "notes.txt",
                                       "choose another directory or empty it"),
         "Choose a new or empty directory.", setup=_files(mine__notes_DOT_txt=b"my notes")),
    Case("out-foreign-config", "run directory", "--out a directory with a config.json that is not a run's",
         "train lenet_bn --out mine", ("is not a cnnzoo run", "choose another directory or empty it"),
         "Choose a new or empty directory.", setup=_files(mine__config_DOT_json=_USER_JSON)),
    Case("out-locked", "run directory", "--out a run another process is training", "train lenet_bn --out run",
         ("run is being trained by process", "wait for it to finish or stop it"),
         "Wait for the other training, or stop it.", setup=_locked_run, run=True),
    Case("resume-locked", "run directory", "--resume a run another process is training",
         "train --resume run --epochs 5", ("run is being trained by process", "wait for it to finish or stop it"),
         "Wait for the other training, or stop it.", setup=_locked_run, run=True),
    # -- eval, plot, export ------------------------------------------------------------------------
    Case("eval-png-onto-checkpoint", "output files", "`eval --png` onto the run's last.pt",
         "eval run --png run/last.pt", ("--png run/last.pt is", "choose another path"),
         "Give the figure a new .png name.", setup=_copy_run, run=True),
    Case("eval-png-onto-best-checkpoint", "output files", "`eval --png` onto best.pt, with --force",
         "eval run --png run/best.pt --force", ("--png run/best.pt is a checkpoint",),
         "Give the figure a new .png name (--force never replaces a checkpoint).", setup=_copy_run, run=True),
    Case("eval-png-onto-user-png", "output files", "`eval --png` onto a user's picture",
         "eval run --png photo.png", ("--png photo.png", _NOT_OURS, _FORCE), "Choose another name, or --force.",
         setup=_both(_copy_run, _files(photo_DOT_png=_png_bytes)), run=True),
    Case("eval-png-onto-directory", "output files", "`eval --png` onto a directory", "eval run --png run",
         ("--png run is a directory",), "Give a file name.", setup=_copy_run, run=True),
    Case("eval-png-empty", "output files", '`eval --png ""`', 'eval run --png ""', ("--png is empty",),
         "Give a file name, or leave --png out.", setup=_copy_run, run=True),
    Case("plot-out-onto-user-png", "output files", "`plot --out` onto a user's picture",
         "plot run --out photo.png", ("--out photo.png", _NOT_OURS, _FORCE), "Choose another name, or --force.",
         setup=_both(_copy_run, _files(photo_DOT_png=_png_bytes)), run=True),
    Case("plot-out-onto-checkpoint", "output files", "`plot --out` onto a checkpoint",
         "plot run --out run/last.pt --force", ("is a checkpoint",), "Give the figure a new .png name.",
         setup=_copy_run, run=True),
    Case("export-onto-foreign-file", "output files", "`export --output` onto a file cnnzoo did not export",
         "export run --format safetensors --output model.safetensors",
         ("--output model.safetensors", _NOT_OURS, _FORCE), "Choose another name, or --force.",
         setup=_both(_copy_run, _files(model_DOT_safetensors=b"someone else's weights")), run=True,
         skip=_no_export_extra),
    # -- bench --------------------------------------------------------------------------------------
    Case("bench-json-onto-user-file", "output files", "`bench --json` onto a user's JSON",
         "bench lenet --json results.json", ("--json results.json", _NOT_OURS, _FORCE),
         "Choose another name, or --force.", setup=_files(results_DOT_json=_USER_JSON)),
    Case("bench-csv-onto-user-file", "output files", "`bench --csv` onto a user's table",
         "bench lenet --csv table.csv", ("--csv table.csv", _NOT_OURS), "Choose another name, or --force.",
         setup=_files(table_DOT_csv=b"name,score\nme,1\n")),
    Case("bench-markdown-onto-user-file", "output files", "`bench --markdown` onto a user's page",
         "bench lenet --markdown README.md", ("--markdown README.md", _NOT_OURS), "Choose another name, or --force.",
         setup=_files(README_DOT_md=b"# my project\n")),
    Case("bench-chart-beside-onto-user-png", "output files", "`bench --json` whose chart would replace a picture",
         "bench lenet --json new.json", ("--png new.png", _NOT_OURS), "Give --png another name, or --force.",
         setup=_files(new_DOT_png=_png_bytes)),
    # -- leaderboard --------------------------------------------------------------------------------
    Case("leaderboard-onto-user-markdown", "output files", "`leaderboard --output` onto a user's page",
         "leaderboard lenet_bn --output notes.md", ("--output notes.md", _NOT_OURS, _FORCE),
         "Choose another .md name, or --force.", setup=_files(notes_DOT_md=b"# my notes\n")),
    Case("leaderboard-redraw-onto-user-png", "output files", "`leaderboard --redraw` onto a user's picture",
         "leaderboard --redraw --output notes.md", ("--output's figure notes.png", _NOT_OURS),
         "Choose another .md name, or --force.", setup=_files(notes_DOT_png=_png_bytes)),
    Case("leaderboard-json-not-a-leaderboard", "output files", "`leaderboard --output` beside a foreign JSON",
         "leaderboard --redraw --output notes.md", ("notes.json is not a cnnzoo leaderboard",),
         "Move the JSON away or choose another --output.", setup=_files(notes_DOT_json=_USER_JSON)),
    Case("leaderboard-smaller-row", "leaderboard", "a rerun over fewer seeds than the row it would replace",
         "leaderboard lenet_bn --seeds 0 --epochs 1 --batch-size 32 --lr 0.1 --device cpu --quiet --output lb.md",
         ("lb.json has lenet_bn@28", "over 2 seeds, this run over 1", "pass --replace to replace it"),
         "Run at least as many seeds, or pass --replace.", setup=_leaderboard_of_two_seeds),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_output_is_one_line_exit_2_and_changes_nothing(case, request, tmp_path, monkeypatch, capsys):
    try:
        check_case(case, request, tmp_path, monkeypatch, capsys)
    finally:
        while _HELD:
            _HELD.pop().release()


def test_the_catalogue_is_well_formed():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 15
    for c in CASES:
        assert c.expect and all(c.expect) and c.todo.endswith("."), c.id
