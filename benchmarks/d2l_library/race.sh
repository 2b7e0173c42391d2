#!/bin/sh
# The race against the d2l library itself (issue 14, items 5 and 6; see ../d2l-library-race.md):
#   A = the book's program on d2l==0.17.6 (lenet.py / lenet_bn.py, unmodified calls: load_data_fashion_mnist,
#       train_ch6), B = `cnnzoo train MODEL --recipe d2l --epochs EPOCHS --device cpu`,
# same network, epochs and machine, whole process each, interleaved A B A B ..., timed with GNU time.
#
#   benchmarks/d2l_library/race.sh [EPOCHS] [RUNS] [MODEL ...]     defaults: 10 3 lenet lenet_bn
#
# WARMUP (default 1) rounds are run first and not counted. Each run's output and cnnzoo's run directories stay in
# RACE_DIR (default /tmp/d2l-race); the figures go to RACE_DIR/race-<time>.tsv and a table on stdout.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
EPOCHS=${1:-10}; RUNS=${2:-3}
[ $# -ge 2 ] && shift 2 || shift $#
MODELS=${*:-lenet lenet_bn}
WARMUP=${WARMUP:-1}
export RACE_DIR=${RACE_DIR:-/tmp/d2l-race}
CNNZOO=${CNNZOO:-$REPO/.venv/bin/cnnzoo}
PY=${CNNZOO_PY:-$REPO/.venv/bin/python}
TIME=${GNU_TIME:-/usr/bin/time}

"$HERE/setup.sh"

# --recipe d2l must train on all 60,000 training images like the book: no validation split held out.
for m in $MODELS; do
    "$CNNZOO" train "$m" --recipe d2l --epochs "$EPOCHS" --device cpu --print-config | "$PY" -c '
import json, sys
c = json.load(sys.stdin)
held = {k: c[k] for k in ("val_size", "val_split", "validation") if c.get(k)}
assert c["recipe"] == "d2l" and not held, f"--recipe d2l holds out a validation split: {held}"
'
done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
TSV=$RACE_DIR/race-$STAMP.tsv
LOGS=$RACE_DIR/logs/$STAMP
mkdir -p "$LOGS"
printf 'model\tround\tcounted\ttool\twall_s\tuser_s\tsys_s\tpeak_kib\texit\tlog\n' > "$TSV"
echo "race: epochs $EPOCHS, $RUNS counted rounds after $WARMUP warm-up, models: $MODELS; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

one() {  # one() MODEL ROUND COUNTED TOOL
    log=$LOGS/$4-$1-r$2.log
    LOG=$log "$TIME" -f '%e\t%U\t%S\t%M\t%x' -o "$LOGS/time.tmp" "$HERE/run_$4.sh" "$1" "$EPOCHS" || true
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(tail -n 1 "$LOGS/time.tmp")" "$log" >> "$TSV"
    echo "  $1 round $2 $4: $(cut -f1 "$LOGS/time.tmp" | tail -n 1) s wall" >&2
}
for m in $MODELS; do
    r=1
    while [ "$r" -le $((WARMUP + RUNS)) ]; do
        counted=$([ "$r" -gt "$WARMUP" ] && echo 1 || echo 0)
        one "$m" "$r" "$counted" d2l
        one "$m" "$r" "$counted" cnnzoo
        r=$((r + 1))
    done
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$PY" "$HERE/summarize.py" "$TSV"
