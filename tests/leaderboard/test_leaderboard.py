"""`cnnzoo leaderboard`: rows with real numbers from real (tiny) runs, the reference figures, the files, merging on
rerun, the time budget, model specs with kwargs and sizes, and one-line errors with exit status 2 (the files
alone, from made-up rows: tests/leaderboard/test_board.py)."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch

import helpers_train
from cnnzoo import create_model
from cnnzoo.cli import build_parser, main
from cnnzoo.leaderboard import board
from cnnzoo.leaderboard import plan as lb
from cnnzoo.models.inspection import count_macs

PNG = b"\x89PNG\r\n\x1a\n"
# Small and learnable: lenet_bn reaches ~1.0 on 256 block images in one epoch of batch 8 at lr 0.1.
TINY = {"epochs": 1, "batch_size": 8, "lr": 0.1, "device": "cpu"}
TINY_FLAGS = ["--epochs", "1", "--batch-size", "8", "--lr", "0.1", "--device", "cpu", "--quiet"]
NUMBER_ROW = re.compile(
    r"^\| \d+ \| (?P<model>\S+) \| (?P<side>\d+)x\d+ \| [\d,]+ \| [\d.]+[KMG]? \| (?P<recipe>\w+) \| "
    r"(?P<budget>[^|]+) \| (?P<epochs>[^|]+) \| (?P<seeds>[\d ]+) \| (?P<acc>[01]\.\d{4})(?: ± (?P<std>\d\.\d{4}))? \| "
    r"[01]\.\d{4} \| [\d.,]+ s \| [\d,]+ \| cpu \(\d+ threads\), fp32 \| \[\d+\] \|",
    re.M,
)


@pytest.fixture(autouse=True)
def quick_and_single_threaded(monkeypatch):
    """The budget probe times 2 s at least on real data; a few steps are plenty for 256 images. One intra-op
    thread: these networks are too small to gain from two, and two spin-wait for a core when the CPU is busy."""
    monkeypatch.setattr(lb, "PROBE_SECONDS", 0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fmnist_blocks():
    """The blocks data under Fashion-MNIST's name, so the reference columns are drawn (256 + 128 images: quick)."""
    return dataclasses.replace(helpers_train.blocks_dataset(256, 128), name="fashion-mnist")


@pytest.fixture
def fake_fmnist(monkeypatch, fmnist_blocks):
    import cnnzoo.data

    monkeypatch.setattr(cnnzoo.data, "load_fashion_mnist", lambda root=None, download=True: fmnist_blocks)
    return fmnist_blocks


def rows_by_model(md_text: str) -> dict[tuple[str, str, str], re.Match]:
    return {(m["model"], m["side"], m["recipe"]): m for m in NUMBER_ROW.finditer(md_text)}


def test_library_trains_every_seed_and_writes_table_figure_and_json(fmnist_blocks, tmp_path):
    lines: list[str] = []
    rows = lb.run_leaderboard(["lenet_bn", "lenet"], fmnist_blocks, seeds=[0, 1], overrides=TINY, log=lines.append)
    assert [r["model"] for r in rows] == ["lenet_bn", "lenet"]
    bn = rows[0]
    assert bn["params"] == 44_878 and bn["macs"] > 200_000 and bn["input_size"] == 28
    assert [r["seed"] for r in bn["runs"]] == [0, 1] and all(r["epochs"] == 1 for r in bn["runs"])
    assert bn["test_acc_mean"] >= 0.9  # it really trained: the blocks are learnable in an epoch
    assert bn["test_acc_best"] == max(r["test_acc"] for r in bn["runs"])
    assert bn["test_acc_std"] is not None and bn["test_acc_std"] >= 0
    assert bn["train_seconds_mean"] > 0 and bn["images_per_sec_mean"] > 0 and bn["device"].startswith("cpu")
    assert bn["provenance"]["torch"] and bn["provenance"]["machine"] and bn["provenance"]["date"]
    assert any("seed 1: test acc" in line for line in lines) and any("s per epoch" in line for line in lines)

    md, js, png, merged = board.update_leaderboard(tmp_path / "lb.md", rows)
    assert png.read_bytes()[:8] == PNG and len(json.loads(js.read_text())["rows"]) == 2 == len(merged)
    text = md.read_text()
    table = rows_by_model(text)
    assert set(table) == {("lenet_bn", "28", "fast"), ("lenet", "28", "fast")}
    assert float(table["lenet_bn", "28", "fast"]["acc"]) == pytest.approx(bn["test_acc_mean"], abs=6e-5)
    assert table["lenet_bn", "28", "fast"]["seeds"] == "0 1" and table["lenet_bn", "28", "fast"]["std"]
    assert "| 0.830 (d2l) | – |" in text  # the book's LeNet-BN figure; no public LeNet figure
    assert "– (d2l: plot only)" in text  # LeNet: the book shows a plot, no number
    for figure in ("ResNet18 | normalisation", "| 0.949 |", "| 0.937 |", "| 0.935 |", "| 0.899 |", "| 0.954 |"):
        assert figure in text
    assert "WRN40-4, 8.9M parameters" in text and "| 0.967 |" in text
    assert "not ours" in text and "zalandoresearch/fashion-mnist" in text
    assert "d2l (the book's printed train_ch6 result)" in text
    assert re.search(r"^1\. `\(library call.*torch \S+.*device: cpu", text, re.M)


def test_cli_reruns_merge_rows_and_redraw_regenerates_the_page(fake_fmnist, tmp_path, capsys):
    md = tmp_path / "bench" / "leaderboard.md"
    assert main(["leaderboard", "lenet_bn", "--seeds", "0", "1", *TINY_FLAGS, "--output", str(md)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^lenet_bn@28: test acc [01]\.\d{4} ± \d\.\d{4} \(best [01]\.\d{4}\) over 2 seed", out, re.M)
    first = rows_by_model(md.read_text())
    assert list(first) == [("lenet_bn", "28", "fast")]
    assert md.with_suffix(".png").read_bytes()[:8] == PNG

    # another size and another recipe: a new row beside the first; the same key again: replaced, not duplicated
    assert (
        main(["leaderboard", "lenet_bn@30", "--recipe", "d2l", "--seeds", "3", *TINY_FLAGS, "--output", str(md)]) == 0
    )
    assert (
        main(["leaderboard", "lenet_bn@30", "--recipe", "d2l", "--seeds", "5", *TINY_FLAGS, "--output", str(md)]) == 0
    )
    doc = json.loads(md.with_suffix(".json").read_text())
    keys = sorted((r["model"], r["input_size"], r["recipe"], r["seeds"]) for r in doc["rows"])
    assert keys == [("lenet_bn", 28, "fast", [0, 1]), ("lenet_bn", 30, "d2l", [5])]
    text = md.read_text()
    table = rows_by_model(text)
    assert set(table) == {("lenet_bn", "28", "fast"), ("lenet_bn", "30", "d2l")}
    assert table["lenet_bn", "30", "d2l"]["std"] is None  # one seed: no spread to show
    assert "`cnnzoo leaderboard lenet_bn@30 --recipe d2l --seeds 5 --epochs 1 --batch-size 8 --lr 0.1" in text
    assert len(re.findall(r"^\d+\. `cnnzoo leaderboard", text, re.M)) == 2  # the replaced run's record is gone

    md.unlink()
    md.with_suffix(".png").unlink()
    capsys.readouterr()
    assert main(["leaderboard", "--redraw", "--output", str(md)]) == 0
    assert md.read_text() == text and md.with_suffix(".png").exists()
    assert "from the 2 rows of" in capsys.readouterr().out


def test_budget_picks_whole_epochs_and_the_safety_net_stops_at_an_epoch_end(fmnist_blocks, monkeypatch, tmp_path):
    few = {**TINY, "epochs": 3}
    lines: list[str] = []
    # A budget shorter than one epoch: one whole epoch, the schedule laid over it, nothing cut.
    (row,) = lb.run_leaderboard(["lenet_bn"], fmnist_blocks, seeds=[0], overrides=few, budget_seconds=1e-3,
                                log=lines.append)  # fmt: skip
    assert row["epochs_planned"] == 1 and row["runs"][0]["epochs"] == 1 and not row["runs"][0]["stopped_by_budget"]
    assert any("-> 1 of 3 epochs fit in the" in line for line in lines)
    # A probe that is far too optimistic: 3 epochs planned, the safety net ends the run after the first.
    monkeypatch.setattr(lb, "estimate_epoch_seconds", lambda *a, **k: 1e-9)
    (cut,) = lb.run_leaderboard(["lenet_bn"], fmnist_blocks, seeds=[0], overrides=few, budget_seconds=1e-3)
    assert cut["epochs_planned"] == 3 and cut["runs"][0]["epochs"] == 1 and cut["runs"][0]["stopped_by_budget"]
    md, *_ = board.update_leaderboard(tmp_path / "lb.md", [cut])
    assert "| 1 (1.67e-05-min budget), cut short |" in md.read_text()


def test_budget_stop_only_fires_at_an_epoch_end_when_the_next_epoch_would_overrun():
    stop = lb._BudgetStop(100.0)
    stop.start = 0.0
    assert stop() is False  # mid-epoch: never
    stop.epochs_done, stop.at_epoch_end = 2, True
    assert stop.next_epoch_overruns(now=80.0) is False  # 80 + 40 = 120 <= 125 (25 % slack)
    assert stop.next_epoch_overruns(now=90.0) is True  # 90 + 45 = 135 > 125
    assert lb._budget_epochs(30.0, 100.0, 10) == 3 and lb._budget_epochs(300.0, 100.0, 10) == 1
    assert lb._budget_epochs(1.0, 100.0, 10) == 10


def test_model_specs_carry_kwargs_and_sizes_into_the_plan(fmnist_blocks):
    spec = lb.parse_model_spec("resnet18:small_input@28")
    assert (spec.name, dict(spec.kwargs), spec.input_size, spec.label) == ("resnet18", {"small_input": True}, 28,
                                                                          "resnet18:small_input")  # fmt: skip
    assert dict(lb.parse_model_spec("densenet:small_input=false").kwargs) == {"small_input": False}
    # small_input lowers DenseNet's minimum side below the registry's 29; its default side becomes 28
    plans = lb.plan_leaderboard(["densenet:small_input", "googlenet@32", "resnet18"], fmnist_blocks, overrides=TINY)
    assert [(p.spec.label, p.input_size) for p in plans] == [("densenet:small_input", 28), ("googlenet", 32),
                                                             ("resnet18", 96)]  # fmt: skip
    assert plans[0].config.model_kwargs == {"small_input": True} and plans[0].config.resize == 28
    with torch.device("meta"):
        small = create_model("densenet", small_input=True)
    assert plans[0].macs == count_macs(small, 28) > 100e6 and plans[2].params == 11_178_378


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["lenet_bnn"], "unknown model 'lenet_bnn': did you mean lenet_bn"),
        (["lenet:small_input"], "lenet has no keyword argument 'small_input'"),
        (["lenet@64"], "--input-size 64 is above lenet's maximum input size 31"),  # the run layer's one check
        (["googlenet@x"], "the side after @ must be a positive whole number"),
        (["lenet_bn", "lenet_bn@28"], "model lenet_bn@28 is listed 2 times"),
        (["lenet_bn", "--budget-minutes", "0"], "--budget-minutes 0: must be a positive number"),
        (["lenet_bn", "--seeds", "1", "1"], "each seed once"),
        (["lenet_bn", "--epochs", "0"], "--epochs 0: must be a positive whole number"),
        (["lenet_bn", "--output", "lb.txt"], "ending in .md"),
        (["lenet_bn", "--redraw"], "--redraw trains nothing"),
        (["--redraw"], "has no rows to draw"),
        (["lenet_bn", "--recipe", "nope"], "invalid choice: 'nope'"),
        (["lenet_bn", "--seeds"], "expected at least one argument"),
    ],
)
def test_bad_arguments_are_one_line_errors_with_status_2(fake_fmnist, tmp_path, monkeypatch, capsys, argv, fragment):
    monkeypatch.chdir(tmp_path)
    try:
        status = main(["leaderboard", *argv, "--device", "cpu"])
    except SystemExit as exc:  # argparse's own errors (choices, missing values) exit from the parser
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and fragment in err and err.count("\n") == 1, err
    assert not (tmp_path / "benchmarks").exists()  # nothing trained, nothing written


def test_leaderboard_spells_the_shared_flags_as_train_does(fmnist_blocks):
    args = build_parser().parse_args(["leaderboard", "lenet", "-b", "8", "--input-size", "30", "--channels-last"])
    assert (args.batch_size, args.resize, args.channels_last) == (8, 30, "yes")
    # --input-size is the side of the models named without @SIDE; a spec's own side wins
    plans = lb.plan_leaderboard(["lenet", "lenet_bn@28"], fmnist_blocks, overrides=TINY, input_size=30)
    assert [(p.spec.label, p.input_size, p.config.resize) for p in plans] == [("lenet", 30, 30), ("lenet_bn", 28, 28)]
