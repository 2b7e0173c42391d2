"""The leaderboard's files from made-up rows (no training): the JSON merged by key, the page with the book's and
the public reference figures beside the Fashion-MNIST rows, the figure, and a JSON that is not a leaderboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from matplotlib.text import Text

from cnnzoo.base.errors import ConfigError
from cnnzoo.cli import main
from cnnzoo.leaderboard import board
from cnnzoo.models.references import D2L_FIGURES, D2L_SOURCE, PUBLIC_FIGURES, READER_SOURCE, reference_key
from helpers_files import made_up_row

PNG = b"\x89PNG\r\n\x1a\n"
COMMITTED = Path(__file__).resolve().parents[2] / "benchmarks" / "leaderboard.json"


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


def budget_row(model: str, epochs: int, macs: float, acc: float, seconds: float, *, minutes=None) -> dict:
    row = made_up_row(model, acc=acc)
    row.update(macs=macs, train_seconds_mean=seconds, epochs_planned=epochs, budget_minutes=minutes)
    row["runs"] = [{**r, "epochs": epochs} for r in row["runs"]]
    return row


def crowded_rows() -> list[dict]:
    """12 rows of three budgets whose points crowd into a small corner of both panels, and one far away."""
    budgets = (12, 3, 1)
    rows = [
        budget_row(f"net{i}", budgets[i % 3], 1e7 * (1 + 0.03 * i), 0.900 + 0.0008 * (i % 5), 100 + 2 * i)
        for i in range(12)
    ]
    return [*rows, budget_row("far", 3, 1e9, 0.80, 2000)]


def drawn(fig) -> tuple[object, list]:
    fig.canvas.draw()
    return fig.canvas.get_renderer(), [t for ax in fig.axes for t in ax.texts]


def test_the_figure_draws_each_budget_with_its_own_marker_named_in_the_legend():
    rows = [budget_row("lenet_bn", 12, 3e5, 0.91, 46), budget_row("resnet18", 3, 3.5e7, 0.90, 276)]
    rows.append(budget_row("lenet", 3, 4e5, 0.89, 48, minutes=5.0))
    fig = board.leaderboard_figure(rows)
    _, texts = drawn(fig)
    labels = [board.point_label(r) for r in rows]
    assert labels[1] == "resnet18@32 · fast · 3 ep · cpu" and labels[2] == "lenet@32 · fast · 5 min · cpu"
    assert sorted(t.get_text() for t in texts) == sorted(labels * 2)  # every point labelled, in both panels
    for ax in fig.axes[:2]:
        lines = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
        style = [(lines[label].get_marker(), lines[label].get_color()) for label in labels]
        assert len(set(style)) == 3, style  # 12 epochs, 3 epochs, 5 minutes: three markers and colours
    legend = fig.axes[0].get_legend()
    entries = {t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert list(entries) == ["12 epochs per run", "3 epochs per run", "5 min per run", "cpu (2 threads)"]
    lines = {line.get_gid(): line for line in fig.axes[0].get_lines() if line.get_gid()}
    for label, budget in zip(labels, ["12 epochs per run", "3 epochs per run", "5 min per run"]):
        assert entries[budget].get_marker() == lines[label].get_marker(), budget


def test_the_labels_of_a_crowded_figure_never_overlap():
    rows = crowded_rows()
    fig = board.leaderboard_figure(rows)
    renderer, texts = drawn(fig)
    assert len(texts) == 26
    boxes = [Text.get_window_extent(t, renderer) for t in texts]  # the text alone, not its leader line
    for i, a in enumerate(boxes):
        for j in range(i):
            assert not a.overlaps(boxes[j]), (texts[i].get_text(), texts[j].get_text())
    for ax in fig.axes[:2]:  # and no label covers a marker's centre, nor leaves its panel
        frame = ax.get_window_extent(renderer)
        centres = [ax.transData.transform(xy) for line in ax.get_lines() if line.get_gid() for xy in line.get_xydata()]
        for t in ax.texts:
            box = Text.get_window_extent(t, renderer)
            assert frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1), t.get_text()
            assert not any(box.contains(x, y) for x, y in centres), t.get_text()


def test_the_page_has_a_budget_column_and_ranks_rows_within_their_budget_only():
    rows = [budget_row("lenet_bn", 12, 3e5, 0.91, 46), budget_row("resnet18", 3, 3.5e7, 0.90, 276)]
    rows += [budget_row("alexnet", 3, 7e8, 0.88, 1060), budget_row("vgg11_small", 1, 5e8, 0.95, 1465)]
    rows.append(budget_row("lenet", 1, 4e5, 0.89, 48, minutes=5.0))
    text = board.render_markdown(rows)
    assert "| # | model | input | params | MACs | recipe | budget | epochs | seeds |" in text
    assert "not a ranking" in text
    headings = re.findall(r"^### (.+)$", text, re.M)
    assert headings == ["12 epochs per run", "3 epochs per run", "1 epoch per run", "5 min per run on cpu (2 threads)"]
    ranked = re.findall(r"^\| (\d+) \| (\S+) \| \d+x\d+ \| [^|]+ \| [^|]+ \| fast \| ([^|]+) \|", text, re.M)
    assert ranked == [
        ("1", "lenet_bn", "12 epochs"),
        ("1", "resnet18", "3 epochs"),
        ("2", "alexnet", "3 epochs"),
        ("1", "vgg11_small", "1 epoch"),  # the best accuracy on the page, ranked below 12 and 3 epochs' rows
        ("1", "lenet", "5 min"),
    ]
    assert "- resnet18@32 · fast · 3 epochs · cpu (2 threads): momentum lr 0.05" in text
