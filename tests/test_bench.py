"""`cnnzoo bench`: the all-model table and its files, the out-of-memory retry, and `train --target-acc`
(the race against the book's pipeline, `bench --pipeline`, is tests/test_race.py)."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import torch

import cnnzoo
from cnnzoo import bench
from cnnzoo.cli import build_parser, main
from cnnzoo.devices import setup_device
from cnnzoo.engine import time_to_target
from cnnzoo.progress import format_time_to_target
from cnnzoo.registry import get_model_info, list_models

PNG = b"\x89PNG\r\n\x1a\n"


def test_bench_all_both_modes_prints_a_complete_table_and_writes_every_format(tmp_path, capsys):
    out = {kind: tmp_path / f"bench.{kind}" for kind in ("csv", "json", "md")}
    argv = ["bench", "all", "--mode", "both", "--batch-size", "2", "--input-size", "32", "--warmup", "0"]
    argv += ["--steps", "1", "--device", "cpu", "--csv", str(out["csv"]), "--json", str(out["json"])]
    assert main([*argv, "--markdown", str(out["md"])]) == 0
    stdout = capsys.readouterr().out
    names = list_models()
    assert len(names) == 15
    table = stdout.split("\n\n")[1]
    for name in names:
        for mode in ("train", "infer"):
            assert re.search(rf"^{name}\s+{mode}\s+2\s+\d+x\d+\s+[\d,]+\.\d", table, re.M), (name, mode)
    # sizes outside a model's range are clipped into it, and the table says so
    assert re.search(r"^lenet\s+train\s+2\s+31x31 .* input 32 -> 31 \(accepts 28-31\)$", table, re.M)
    assert re.search(r"^vgg11\s+infer\s+2\s+224x224 .* input 32 -> 224 \(accepts 224-255\)$", table, re.M)
    assert "peak memory: process peak RSS" in stdout

    with open(out["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["mode"]) for r in rows] == [(n, m) for n in names for m in ("train", "infer")]
    for r in rows:
        assert float(r["images_per_sec"]) > 0 and float(r["ms_per_step"]) > 0 and float(r["peak_memory_mb"]) > 100
        info = get_model_info(r["model"])
        assert info.min_input_size <= int(r["input_size"]) <= (info.max_input_size or 10**6)
    lenet = next(r for r in rows if r["model"] == "lenet")
    assert int(lenet["params"]) == 61_706 and int(lenet["macs"]) > 0

    doc = json.loads(out["json"].read_text())
    assert doc["torch"] == torch.__version__ and len(doc["rows"]) == 30
    assert {r["model"] for r in doc["rows"]} == set(names)
    md = out["md"].read_text().splitlines()
    assert md[0].startswith("| model | mode |") and len([x for x in md if x.startswith("| resnet18 |")]) == 2
    assert (tmp_path / "bench.png").read_bytes()[:8] == PNG  # the chart goes beside the first output file


def test_out_of_memory_halves_the_batch_and_says_so(tmp_path, capsys, monkeypatch):
    real = bench.bench_model
    tried = []

    def only_small_batches_fit(name, *, batch_size, **kw):
        tried.append(batch_size)
        if batch_size > 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(name, batch_size=batch_size, **kw)

    monkeypatch.setattr(bench, "bench_model", only_small_batches_fit)
    png = tmp_path / "chart.png"
    argv = ["bench", "lenet", "--batch-size", "16", "--steps", "1", "--warmup", "0", "--device", "cpu"]
    assert main([*argv, "--png", str(png)]) == 0
    stdout = capsys.readouterr().out
    assert tried == [16, 8, 4]
    assert re.search(
        r"^lenet\s+train\s+4\s+28x28 .*batch 16 out of memory, retried at 8; batch 8 out of memory, "
        r"retried at 4$",
        stdout,
        re.M,
    )
    assert png.read_bytes()[:8] == PNG


def test_a_model_that_never_fits_still_gets_a_row():
    def never_fits(name, **kw):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB")

    setup = setup_device("cpu", "fp32", "no")
    rows = bench.bench(["lenet"], modes=("infer",), batch_size=2, input_size=None, setup=setup, measure=never_fits)
    assert len(rows) == 1 and rows[0].images_per_sec == 0 and rows[0].batch_size == 0
    assert rows[0].note == "batch 2 out of memory, retried at 1; out of memory even at batch 1"
    assert "lenet" in bench.format_bench_table(rows)


def test_other_errors_are_not_mistaken_for_out_of_memory():
    assert bench.is_out_of_memory(torch.OutOfMemoryError("x"))
    assert bench.is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert not bench.is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not bench.is_out_of_memory(ValueError("out of memory"))


def test_bench_input_size_is_clipped_into_each_models_range():
    assert bench.bench_input_size("lenet", None) == (28, "")
    assert bench.bench_input_size("lenet", 96) == (31, "input 96 -> 31 (accepts 28-31)")
    assert bench.bench_input_size("alexnet", 32) == (193, "input 32 -> 193 (accepts 193-224)")
    assert bench.bench_input_size("resnet18", 32) == (32, "")
    assert bench.bench_input_size("nin", 32) == (67, "input 32 -> 67 (accepts >= 67)")


def test_unknown_models_and_bad_numbers_are_one_line_errors(capsys):
    assert main(["bench", "lenett"]) == 2
    assert "unknown model 'lenett'" in capsys.readouterr().err
    assert main(["bench", "lenet", "--batch-size", "0"]) == 2
    assert "--batch-size 0: must be a positive whole number" in capsys.readouterr().err
    assert main(["bench", "lenet", "--pipeline", "lenet"]) == 2
    assert "--pipeline takes one model" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# time to accuracy: train --target-acc
# ------------------------------------------------------------------------------------------------
def test_target_acc_stops_at_the_first_epoch_that_reaches_it(fake_train_data, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "lenet_bn", "--epochs", "8", "--batch-size", "64", "--lr", "0.2", "--augment", "none"]
    assert main([*argv, "--target-acc", "0.5", "--quiet", "--out", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.fullmatch(
        r"reached test acc (\d\.\d{4}) \(target 0\.5\) at epoch (\d) after ([\d.]+) s \(evaluation time included\)",
        last,
    )
    assert m, last
    epoch = int(m.group(2))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == epoch < 8  # stopped early
    assert rows[-1]["test_acc"] >= 0.5 and all(r["test_acc"] < 0.5 for r in rows[:-1])
    seconds = sum(r["train_seconds"] + r["eval_seconds"] for r in rows)
    assert float(m.group(3)) == pytest.approx(seconds, abs=0.06)
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["target_acc"] == 0.5
    assert record["time_to_target"]["reached"] and record["time_to_target"]["epoch"] == epoch
    assert "| time to test accuracy 0.5 |" in (out / "report.md").read_text()


def test_time_to_target_counts_training_and_evaluation():
    history = [
        {"epoch": 1, "test_acc": 0.80, "train_seconds": 10.0, "eval_seconds": 1.0},
        {"epoch": 2, "test_acc": 0.92, "train_seconds": 10.0, "eval_seconds": 1.5},
        {"epoch": 3, "test_acc": 0.95, "train_seconds": 10.0, "eval_seconds": 1.0},
    ]
    assert time_to_target(history, 0.91) == {"target": 0.91, "epoch": 2, "test_acc": 0.92, "seconds": 22.5}
    assert time_to_target(history, 0.99) is None
    assert format_time_to_target(history, 0.91).endswith("at epoch 2 after 22.5 s (evaluation time included)")
    assert format_time_to_target(history, 0.99) == "did not reach test acc 0.99 in 3 epochs; best 0.9500 at epoch 3"


def test_target_acc_must_be_a_fraction(fake_train_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "lenet_bn", "--target-acc", "93"]) == 2
    assert "error: --target-acc 93.0: a test accuracy is a fraction in (0, 1]" in capsys.readouterr().err


def test_bench_chart_renders_rows(tmp_path):
    setup = setup_device("cpu", "fp32", "no")
    rows = bench.bench(
        ["lenet"], modes=("train", "infer"), batch_size=2, input_size=None, setup=setup, steps=1, warmup=0
    )
    text = bench.rows_to_csv(rows)
    assert list(csv.DictReader(io.StringIO(text)))[1]["mode"] == "infer"
    from cnnzoo.plots import save_figure

    assert save_figure(bench.bench_chart(rows), tmp_path / "c.png").read_bytes()[:8] == PNG


def test_resuming_a_run_that_reached_its_target_trains_no_further(fake_train_data, tmp_path, capsys):
    out = tmp_path / "run"
    # lr 0.05 climbs over a few epochs on the blocks data (about 0.10, 0.31, 0.87, 1.0).
    argv = ["train", "lenet_bn", "--epochs", "8", "--batch-size", "64", "--lr", "0.05", "--augment", "none"]
    assert main([*argv, "--target-acc", "0.5", "--quiet", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) < 8 and 0.5 <= rows[-1]["test_acc"] < 0.99
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"reached --target-acc 0.5 at epoch {len(rows)}" in err and "pass a higher --target-acc" in err
    assert len((out / "metrics.jsonl").read_text().splitlines()) == len(rows)  # nothing trained
    # A higher target trains on from where the run stopped, and stops again when it reaches it.
    assert main(["train", "--resume", str(out), "--quiet", "--target-acc", "0.99"]) == 0
    after = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) < len(after) <= 8 and [r["epoch"] for r in after] == list(range(1, len(after) + 1))
    assert after[-1]["test_acc"] >= 0.99 and all(r["test_acc"] < 0.99 for r in after[:-1])
    assert f"(target 0.99) at epoch {len(after)}" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["time_to_target"]["epoch"] == len(after)


def test_fit_resumed_after_reaching_the_target_returns_at_once(fake_train_data):
    from cnnzoo.engine import TrainState, build_optimizer, build_scheduler, fit

    data = fake_train_data
    config = cnnzoo.resolve_config(
        "lenet_bn",
        "fast",
        {"epochs": 6, "batch_size": 64, "lr": 0.2, "augment": "none", "target_acc": 0.5, "device": "cpu"},
    )
    model = cnnzoo.create_model("lenet_bn")
    history = fit(model, data, config)
    assert len(history) < 6 and history[-1]["test_acc"] >= 0.5
    setup = setup_device("cpu")
    optimizer = build_optimizer(model, config)
    state = TrainState(model, optimizer, build_scheduler(optimizer, config, 1), config, setup)
    state.epoch, state.history = len(history), history
    before = {k: v.clone() for k, v in model.state_dict().items()}
    again = fit(model, data, config, resume=state.resume_dict())
    assert again == history
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_bench_spells_the_shared_flags_as_train_does(tmp_path, capsys):
    parser = build_parser()
    spellings = [
        ([], "auto"),
        (["--channels-last"], "yes"),
        (["--no-channels-last"], "no"),
        (["--channels-last", "no"], "no"),
    ]
    for argv, layout in spellings:
        assert parser.parse_args(["bench", *argv]).channels_last == layout, argv
    args = parser.parse_args(["bench", "lenet", "-b", "4", "--input-size", "30", "--precision", "fp32"])
    assert (args.batch_size, args.resize, args.precision) == (4, 30, "fp32")
    assert main(["bench", "lenet", "--input-size", "0"]) == 2
    assert "--input-size 0: must be a positive whole number" in capsys.readouterr().err
    # --pipeline refuses --csv before it races (nothing is loaded or written)
    assert main(["bench", "--pipeline", "lenet", "--csv", str(tmp_path / "p.csv"), "--device", "cpu"]) == 2
    assert "not --csv" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()
