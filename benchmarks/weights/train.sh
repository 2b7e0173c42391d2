#!/usr/bin/env bash
# Train every run the published weights come from, one after another, on this machine's CPU.
#   benchmarks/weights/train.sh [RUNS_DIR] [NAME ...]      (RUNS_DIR default: ~/cnnzoo-weight-runs)
# A run that finished (report.md) is skipped; one that stopped (last.pt) is resumed with --resume, so the script
# can be started again in a later session and carries on. Each run's command is exactly what its card quotes
# (with --out added). Then publish: benchmarks/weights/publish.py RUN_DIR... (see benchmarks/weights/README.md).
set -u
cd "$(dirname "$0")/../.."
CNNZOO=${CNNZOO:-.venv/bin/cnnzoo}
RUNS=${1:-$HOME/cnnzoo-weight-runs}; shift || true
mkdir -p "$RUNS"
ONLY=" $* "

run() {  # NAME ARGS...: cnnzoo train ARGS --threads 2 --quiet --out RUNS/NAME
  local name=$1; shift
  local out=$RUNS/$name
  [ "$ONLY" = "  " ] || [[ "$ONLY" == *" ${name%-s*} "* ]] || return 0
  if [ -f "$out/report.md" ]; then echo "done    $name"; return 0; fi
  echo "start   $name $(date -u +%FT%TZ)"
  if [ -f "$out/last.pt" ]; then
    "$CNNZOO" train --resume "$out" --threads 2 --quiet > "$out.log" 2>&1
  else
    rm -rf "$out"
    "$CNNZOO" train "$@" --threads 2 --quiet --out "$out" > "$out.log" 2>&1
  fi
  echo "end     $name $(date -u +%FT%TZ) exit $?"
}

for s in 0 1 2; do run "lenet_bn-s$s" lenet_bn --seed $s; done
for s in 0 1 2; do run "lenet-s$s" lenet --seed $s; done
# The speed record's recipes, 10 seeds each (benchmarks/speedrun/run.py makes the same runs, timed, with --out)
for s in 0 1 2 3 4 5 6 7 8 9; do run "speednet-s$s" speednet --recipe record --device cpu --seed $s; done
for s in 0 1 2 3 4 5 6 7 8 9; do run "speednet_wide-s$s" speednet_wide --recipe record --device cpu --seed $s; done
for s in 0 1 2; do
  run "densenet32-s$s" densenet --input-size 32 --epochs 20 --precision bf16-native --channels-last yes --seed $s
done
run resnet18_32-s0 resnet18 --input-size 32 --epochs 20 --seed 0
run googlenet32-s0 googlenet --input-size 32 --epochs 25 --precision bf16-native --channels-last yes --seed 0
run nin96-s0 nin --input-size 96 --epochs 15 --precision bf16-native --channels-last yes --seed 0
# AlexNet and VGG-small: one seed each within about 30 minutes of 2 cores (bf16 + channels_last is 3x / 2.2x fp32
# here: `cnnzoo bench alexnet --input-size 193 -b 64`); their files are too large to ship, so `cnnzoo weights build`
# re-creates them from this command.
run alexnet193-s0 alexnet --input-size 193 --epochs 4 --precision bf16-native --channels-last yes --seed 0
run vgg11_small-s0 vgg11_small --epochs 2 --precision bf16-native --channels-last yes --seed 0
