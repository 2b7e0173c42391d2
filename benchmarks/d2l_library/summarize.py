"""The table of a race.sh run: python summarize.py RACE_DIR/race-<time>.tsv

Per model: each side's whole-process wall and CPU seconds and peak memory (median, min-max over the counted
rounds), the ratio d2l / cnnzoo round by round (median, min-max), the final test accuracy of every run (d2l's
closing line; cnnzoo's metrics.jsonl) and, from cnnzoo's run directories, the threads it computed with and its
training split (it must be all 60,000 images, no validation split, like the book).
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import sys
from pathlib import Path


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def d2l_result(log: Path) -> dict:
    text = log.read_text(errors="replace") if log.exists() else ""
    m = re.findall(r"loss ([\d.]+), train acc ([\d.]+), test acc ([\d.]+)", text)
    s = re.findall(r"([\d.]+) examples/sec on (\S+)", text)
    return {
        "test_acc": float(m[-1][2]) if m else None,
        "train_acc": float(m[-1][1]) if m else None,
        "examples_per_sec": float(s[-1][0]) if s else None,
        "figure_lines": text.count("<Figure size"),
    }


def cnnzoo_result(log: Path) -> dict:
    text = log.read_text(errors="replace") if log.exists() else ""
    m = re.search(r"^run directory: (\S+)$", text, re.M)
    out: dict = {"test_acc": None}
    if not m:
        return out
    run = Path(m.group(1))
    try:
        config = json.loads((run / "config.json").read_text())
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return out
    data, env = config.get("data", {}), config.get("environment", {})
    out.update(
        test_acc=rows[-1]["test_acc"] if rows else None,
        train_acc=rows[-1]["train_acc"] if rows else None,
        epochs=len(rows),
        train_seconds=sum(r["train_seconds"] for r in rows),
        eval_seconds=sum(r["eval_seconds"] for r in rows),
        threads=env.get("threads"),
        train_images=data.get("train_images"),
        val_images=data.get("val_images"),
    )
    return out


def main(path: str) -> int:
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["counted"] == "1"]
    problems = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        sides = {tool: [r for r in mine if r["tool"] == tool] for tool in ("d2l", "cnnzoo")}
        results = {tool: [(d2l_result if tool == "d2l" else cnnzoo_result)(Path(r["log"])) for r in rs]
                   for tool, rs in sides.items()}  # fmt: skip
        print(f"\n### {model}: {len(sides['d2l'])} counted rounds\n")
        print("| | wall s | cpu s (user+sys) | peak MiB | final test acc |")
        print("|---|---:|---:|---:|---|")
        for tool, rs in sides.items():
            walls = [float(r["wall_s"]) for r in rs]
            cpus = [float(r["user_s"]) + float(r["sys_s"]) for r in rs]
            peaks = [float(r["peak_kib"]) / 1024 for r in rs]
            accs = ", ".join(f"{x['test_acc']:.3f}" if x["test_acc"] is not None else "?" for x in results[tool])
            name = "d2l 0.17.6 (the book's program)" if tool == "d2l" else "cnnzoo --recipe d2l"
            print(f"| {name} | {spread(walls)} | {spread(cpus)} | {spread(peaks, '{:.0f}')} | {accs} |")
            problems += [f"{model} {tool} round {r['round']} exited {r['exit']}" for r in rs if r["exit"] != "0"]
        by_round = {r["round"]: float(r["wall_s"]) for r in sides["cnnzoo"]}
        ratios = [float(r["wall_s"]) / by_round[r["round"]] for r in sides["d2l"] if r["round"] in by_round]
        print(f"\nwall d2l / cnnzoo, round by round: {spread(ratios, '{:.2f}')}")
        z = results["cnnzoo"]
        if z and all("threads" in x for x in z):
            print(
                f"cnnzoo: threads {sorted({x['threads'] for x in z})}; "
                f"train {spread([x['train_seconds'] for x in z])} s"
                f" + eval {spread([x['eval_seconds'] for x in z])} s of the wall;"
                f" split {sorted({(x['train_images'], x['val_images']) for x in z})} (train, validation images)"
            )
            problems += [f"{model}: cnnzoo held out a validation split" for x in z if x["val_images"]]
        d = results["d2l"]
        if d:
            print(
                f"d2l: {spread([x['examples_per_sec'] or 0 for x in d], '{:.0f}')} examples/s (its own Timer, "
                f"training steps only); {d[0]['figure_lines']} figure reprs printed by its Animator per run"
            )
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
