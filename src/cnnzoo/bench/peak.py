"""How close a run is to the CPU's arithmetic limit: the FLOPs a network does per image, and an *estimate* of the
CPU's peak rate from its instruction-set flags and clock.

FLOPs per image come from the multiply-accumulates :func:`cnnzoo.models.inspection.count_macs` counts (convolutions
and linear layers): a forward pass is ``2 x MACs`` FLOPs (a multiply and an add), and a training step about
``6 x MACs`` (the backward pass computes the gradients of the inputs and of the weights, each as costly as the
forward pass). Norms, activations, pooling and the optimizer are left out: they are memory-bound and small in FLOPs.

The peak is ``cores x clock x FLOPs per cycle per core`` for the precision (:func:`cpu_peak`), where FLOPs per
cycle follow from ``/proc/cpuinfo``'s flags:

==============================  ================  ======================================================
flags                           fp32 FLOPs/cycle  how
==============================  ================  ======================================================
``avx512f``                     64                two 512-bit FMA units x 16 lanes x 2
``avx512f``, AMD family 0x19    32                Zen 4 runs 512-bit FMAs as two 256-bit halves
``avx2`` + ``fma``              32                two 256-bit FMA units x 8 lanes x 2
``avx``                         16                256-bit multiply and add, no FMA
(none of these)                 8                 SSE
==============================  ================  ======================================================

bf16: ``amx_bf16`` (Intel's matrix tiles) 1024 FLOPs per cycle; ``avx512_bf16`` twice the fp32 rate (its dot
product does two multiply-adds a lane); without either, bf16 runs at the fp32 rate. The clock is the highest
``cpu MHz`` the kernel reports (a virtual machine shows its nominal clock; turbo is not counted), and the cores are
the threads PyTorch computes with. Real kernels reach a fraction of this: the figure says how far a run is from the
hardware, not a target it can reach.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuPeak", "achieved_gflops", "cpu_peak", "flops_per_image"]

CPUINFO = Path("/proc/cpuinfo")
AMD_ZEN4 = 0x19  # AMD family 25: Zen 3 has no AVX-512, so with avx512f this is Zen 4


def flops_per_image(macs: int, mode: str) -> int:
    """FLOPs one image costs: ``2 x MACs`` in inference, ``6 x MACs`` in a training step (see the module doc)."""
    if mode not in ("train", "infer"):
        raise ValueError(f"mode must be train or infer, got {mode!r}")
    return (6 if mode == "train" else 2) * int(macs)


def achieved_gflops(images_per_sec: float, flops: int) -> float:
    """The arithmetic rate of ``images_per_sec`` images of ``flops`` FLOPs each, in GFLOP/s."""
    return images_per_sec * flops / 1e9


@dataclass(frozen=True)
class CpuPeak:
    """An estimated peak: ``cores x ghz x`` FLOPs per cycle per core, for fp32 and for bf16."""

    model: str
    cores: int
    ghz: float
    fp32_per_cycle: int
    bf16_per_cycle: int
    fp32_basis: str  # the flags each rate was read from, for the label
    bf16_basis: str

    def gflops(self, precision: str) -> float:
        """The peak for ``fp32`` or ``bf16`` (``bf16-native`` and the like count as bf16), in GFLOP/s."""
        per_cycle = self.bf16_per_cycle if precision.startswith("bf16") else self.fp32_per_cycle
        return self.cores * self.ghz * per_cycle

    def describe(self, precision: str) -> str:
        """The estimate written out, e.g. ``an estimate: 2 cores x 2.60 GHz x 64 fp32 FLOPs/cycle (avx512f) = ...``."""
        bf16 = precision.startswith("bf16")
        per_cycle, basis = (self.bf16_per_cycle, self.bf16_basis) if bf16 else (self.fp32_per_cycle, self.fp32_basis)
        return (f"an estimate: {self.cores} cores x {self.ghz:.2f} GHz x {per_cycle} {'bf16' if bf16 else 'fp32'} "
                f"FLOPs/cycle ({basis}) = {self.gflops(precision):,.0f} GFLOP/s")  # fmt: skip


def _field(text: str, name: str) -> list[str]:
    return re.findall(rf"^{name}\s*:\s*(.*)$", text, flags=re.MULTILINE)


def cpu_peak(cores: int | None = None, cpuinfo: str | None = None) -> CpuPeak | None:
    """The estimated peak of ``cores`` cores (default: all) of this CPU, from ``cpuinfo`` (default: read
    ``/proc/cpuinfo``); None where there is no such file or it says too little (no clock)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    flags = set(" ".join(_field(cpuinfo, "flags")[:1]).split())
    clocks = [float(v) for v in _field(cpuinfo, "cpu MHz") if re.fullmatch(r"[0-9.]+", v.strip())]
    if not clocks:
        return None
    vendor = (_field(cpuinfo, "vendor_id") or [""])[0].strip()
    family = (_field(cpuinfo, "cpu family") or ["0"])[0].strip()
    model = (_field(cpuinfo, "model name") or ["unknown CPU"])[0].strip()
    if "avx512f" in flags:
        zen4 = vendor == "AuthenticAMD" and family.isdigit() and int(family) == AMD_ZEN4
        fp32, basis = (32, "avx512f, AMD Zen 4") if zen4 else (64, "avx512f")
    elif {"avx2", "fma"} <= flags:
        fp32, basis = 32, "avx2, fma"
    elif "avx" in flags:
        fp32, basis = 16, "avx"
    else:
        fp32, basis = 8, "sse"
    if "amx_bf16" in flags:
        bf16, bf16_basis = 1024, "amx_bf16"
    elif "avx512_bf16" in flags:
        bf16, bf16_basis = 2 * fp32, "avx512_bf16: twice the fp32 rate"
    else:
        bf16, bf16_basis = fp32, f"no bf16 units: the fp32 rate, {basis}"
    count = cores if cores is not None else (os.cpu_count() or 1)
    return CpuPeak(model, count, max(clocks) / 1000.0, fp32, bf16, basis, bf16_basis)
