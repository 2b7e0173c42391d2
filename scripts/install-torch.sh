#!/usr/bin/env sh
# Install PyTorch into a virtual environment, the build this machine needs, and say in one line which it got.
#   scripts/install-torch.sh .venv/bin/python
# No NVIDIA GPU (no nvidia-smi, no /proc/driver/nvidia): PyTorch's CPU-only wheels (about 0.7 GB installed), from
# PyTorch's CPU index. Where that index cannot be reached, the default index's build (with its CUDA libraries,
# about 5.6 GB) instead, saying so. With an NVIDIA GPU: the default index's CUDA build. Torch already installed:
# nothing. The requirements are cnnzoo's (torch>=2.3, torchvision>=0.17), so 2.14.1 / 0.29.1 satisfy them.
set -eu
PY=${1:-.venv/bin/python}
CPU_INDEX=${CNNZOO_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
REQS="torch>=2.3 torchvision>=0.17"

report() {
  "$PY" - "$1" <<'PYEOF'
import sys, torch, torchvision
build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
print(f"torch: {torch.__version__} / torchvision {torchvision.__version__}, the {build} ({sys.argv[1]})")
PYEOF
}

if "$PY" -c "import torch, torchvision" 2>/dev/null; then
  report "already installed"
  exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 || [ -e /proc/driver/nvidia/version ]; then
  "$PY" -m pip install -q $REQS
  report "an NVIDIA GPU is here"
  exit 0
fi
if "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=15)" "$CPU_INDEX" \
    >/dev/null 2>&1; then
  "$PY" -m pip install -q --index-url "$CPU_INDEX" $REQS
  report "no NVIDIA GPU here: PyTorch's CPU wheels"
else
  echo "torch: PyTorch's CPU wheel index ($CPU_INDEX) cannot be reached: installing the default index's build instead"
  "$PY" -m pip install -q $REQS
  report "no NVIDIA GPU here, CPU index unreachable"
fi
