#!/usr/bin/env bash
# The book's own figures at its own sizes: --recipe d2l for ResNet-18, GoogLeNet and DenseNet at 96x96 (the book
# printed 0.915, 0.886 and 0.882 after 10 epochs on its GPU). About an hour each on 2 CPU cores, in bf16 where the
# CPU computes it (the result says which precision ran). Finished runs are skipped and stopped ones resumed, so the
# script can be started again in a later session.
#   benchmarks/d2l_reproductions.sh [RUNS_DIR]        (default ~/cnnzoo-d2l-runs)
# The results go beside the book's figures in docs/training.md and the README.
set -u
cd "$(dirname "$0")/.."
CNNZOO=${CNNZOO:-.venv/bin/cnnzoo}
RUNS=${1:-$HOME/cnnzoo-d2l-runs}
mkdir -p "$RUNS"
for model in resnet18 googlenet densenet; do
  out="$RUNS/d2l-$model"
  if [ -f "$out/report.md" ]; then echo "done    $model: $(tail -n 2 "$out.log" | head -n 1)"; continue; fi
  echo "start   $model $(date -u +%FT%TZ)"
  if [ -f "$out/last.pt" ]; then
    "$CNNZOO" train --resume "$out" --threads 2 --quiet >> "$out.log" 2>&1
  else
    rm -rf "$out"
    "$CNNZOO" train "$model" --recipe d2l --precision bf16-native --channels-last yes --threads 2 --quiet \
      --out "$out" > "$out.log" 2>&1
  fi
  echo "end     $model $(date -u +%FT%TZ) exit $?: $(tail -n 2 "$out.log" | head -n 1)"
done
