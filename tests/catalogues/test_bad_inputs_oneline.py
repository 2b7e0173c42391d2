"""The bad-input catalogue of issue 13 ("one line, always"): checkpoint fields of the wrong type or shape,
NaN weights, numeric flags out of range and a damaged metrics.jsonl, each answered with one line and exit 2.

Same format and checks as ``test_bad_inputs.py`` (exit 2, one ``error:`` line with every fragment, no
traceback, nothing in the scratch directory changed)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from test_bad_inputs import Case, _checkpoint_as, _copy_run, _files, _run_with, check_case

_EDITED = "Use the run's other checkpoint (best.pt) or train again; a checkpoint edited by hand cannot be loaded."


def _set(*keys: str, value: object) -> Callable[[dict], None]:
    """A change that sets ``ckpt[k1][k2]... = value``."""

    def change(ckpt: dict) -> None:
        target = ckpt
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _drop(*keys: str) -> Callable[[dict], None]:
    def change(ckpt: dict) -> None:
        target = ckpt
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


def _poison_weight(ckpt: dict) -> None:
    key = next(k for k, v in ckpt["model_state"].items() if v.is_floating_point())
    ckpt["model_state"][key] = ckpt["model_state"][key].clone()
    ckpt["model_state"][key].view(-1)[0] = math.nan


def _inf_weight(ckpt: dict) -> None:
    key = "net.4.weight" if "net.4.weight" in ckpt["model_state"] else sorted(ckpt["model_state"])[-1]
    ckpt["model_state"][key] = torch.full_like(ckpt["model_state"][key], math.inf)


def _reshape_weight(ckpt: dict) -> None:
    key = next(k for k, v in ckpt["model_state"].items() if v.dim() == 4)
    ckpt["model_state"][key] = torch.zeros(3, 3)


def _extra_weight(ckpt: dict) -> None:
    ckpt["model_state"]["extra.weight"] = torch.zeros(2)


def _missing_weight(ckpt: dict) -> None:
    ckpt["model_state"].pop(next(iter(ckpt["model_state"])))


def _history_row(ckpt: dict) -> None:
    ckpt["train"]["history"][0]["test_acc"] = "high"


def _optimizer_groups(ckpt: dict) -> None:
    ckpt["train"]["optimizer"]["param_groups"][0]["params"] = [0, 0, 7]


def _optimizer_shape(ckpt: dict) -> None:
    state = ckpt["train"]["optimizer"]["state"]
    key = next(iter(state))
    name = next(n for n, t in state[key].items() if isinstance(t, torch.Tensor) and t.dim() > 0)
    state[key][name] = torch.zeros(1, 2, 3)


def _metrics(text: str) -> Callable[[Path], None]:
    return lambda run: (run / "metrics.jsonl").write_text(text)


def _ck(case_id: str, what: str, cmd: str, change: Callable[[dict], None], expect: tuple[str, ...],
        todo: str = _EDITED) -> Case:  # fmt: skip
    name = cmd.split()[1] if cmd.split()[0] != "train" else "model.pt"
    return Case(case_id, "checkpoint fields", what, cmd, expect, todo, setup=_checkpoint_as(name, change), run=True)


def _resume(case_id: str, what: str, change: Callable[[dict], None], expect: tuple[str, ...]) -> Case:
    def edit(run: Path) -> None:
        from cnnzoo.train.checkpoint import load_checkpoint, save_checkpoint

        ckpt = load_checkpoint(run / "last.pt")
        ckpt.pop("path")
        change(ckpt)
        save_checkpoint(run / "last.pt", ckpt)
        (run / "report.md").unlink()  # not finished: --resume gets as far as the checkpoint

    return Case(case_id, "checkpoint fields", what, "train --resume run --epochs 5", expect, _EDITED,
                setup=_run_with(edit), run=True)  # fmt: skip


_BOMB = "[" * 100_000 + "]" * 100_000


def _board_row(**changes: object) -> bytes:
    """A leaderboard JSON of the repository's first row, with ``changes``."""
    doc = json.loads((Path(__file__).resolve().parents[2] / "benchmarks" / "leaderboard.json").read_text())
    return json.dumps({**doc, "rows": [{**doc["rows"][0], **changes}]}).encode()


def _lock_link(run: Path) -> None:
    (run.parent / "notes.txt").write_text("the user's notes\n")
    (run / ".lock").symlink_to(run.parent / "notes.txt")


CASES: list[Case] = [
    # -- checkpoint fields: eval, predict, export and --resume all go through load_checkpoint ---------------
    _ck("ckpt-config-not-dict", "`config` that is not a dict", "eval a.pt", _set("config", value=[1, 2]),
        ("a.pt: field config is a list", "use the run's other checkpoint")),
    _ck("ckpt-config-lr-str", "a config value of the wrong type (lr as text)", "eval a.pt",
        _set("config", "lr", value="0.1"), ("a.pt: field config", "--lr '0.1': must be a number")),
    _ck("ckpt-config-epochs-float", "a config value of the wrong type (epochs 2.5)", "predict a.pt photo.png",
        _set("config", "epochs", value=2.5), ("a.pt: field config", "--epochs 2.5: must be a whole number")),
    _ck("ckpt-config-unknown-key", "a config with a setting this cnnzoo does not know", "eval a.pt",
        _set("config", "turbo", value=True), ("a.pt: field config", "turbo")),
    _ck("ckpt-model-name-int", "`model_name` that is not a string", "eval a.pt", _set("model_name", value=7),
        ("a.pt: field model_name is a int, not a model name",)),
    _ck("ckpt-model-kwargs-list", "`model_kwargs` that is not a dict", "predict a.pt photo.png",
        _set("model_kwargs", value=["width"]), ("a.pt: field model_kwargs is a list",)),
    _ck("ckpt-model-kwargs-unknown", "`model_kwargs` with an argument the model does not take", "eval a.pt",
        _set("model_kwargs", "depth", value=3), ("a.pt", "model 'lenet_bn' no longer accepts its saved arguments"),
        "Use the checkpoint the run wrote."),
    _ck("ckpt-num-classes-str", "`model_kwargs['num_classes']` as text", "eval a.pt",
        _set("model_kwargs", "num_classes", value="10"), ("a.pt: field model_kwargs['num_classes'] is '10'",)),
    _ck("ckpt-state-not-dict", "`model_state` that is not a dict", "eval a.pt", _set("model_state", value=3),
        ("a.pt: field model_state is a int, not a dict of weight tensors",)),
    _ck("ckpt-state-not-tensor", "a weight that is not a tensor", "predict a.pt photo.png",
        lambda c: c["model_state"].update({next(iter(c["model_state"])): [1.0, 2.0]}),
        ("a.pt: field model_state[", "is a list, not a tensor")),
    _ck("ckpt-state-missing-key", "a weight missing", "eval a.pt", _missing_weight,
        ("weights do not fit model 'lenet_bn'", "missing key(s) in field model_state")),
    _ck("ckpt-state-extra-key", "a weight too many", "predict a.pt photo.png", _extra_weight,
        ("weights do not fit model 'lenet_bn'", "unexpected key(s) in field model_state: extra.weight")),
    _ck("ckpt-state-wrong-shape", "a weight of the wrong shape", "eval a.pt", _reshape_weight,
        ("weights do not fit model 'lenet_bn'", "has shape [3, 3], the model needs")),
    _ck("ckpt-nan-weights-eval", "NaN weights (`eval`)", "eval a.pt", _poison_weight,
        ("a.pt: weight", "NaN or infinite value", "use an earlier checkpoint"),
        "Use best.pt or an earlier run; train again with a lower --lr."),
    _ck("ckpt-inf-weights-predict", "infinite weights (`predict`)", "predict a.pt photo.png", _inf_weight,
        ("a.pt: weight", "NaN or infinite value"), "Use best.pt or an earlier run."),
    _ck("ckpt-nan-weights-export", "NaN weights (`export`)", "export a.pt --format safetensors --output w.st",
        _poison_weight, ("a.pt: weight", "NaN or infinite value"), "Use best.pt or an earlier run."),
    _ck("ckpt-classes-not-str", "`preprocess.classes` not a list of names", "predict a.pt photo.png",
        _set("preprocess", "classes", value=[1, 2, 3]), ("a.pt: field preprocess.classes is not a list of class "
                                                          "names",)),
    _ck("ckpt-classes-count", "`preprocess.classes` with fewer names than outputs", "eval a.pt",
        _set("preprocess", "classes", value=["a", "b", "c"]), ("field preprocess.classes has 3 names, but the model "
                                                                "has 10 outputs",)),
    _ck("ckpt-mean-length", "`preprocess.mean` of the wrong length", "predict a.pt photo.png",
        _set("preprocess", "mean", value=[0.5, 0.5, 0.5]), ("field preprocess.mean has 3 values for 1 channel",)),
    _ck("ckpt-std-nan", "`preprocess.std` NaN", "predict a.pt photo.png",
        lambda c: c["preprocess"].update(mean=[0.3], std=[math.nan]), ("field preprocess.std is [nan]",)),
    _ck("ckpt-input-size-str", "`preprocess.input_size` not a whole number", "predict a.pt photo.png",
        _set("preprocess", "input_size", value="28"), ("field preprocess.input_size is '28'",)),
    _ck("ckpt-input-size-huge", "`preprocess.input_size` out of range", "predict a.pt photo.png",
        _set("preprocess", "input_size", value=10**9), ("field preprocess.input_size is 1000000000",)),
    _ck("ckpt-input-size-model", "`preprocess.input_size` the model cannot take", "export a.pt --format "
        "safetensors --output w.st", _set("preprocess", "input_size", value=200),
        ("field preprocess.input_size does not suit the model",)),
    _ck("ckpt-in-channels", "`preprocess.in_channels` disagreeing with the model", "predict a.pt photo.png",
        _set("preprocess", "in_channels", value=3), ("field preprocess.in_channels is 3, but the model takes 1",)),
    _ck("ckpt-preprocess-missing", "`preprocess` without its input size", "eval a.pt",
        _drop("preprocess", "input_size"), ("field preprocess lacks input_size",)),
    _ck("ckpt-epoch-negative", "`train.epoch` negative", "eval a.pt", _set("train", "epoch", value=-1),
        ("field train.epoch is -1, not a count of completed epochs",)),
    _ck("ckpt-epoch-float", "`train.epoch` not a whole number", "predict a.pt photo.png",
        _set("train", "epoch", value=2.0), ("field train.epoch is 2.0",)),
    _ck("ckpt-history-row", "a history row with a value that is not a number", "eval a.pt", _history_row,
        ("field train.history[0].test_acc is 'high', not a number",)),
    _ck("ckpt-history-length", "a history that does not match the epochs", "eval a.pt",
        lambda c: c["train"]["history"].pop(), ("field train.history has 2 rows for 3 completed epochs",)),
    _ck("ckpt-optimizer-groups", "optimizer parameter groups that do not number the parameters", "eval a.pt",
        _optimizer_groups, ("field train.optimizer.param_groups does not number the parameters",)),
    _resume("ckpt-resume-optimizer-shape", "`--resume` with an optimizer state of the wrong shape",
            _optimizer_shape, ("last.pt: field train.optimizer.state[", "has shape [1, 2, 3]")),
    _resume("ckpt-resume-nan-weights", "`--resume` of NaN weights", _poison_weight,
            ("last.pt: weight", "NaN or infinite value")),
    _resume("ckpt-resume-config-type", "`--resume` of a config value of the wrong type",
            _set("config", "batch_size", value="64"), ("last.pt: field config", "--batch-size '64'")),
    _resume("ckpt-resume-rng", "`--resume` of a damaged random-number state", _set("train", "rng", value=None),
            ("last.pt: field train.rng is not a set of random-number-generator states",)),
    # -- numeric flags ------------------------------------------------------------------------------------
    Case("lr-overflows", "numbers", "a finite learning rate so large every update overflows", "train lenet_bn "
         "--lr 1e308", ("--lr 1e+308: is above 1e+30",), "Give a learning rate such as 0.05."),
    Case("seed-too-big", "numbers", "a seed above 64 bits", f"train lenet_bn --seed {2**70}",
         ("--seed 1180591620717411303424: a seed must be between 0 and 2**63-1",), "Give a seed such as 0."),
    Case("seed-negative", "numbers", "a negative seed", "train lenet_bn --seed -1",
         ("--seed -1: a seed must be between 0 and 2**63-1",), "Give a seed such as 0."),
    Case("warmup-nan", "numbers", "warm-up NaN", "train lenet_bn --schedule cosine --warmup nan",
         ("--warmup nan: must be a finite number",), "Give a warm-up in epochs, e.g. 1."),
    Case("momentum-nan", "numbers", "momentum NaN", "train lenet_bn --optimizer momentum --momentum nan",
         ("--momentum nan: must be a finite number",), "Give a momentum in [0, 1), e.g. 0.9."),
    Case("label-smoothing-nan", "numbers", "label smoothing NaN", "train lenet_bn --label-smoothing nan",
         ("--label-smoothing nan: must be a finite number",), "Give a value in [0, 1), e.g. 0.1."),
    Case("weight-decay-inf", "numbers", "infinite weight decay", "train lenet_bn --weight-decay inf",
         ("--weight-decay inf: must be a finite number",), "Give a small weight decay, e.g. 5e-4."),
    Case("crop-padding-too-big", "numbers", "a crop padding as large as the image", "train lenet_bn --augment "
         "crop --crop-padding 100", ("--crop-padding 100: is not smaller than the 28x28 input",),
         "Give a padding of a few pixels, e.g. 2."),
    Case("epochs-huge", "numbers", "a billion epochs", f"train lenet_bn --epochs {10**9}",
         ("--epochs 1000000000: is more than the 100,000 cnnzoo allows",), "Give a sane number of epochs."),
    Case("batch-size-huge", "numbers", "a batch size of a billion", f"train lenet_bn --batch-size {10**9}",
         ("--batch-size 1000000000: is more than the 1,048,576 cnnzoo allows",), "Give a batch size such as 128."),
    Case("threads-huge", "numbers", "a million CPU threads", "train lenet_bn --threads 1000000",
         ("--threads 1000000: more than 4096 threads",), "Leave --threads out (the free cores)."),
    Case("input-size-huge", "numbers", "an input side of a million pixels", "train resnet18 --input-size 1000000",
         ("--input-size 1000000: is more than 4096 pixels",), "Give a smaller --input-size."),
    Case("dist-timeout-zero", "numbers", "a data-parallel timeout of zero", "train lenet_bn --dist-timeout 0",
         ("--dist-timeout 0.0: give seconds above 0",), "Give seconds, e.g. 1800."),
    Case("dist-timeout-nan", "numbers", "a data-parallel timeout NaN", "train lenet_bn --dist-timeout nan",
         ("--dist-timeout nan: give seconds above 0",), "Give seconds, e.g. 1800."),
    # -- a damaged metrics.jsonl -----------------------------------------------------------------------------
    Case("metrics-invalid-json", "metrics", "`plot` of a run whose metrics.jsonl has a line that is not JSON",
         "plot run", ("metrics.jsonl: line 2 is not valid JSON", "restore the file"),
         "Restore the file (or delete the damaged line).", setup=_run_with(_metrics('{"epoch": 1, "test_acc": 0.5}\n'
                                                                                    '{"epoch": 2, "te\n')), run=True),
    Case("metrics-missing-key", "metrics", "`plot` of a metrics.jsonl row without test_acc", "plot run",
         ("metrics.jsonl: line 1 lacks test_acc",), "Restore the file.",
         setup=_run_with(_metrics('{"epoch": 1, "train_loss": 0.5}\n')), run=True),
    Case("metrics-not-number", "metrics", "`plot` of a metrics.jsonl value that is not a number", "plot run",
         ("metrics.jsonl: line 1: test_acc is 'good', not a number",), "Restore the file.",
         setup=_run_with(_metrics('{"epoch": 1, "test_acc": "good"}\n')), run=True),
    Case("metrics-not-object", "metrics", "`plot` of a metrics.jsonl line that is a list", "plot run",
         ("metrics.jsonl: line 1 is a list, not an object of metrics",), "Restore the file.",
         setup=_run_with(_metrics("[1, 2]\n")), run=True),
    Case("metrics-binary", "metrics", "`plot` of a metrics.jsonl that is not text", "plot run",
         ("metrics.jsonl: cannot read it",), "Restore the file.",
         setup=_run_with(lambda r: (r / "metrics.jsonl").write_bytes(b"\xff\xfe\x00garbage")), run=True),
    Case("metrics-nesting-bomb", "metrics", "`plot` of a metrics.jsonl line nested 100,000 deep (Python's parser "
         "would raise RecursionError)", "plot run", ("metrics.jsonl: line 1 is not valid JSON (JSON nested more "
         "than 64 levels deep",), "Restore the file.", setup=_run_with(_metrics(_BOMB + "\n")), run=True),
    # -- issue 21: files cnnzoo reads that a hand, or a hostile program, made ----------------------------------
    Case("leaderboard-bomb", "hostile files", "`leaderboard --redraw` of a leaderboard JSON nested 100,000 deep",
         "leaderboard --redraw --output board.md", ("cannot read board.json (board.json: JSON nested more than 64",),
         "Restore the file, or move it away.", setup=_files(board_DOT_json=_BOMB.encode())),
    Case("leaderboard-row-type", "hostile files", "`leaderboard --redraw` of a row whose MACs are text",
         "leaderboard --redraw --output board.md", ("board.json: row 1: macs is 'many', not a positive whole number",),
         "Fix the row, or move the file away.", setup=_files(board_DOT_json=lambda: _board_row(macs="many"))),
    Case("leaderboard-run-type", "hostile files", "`leaderboard --redraw` of a run without its epochs",
         "leaderboard --redraw --output board.md", ("board.json: row 1: run 1: epochs is 'None'",),
         "Fix the row, or move the file away.", setup=_files(board_DOT_json=lambda: _board_row(runs=[{"seed": 0}]))),
    Case("output-json-bomb", "hostile files", "`bench --json` onto a file nested 100,000 deep",
         "bench lenet --json out.json", ("--json out.json exists and is not a JSON file cnnzoo wrote",),
         "Choose another path, or pass --force.", setup=_files(out_DOT_json=_BOMB.encode())),
    Case("predict-empty-path", "empty names", "`predict` of an empty picture path (an unset variable: it would "
         "mean the working directory)", "predict lenet_bn.fashion_mnist ''",
         ("a picture's path is empty (an unset variable?)",), "Give an image file or a directory."),
    Case("explain-empty-out", "empty names", "`explain --out ''` (it would write into the working directory)",
         "explain lenet_bn.fashion_mnist --top-losses --out ''", ("--out is empty (an unset variable?)",),
         "Give a directory for the figures."),
    Case("data-root-empty", "empty names", "`eval --data-root ''` (it would look for the dataset in the working "
         "directory)", "eval lenet_bn.fashion_mnist --data-root ''", ("--data-root is empty (an unset variable?)",),
         "Give the directory with the dataset's files, or leave the flag out."),
    Case("studio-empty-root", "empty names", "`studio ''` (it would serve the working directory)", "studio ''",
         ("the studio's root is empty (an unset variable?)",), "Give a run directory or a directory of runs."),
    # -- issue 21: special files, odd targets, a run's own files ------------------------------------------
    Case("lock-symlink", "special files", "a run whose `.lock` is a symbolic link to a user's file (it was "
         "truncated)", "train --resume run --epochs 5", (".lock is a symbolic link, not cnnzoo's lock file",),
         "Remove the link: cnnzoo makes its own lock.", setup=_run_with(_lock_link), run=True),
    Case("target-superscript", "targets", "`explain --target ²` (a digit Python's int() refuses)",
         "explain lenet_bn.fashion_mnist x.png --target ²", ("--target '²' is not a class of this model",),
         "Give a class name or an index 0-9."),
    Case("weight-misspelled", "weights", "a misspelled weight name", "predict lenet_bn.fashion_mnst x.png",
         ("no weight named 'lenet_bn.fashion_mnst': did you mean lenet_bn.fashion_mnist",),
         "Use the name `cnnzoo weights` lists."),
    Case("resume-fewer-epochs", "runs", "`--resume` with fewer epochs than the run has done",
         "train --resume run --epochs 1", ("--epochs 1 is fewer than the 3 epochs",),
         "Give the total number of epochs.", setup=_run_with(lambda r: (r / "report.md").unlink()), run=True),
]  # fmt: skip


_ = _copy_run, _files  # the shared helpers this catalogue may use


def test_the_catalogue_is_large_and_well_formed():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 25
    assert all(c.expect and all(c.expect) and c.todo.endswith(".") for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line(case, request, tmp_path, monkeypatch, capsys):
    check_case(case, request, tmp_path, monkeypatch, capsys)


# ------------------------------------------------------------------------------------------------
# issue 21's leftovers: odd targets, a FIFO checkpoint, a damaged config.json, --epochs below the epochs done
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["²", "9" * 5000, "-1", "10", "٣", " "])
def test_an_odd_target_is_one_line(target):
    from cnnzoo.base.errors import ConfigError
    from cnnzoo.explain.files import class_index

    with pytest.raises(ConfigError, match="is not a class of this model"):
        class_index(target, [f"c{i}" for i in range(10)])
    assert class_index("3", [f"c{i}" for i in range(10)]) == 3 and class_index("c7", [f"c{i}" for i in range(10)]) == 7


def test_a_fifo_as_a_checkpoint_is_refused_at_once(tmp_path, capsys):

    from cnnzoo.cli import main

    fifo = tmp_path / "last.pt"
    os.mkfifo(fifo)
    for argv in (["eval", str(fifo)], ["predict", str(fifo), "x.png"], ["export", str(fifo)]):
        assert main(argv) == 2
        assert "is not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["[1, 2]", '{"resumed": "x", "started": 7, "nested": ' + "[" * 50_000])
def test_resuming_a_run_with_a_damaged_config_json_still_resumes(damage, trained_run, tmp_path, capsys):
    import shutil

    from cnnzoo.cli import main

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "config.json").write_text(damage)
    assert main(["train", "--resume", str(run), "--epochs", "4", "--quiet"]) == 0
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["epochs"] == 4 and isinstance(record["resumed"], list)


def test_resuming_with_fewer_epochs_than_done_is_refused(trained_run, tmp_path, capsys):
    import shutil

    from cnnzoo.cli import main

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "report.md").unlink()
    before = (run / "config.json").read_text()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 2
    assert "--epochs 2 is fewer than the 3 epochs" in capsys.readouterr().err
    assert (run / "config.json").read_text() == before
