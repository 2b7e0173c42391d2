"""How one value of a feature map was computed, with the real model's numbers: the convolution's arithmetic.

:func:`trace_units` runs one picture through a network once, with forward hooks, and cuts it into the *units* a
learner can click on, in the order the data meets them:

* ``conv``: a convolution with what follows it, as the book writes a block: ``Conv2d``, then BatchNorm when its
  input is the convolution's output, then the activation (a ``ReLU``/``Sigmoid`` module, or the ``F.relu`` a
  block's ``forward`` applies: :data:`FUNCTIONAL_RELU`). A 1x1 convolution (NiN, Inception's bottlenecks) is one
  too: its window is one pixel deep in every input channel.
* ``pool``: max or average pooling (global average pooling included).
* ``residual``: a residual block's output: its main path plus its shortcut, then ReLU.

:func:`explain_value` writes out one output value of a unit: for a convolution the input window (zero padding
marked), the kernel, their element-wise products and sums for each input channel (every channel in full when there
are few, the largest contributions in full and the rest as sums when there are many), the bias, BatchNorm's
``(z - mean) / sqrt(var + eps) * gamma + beta`` with its running statistics, and the activation; for pooling the
window and its maximum or mean; for a residual block the two values added. Every term is read from the model and
the traced tensors; the sums are done again in float64, and ``total`` is compared with the forward pass's value
(``value``): they agree to float32 rounding (``error``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from cnnzoo.base.errors import ConfigError
from cnnzoo.base.modes import eval_mode

__all__ = ["DETAILED_CHANNELS", "FUNCTIONAL_RELU", "Unit", "explain_value", "trace_units"]

DETAILED_CHANNELS = 4  # input channels written out term by term when a convolution has more than this many
_NORMS = (nn.BatchNorm2d,)
_ACTIVATIONS = {nn.ReLU: "ReLU", nn.Sigmoid: "sigmoid"}
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
# Blocks whose forward applies F.relu to a child's output: (block class name, child attribute) -> "ReLU".
FUNCTIONAL_RELU = {
    ("Residual", "bn1"),  # the book's residual block: relu(bn1(conv1(x)))
    ("Inception", "p1_1"), ("Inception", "p2_1"), ("Inception", "p2_2"), ("Inception", "p3_1"),
    ("Inception", "p3_2"), ("Inception", "p4_2"),  # every path of an Inception block ends in F.relu
}  # fmt: skip
_RESIDUAL_BLOCKS = ("Residual", "BasicBlock", "Bottleneck")


@dataclass
class _Call:
    """One module's call in the traced forward pass: its first input and its output (copies taken as the call
    returns: a later in-place ReLU or ``+=`` changes the tensor), and the originals' ids, which link a producer to
    its consumers. (An in-place module's recorded input is its output; no unit reads it.)"""

    name: str
    module: nn.Module
    input: Tensor
    output: Tensor
    input_id: int
    output_id: int


@dataclass
class Unit:
    """What a learner can click: a convolution with its norm and activation, a pooling, or a residual block."""

    name: str
    kind: str  # conv | pool | residual
    module: nn.Module
    input: Tensor  # [C, H, W] of the one picture
    output: Tensor  # [C, H, W]: the value the next layer receives
    parts: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """What the unit is, e.g. ``5x5 conv 6→16 + BatchNorm + sigmoid``, ``MaxPool2d``, ``residual block``."""
        m = self.module
        if self.kind == "conv":
            after = "".join(f" + {p}" for p in (self.parts.get("batchnorm") and "BatchNorm",
                                                 self.parts.get("activation", (None,))[0]) if p)  # fmt: skip
            return f"{'x'.join(map(str, m.kernel_size))} conv {m.in_channels}→{m.out_channels}{after}"
        if self.kind == "pool":
            return type(m).__name__
        return f"residual block ({type(m).__name__})"


@contextmanager
def _recording(model: nn.Module) -> Iterator[list[_Call]]:
    calls: list[_Call] = []
    keep: list[Tensor] = []  # the originals stay alive, so their ids are not reused during the pass
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        if not inputs or not isinstance(inputs[0], Tensor) or not isinstance(output, Tensor):
            return
        keep.extend((inputs[0], output))
        calls.append(_Call(names[module], module, inputs[0].detach()[0].clone(), output.detach()[0].clone(),
                           id(inputs[0]), id(output)))  # fmt: skip

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children()) or
               type(m).__name__ in _RESIDUAL_BLOCKS]  # fmt: skip
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()
        keep.clear()


def _parent_of(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent, _, child = name.rpartition(".")
    return (model.get_submodule(parent) if parent else model), child


def trace_units(model: nn.Module, x: Tensor) -> list[Unit]:
    """The clickable units of ``model`` for the one picture ``x`` (``[1, C, H, W]``, normalised), in the order the
    forward pass meets them: one pass, in eval mode, without gradients."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise ConfigError(f"the arithmetic is shown for one picture at a time, not a batch of shape {tuple(x.shape)}")
    with eval_mode(model), torch.no_grad(), _recording(model) as calls:
        model(x)
    by_input: dict[int, list[_Call]] = {}
    for call in calls:
        by_input.setdefault(call.input_id, []).append(call)
    by_module = {id(c.module): c for c in calls}
    units: list[Unit] = []
    for call in calls:
        m = call.module
        if isinstance(m, nn.Conv2d):
            units.append(_conv_unit(model, call, by_input))
        elif isinstance(m, _POOLS) and call.output.dim() == 3:
            units.append(Unit(call.name, "pool", m, call.input, call.output))
        elif type(m).__name__ in _RESIDUAL_BLOCKS:
            units.append(_residual_unit(call, by_module))
    return units


def _next(call: _Call, by_input: dict[int, list[_Call]], kinds: tuple[type, ...]) -> _Call | None:
    return next((c for c in by_input.get(call.output_id, []) if isinstance(c.module, kinds)), None)


def _conv_unit(model: nn.Module, call: _Call, by_input: dict[int, list[_Call]]) -> Unit:
    parts: dict[str, Any] = {"conv": call}
    last = call
    norm = _next(call, by_input, _NORMS)
    if norm is not None:
        parts["batchnorm"] = norm
        last = norm
    act = _next(last, by_input, tuple(_ACTIVATIONS))
    output = last.output
    if act is not None:
        parts["activation"] = (_ACTIVATIONS[type(act.module)], act.output)
        output = act.output
    else:
        parent, child = _parent_of(model, last.name)
        if (type(parent).__name__, child) in FUNCTIONAL_RELU:
            output = torch.relu(last.output)
            parts["activation"] = ("ReLU (in the block's forward)", output)
    return Unit(call.name, "conv", call.module, call.input, output, parts)


def _residual_unit(call: _Call, by_module: dict[int, _Call]) -> Unit:
    block = call.module
    main_module = block.bn3 if getattr(block, "bn3", None) is not None else block.bn2
    main = by_module[id(main_module)]
    if type(block).__name__ == "Residual":
        short_module = block.conv3  # the book's 1x1 convolution on the shortcut, or None
    else:
        short_module = block.downsample  # torchvision's 1x1 convolution + norm, or None
    if short_module is not None:
        shortcut = by_module.get(id(short_module))
        if shortcut is None:  # a Sequential downsample: its last layer's call
            shortcut = by_module[id(list(short_module.modules())[-1])]
        parts = {"main": main, "shortcut": shortcut.output, "shortcut_name": shortcut.name}
    else:
        parts = {"main": main, "shortcut": call.input, "shortcut_name": "the block's input (identity)"}
    return Unit(call.name, "residual", block, call.input, call.output, parts)


# ------------------------------------------------------------------------------------------------
# one value, written out
# ------------------------------------------------------------------------------------------------
def _check_position(unit: Unit, channel: int, y: int, x: int) -> None:
    c, h, w = unit.output.shape
    if not (0 <= channel < c and 0 <= y < h and 0 <= x < w):
        raise ConfigError(
            f"{unit.name} has {c} channels of {h}x{w}: channel {channel}, row {y}, column {x} is outside it"
        )


def _rounded(t: Tensor) -> list:
    return [[float(f"{v:.6g}") for v in row] for row in t.tolist()]


def _window(plane: Tensor, rows: range, cols: range, fill: float) -> tuple[Tensor, list[list[bool]]]:
    """The values of ``plane`` at ``rows`` x ``cols``, ``fill`` outside it (padding), and where that was."""
    h, w = plane.shape
    out = torch.full((len(rows), len(cols)), fill, dtype=torch.float64)
    pad = [[True] * len(cols) for _ in rows]
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if 0 <= r < h and 0 <= c < w:
                out[i, j] = float(plane[r, c])
                pad[i][j] = False
    return out, pad


def explain_value(unit: Unit, channel: int, y: int, x: int) -> dict[str, Any]:
    """The arithmetic of output value ``[channel, y, x]`` of ``unit`` (see the module docstring), as plain data."""
    _check_position(unit, channel, y, x)
    value = float(unit.output[channel, y, x])
    if unit.kind == "conv":
        out = _conv_value(unit, channel, y, x)
    elif unit.kind == "pool":
        out = _pool_value(unit, channel, y, x)
    else:
        out = _residual_value(unit, channel, y, x)
    total = out["total"]
    return {"layer": unit.name, "kind": unit.kind, "label": unit.label, "at": {"channel": channel, "y": y, "x": x},
            **out, "value": value, "error": abs(total - value)}  # fmt: skip


def _conv_value(unit: Unit, channel: int, y: int, x: int) -> dict[str, Any]:
    conv: nn.Conv2d = unit.module
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    if isinstance(conv.padding, str):
        raise ConfigError(f"{unit.name}: padding={conv.padding!r} is not written out; only numeric padding is")
    ph, pw = conv.padding
    rows = range(y * sh - ph, y * sh - ph + dh * (kh - 1) + 1, dh)
    cols = range(x * sw - pw, x * sw - pw + dw * (kw - 1) + 1, dw)
    per_group = conv.in_channels // conv.groups
    first = (channel // (conv.out_channels // conv.groups)) * per_group
    weight = conv.weight.detach()[channel].double()  # [per_group, kh, kw]
    terms = []
    for k in range(per_group):
        window, pad = _window(unit.input[first + k], rows, cols, 0.0)
        products = window * weight[k]
        terms.append((first + k, window, pad, weight[k], products, float(products.sum())))
    partial = [t[-1] for t in terms]
    shown = terms if len(terms) <= DETAILED_CHANNELS else sorted(terms, key=lambda t: -abs(t[-1]))[:DETAILED_CHANNELS]
    shown = sorted(shown, key=lambda t: t[0])
    detailed = {t[0] for t in shown}
    products_sum = math.fsum(partial)
    bias = float(conv.bias.detach()[channel]) if conv.bias is not None else 0.0
    z = products_sum + bias
    conv_call: _Call = unit.parts["conv"]
    out: dict[str, Any] = {
        "window": {"rows": [rows.start, rows.stop - dh], "cols": [cols.start, cols.stop - dw],
                   "stride": [sh, sw], "padding": [ph, pw]},
        "channels": [{"in_channel": c, "window": _rounded(win), "padding": pad, "kernel": _rounded(ker),
                      "products": _rounded(prod), "sum": s} for c, win, pad, ker, prod, s in shown],
        "in_channels": per_group,
        "partial_sums": partial,
        "others": {"count": per_group - len(detailed),
                   "sum": math.fsum(s for c, s in zip((t[0] for t in terms), partial) if c not in detailed)},
        "products_sum": products_sum,
        "bias": bias if conv.bias is not None else None,
        "z": z,
        "conv_output": float(conv_call.output[channel, y, x]),
    }  # fmt: skip
    result = z
    norm = unit.parts.get("batchnorm")
    if norm is not None:
        result = _bn(norm.module, channel, z, out)
        out["batchnorm"]["forward"] = float(norm.output[channel, y, x])
    act = unit.parts.get("activation")
    if act is not None:
        name, tensor = act
        before = result
        result = 1.0 / (1.0 + math.exp(-before)) if name == "sigmoid" else max(0.0, before)
        out["activation"] = {"name": name, "input": before, "result": result, "forward": float(tensor[channel, y, x])}
    out["total"] = result
    return out


def _bn(bn: nn.BatchNorm2d, channel: int, z: float, out: dict[str, Any]) -> float:
    """BatchNorm in evaluation: the running statistics."""
    mean = float(bn.running_mean[channel]) if bn.running_mean is not None else 0.0
    var = float(bn.running_var[channel]) if bn.running_var is not None else 1.0
    gamma = float(bn.weight.detach()[channel]) if bn.weight is not None else 1.0
    beta = float(bn.bias.detach()[channel]) if bn.bias is not None else 0.0
    result = (z - mean) / math.sqrt(var + bn.eps) * gamma + beta
    out["batchnorm"] = {"mean": mean, "var": var, "eps": bn.eps, "gamma": gamma, "beta": beta, "result": result}
    return result


def _pool_value(unit: Unit, channel: int, y: int, x: int) -> dict[str, Any]:
    m = unit.module
    plane = unit.input[channel]
    h, w = plane.shape
    if isinstance(m, nn.AdaptiveAvgPool2d):
        oh, ow = unit.output.shape[1:]
        rows = range((y * h) // oh, -((-(y + 1) * h) // oh))
        cols = range((x * w) // ow, -((-(x + 1) * w) // ow))
        op, include_pad = "mean", False
    else:
        k, s, p = (_pair(getattr(m, a)) for a in ("kernel_size", "stride", "padding"))
        rows = range(y * s[0] - p[0], y * s[0] - p[0] + k[0])
        cols = range(x * s[1] - p[1], x * s[1] - p[1] + k[1])
        op = "max" if isinstance(m, nn.MaxPool2d) else "mean"
        include_pad = op == "mean" and getattr(m, "count_include_pad", True)
    window, pad = _window(plane, rows, cols, -math.inf if op == "max" else 0.0)
    if op == "max":
        total = float(window.max())
    else:
        inside = sum(not v for row in pad for v in row)
        total = float(window.sum()) / (window.numel() if include_pad else max(1, inside))
    shown = window.clone()
    shown[torch.isinf(shown)] = 0.0
    return {"op": op, "window": {"rows": [rows.start, rows.stop - 1], "cols": [cols.start, cols.stop - 1]},
            "values": _rounded(shown), "padding": pad, "counted": window.numel() if op == "max" or include_pad else
            sum(not v for row in pad for v in row), "total": total}  # fmt: skip


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _residual_value(unit: Unit, channel: int, y: int, x: int) -> dict[str, Any]:
    main: _Call = unit.parts["main"]
    main_value = float(main.output[channel, y, x])
    short_value = float(unit.parts["shortcut"][channel, y, x])
    added = main_value + short_value
    return {"main": {"layer": main.name, "value": main_value},
            "shortcut": {"layer": unit.parts["shortcut_name"], "value": short_value},
            "sum": added, "activation": {"name": "ReLU", "input": added, "result": max(0.0, added)},
            "total": max(0.0, added)}  # fmt: skip
