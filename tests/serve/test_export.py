"""Export: ONNX checked against onnxruntime at two batch sizes, safetensors against the state_dict."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx  # the dev extra installs the export extra and onnxruntime: a missing one fails loudly, not skips
import onnxruntime as ort
import pytest
import safetensors.torch as safetensors_torch
import torch
from safetensors import safe_open
from torch import nn

from cnnzoo import create_model
from cnnzoo.base.devices import setup_device
from cnnzoo.base.errors import CheckpointError, ConfigError, MissingExtraError
from cnnzoo.serve.export import export_checkpoint
from cnnzoo.train.checkpoint import checkpoint_payload, load_checkpoint, save_checkpoint
from cnnzoo.train.optim import build_optimizer, build_scheduler
from cnnzoo.train.recipes import resolve_config
from cnnzoo.train.state import TrainState


def perturb(model: nn.Module, seed: int = 0) -> nn.Module:
    """Move BatchNorm statistics away from 0 and 1, so an export in training mode could not pass."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if buf.is_floating_point():
                if "var" in name:
                    buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
                else:
                    buf.copy_(torch.randn(buf.shape, generator=g) * 0.2)
    return model


def make_checkpoint(
    directory: Path,
    name: str,
    *,
    size: int,
    in_channels: int = 1,
    num_classes: int = 10,
    normalize: bool = True,
    **kwargs,
) -> tuple[Path, nn.Module]:
    """A real checkpoint of an untrained, perturbed ``name``, written by the checkpoint module."""
    torch.manual_seed(0)
    model = perturb(create_model(name, num_classes=num_classes, in_channels=in_channels, **kwargs))
    config = resolve_config(name)
    optimizer = build_optimizer(model, config)
    state = TrainState(model, optimizer, build_scheduler(optimizer, config, 1), config, setup_device("cpu"))
    payload = checkpoint_payload(
        state,
        classes=[f"class {i}" for i in range(num_classes)],
        mean=[0.25] * in_channels if normalize else None,
        std=[0.5] * in_channels if normalize else None,
        input_size=size,
        in_channels=in_channels,
    )
    directory.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(directory / "last.pt", payload), model.eval()


@pytest.mark.parametrize(
    ("name", "size", "in_channels", "kwargs"),
    [
        ("lenet_bn", 28, 1, {}),
        ("lenet_bn_scratch", 28, 1, {}),
        ("resnet18", 28, 3, {"small_input": True}),
        ("googlenet", 32, 1, {}),
    ],
)
def test_onnx_matches_pytorch_at_two_batch_sizes(tmp_path, name, size, in_channels, kwargs):
    ckpt, model = make_checkpoint(tmp_path, name, size=size, in_channels=in_channels, num_classes=7, **kwargs)
    out = export_checkpoint(ckpt, "onnx")
    assert out == tmp_path / "last.onnx" and out.is_file()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "input" and inp.shape[1:] == [in_channels, size, size] and isinstance(inp.shape[0], str)
    g = torch.Generator().manual_seed(1)
    for batch in (1, 5):
        x = torch.randn(batch, in_channels, size, size, generator=g)
        (got,) = session.run(["logits"], {"input": x.numpy()})
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == (batch, 7)
        assert np.abs(got - want).max() < 1e-4


def test_onnx_metadata_carries_the_preprocessing(tmp_path):
    ckpt, _ = make_checkpoint(tmp_path, "resnet18", size=28, in_channels=3, num_classes=4, small_input=True)
    proto = onnx.load(str(export_checkpoint(ckpt, "onnx", tmp_path / "out" / "model.onnx")))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["cnnzoo.model_name"] == "resnet18"
    assert json.loads(meta["cnnzoo.model_kwargs"]) == {"num_classes": 4, "in_channels": 3, "small_input": True}
    assert json.loads(meta["cnnzoo.mean"]) == [0.25] * 3 and json.loads(meta["cnnzoo.std"]) == [0.5] * 3
    assert meta["cnnzoo.input_size"] == "28" and meta["cnnzoo.in_channels"] == "3"
    assert json.loads(meta["cnnzoo.classes"]) == ["class 0", "class 1", "class 2", "class 3"]
    assert "(pixels / 255 - cnnzoo.mean) / cnnzoo.std" in proto.doc_string


def test_safetensors_holds_the_state_dict_and_metadata(tmp_path):
    ckpt, _ = make_checkpoint(tmp_path / "run", "lenet_bn", size=28, normalize=False)
    out = export_checkpoint(tmp_path / "run", "safetensors")  # a run directory means its last.pt
    assert out == tmp_path / "run" / "last.safetensors"
    tensors = safetensors_torch.load_file(str(out))
    state = load_checkpoint(ckpt)["model_state"]
    assert tensors.keys() == state.keys()
    for key, value in state.items():
        assert tensors[key].dtype == value.dtype and torch.equal(tensors[key], value), key
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["cnnzoo.model_name"] == "lenet_bn" and meta["cnnzoo.mean"] == "null"
    model = create_model("lenet_bn", **json.loads(meta["cnnzoo.model_kwargs"]))
    model.load_state_dict(tensors)  # strict: every key fits


def test_safetensors_copes_with_weights_that_share_memory(tmp_path):
    ckpt, _ = make_checkpoint(tmp_path, "lenet_bn", size=28)
    payload = load_checkpoint(ckpt)
    payload.pop("path")
    first = next(iter(payload["model_state"]))
    payload["model_state"]["tied.weight"] = payload["model_state"][first]  # as a tied weight is saved
    save_checkpoint(ckpt, payload)
    tensors = safetensors_torch.load_file(str(export_checkpoint(ckpt, "safetensors")))
    assert torch.equal(tensors["tied.weight"], tensors[first])


@pytest.mark.parametrize(("fmt", "module"), [("onnx", "onnx"), ("safetensors", "safetensors")])
def test_a_missing_extra_is_a_one_line_error_naming_it(tmp_path, monkeypatch, fmt, module):
    ckpt, _ = make_checkpoint(tmp_path, "lenet_bn", size=28)
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.setitem(sys.modules, name, None)  # what an absent package looks like to import
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(
        MissingExtraError, match=rf"needs the '{module}' package.*pip install 'cnnzoo\[export\]'"
    ) as info:
        export_checkpoint(ckpt, fmt)
    assert "\n" not in str(info.value)
    assert not (tmp_path / f"last.{fmt}").exists()


def test_bad_arguments_are_user_errors(tmp_path):
    ckpt, _ = make_checkpoint(tmp_path, "lenet_bn", size=28)
    with pytest.raises(ConfigError, match="unknown export format 'tflite': choose onnx or safetensors"):
        export_checkpoint(ckpt, "tflite")
    with pytest.raises(ConfigError, match="is the checkpoint itself"):
        export_checkpoint(ckpt, "onnx", output=ckpt)
    with pytest.raises(CheckpointError, match="no such run directory or checkpoint"):
        export_checkpoint(tmp_path / "missing.pt", "onnx")
