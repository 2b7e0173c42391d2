"""A weight file: a safetensors file of a network's ``state_dict``, stored as fp32, fp16 or int8.

safetensors holds tensors and a string-to-string header, nothing that can run code. cnnzoo's weight files
keep every tensor under its ``state_dict`` name, so ``safetensors.torch.load_file`` reads them anywhere; the
header (``__metadata__``) says how they are stored:

* ``fp32``: as trained.
* ``fp16``: every floating-point tensor in half precision (about 3 decimal digits), half the size.
* ``int8``: each conv or linear weight (a tensor of 2 or more dimensions) as int8 with one fp32 scale per output
  channel (``NAME.qscale``: symmetric, ``weight = int8 * scale``), a quarter of the size; every other floating
  tensor (biases, BatchNorm) in fp32. Weight-only: the network still computes in fp32.

:func:`decode` gives the fp32 ``state_dict`` back whatever the storage, and the header. A weight's card
shows what its storage changed on the test set.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load

from cnnzoo.base.errors import CheckpointError
from cnnzoo.base.reading import loads_json

__all__ = ["STORAGES", "decode", "encode", "file_sha256", "read_header"]

STORAGES = ("fp32", "fp16", "int8")
_SCALE = ".qscale"
MAX_HEADER = 1 << 20  # a weight file's JSON header; a larger one is not a cnnzoo weight


def _quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: ``w ~ q * scale[:, None, ...]``."""
    flat = w.detach().float().reshape(w.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(w.shape)
    return q, scale


def encode(state: Mapping[str, torch.Tensor], storage: str, metadata: Mapping[str, str]) -> bytes:
    """The safetensors bytes of ``state`` stored as ``storage``, with ``metadata`` (strings) in its header."""
    if storage not in STORAGES:
        raise ValueError(f"unknown storage {storage!r}: choose one of {', '.join(STORAGES)}")
    tensors: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        t = value.detach().cpu()
        if name.endswith(_SCALE):
            raise ValueError(f"a state_dict key ends in {_SCALE!r}: {name}")
        if t.is_floating_point() and storage == "fp16":
            t = t.to(torch.float16)
        elif t.is_floating_point() and storage == "int8" and t.dim() >= 2:
            t, tensors[name + _SCALE] = _quantize(t)
        elif t.is_floating_point():
            t = t.float()
        tensors[name] = t.contiguous().clone()  # its own storage: safetensors refuses shared memory
    header = {**{str(k): str(v) for k, v in metadata.items()}, "format": "pt", "cnnzoo.storage": storage}
    return _serialize(tensors, header)


_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64", torch.bool: "BOOL",
    torch.int8: "I8", torch.uint8: "U8", torch.int16: "I16", torch.int32: "I32", torch.int64: "I64",
}  # fmt: skip


def _serialize(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """The safetensors bytes of ``tensors``, the same bytes for the same tensors and metadata: the header's keys
    sorted (safetensors' own writer orders the metadata by a hash, so one weight would get a new SHA-256 at each
    save), the tensors laid out in name order, the header padded with spaces to 8 bytes (the format's rule)."""
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def _header(data: bytes, where: str) -> dict[str, str]:
    if len(data) < 8:
        raise CheckpointError(f"{where}: too short to be a safetensors weight file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or 8 + n > len(data):
        raise CheckpointError(f"{where}: not a safetensors weight file (its header length {n} is impossible)")
    try:
        head = loads_json(data[8 : 8 + n])
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{where}: not a safetensors weight file (its header is not JSON)") from None
    meta = head.get("__metadata__") if isinstance(head, dict) else None
    if not isinstance(meta, dict) or meta.get("cnnzoo.storage") not in STORAGES:
        raise CheckpointError(f"{where}: a safetensors file, but not a cnnzoo weight file (no cnnzoo.storage)")
    return meta


def read_header(path: str | os.PathLike[str]) -> dict[str, str]:
    """The header (``__metadata__``) of the weight file at ``path``, read without its tensors; raises
    :class:`CheckpointError` for a file that is not a cnnzoo weight file, ``OSError`` for one that cannot be read."""
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        return _header(head + f.read(min(n, MAX_HEADER)), str(path))


def decode(data: bytes, where: str = "weight file") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The fp32 ``state_dict`` (integer buffers as stored) and the header of a weight file's bytes."""
    meta = _header(data, where)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{where}: damaged safetensors file ({str(exc).splitlines()[0][:120]})") from None
    state: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if name.endswith(_SCALE):
            continue
        scale = tensors.get(name + _SCALE)
        if scale is not None:
            if t.dtype != torch.int8 or scale.shape != (t.shape[0],):
                raise CheckpointError(f"{where}: tensor {name} does not match its int8 scale")
            t = t.float() * scale.float().reshape(-1, *([1] * (t.dim() - 1)))
        elif t.is_floating_point():
            t = t.float()
        state[name] = t
    return state, meta


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(Path(path), "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
