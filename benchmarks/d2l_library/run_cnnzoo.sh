#!/bin/sh
# One whole-process run of cnnzoo's rebuild of the book's recipe: run_cnnzoo.sh MODEL EPOCHS.
# cnnzoo train MODEL --recipe d2l --epochs EPOCHS --device cpu, into a fresh run directory under RACE_DIR/runs
# (cnnzoo refuses a non-empty --out); what it prints goes to LOG (default RACE_DIR/logs/cnnzoo-MODEL-EPOCHS.log).
HERE=$(cd "$(dirname "$0")" && pwd)
RACE_DIR=${RACE_DIR:-/tmp/d2l-race}
CNNZOO=${CNNZOO:-$HERE/../../.venv/bin/cnnzoo}
MODEL=${1:?MODEL}; EPOCHS=${2:-10}
LOG=${LOG:-$RACE_DIR/logs/cnnzoo-$MODEL-$EPOCHS.log}
mkdir -p "$RACE_DIR/runs"
OUT=$(mktemp -d "$RACE_DIR/runs/$MODEL-$EPOCHS-XXXXXX") || exit 1
cd "$RACE_DIR/work" || exit 1
echo "run directory: $OUT" >>"$LOG"
exec "$CNNZOO" train "$MODEL" --recipe d2l --epochs "$EPOCHS" --device cpu --out "$OUT" >>"$LOG" 2>&1
