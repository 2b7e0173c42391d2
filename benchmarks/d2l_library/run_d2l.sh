#!/bin/sh
# One whole-process run of the book's program: run_d2l.sh MODEL EPOCHS  (MODEL: lenet or lenet_bn).
# In RACE_DIR/work, so d2l's root="../data" is RACE_DIR/data (setup.sh); matplotlib on Agg (no display here);
# what it prints goes to LOG (default RACE_DIR/logs/d2l-MODEL-EPOCHS.log, appended).
HERE=$(cd "$(dirname "$0")" && pwd)
RACE_DIR=${RACE_DIR:-/tmp/d2l-race}
D2L_VENV=${D2L_VENV:-/work/d2l-venv}
MODEL=${1:?MODEL}; EPOCHS=${2:-10}
LOG=${LOG:-$RACE_DIR/logs/d2l-$MODEL-$EPOCHS.log}
cd "$RACE_DIR/work" || exit 1
MPLBACKEND=Agg exec "$D2L_VENV/bin/python" "$HERE/$MODEL.py" "$EPOCHS" >>"$LOG" 2>&1
