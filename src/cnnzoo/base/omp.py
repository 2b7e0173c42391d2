"""OpenMP's wait policy, which must be chosen before PyTorch loads its OpenMP runtime (it is read once, then).

PyTorch's CPU kernels split work over OpenMP threads that, by default, *spin* at every barrier waiting for
their siblings. That is the fastest choice on an idle machine, and the worst when a busy neighbour deschedules a
sibling. cnnzoo's main defence is to compute on the cores other programs leave free
(:func:`cnnzoo.base.devices.set_threads`); ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep) also softens a
neighbour that starts mid-run, but it cost 25-30 % of an idle LeNet-BN training at batch 128 on the reference
machine, so it is an opt-in: ``CNNZOO_CPU_WAIT=passive`` (benchmarks/busy-machine.md has the figures).

``import cnnzoo`` applies that choice when asked, unless the user set ``OMP_WAIT_POLICY`` themselves. It only
takes effect when ``cnnzoo`` is imported before ``torch`` (the ``cnnzoo`` command always is).
This module imports nothing heavy, so ``cnnzoo/__init__`` can run it first.
"""

from __future__ import annotations

import os

__all__ = ["choose_wait_policy"]


def choose_wait_policy() -> str:
    """``CNNZOO_CPU_WAIT=passive``: set ``OMP_WAIT_POLICY=PASSIVE`` (unless a policy was set); return the
    policy in force (``default``: OpenMP's own, spinning)."""
    if "OMP_WAIT_POLICY" not in os.environ and os.environ.get("CNNZOO_CPU_WAIT", "").lower() == "passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return os.environ.get("OMP_WAIT_POLICY", "default")
