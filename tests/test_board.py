"""The leaderboard's files from made-up rows (no training): the JSON merged by key, the page with the book's and
the public reference figures beside the Fashion-MNIST rows, the figure, and a JSON that is not a leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnzoo import board
from cnnzoo.cli import main
from cnnzoo.errors import ConfigError
from cnnzoo.references import D2L_FIGURES, D2L_SOURCE, PUBLIC_FIGURES, READER_SOURCE, reference_key

PNG = b"\x89PNG\r\n\x1a\n"
COMMITTED = Path(__file__).resolve().parents[1] / "benchmarks" / "leaderboard.json"


def made_up_row(model: str = "resnet18", *, family: str = "resnet", dataset: str = "fashion-mnist", acc=0.9) -> dict:
    return {
        "model": model,
        "name": model.split(":")[0],
        "kwargs": {},
        "family": family,
        "dataset": dataset,
        "input_size": 32,
        "params": 11_178_378,
        "macs": 35_400_000,
        "recipe": "fast",
        "setting": "momentum lr 0.05",
        "epochs_planned": 3,
        "budget_minutes": None,
        "seeds": [0, 1],
        "runs": [{"seed": s, "epochs": 3, "test_acc": acc, "stopped_by_budget": False} for s in (0, 1)],
        "test_acc_mean": acc,
        "test_acc_std": 0.001,
        "test_acc_best": acc,
        "train_seconds_mean": 276.0,
        "train_seconds_std": 3.0,
        "images_per_sec_mean": 653.0,
        "device": "cpu (2 threads)",
        "precision": "fp32",
        "provenance": {
            "command": "cnnzoo leaderboard resnet18@32",
            "date": "2025-01-01 00:00 UTC",
            "machine": "a CPU",
            "platform": "Linux",
            "python": "3.12",
            "torch": "2.x",
            "cnnzoo": "0.x",
            "device": "cpu (2 threads), fp32, NCHW",
        },
    }


def test_the_page_sets_the_books_and_the_public_figures_beside_the_rows(tmp_path):
    rows = [made_up_row(), made_up_row("lenet_bn", family="lenet", acc=0.91), made_up_row(dataset="mnist")]
    md, js, png, merged = board.update_leaderboard(tmp_path / "lb.md", rows)
    text = md.read_text()
    assert png.read_bytes()[:8] == PNG and len(merged) == 3 == len(json.loads(js.read_text())["rows"])
    assert "| d2l's figure | public figure (not ours) |" in text
    assert "| 0.915 (d2l), 0.918 (a d2l reader's variant) | 0.949 (ResNet18) |" in text
    assert "| 0.830 (d2l) | – |" in text
    assert D2L_SOURCE in text and READER_SOURCE in text and "## mnist" in text
    assert "(No reference figures: the book's figures and the public table are for Fashion-MNIST.)" in text
    for gone in ("seed note", "seeds'", "seed 00", ".txt`"):
        assert gone not in text, gone
    # the same key again replaces the row
    _, _, _, again = board.update_leaderboard(tmp_path / "lb.md", [made_up_row(acc=0.95)])
    assert len(again) == 3 and max(r["test_acc_mean"] for r in again) == 0.95


def test_every_reference_figure_is_data_with_a_source():
    figures = [f for group in D2L_FIGURES.values() for f in group]
    assert {f.source for f in figures} == {D2L_SOURCE, READER_SOURCE}
    assert [f.test_acc for f in figures if f.source == READER_SOURCE] == [0.918]
    assert reference_key("lenet_bn_scratch", "lenet") == "lenet_bn" and reference_key("vgg11", "vgg") == "vgg"
    assert set(PUBLIC_FIGURES) <= set(D2L_FIGURES)


def test_the_committed_leaderboard_loads_and_renders():
    rows = board.load_rows(COMMITTED)
    assert rows and all(board.row_key(r) for r in rows)
    text = board.render_markdown(rows)
    assert "d2l's figure" in text and "seed note" not in text


def test_a_json_that_is_not_a_leaderboard_is_refused_not_overwritten(tmp_path, capsys):
    js = tmp_path / "lb.json"
    js.write_text('{"rows": 3}')
    assert main(["leaderboard", "--redraw", "--output", str(tmp_path / "lb.md")]) == 2
    assert "is not a cnnzoo leaderboard" in capsys.readouterr().err and js.read_text() == '{"rows": 3}'
    with pytest.raises(ConfigError, match="cannot read"):
        js.write_text("{not json")
        board.load_rows(js)
