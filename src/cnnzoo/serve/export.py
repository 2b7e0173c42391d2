"""Export a trained network for use outside cnnzoo: ONNX (onnxruntime and friends) or safetensors (the weights).

**ONNX.** The graph is the network alone, in eval mode. It takes the same *normalised* float input the model
takes, ``input``: float32 ``[batch, C, S, S]`` with ``C`` and ``S`` the checkpoint's channels and input size,
and returns ``logits``: ``[batch, num_classes]`` (no softmax). The batch dimension is dynamic; the image size
is fixed at the one the network was trained at. Preprocessing is *not* in the graph: a consumer computes
``(pixels / 255 - mean) / std`` per channel itself (``pixels / 255`` when ``mean`` is null), from the
``metadata_props`` of the model, all strings:

========================  =========================================================================
``cnnzoo.model_name``     the registered name (``resnet18``)
``cnnzoo.model_kwargs``   JSON: what :func:`cnnzoo.create_model` needs to rebuild it
``cnnzoo.input_size``     ``S``; ``cnnzoo.in_channels``: ``C``
``cnnzoo.mean``           JSON list of per-channel means on the [0, 1] scale, or ``null``
``cnnzoo.std``            JSON list of per-channel standard deviations, or ``null``
``cnnzoo.classes``        JSON list: ``classes[i]`` names logit ``i``
``cnnzoo.version``        the cnnzoo that wrote it
``cnnzoo.preprocess``     JSON: every step that prepares a picture, with its parameters (below)
========================  =========================================================================

Every step that prepares a picture before that (decoding, inversion, levelling and cropping, padding, resizing)
is spelled out, with its parameters, in ``cnnzoo.preprocess``: JSON, :mod:`cnnzoo.data.preprocessing`. With
``--with-preprocessing`` the graph takes ``image`` instead: uint8 ``[batch, C, height, width]``, any size, as the
``pad_to_square`` step leaves it, and resizes (the antialiased triangle filter PIL uses), stretches and normalises
it itself; the steps before that stay the consumer's (``"in_graph": false`` in ``cnnzoo.preprocess``).

It is written with PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) at opset
:data:`ONNX_OPSET`: that path needs only the ``onnx`` package (to add the metadata and check the model),
where the newer ``torch.export``-based one, PyTorch's default since 2.9, also needs ``onnxscript``. The
registry's input-size check (a forward pre-hook) is traced as constants: harmless, because the exported
height and width are fixed at the checkpoint's input size, which passed that check.

**safetensors.** The ``state_dict`` as saved in the checkpoint, with the same metadata (plus
``format: pt``) in the file's ``__metadata__``: ``safetensors.torch.load_file`` gives the tensors back and
``cnnzoo.create_model(name, **json.loads(kwargs))`` the module to load them into.

ONNX needs the optional ``export`` extra, ``pip install 'cnnzoo[export]'`` (``onnx``; ``safetensors`` is installed
with cnnzoo, whose trained weights are safetensors files); without it :class:`~cnnzoo.base.errors.MissingExtraError`
says so in one line.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from cnnzoo.base.atomic import atomic_write_bytes
from cnnzoo.base.errors import ConfigError, MissingExtraError
from cnnzoo.base.outputs import claim_output
from cnnzoo.run.sources import load_trained
from cnnzoo.serve.predictor import picture_defaults, preprocess_spec_of
from cnnzoo.train.checkpoint import export_metadata, model_from_checkpoint

__all__ = ["EXPORT_FORMATS", "ONNX_OPSET", "export_checkpoint", "export_metadata", "verify_onnx"]

EXPORT_FORMATS = ("onnx", "safetensors")
ONNX_OPSET = 17  # read by every onnxruntime since 1.11 (2022), and enough for every layer in the zoo
_SUFFIX = {"onnx": ".onnx", "safetensors": ".safetensors"}
_EXTRA_HINT = "pip install 'cnnzoo[export]'"


def export_checkpoint(
    ckpt_path: str | os.PathLike[str],
    fmt: str,
    output: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    with_preprocessing: bool = False,
) -> Path:
    """Export the checkpoint ``ckpt_path`` (a file, a run directory: its ``last.pt``, or a weight's name) as ``fmt``.

    ``output`` defaults to the checkpoint's path with the format's suffix (``last.pt`` -> ``last.onnx``), for a
    weight to ``NAME.onnx`` in the current directory. The
    file is written atomically. An existing ``output`` is replaced only when it is an export cnnzoo wrote
    (its metadata says so), or with ``force`` (never a checkpoint or a directory:
    :func:`cnnzoo.base.outputs.claim_output`).
    ``with_preprocessing`` (ONNX only): the graph takes the uint8 picture and resizes, stretches and normalises
    it itself (:data:`cnnzoo.data.preprocessing.GRAPH_STEPS`). Returns the file's path.
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: choose {' or '.join(EXPORT_FORMATS)}")
    if with_preprocessing and fmt != "onnx":
        raise ConfigError(f"--with-preprocessing puts the steps into an ONNX graph: drop it for {fmt}")
    # Check the extra before loading anything, so a missing package is reported first and fast.
    modules = [_require("onnx")] if fmt == "onnx" else [_require("safetensors"), _require("safetensors.torch")]
    directory, ckpt = load_trained(ckpt_path)
    ckpt_file = Path(ckpt["path"])
    if output is None:  # beside a run's checkpoint; a weight's file is the package's: here, under its name
        output = ckpt_file.with_suffix(_SUFFIX[fmt]) if directory is not None else ckpt["weight"] + _SUFFIX[fmt]
    target = output
    if str(target).strip() and Path(target).resolve() == ckpt_file.resolve():
        raise ConfigError(f"--output {target} is the checkpoint itself: choose another path")
    target = claim_output(target, fmt, flag="--output", force=force, inputs=[ckpt_file])  # (a raw "" is refused)
    if fmt == "onnx":
        data = _onnx_bytes(model_from_checkpoint(ckpt), ckpt, modules[0], with_preprocessing)
    else:
        data = _safetensors_bytes(ckpt, modules[1])
    return atomic_write_bytes(target, data)


def verify_onnx(
    onnx_path: str | os.PathLike[str], ckpt_path: str | os.PathLike[str], batch_sizes: tuple[int, ...] = (1, 5)
) -> float | None:
    """Run the exported graph in onnxruntime on random inputs at several batch sizes (the batch dimension is
    dynamic) and return the largest absolute difference from PyTorch's logits; ``None`` when onnxruntime is
    not installed (it is not part of the ``export`` extra: exporting does not need it)."""
    try:
        import onnxruntime as ort  # optional: only checks exports (cnnzoo[dev]), not part of cnnzoo[export]
    except ImportError:
        return None
    _, ckpt = load_trained(ckpt_path)
    model = model_from_checkpoint(ckpt).eval()
    pre = ckpt["preprocess"]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name  # "image": a --with-preprocessing graph, fed uint8 pictures
    if name == "image":
        model = WithPreprocessing(
            model, pre["input_size"], pre["mean"], pre["std"], picture_defaults(ckpt)["preprocess"] == "auto"
        ).eval()
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for n in batch_sizes:
        shape = (n, pre["in_channels"], pre["input_size"], pre["input_size"])
        if name == "image":  # at the model's side the resize is exact, so the two must agree to float rounding
            x = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
        else:
            x = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(["logits"], {name: x.numpy()})
        worst = max(worst, float(abs(got - expected).max()))
    return worst


def _require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)  # optional extra: cnnzoo[export], imported when used
    except ImportError:
        top = module.split(".")[0]
        raise MissingExtraError(f"export needs the {top!r} package, which is not installed: {_EXTRA_HINT}") from None


def export_metadata_of(ckpt: Mapping[str, Any], *, in_graph: bool = False) -> dict[str, str]:
    """An export's metadata: :func:`cnnzoo.train.checkpoint.export_metadata`, and ``cnnzoo.preprocess``, the steps that
    prepare a picture (:mod:`cnnzoo.data.preprocessing`; ``in_graph``: which the graph does itself)."""
    spec = preprocess_spec_of(ckpt, in_graph=in_graph)
    return {**export_metadata(ckpt), "cnnzoo.preprocess": json.dumps(spec, sort_keys=True)}


class WithPreprocessing(nn.Module):
    """``model`` behind the steps a graph can hold: uint8 pictures ``[N, C, H, W]`` of any size (square, as
    ``pad_to_square`` leaves them) resized to ``size`` with the antialiased triangle filter PIL and
    :func:`cnnzoo.data.pictures.load_image` use, stretched (``stretch``), scaled and normalised."""

    def __init__(self, model: nn.Module, size: int, mean: Any, std: Any, stretch: bool) -> None:
        super().__init__()
        self.model, self.size, self.stretch = model, size, stretch
        channels = len(mean) if mean is not None else 1
        self.register_buffer("mean", torch.tensor(mean if mean is not None else [0.0]).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(std if std is not None else [1.0]).view(1, channels, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float()
        rows = _triangle_weights(x.shape[2], self.size)  # [size, H]
        cols = _triangle_weights(x.shape[3], self.size)  # [size, W]
        x = torch.floor(torch.matmul(x, cols.transpose(0, 1)) + 0.5).clamp(0, 255)  # along rows, to uint8 as PIL
        x = torch.floor(torch.matmul(rows, x) + 0.5).clamp(0, 255)  # then along columns
        if self.stretch:
            top = x.amax(dim=(1, 2, 3), keepdim=True)
            gain = torch.where((top > 0) & (top < 254), torch.clamp(255.0 / top.clamp_min(1.0), max=4.0), 1.0)
            x = torch.floor(x * gain + 0.5).clamp(0, 255)
        return self.model((x / 255.0 - self.mean) / self.std)


def _triangle_weights(length: Any, size: int) -> torch.Tensor:
    """``[size, length]``: row ``i`` weighs the input pixels of output pixel ``i`` (triangle filter widened by
    the shrink factor, each row summing to 1); ``length`` may be a traced size (a dynamic axis)."""
    n = torch.as_tensor(length, dtype=torch.float32)
    scale = n / size
    support = torch.clamp(scale, min=1.0)
    centre = (torch.arange(size, dtype=torch.float32) + 0.5) * scale  # [size]
    pixel = torch.arange(0, length, dtype=torch.float32) + 0.5  # [length]
    w = torch.clamp(1.0 - torch.abs(pixel[None, :] - centre[:, None]) / support, min=0.0)
    return w / w.sum(dim=1, keepdim=True)


def _onnx_bytes(model: nn.Module, ckpt: Mapping[str, Any], onnx: ModuleType, with_preprocessing: bool) -> bytes:
    pre = ckpt["preprocess"]
    size, channels = int(pre["input_size"]), int(pre["in_channels"])
    model.eval()
    # Batch 2, not 1: the tracer would otherwise be free to treat a batch of one as a broadcastable constant.
    example = torch.zeros(2, channels, size, size)
    names, axes = ["input"], {"input": {0: "batch"}, "logits": {0: "batch"}}
    if with_preprocessing:
        stretch = picture_defaults(ckpt)["preprocess"] == "auto"
        model = WithPreprocessing(model, size, pre["mean"], pre["std"], stretch).eval()
        example = torch.zeros(2, channels, size + 3, size + 3, dtype=torch.uint8)  # not the side: H, W are traced
        names, axes = ["image"], {"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}}
    options: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:  # torch >= 2.5; the default became True in 2.9
        options["dynamo"] = False
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The input-size hook compares H and W with Python ints: the tracer warns it records them as constants,
        # which is right here (H and W are fixed). The legacy exporter's deprecation notice is a choice made above.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            buffer,
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            **options,
        )
    proto = onnx.load_model_from_string(buffer.getvalue())
    for key, value in export_metadata_of(ckpt, in_graph=with_preprocessing).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = (
        f"cnnzoo {ckpt['model_name']}: input float32 [batch, {channels}, {size}, {size}] normalised as "
        "(pixels / 255 - cnnzoo.mean) / cnnzoo.std; output logits [batch, num_classes]"
        if not with_preprocessing
        else f"cnnzoo {ckpt['model_name']}: image uint8 [batch, {channels}, height, width], prepared by the steps of "
        "cnnzoo.preprocess not marked in_graph (the graph resizes and normalises); output logits [batch, num_classes]"
    )
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _safetensors_bytes(ckpt: Mapping[str, Any], st_torch: ModuleType) -> bytes:
    # safetensors refuses tensors that share memory (tied or aliased weights): give each its own copy.
    tensors, seen = {}, set()
    for name, value in ckpt["model_state"].items():
        t = value.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:
            t = t.clone()
        seen.add(ptr)
        tensors[name] = t
    return st_torch.save(tensors, metadata={"format": "pt", **export_metadata_of(ckpt)})
