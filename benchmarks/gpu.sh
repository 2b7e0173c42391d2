#!/usr/bin/env bash
# benchmarks/gpu.sh -- the GPU figures cnnzoo is missing, in one run of at most 9 minutes on one GPU.
#
#   bash benchmarks/gpu.sh                 # on a machine with an NVIDIA GPU (written for one H200, 16 cores)
#   bash benchmarks/gpu.sh --smoke         # the same steps on the CPU in seconds, on tiny data it makes itself
#   bash benchmarks/gpu.sh --out DIR       # results directory (default benchmarks/gpu-results-<date>-<time>)
#
# Not yet run on a GPU: the times below are estimates, not measurements (benchmarks/gpu.md).
#
# Steps, most important first. Each runs under `timeout` with its own cap, and no step starts once the
# whole run's budget (--budget, default 525 s) is spent; the last step's cap is what is left. With 10 s
# for `timeout` to kill a step that ignores SIGTERM and 1 s for the summary, the run ends within 9 minutes.
# A failed, timed-out or skipped step is recorded and the next one runs; the exit status is 1 if any
# step did not finish cleanly, 2 for a usage error. Estimates assume one H200 (bf16 autocast, which
# cnnzoo's precision "auto" picks on CUDA, and ~100 TFLOP/s effective for convolutions), 16 cores,
# Fashion-MNIST already on disk (set CNNZOO_DATA, or the user cache), and ~3 s of Python + torch
# start-up per process. FLOPs per training image ~ 6 x the MACs `cnnzoo models` lists.
#
#  0 data      `cnnzoo data`: find and verify Fashion-MNIST once (fetch it if missing)   est.  5 s
#  1 bench     `cnnzoo bench --pipeline resnet18 --precision bf16 --channels-last yes`:
#              3 interleaved rounds of one epoch each side. The book's side is bound by its
#              DataLoader (PIL resize to 96, 4 workers): ~4,700 img/s as the book printed on its
#              GPU -> ~13 s + ~2 s test per epoch; cnnzoo's ~2-3 s; plus warm-up, the torchvision
#              copy of the data and start-up: 3 x 18 s + 10 s                       est. 65 s, cap 120 s
#  2 tta       ResNet-18 time to 93% test accuracy: the fast recipe at its own 96x96, onecycle over
#              at most 12 epochs, stopping at the first epoch that reaches 0.93. 319M MACs -> 115
#              TFLOP per epoch -> ~1.5 s + augmentation + test ~2.5 s/epoch: 12 x 2.5 s + 8 s
#                                                                                    est. 40 s, cap  90 s
#  3 d2l       `cnnzoo train MODEL --recipe d2l` (10 epochs, the book's lr, batch and input size) for
#              each of the 9 networks the book trains, one process, each model capped at 60 s,
#              the six with a printed figure first:
#              AlexNet@224 ~45 s, NiN@224 ~40 s, VGG-small@224 ~30 s, GoogLeNet@96 ~30 s (launch-
#              bound), ResNet-18@96 ~20 s, DenseNet@96 ~40 s (memory-bound), 3 LeNets ~12 s each
#                                                                                    est. 245 s, cap 300 s
#  4 board     `cnnzoo leaderboard` GPU rows at the networks' own input sizes (lenet lenet_bn
#              googlenet resnet18 densenet), fast recipe, seed 0, 0.3 minutes per run: 5 x ~20 s
#              + start-up                                                            est. 110 s, cap 120 s
#  5 speedrun  benchmarks/speedrun/run.py --device cuda: the speed record's protocol and table,
#              speednet over 3 seeds (7 epochs of 55k images a run: ~1 s an epoch, ~6 s start-up)
#                                                                        est.  40 s, cap: what is left
#                                                                        total est. ~505 s (8.4 min)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$SCRIPT_DIR")
MARKER=.written-by-gpu-sh

die() { # one line, as the CLI says it: what, then the fix
    echo "error: $1" >&2
    exit 2
}

usage() {
    cat <<'EOF'
usage: bash benchmarks/gpu.sh [--smoke] [--out DIR] [--budget SECONDS] [--leaderboard PATH]

Runs, on one GPU and within the budget (default 525 s): the race against the book's pipeline
(ResNet-18, bf16 + channels_last), ResNet-18 time to 93% test accuracy, the d2l recipe of every
network the book trains beside the book's printed accuracy, leaderboard GPU rows, and the speed
record's table. Writes logs
and summary.md into DIR (default benchmarks/gpu-results-<date>-<time>).

  --smoke             the same steps on the CPU in seconds, on a tiny image folder made in DIR
  --out DIR           results directory: new, empty, or one this script wrote before
  --budget SECONDS    the whole run's time limit (default 525, so that all ends within 9 minutes)
  --leaderboard PATH  the leaderboard table step 4 writes (default DIR/leaderboard.md); pass
                      benchmarks/leaderboard.md to add the GPU rows to the project's own table

Environment: CNNZOO_PYTHON, the Python that has cnnzoo (default: python on PATH, else the
repository's .venv); CNNZOO_DATA, where Fashion-MNIST is (see `cnnzoo data`).
EOF
}

SMOKE=0
OUT=""
BUDGET=525
BOARD=""
while (($#)); do
    case $1 in
    --smoke) SMOKE=1 ;;
    --out | --budget | --leaderboard)
        (($# >= 2)) || die "$1 needs a value: see bash benchmarks/gpu.sh --help"
        case $1 in
        --out) OUT=$2 ;;
        --budget) BUDGET=$2 ;;
        --leaderboard) BOARD=$2 ;;
        esac
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument $1: see bash benchmarks/gpu.sh --help" ;;
    esac
    shift
done
if ! [[ $BUDGET =~ ^[0-9]+$ ]] || ((BUDGET == 0)); then
    die "--budget $BUDGET: give whole seconds, e.g. --budget 525"
fi
command -v timeout >/dev/null || die "timeout not found: install GNU coreutils"

STAMP=$(date -u +%Y-%m-%d-%H%M%S)
OUT=${OUT:-$REPO/benchmarks/gpu-results-$STAMP}
# Never write into a directory someone else filled: only a new one, an empty one, or our own.
if [[ -e $OUT && ! -d $OUT ]]; then
    die "--out $OUT is a file: give a directory that does not exist yet"
fi
if [[ -d $OUT && -n $(ls -A "$OUT") && ! -f $OUT/$MARKER ]]; then
    die "--out $OUT holds files benchmarks/gpu.sh did not write: give a new or empty directory"
fi
# The Python that has cnnzoo: every step runs `python -m cnnzoo`, so all of them use the same one.
has_cnnzoo() { "$1" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("cnnzoo") is None)' 2>/dev/null; }
PY=${CNNZOO_PYTHON:-}
if [[ -z $PY ]]; then
    for candidate in python python3 "$REPO/.venv/bin/python"; do
        if command -v "$candidate" >/dev/null && has_cnnzoo "$candidate"; then
            PY=$(command -v "$candidate")
            break
        fi
    done
fi
if [[ -z $PY ]] || ! has_cnnzoo "$PY"; then
    die "no Python with cnnzoo found: pip install -e . or set CNNZOO_PYTHON"
fi
mkdir -p "$OUT" || die "cannot create --out $OUT: give a writable directory"
OUT=$(cd "$OUT" && pwd)
# A rerun into our own directory: what an earlier run wrote goes (cnnzoo refuses to train into old runs).
rm -rf "${OUT:?}"/{0-data.log,1-bench.log,1-bench.json,1-bench.md,2-tta,2-tta.log,3-d2l,3-d2l.log,4-board.log} \
    "$OUT"/{5-speedrun,5-speedrun.log,5-speedrun.json,5-speedrun.md} \
    "$OUT"/{leaderboard.md,leaderboard.json,leaderboard.png,summary.md,smoke-data,smoke-cache}
echo "written by benchmarks/gpu.sh; a rerun into this directory replaces its files" >"$OUT/$MARKER"
BOARD=${BOARD:-$OUT/leaderboard.md}

if ((SMOKE)); then
    MODE=smoke MODE_TEXT="smoke (CPU, tiny data: checks the script, measures nothing)"
else
    MODE=gpu MODE_TEXT=gpu
fi

START=$(date +%s)
DEADLINE=$((START + BUDGET))
: >"$OUT/steps.tsv"
: >"$OUT/commands.txt"
cat >"$OUT/env.txt" <<EOF
date=$(date -u '+%Y-%m-%d %H:%M UTC')
mode=$MODE_TEXT
budget_s=$BUDGET
host=$(uname -n) $(uname -sr)
cpus=$(nproc 2>/dev/null || echo '?')
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1 || true)
python=$PY
EOF

if ((SMOKE)); then
    # Tiny everything: 1 epoch, small inputs where the network allows, and an image folder of two
    # classes with one random 28x28 picture each for training and for testing (no checksum to satisfy),
    # decoded into a private cache in DIR. Most of smoke mode's time is each process's start-up.
    DEVICE=(--device cpu)
    DATA=(--dataset "folder:$OUT/smoke-data")
    export XDG_CACHE_HOME=$OUT/smoke-cache
    "$PY" - "$OUT/smoke-data" <<'EOF' || die "could not write the smoke data in $OUT/smoke-data: check the disk"
import sys
from pathlib import Path

import numpy as np
from PIL import Image

rng = np.random.default_rng(0)
for split, n in (("train", 1), ("test", 1)):
    for label in range(2):
        folder = Path(sys.argv[1], split, f"class{label}")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), "L").save(folder / f"{i}.png")
EOF
else
    DEVICE=(--device cuda)
    DATA=()
    command -v nvidia-smi >/dev/null || echo "warning: nvidia-smi not found; the steps ask for --device cuda" >&2
fi

quoted() { printf '%q ' "$@"; }
FAILED=()
# run_step KEY TITLE CAP_SECONDS COMMAND...: COMMAND under timeout, its output in KEY.log, a row in steps.tsv.
run_step() {
    local key=$1 title=$2 cap=$3 left rc=0 began status
    shift 3
    echo "$key: $(quoted "$@")" >>"$OUT/commands.txt"
    left=$((DEADLINE - $(date +%s)))
    if ((left < 5)); then
        status="skipped (budget spent)"
        FAILED+=("$key")
        printf '%s\t%s\t%s\t%s\t%s\n' "$key" "$title" "$status" 0 0 >>"$OUT/steps.tsv"
        echo "[$key] $title: $status"
        return 0
    fi
    ((cap <= left)) || cap=$left
    echo "[$key] $title (cap ${cap} s, log $key.log)"
    began=$(date +%s)
    timeout -k 10 "$cap" "$@" >"$OUT/$key.log" 2>&1 || rc=$?
    case $rc in
    0) status=ok ;;
    124 | 137) status="timed out at ${cap} s" ;;
    *) status="failed (exit $rc)" ;;
    esac
    [[ $status == ok ]] || FAILED+=("$key")
    printf '%s\t%s\t%s\t%s\t%s\n' "$key" "$title" "$status" "$(($(date +%s) - began))" "$cap" >>"$OUT/steps.tsv"
    echo "[$key] $status in $(($(date +%s) - began)) s"
}

CNNZOO=("$PY" -m cnnzoo)

# 0: the data, once, so that no later step downloads it (smoke mode makes its own).
if ((!SMOKE)); then
    if ! "${CNNZOO[@]}" data >"$OUT/0-data.log" 2>&1 && ! "${CNNZOO[@]}" data --fetch >>"$OUT/0-data.log" 2>&1; then
        die "Fashion-MNIST is not available (see $OUT/0-data.log): set CNNZOO_DATA to a directory with the four files"
    fi
fi

# 1: the race against the book's pipeline. --pipeline needs the verified full Fashion-MNIST (both sides
# read it), which smoke mode does not have: smoke mode runs the reduced form, a synthetic-input
# inference row of the same model with the same precision and layout (inference: a training row's
# optimiser would add torch._dynamo's import, seconds on a CPU, to check nothing more).
if ((SMOKE)); then
    run_step 1-bench "bench resnet18 (reduced: synthetic input, inference), bf16 + channels_last" 60 \
        "${CNNZOO[@]}" bench resnet18 "${DEVICE[@]}" --precision bf16 --channels-last yes \
        --mode infer --input-size 16 -b 2 --warmup 1 --steps 1 --repeats 1
else
    run_step 1-bench "bench --pipeline resnet18, bf16 + channels_last" 120 \
        "${CNNZOO[@]}" bench --pipeline resnet18 "${DEVICE[@]}" --precision bf16 --channels-last yes \
        --json "$OUT/1-bench.json" --markdown "$OUT/1-bench.md"
fi

# 2: time to 93% test accuracy (fast recipe; the onecycle schedule is laid over the 12-epoch cap).
if ((SMOKE)); then
    TTA=(--epochs 1 --input-size 16)
else
    TTA=(--epochs 12 --precision bf16 --channels-last yes)
fi
run_step 2-tta "resnet18 time to 93% test accuracy" 90 \
    "${CNNZOO[@]}" train resnet18 "${TTA[@]}" --target-acc 0.93 "${DEVICE[@]}" "${DATA[@]}" \
    --quiet --out "$OUT/2-tta"

# 3: the book's recipe for each network it trains, in one process (saves 8 start-ups), each model
# under its own alarm; the driver writes 3-d2l/results.json with the book's figure beside each.
mkdir -p "$OUT/3-d2l"
cat >"$OUT/3-d2l/driver.py" <<'EOF'
"""Step 3 of benchmarks/gpu.sh: `cnnzoo train MODEL --recipe d2l` for each network the book trains.

argv: OUT_DIR PER_MODEL_CAP_SECONDS smoke|gpu [flags for every run...]. Writes OUT_DIR/MODEL/ (the run),
OUT_DIR/MODEL.log and OUT_DIR/results.json (rewritten after every model); exit 1 if any model failed.
"""

import contextlib
import gc
import json
import os
import shlex
import signal
import sys
import time
import traceback
from pathlib import Path

import torch

from cnnzoo.cli import main
from cnnzoo.train.recipes import d2l_models
from cnnzoo.models.references import D2L_FIGURES, D2L_SOURCE, reference_key
from cnnzoo.models.registry import get_model_info

out, cap, mode, common = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]


class Overrun(BaseException):
    """Raised by the alarm: the model used up its cap."""


def on_alarm(signum, frame):
    raise Overrun


signal.signal(signal.SIGALRM, on_alarm)


def book_figure(name):
    figures = D2L_FIGURES.get(reference_key(name, get_model_info(name).family), ())
    figure = next((f for f in figures if f.source == D2L_SOURCE), None)
    return (figure.test_acc, figure.setting) if figure else (None, "")


def smoke_side(name):
    """The smallest side the network takes, but at least 16 (LeNet 28, AlexNet 193, VGG 224, NiN 67)."""
    info = get_model_info(name)
    return max(info.min_input_size, 16)


def last_epoch(run):
    path = run / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    if not rows:
        return {}
    seconds = sum(r["train_seconds"] + r["eval_seconds"] for r in rows)
    return {"epochs": len(rows), "test_acc": rows[-1]["test_acc"], "seconds": seconds}


def train(name):
    args = ["train", name, "--recipe", "d2l", "--out", str(out / name), "--quiet", *common]
    if mode == "smoke":
        args += ["--epochs", "1", "--input-size", str(smoke_side(name))]
    acc, setting = book_figure(name)
    row = {"model": name, "book_acc": acc, "book_setting": setting, "command": shlex.join(["cnnzoo", *args])}
    began = time.monotonic()
    with open(out / f"{name}.log", "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print("$", row["command"], flush=True)
        signal.alarm(cap)
        try:
            rc = main(args)
            row["status"] = "ok" if rc == 0 else f"failed (exit {rc})"
        except Overrun:
            row["status"] = f"timed out at {cap} s"
        except SystemExit as exc:
            row["status"] = f"failed (exit {exc.code})"
        except Exception:
            traceback.print_exc()
            row["status"] = "crashed (traceback in the log)"
        finally:
            signal.alarm(0)
    row["wall_seconds"] = time.monotonic() - began
    row.update(last_epoch(out / name))
    if mode == "smoke":  # AlexNet's and VGG's checkpoints are ~180 MB each, and measure nothing here
        for checkpoint in (out / name).glob("*.pt"):
            checkpoint.unlink()
    if torch.cuda.is_available():  # the next network gets the whole GPU (gc costs 0.3 s a call: not on the CPU)
        gc.collect()
        torch.cuda.empty_cache()
    return row


def write(rows):
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(rows, indent=2) + "\n")
    os.replace(tmp, out / "results.json")


cuda = torch.cuda.is_available()
runtime = {
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "cudnn": torch.backends.cudnn.version() if cuda else None,
    "device": torch.cuda.get_device_name(0) if cuda else "cpu",
}
(out / "torch.json").write_text(json.dumps(runtime) + "\n")
# Networks with a printed figure to compare against first, so a cut-short step loses the plot-only ones.
models = sorted(d2l_models(), key=lambda m: book_figure(m)[0] is None)
rows = [{"model": m, "book_acc": book_figure(m)[0], "status": "not run"} for m in models]
write(rows)
for k, name in enumerate(models):
    rows[k] = train(name)
    write(rows)
    acc = rows[k].get("test_acc")
    print(f"{name}: {rows[k]['status']}, test acc {'-' if acc is None else f'{acc:.4f}'}, book "
          f"{'-' if rows[k]['book_acc'] is None else rows[k]['book_acc']}, {rows[k]['wall_seconds']:.0f} s", flush=True)
sys.exit(0 if all(r["status"] == "ok" for r in rows) else 1)
EOF
if ((SMOKE)); then D2L_CAP=30; else D2L_CAP=60; fi
run_step 3-d2l "the d2l recipe of the book's 9 networks" 300 \
    "$PY" "$OUT/3-d2l/driver.py" "$OUT/3-d2l" "$D2L_CAP" "$MODE" \
    "${DEVICE[@]}" "${DATA[@]}"

# 4: leaderboard GPU rows at the networks' own input sizes, into the results directory unless
# --leaderboard names another table.
if ((SMOKE)); then
    BOARD_ARGS=(lenet_bn --epochs 1)
else
    BOARD_ARGS=(lenet lenet_bn googlenet resnet18 densenet --budget-minutes 0.3 --precision bf16 --channels-last yes)
fi
run_step 4-board "leaderboard rows at the networks' own input sizes" 120 \
    "${CNNZOO[@]}" leaderboard "${BOARD_ARGS[@]}" --seeds 0 "${DEVICE[@]}" "${DATA[@]}" --output "$BOARD" --quiet

# 5: the CPU speed record's protocol on the GPU: the same command and table (benchmarks/speedrun/run.py), the
# speednet recipe over 3 seeds; the goal there is 94% in 2 s.
if ((SMOKE)); then
    SPEED_ARGS=(--seeds 0 -- --dataset "folder:$OUT/smoke-data" --epochs 1)
else
    SPEED_ARGS=(--seeds 0 1 2)
fi
run_step 5-speedrun "the speed record's table (speednet) on the GPU" "$BUDGET" \
    "$PY" "$REPO/benchmarks/speedrun/run.py" --models speednet --device "${DEVICE[1]}" --threads 0 \
    --out "$OUT/5-speedrun" --json "$OUT/5-speedrun.json" --markdown "$OUT/5-speedrun.md" "${SPEED_ARGS[@]}"

# The summary: summary.md in the results directory, and its tables on the terminal.
"$PY" - "$OUT" "$BOARD" <<'EOF' || echo "warning: could not write $OUT/summary.md" >&2
import json
import sys
from importlib import metadata
from pathlib import Path

out, board = Path(sys.argv[1]), Path(sys.argv[2])


def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def acc(value):
    return "-" if value is None else f"{value:.4f}"


env = dict(line.split("=", 1) for line in (out / "env.txt").read_text().splitlines() if "=" in line)
runtime_file = out / "3-d2l" / "torch.json"  # written by step 3's process, which has torch imported
runtime = json.loads(runtime_file.read_text()) if runtime_file.exists() else {}
torch_text = (f"torch {runtime['torch']} (CUDA {runtime['cuda']}, cuDNN {runtime['cudnn'] or '-'}, "
              f"device {runtime['device']})" if runtime else f"torch {version('torch')}")
gpu_text = env["gpu"] or (runtime["device"] if runtime.get("device", "cpu") != "cpu" else
                          "none (nvidia-smi not found, and torch saw no CUDA device)")
steps = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines() if line]
lines = [
    f"# cnnzoo GPU run, {env['date']}",
    "",
    f"- mode: {env['mode']}",
    f"- GPU: {gpu_text}",
    f"- machine: {env['host']}, {env['cpus']} CPUs",
    f"- {torch_text}, torchvision {version('torchvision')}, cnnzoo {version('cnnzoo')}; "
    f"Python {env['python']}",
    f"- budget: {env['budget_s']} s",
    "",
    "## Steps",
    "",
    "| step | what | status | seconds | cap | log |",
    "|---|---|---|---:|---:|---|",
]
lines += [f"| {k} | {t} | {s} | {sec} | {cap} | {k}.log |" for k, t, s, sec, cap in steps]

bench = out / "1-bench.json"
if bench.exists():
    b = json.loads(bench.read_text())
    lines += ["", "## 1. The race against the book's pipeline", "",
              f"cnnzoo {b['cnnzoo_images_per_sec']:,.0f} images/s, the book's pipeline {b['d2l_images_per_sec']:,.0f}: "
              f"cnnzoo {b['ratio']:.2f}x faster (range {b['ratio_min']:.2f}-{b['ratio_max']:.2f}), "
              f"{b['precision']}, channels_last {b['channels_last']}; 1-bench.md has the table."]
elif (out / "1-bench.log").exists():
    lines += ["", "## 1. The race against the book's pipeline", "",
              "No race figures: " + ("smoke mode runs a reduced form (synthetic input), see 1-bench.log."
                                     if env["mode"].startswith("smoke") else "the step did not finish, see 1-bench.log.")]

tta = jsonl(out / "2-tta" / "metrics.jsonl")
if tta:
    elapsed, hit = 0.0, None
    for r in tta:
        elapsed += r["train_seconds"] + r["eval_seconds"]
        if r["test_acc"] >= 0.93:
            hit = (r, elapsed)
            break
    what = (f"reached {hit[0]['test_acc']:.4f} at epoch {hit[0]['epoch']} after {hit[1]:.1f} s (training + evaluation)"
            if hit else f"did not reach 0.93 in {len(tta)} epoch(s) (highest {max(r['test_acc'] for r in tta):.4f})")
    lines += ["", "## 2. ResNet-18 time to 93% test accuracy", "", what]

d2l = out / "3-d2l" / "results.json"
if d2l.exists():
    lines += ["", "## 3. The d2l recipe, beside the book's printed accuracy", "",
              "| network | status | epochs | test acc (cnnzoo) | the book's | difference | seconds |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for r in json.loads(d2l.read_text()):
        ours, book = r.get("test_acc"), r.get("book_acc")
        diff = f"{ours - book:+.4f}" if ours is not None and book is not None else "-"
        book_text = acc(book) if book is not None else "plot only"
        seconds = f"{r['seconds']:.1f}" if "seconds" in r else "-"
        lines.append(f"| {r['model']} | {r['status']} | {r.get('epochs', '-')} | {acc(ours)} | {book_text} | "
                     f"{diff} | {seconds} |")
    lines += ["", "The book's figure: the closing `test acc` of its own train_ch6 run (fp32, on its GPU); "
              "\"plot only\": the book shows the curves, no number. cnnzoo's runs use bf16 autocast on CUDA."]

rows = json.loads(board.with_suffix(".json").read_text()).get("rows", []) if board.with_suffix(".json").exists() else []
if rows:
    lines += ["", f"## 4. Leaderboard rows ({board})", "",
              "| model | input | device | test acc | train seconds |", "|---|---:|---|---:|---:|"]
    lines += [f"| {r['model']} | {r['input_size']} | {r['device']} | {acc(r['test_acc_mean'])} | "
              f"{r['train_seconds_mean']:.1f} |" for r in rows]

speed = out / "5-speedrun.md"
if speed.exists():
    lines += ["", "## 5. The speed record's table", "", speed.read_text().rstrip()]

commands = (out / "commands.txt").read_text().rstrip()
if d2l.exists():
    runs = [r["command"] for r in json.loads(d2l.read_text()) if "command" in r]
    commands += "\n# 3-d2l's driver runs, in one process:\n" + "\n".join(runs)
lines += ["", "## Commands", "", "```", commands, "```", ""]
(out / "summary.md").write_text("\n".join(lines))

print()
print("\n".join(lines[lines.index("## Steps"):lines.index("## Commands")]).rstrip())
print(f"\nwrote {out / 'summary.md'}")
EOF

if ((${#FAILED[@]})); then
    echo "steps that did not finish cleanly: ${FAILED[*]} (their logs are in $OUT)" >&2
    exit 1
fi
echo "all steps ok; results in $OUT"
