"""How close to the CPU's limit (cnnzoo.bench.peak): FLOPs per image, achieved GFLOP/s, the estimated peak."""

from __future__ import annotations

import math
import re

import pytest

from cnnzoo.base.devices import setup_device
from cnnzoo.bench import throughput as bench
from cnnzoo.bench.peak import achieved_gflops, cpu_peak, flops_per_image
from cnnzoo.models.inspection import count_macs
from cnnzoo.models.registry import create_model


def cpuinfo(flags: str, *, vendor: str = "GenuineIntel", family: int = 6, mhz: str = "2600.000", cpus: int = 2):
    block = (f"vendor_id\t: {vendor}\ncpu family\t: {family}\nmodel name\t: Test CPU\ncpu MHz\t\t: {mhz}\n"
             f"flags\t\t: fpu sse sse2 {flags}\n\n")  # fmt: skip
    return block * cpus


@pytest.mark.parametrize(
    ("flags", "vendor", "family", "fp32", "bf16"),
    [
        ("avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile", "GenuineIntel", 6, 64, 1024),  # Sapphire Rapids
        ("avx avx2 fma avx512f avx512_bf16", "AuthenticAMD", 25, 32, 64),  # Zen 4: 512-bit FMAs in two halves
        ("avx avx2 fma avx512f avx512_bf16", "AuthenticAMD", 26, 64, 128),  # Zen 5
        ("avx avx2 fma", "GenuineIntel", 6, 32, 32),  # a laptop without bf16 units: bf16 at the fp32 rate
        ("avx", "GenuineIntel", 6, 16, 16),
        ("", "GenuineIntel", 6, 8, 8),
    ],
)
def test_the_peak_follows_the_instruction_set(flags, vendor, family, fp32, bf16):
    peak = cpu_peak(2, cpuinfo(flags, vendor=vendor, family=family))
    assert (peak.fp32_per_cycle, peak.bf16_per_cycle, peak.cores, peak.ghz) == (fp32, bf16, 2, 2.6)
    assert peak.gflops("fp32") == pytest.approx(2 * 2.6 * fp32)
    assert peak.gflops("bf16-native") == pytest.approx(2 * 2.6 * bf16)
    assert peak.describe("fp32").startswith(f"an estimate: 2 cores x 2.60 GHz x {fp32} fp32 FLOPs/cycle (")


def test_the_issues_zen5_figure_and_no_clock_no_estimate():
    zen5 = cpu_peak(2, cpuinfo("avx2 fma avx512f avx512_bf16", vendor="AuthenticAMD", family=26, mhz="3500.0"))
    assert zen5.gflops("fp32") == pytest.approx(448) and zen5.gflops("bf16") == pytest.approx(896)
    assert cpu_peak(2, "flags\t: avx2 fma\n") is None


def test_flops_and_gflops_of_a_known_model():
    macs = count_macs(create_model("lenet"), 28)
    assert macs == 416_520  # the book's LeNet: its convolutions and its three dense layers, per 28x28 image
    assert flops_per_image(macs, "infer") == 833_040 and flops_per_image(macs, "train") == 2_499_120
    assert achieved_gflops(10_000, flops_per_image(macs, "train")) == pytest.approx(24.9912)
    with pytest.raises(ValueError, match="mode must be train or infer"):
        flops_per_image(macs, "eval")


def test_a_bench_row_carries_its_gflops_and_its_share_of_the_peak(monkeypatch):
    monkeypatch.setattr(bench, "cpu_peak", lambda cores: cpu_peak(cores, cpuinfo("avx2 fma avx512f")))
    stats = bench.block_stats(100, [(10, 0.1)])  # 10,000 images/s
    row = bench.BenchRow(model="lenet", mode="train", batch_size=100, input_size=28, device="cpu (2 threads)",
                         precision="fp32", channels_last=False, compiled=False, params=61_706, macs=416_520,
                         peak_memory_mb=1.0, memory_kind="process peak RSS", threads=2, **stats)  # fmt: skip
    row = bench.with_arithmetic(row, setup_device("cpu", "fp32", "no"))
    assert row.flops_per_image == 2_499_120 and row.gflops == pytest.approx(24.9912)
    assert row.peak_gflops == pytest.approx(2 * 2.6 * 64) and row.peak_percent == pytest.approx(24.9912 / 3.328)
    text = bench.format_bench_table([row])
    assert re.search(r"417K +25\.0 +7\.5 ", text), text  # the MACs, GFLOP/s and % peak columns
    assert "* % peak: of an estimate: 2 cores x 2.60 GHz x 64 fp32 FLOPs/cycle (avx512f) = 333 GFLOP/s" in text
    failed = bench.with_arithmetic(bench.BenchRow(**{**row.to_dict(), "images_per_sec": 0.0}), setup_device("cpu"))
    assert math.isnan(failed.gflops) and failed.peak_percent is None
