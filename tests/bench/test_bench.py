"""`cnnzoo bench`: the all-model table and its files, the out-of-memory retry, and `train --target-acc`
(the race against the book's pipeline, `bench --pipeline`, is tests/bench/test_race.py)."""

from __future__ import annotations

import csv
import io
import json
import os
import re

import pytest
import torch

import cnnzoo
from cnnzoo.base.devices import setup_device
from cnnzoo.base.failures import is_out_of_memory
from cnnzoo.bench import throughput as bench
from cnnzoo.cli import build_parser, main
from cnnzoo.models.registry import get_model_info, list_models
from cnnzoo.run.progress import format_time_to_target
from cnnzoo.train.history import time_to_target

PNG = b"\x89PNG\r\n\x1a\n"


def test_bench_all_both_modes_prints_a_complete_table_and_writes_every_format(tmp_path, capsys):
    out = {kind: tmp_path / f"bench.{kind}" for kind in ("csv", "json", "md")}
    argv = ["bench", "all", "--mode", "both", "--batch-size", "2", "--input-size", "32", "--warmup", "0"]
    argv += ["--steps", "1", "--repeats", "1", "--device", "cpu", "--csv", str(out["csv"]), "--json", str(out["json"])]
    assert main([*argv, "--markdown", str(out["md"])]) == 0
    stdout = capsys.readouterr().out
    names = list_models()
    assert len(names) == 17
    table = stdout.split("\n\n")[1]
    for name in names:
        for mode in ("train", "infer"):
            assert re.search(rf"^{name}\s+{mode}\s+2\s+\d+x\d+\s+[\d,]+\.\d", table, re.M), (name, mode)
    # sizes outside a model's range are clipped into it, and the table says so
    assert re.search(r"^lenet\s+train\s+2\s+31x31 .* input 32 -> 31 \(accepts 28-31\)$", table, re.M)
    assert re.search(r"^vgg11\s+infer\s+2\s+224x224 .* input 32 -> 224 \(accepts 224-255\)$", table, re.M)
    assert "peak memory: process peak RSS" in stdout
    assert "median of 1 timed block, no spread from 1 block; no row noisy" in stdout  # one block: a bare timing

    with open(out["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["mode"]) for r in rows] == [(n, m) for n in names for m in ("train", "infer")]
    for r in rows:
        assert float(r["images_per_sec"]) > 0 and float(r["ms_per_step"]) > 0 and float(r["peak_memory_mb"]) > 100
        low, mid, high = (float(r[f"images_per_sec{k}"]) for k in ("_min", "", "_max"))
        assert int(r["repeats"]) == 1 and int(r["steps"]) == 1 and low == mid == high and float(r["spread"]) == 0
        info = get_model_info(r["model"])
        assert info.min_input_size <= int(r["input_size"]) <= (info.max_input_size or 10**6)
    lenet = next(r for r in rows if r["model"] == "lenet")
    assert int(lenet["params"]) == 61_706 and int(lenet["macs"]) > 0

    doc = json.loads(out["json"].read_text())
    assert doc["torch"] == torch.__version__ and len(doc["rows"]) == 34
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
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))


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
    assert format_time_to_target(history, 0.99) == "did not reach test acc 0.99 in 3 epochs; highest 0.9500 at epoch 3"


def test_target_acc_must_be_a_fraction(fake_train_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "lenet_bn", "--target-acc", "93"]) == 2
    assert "error: --target-acc 93.0: a test accuracy is a fraction in (0, 1]" in capsys.readouterr().err


def test_bench_chart_renders_rows(tmp_path):
    setup = setup_device("cpu", "fp32", "no")
    rows = bench.bench(
        ["lenet"],
        modes=("train", "infer"),
        batch_size=2,
        input_size=None,
        setup=setup,
        timing=bench.Timing(steps=1, warmup=0),
    )
    text = bench.rows_to_csv(rows)
    assert list(csv.DictReader(io.StringIO(text)))[1]["mode"] == "infer"
    from cnnzoo.base.plots import save_figure

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
    from cnnzoo.train.loop import fit
    from cnnzoo.train.optim import build_optimizer, build_scheduler
    from cnnzoo.train.state import TrainState

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


# ------------------------------------------------------------------------------------------------
# repeats: timed blocks, their median and spread, noisy rows, the chart
# ------------------------------------------------------------------------------------------------
def _fake_clock(monkeypatch, durations):
    """bench's block timer reads 0, d1, 10, 10 + d2, 20, ...: block k lasts durations[k]. Each block must read it
    exactly twice (start, end; no --min-time), or next() runs dry and the test fails."""
    ticks = iter([t for k, d in enumerate(durations) for t in (10.0 * k, 10.0 * k + d)])
    monkeypatch.setattr(bench, "_clock", lambda: next(ticks))
    return ticks


def test_repeats_report_the_median_and_iqr_of_the_timed_blocks(monkeypatch):
    # batch 4 x 2 steps = 8 images a block: 20, 100, 10, 16, 24 images/s
    ticks = _fake_clock(monkeypatch, [0.4, 0.08, 0.8, 0.5, 8 / 24])
    setup = setup_device("cpu", "fp32", "no")
    (row,) = bench.bench(
        ["lenet"], modes=("infer",), batch_size=4, input_size=None, setup=setup, timing=bench.Timing(steps=2, warmup=0)
    )
    assert next(ticks, None) is None  # five blocks (the default --repeats), two clock readings each
    assert (row.repeats, row.steps) == (5, 10)
    assert row.images_per_sec == pytest.approx(20)  # the median, not the mean (34) nor the last block
    assert (row.images_per_sec_q1, row.images_per_sec_q3) == (pytest.approx(16), pytest.approx(24))
    assert (row.images_per_sec_min, row.images_per_sec_max) == (pytest.approx(10), pytest.approx(100))
    assert row.spread == pytest.approx(8 / 20) and row.spread_kind == "IQR"
    assert row.ms_per_step == pytest.approx(200)  # median of 200, 40, 400, 250, 166.7 ms per step
    assert row.note == "noisy: IQR 40% of the median; the machine was busy?"
    table = bench.format_bench_table([row])
    assert re.search(r"^lenet\s+infer\s+4\s+28x28\s+20\.0\s+16\.0-24\.0 \(40%\)\s+200\.00 ", table, re.M), table
    assert "median of 5 timed blocks, spread = q1-q3 (IQR / median); 1 of 1 rows noisy (spread > 10%)" in table
    assert f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'default')}" in table
    assert f"({torch.get_num_threads()} threads)" in table and row.threads == torch.get_num_threads()

    (got,) = csv.DictReader(io.StringIO(bench.rows_to_csv([row])))
    assert float(got["images_per_sec"]) == pytest.approx(20) and float(got["images_per_sec_q3"]) == pytest.approx(24)
    assert float(got["spread"]) == pytest.approx(0.4) and got["repeats"] == "5" and got["note"].startswith("noisy")
    (doc,) = json.loads(bench.rows_to_json([row]))["rows"]
    assert doc["images_per_sec_q1"] == pytest.approx(16) and doc["images_per_sec_max"] == pytest.approx(100)
    assert doc["spread"] == pytest.approx(0.4) and doc["omp_wait_policy"] == row.omp_wait_policy


def test_under_four_blocks_the_spread_is_min_max_and_a_steady_row_is_not_noisy(monkeypatch):
    _fake_clock(monkeypatch, [0.08, 0.078, 0.0784])  # 100, 102.6, 102.0 images/s
    setup = setup_device("cpu", "fp32", "no")
    (row,) = bench.bench(
        ["lenet"],
        modes=("train",),
        batch_size=4,
        input_size=None,
        setup=setup,
        timing=bench.Timing(steps=2, warmup=0, repeats=3),
    )
    assert row.repeats == 3 and row.spread_kind == "range" and row.note == ""
    assert row.images_per_sec == pytest.approx(8 / 0.0784)
    assert row.spread == pytest.approx((8 / 0.078 - 8 / 0.08) / (8 / 0.0784)) and row.spread < bench.NOISY_SPREAD
    assert row.spread_bounds == (pytest.approx(100), pytest.approx(8 / 0.078))
    text = bench.format_bench_table([row])
    assert "spread = min-max ((max - min) / median); no row noisy" in text and "100.0-102.6 (3%)" in text
    # (max - min) / median decides under 4 blocks, however the middle block falls
    assert bench.block_stats(4, [(2, 0.08), (2, 0.16), (2, 0.1)])["spread"] == pytest.approx((100 - 50) / 80)
    assert bench.block_stats(4, [(2, 0.08)])["spread"] == 0  # one block: no spread


def _row(model, mode, rates, size=28, batch=4):
    stats = bench.block_stats(batch, [(1, batch / r) for r in rates])
    fields = dict(device="cpu (2 threads)", precision="fp32", channels_last=False, compiled=False, params=1, macs=1)
    return bench.BenchRow(
        model=model, mode=mode, batch_size=batch, input_size=size, **fields, **stats, peak_memory_mb=1.0,
        memory_kind="process peak RSS", threads=2, omp_wait_policy="default",
    )  # fmt: skip


def test_a_noisy_row_gets_the_note_beside_the_other_notes_and_the_settings_line_counts_it():
    asked = []
    timings = {"train": [30, 2576, 63, 3304, 2900], "infer": [1000, 1010, 990, 1005, 995]}

    def fake_measure(name, *, mode, batch_size, input_size, timing, **kw):
        asked.append(timing.repeats)
        if batch_size > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return _row(name, mode, timings[mode], input_size, batch_size)

    setup = setup_device("cpu", "fp32", "no")
    rows = bench.bench(
        ["lenet"], batch_size=4, input_size=96, setup=setup, timing=bench.Timing(repeats=5), measure=fake_measure
    )  # fmt: skip
    assert asked == [5, 5, 5, 5]  # --repeats reaches the measurement, also after an out-of-memory retry
    train, infer = rows
    assert train.images_per_sec == 2576 and (train.images_per_sec_q1, train.images_per_sec_q3) == (63, 2900)
    assert train.note == (
        "noisy: IQR 110% of the median; the machine was busy?; input 96 -> 31 (accepts 28-31); "
        "batch 4 out of memory, retried at 2"
    )
    assert infer.note == "input 96 -> 31 (accepts 28-31); batch 4 out of memory, retried at 2"
    assert "1 of 2 rows noisy (spread > 10%)" in bench.format_bench_table(rows)
    assert "1 of 2 rows noisy" in bench.rows_to_markdown(rows)


def test_bench_chart_has_a_linear_axis_error_bars_and_input_sizes_in_its_labels():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.container import BarContainer, ErrorbarContainer

    rows = [
        _row("lenet", "train", [900, 1000, 1100, 1200, 1300]),
        _row("resnet18", "train", [40, 50, 60, 70, 80], size=96),
        _row("lenet", "infer", [9000, 10000, 11000, 12000, 13000]),
        _row("resnet18", "infer", [200, 300, 400], size=96),  # 3 blocks: the error bar spans min-max
    ]
    fig = bench.bench_chart(rows)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    assert len(fig.axes) == 2  # a panel per mode
    expected = {"train": [1000, 1200, 50, 70], "infer": [10000, 12000, 200, 400]}  # q1-q3, or min-max
    for ax, mode in zip(fig.axes, ("train", "infer")):
        assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0 and mode in ax.get_xlabel()
        (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
        medians = [r.images_per_sec for r in rows if r.mode == mode]
        assert [b.get_width() for b in bars] == pytest.approx(medians)  # lengths are the medians, so ratios
        (errors,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        segments = errors.lines[2][0].get_segments()
        assert [x for s in segments for x in (s[0][0], s[1][0])] == pytest.approx(expected[mode])
        texts = [t.get_text() for t in ax.texts]
        assert texts == [f"{m:,.0f}" for m in medians]
        renderer = canvas.get_renderer()
        inside = ax.get_window_extent(renderer)
        assert all(t.get_window_extent(renderer).x1 <= inside.x1 for t in ax.texts)  # figures stay in the panel
    labels = [t for t in fig.axes[0].get_yticklabels() if t.get_visible()]
    assert [t.get_text() for t in labels] == ["lenet @28", "resnet18 @96"]
    boxes = [t.get_window_extent(canvas.get_renderer()) for t in labels]
    assert not boxes[0].overlaps(boxes[1]) and boxes[0].y0 > boxes[1].y1  # lenet on top, no overlap
    assert all(not t.get_visible() or not t.get_text() for t in fig.axes[1].get_yticklabels())  # shared, once


def test_repeats_must_be_a_positive_whole_number(capsys):
    assert build_parser().parse_args(["bench", "lenet", "--repeats", "3"]).repeats == 3
    assert build_parser().parse_args(["bench", "lenet"]).repeats == 5
    assert main(["bench", "lenet", "--repeats", "0"]) == 2
    assert "--repeats 0: must be a positive whole number" in capsys.readouterr().err
