"""OpenMP's wait policy, which must be chosen before PyTorch loads its OpenMP runtime (it is read once, then).

PyTorch's CPU kernels split work over OpenMP threads that, by default, *spin* at every barrier waiting for
their siblings. On a 2-core laptop with a browser busy beside the training, a sibling is often descheduled, and
the spinning thread burns its time slice waiting: one LeNet-BN training step at batch 256 fell from 17-21k to
300-1,500 images/s. ``OMP_WAIT_POLICY=PASSIVE`` makes waiting threads sleep instead, which costs little on an
idle machine and keeps most of the speed on a busy one (benchmarks/busy-machine.md has the figures).

``import cnnzoo`` sets it unless the user chose a policy (``OMP_WAIT_POLICY`` already set) or asked for
OpenMP's own default with ``CNNZOO_CPU_WAIT=active``. It only takes effect when ``cnnzoo`` is imported before
``torch`` (the ``cnnzoo`` command always is); a program that imports torch first sets the variable itself.
This module imports nothing heavy, so ``cnnzoo/__init__`` can run it first.
"""

from __future__ import annotations

import os

__all__ = ["choose_wait_policy"]


def choose_wait_policy() -> str:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless a policy was chosen; return the policy in force."""
    if "OMP_WAIT_POLICY" not in os.environ and os.environ.get("CNNZOO_CPU_WAIT", "").lower() != "active":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return os.environ.get("OMP_WAIT_POLICY", "default")
