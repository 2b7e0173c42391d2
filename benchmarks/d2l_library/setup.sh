#!/bin/sh
# Prepare the race against the d2l library (see ../d2l-library-race.md):
#   1. the benchmark virtualenv D2L_VENV (default /work/d2l-venv), outside the repository: created when missing,
#      otherwise checked (d2l 0.17.6 importable, same torch as cnnzoo's);
#   2. the scratch directory RACE_DIR (default /tmp/d2l-race): work/ (the d2l programs' working directory),
#      data/FashionMNIST/raw/ (what d2l's load_data_fashion_mnist reads as ../data: the four IDX files,
#      decompressed, so torchvision finds them and never downloads), logs/ and runs/.
# The Fashion-MNIST files come from FASHION_MNIST_GZ (default /usr/share/datasets/fashion-mnist).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
D2L_VENV=${D2L_VENV:-/work/d2l-venv}
RACE_DIR=${RACE_DIR:-/tmp/d2l-race}
CNNZOO_PY=${CNNZOO_PY:-$REPO/.venv/bin/python}
FASHION_MNIST_GZ=${FASHION_MNIST_GZ:-/usr/share/datasets/fashion-mnist}

if [ ! -x "$D2L_VENV/bin/python" ]; then
    echo "creating $D2L_VENV" >&2
    python3.11 -m venv "$D2L_VENV"
    # torch/torchvision: the versions cnnzoo's virtualenv has; d2l without its pins (numpy 1.21, matplotlib 3.5,
    # pandas 1.2 have no wheels for Python 3.11), then exactly what d2l/torch.py imports at module level.
    "$D2L_VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
    "$D2L_VENV/bin/pip" install -q --no-deps d2l==0.17.6
    "$D2L_VENV/bin/pip" install -q matplotlib matplotlib-inline ipython pandas requests
fi
"$D2L_VENV/bin/python" - "$CNNZOO_PY" <<'PY'
import subprocess, sys
from importlib.metadata import version
assert version("d2l") == "0.17.6", f"d2l {version('d2l')} in the benchmark venv, want 0.17.6"
theirs = subprocess.run([sys.argv[1], "-c", "import torch; print(torch.__version__)"],
                        capture_output=True, text=True, check=True).stdout.strip()
import torch
assert torch.__version__ == theirs, f"torch {torch.__version__} (d2l venv) vs {theirs} (cnnzoo venv)"
PY

mkdir -p "$RACE_DIR/work" "$RACE_DIR/data/FashionMNIST/raw" "$RACE_DIR/logs" "$RACE_DIR/runs"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    dst="$RACE_DIR/data/FashionMNIST/raw/$f"
    if [ ! -s "$dst" ]; then
        gzip -dc "$FASHION_MNIST_GZ/$f.gz" > "$dst.tmp" && mv "$dst.tmp" "$dst" || { echo "could not make $dst" >&2; exit 1; }
    fi
done
# torchvision finds the data (no download: it would fail, as this machine reaches no mirror)
(cd "$RACE_DIR/work" && "$D2L_VENV/bin/python" -c '
import torchvision
for train in (True, False):
    d = torchvision.datasets.FashionMNIST(root="../data", train=train, download=False)
    assert len(d) == (60000 if train else 10000), len(d)
') || { echo "torchvision does not find Fashion-MNIST under $RACE_DIR/data" >&2; exit 1; }
echo "ready: $D2L_VENV (d2l 0.17.6), data in $RACE_DIR/data, working directory $RACE_DIR/work" >&2
