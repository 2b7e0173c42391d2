"""The machine and versions a run or a benchmark row was measured on (config.json, report.md, leaderboard rows)."""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy
import torch

from cnnzoo._version import __version__

__all__ = ["cpu_model", "environment_info"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` knows) and core count."""
    name = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name}, {os.cpu_count()} logical CPUs"


def environment_info(setup_description: str) -> dict[str, Any]:
    """Versions and machine, for config.json, the report and the leaderboard's rows."""
    return {
        "device": setup_description,
        "cnnzoo": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }
