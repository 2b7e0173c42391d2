"""The precision rule (cnnzoo.base.devices): ``bf16-native`` is bf16 exactly where the hardware computes it."""

from __future__ import annotations

import pytest
import torch

import cnnzoo.base.devices as devices
from cnnzoo.base.devices import has_native_bf16, resolve_precision
from cnnzoo.base.errors import ConfigError
from cnnzoo.train.recipes import resolve_config

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ({"avx512f", "avx512_bf16"}, True),
        ({"amx_bf16", "amx_tile"}, True),
        ({"avx2", "avx512f"}, False),
        (set(), False),
    ],
)
def test_bf16_native_follows_the_cpu_flags(monkeypatch, flags, native):
    monkeypatch.setattr(devices, "_cpu_flags", lambda: flags)
    assert has_native_bf16(CPU) is native
    assert resolve_precision("bf16-native", CPU) == (torch.bfloat16 if native else None)
    # the other names do not depend on the flags
    assert resolve_precision("auto", CPU) is None and resolve_precision("fp32", CPU) is None
    assert resolve_precision("bf16", CPU) == torch.bfloat16


def test_the_cpu_flags_are_read_from_proc_cpuinfo():
    flags = devices._cpu_flags()
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        assert flags == set()
        return
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    assert flags == set(line.split(":", 1)[1].split()) if line else flags == set()


def test_an_unknown_precision_names_the_choices():
    with pytest.raises(ConfigError, match="choose auto, fp32, bf16 or bf16-native"):
        resolve_precision("fp16", CPU)


def test_speednet_recipes_use_bf16_where_native_and_channels_last():
    for name in ("speednet", "speednet_wide"):
        config = resolve_config(name, "fast", {})
        assert (config.precision, config.channels_last) == ("bf16-native", "yes")
    assert resolve_config("lenet_bn", "fast", {}).precision == "auto"  # slower in bf16 on the CPU
