"""scripts/install-torch.sh (what `make demo` and `make test` install PyTorch with): the CPU-only wheels on a
machine without an NVIDIA GPU, the default build when PyTorch's CPU index cannot be reached (saying so), and one
line naming the build. The Python it drives is a stand-in that records the calls, so no package is installed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-torch.sh"
HAS_GPU = Path("/proc/driver/nvidia/version").exists() or any(
    Path(d, "nvidia-smi").exists() for d in ("/usr/bin", "/bin")
)

STAND_IN = """#!/bin/sh
echo "$*" >> "$CALLS"
case "$*" in
  *"import torch, torchvision"*) [ -f "$STATE/installed" ] && exit 0 || exit 1 ;;
  *urllib*) [ "$REACHABLE" = 1 ] && exit 0 || exit 1 ;;
  *"pip install"*) touch "$STATE/installed"; exit 0 ;;
  -*) cat > /dev/null; echo "torch: stand-in build ($2)"; exit 0 ;;
esac
"""


def run(tmp_path: Path, *, reachable: bool, gpu: bool = False) -> tuple[str, list[str]]:
    python = tmp_path / "python"
    python.write_text(STAND_IN)
    python.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    nvidia = bin_dir / "nvidia-smi"
    if gpu:
        nvidia.write_text("#!/bin/sh\nexit 0\n")
        nvidia.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CNNZOO_TORCH_CPU_INDEX"}
    env.update(
        CALLS=str(tmp_path / "calls"),
        STATE=str(tmp_path),
        REACHABLE="1" if reachable else "0",
        PATH=f"{bin_dir}:/usr/bin:/bin",
    )
    done = subprocess.run(["sh", str(SCRIPT), str(python)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout, (tmp_path / "calls").read_text().splitlines()


@pytest.mark.skipif(HAS_GPU, reason="this machine has an NVIDIA GPU")
def test_without_a_gpu_the_cpu_wheels_are_asked_for(tmp_path):
    out, calls = run(tmp_path, reachable=True)
    install = [c for c in calls if "pip install" in c]
    assert install == [
        "-m pip install -q --index-url https://download.pytorch.org/whl/cpu torch>=2.3 torchvision>=0.17"
    ]
    assert out.strip() == "torch: stand-in build (no NVIDIA GPU here: PyTorch's CPU wheels)"


@pytest.mark.skipif(HAS_GPU, reason="this machine has an NVIDIA GPU")
def test_an_unreachable_cpu_index_falls_back_to_the_default_build_with_one_line(tmp_path):
    out, calls = run(tmp_path, reachable=False)
    assert [c for c in calls if "pip install" in c] == ["-m pip install -q torch>=2.3 torchvision>=0.17"]
    first, last = out.strip().splitlines()
    assert "cannot be reached: installing the default index's build instead" in first
    assert last == "torch: stand-in build (no NVIDIA GPU here, CPU index unreachable)"


def test_with_a_gpu_the_default_cuda_build_and_nothing_twice(tmp_path):
    out, calls = run(tmp_path, reachable=True, gpu=True)
    assert [c for c in calls if "pip install" in c] == ["-m pip install -q torch>=2.3 torchvision>=0.17"]
    assert not any("urllib" in c for c in calls)
    out, calls = run(tmp_path, reachable=True, gpu=True)  # installed now: nothing more
    assert out.strip() == "torch: stand-in build (already installed)"
    assert sum("pip install" in c for c in calls) == 1
