"""Looking inside models: per-layer summaries, the book's shape trace, MACs and the model table.

MACs (multiply-accumulates) are counted by :class:`torch.utils.flop_counter.FlopCounterMode`, restricted
to convolutions and matrix multiplies (``nn.Conv2d`` and ``nn.Linear``: the layers that do nearly all of
the arithmetic), as FLOPs / 2. Norm layers, activations, pooling and bias additions are not counted.
Every count here is for one image (batch size 1) in eval mode.

Nothing here needs real weights or data: a model built under ``torch.device("meta")`` gives the same
shapes, parameter counts and MACs in milliseconds, which is how :func:`models_table` stays fast.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnzoo.base.errors import ArgumentTypeError, ConfigError
from cnnzoo.base.modes import eval_mode
from cnnzoo.models.googlenet import Inception
from cnnzoo.models.registry import create_model, get_model_info, list_models

__all__ = [
    "Call",
    "CostRow",
    "LayerRow",
    "ModelRow",
    "ModelSummary",
    "count_macs",
    "format_cost_table",
    "format_models_table",
    "human",
    "inception_cost_table",
    "models_table",
    "parse_input_size",
    "shape_trace",
    "summary",
    "tracing",
]

InputSize = int | Sequence[int]

_aten = torch.ops.aten
# The ops nn.Conv2d and nn.Linear lower to (on CPU, CUDA and meta).
_MAC_OPS = frozenset({_aten.convolution, _aten._convolution, _aten.cudnn_convolution, _aten.mm, _aten.addmm, _aten.bmm})


# ----------------------------------------------------------------------------------------------
# Input sizes
# ----------------------------------------------------------------------------------------------
def _model_in_channels(model: nn.Module) -> int:
    kwargs = getattr(model, "model_kwargs", None)
    if kwargs and "in_channels" in kwargs:
        return int(kwargs["in_channels"])
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels
    return 1


MAX_SUMMARY_SIDE = 1024  # one image this large already costs ResNet-18 about 1 GB of activations


def _resolve_input_size(model: nn.Module, input_size: InputSize | None) -> tuple[int, int, int]:
    """``(C, H, W)`` from an int side, ``(H, W)``, ``(C, H, W)``, or ``None`` (the model's default side); each
    side a whole number from 1 to :data:`MAX_SUMMARY_SIDE`."""
    chw = _input_size(model, input_size)
    for side in chw[1:]:
        if isinstance(side, bool) or not isinstance(side, numbers.Integral):
            raise ArgumentTypeError(f"input size {input_size!r}: sides must be whole numbers such as 28")
        if not 1 <= side <= MAX_SUMMARY_SIDE:
            raise ConfigError(f"input size {input_size!r}: each side must be from 1 to {MAX_SUMMARY_SIDE} pixels")
    return chw[0], int(chw[1]), int(chw[2])


def _input_size(model: nn.Module, input_size: InputSize | None) -> tuple[int, int, int]:
    channels = _model_in_channels(model)
    if input_size is None:
        side = getattr(model, "default_input_size", None)
        if side is None:
            raise ConfigError("this model has no default input size: pass input_size=(C, H, W)")
        return channels, int(side), int(side)
    if isinstance(input_size, numbers.Real):
        return channels, input_size, input_size  # type: ignore[return-value]
    if not isinstance(input_size, tuple | list) or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
                                                             for d in input_size):  # fmt: skip
        raise ArgumentTypeError(f"input size must be H, (H, W) or (C, H, W) in whole pixels, not {input_size!r:.60}")
    dims = tuple(int(d) for d in input_size)
    if len(dims) == 2:
        return (channels, *dims)
    if len(dims) == 3:
        if dims[0] != channels:
            raise ConfigError(f"the model takes {channels} input channels, got an input size of {dims}")
        return dims  # type: ignore[return-value]
    raise ConfigError(f"input size must be H, (H, W) or (C, H, W), got {input_size!r}")


_SIZE_RE = re.compile(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?(?:[xX]\s*(\d+)\s*)?")


def parse_input_size(text: str, in_channels: int = 1) -> tuple[int, int, int]:
    """Parse ``"CxHxW"``, ``"HxW"`` or ``"H"`` (square) into ``(C, H, W)``; ``in_channels`` fills in C.

    Raises :class:`~cnnzoo.base.errors.ConfigError` for anything else.
    """
    match = _SIZE_RE.fullmatch(text or "")
    if not match:
        raise ConfigError(f"invalid input size {text!r}: expected CxHxW, HxW or H, e.g. 1x96x96 or 96")
    dims = [int(d) for d in match.groups() if d is not None]
    if len(dims) == 1:
        dims = [in_channels, dims[0], dims[0]]
    elif len(dims) == 2:
        dims = [in_channels, *dims]
    if min(dims) < 1:
        raise ConfigError(f"invalid input size {text!r}: every dimension must be at least 1")
    return dims[0], dims[1], dims[2]


# ----------------------------------------------------------------------------------------------
# Running a model once for inspection
# ----------------------------------------------------------------------------------------------
@contextmanager
def _inspecting(model: nn.Module) -> Iterator[None]:
    """:func:`cnnzoo.base.modes.eval_mode` without autograd: batch-1 friendly, running statistics untouched."""
    with eval_mode(model), torch.no_grad():
        yield


def _example_input(model: nn.Module, chw: tuple[int, int, int]) -> torch.Tensor:
    ref = next(model.parameters(), None)
    if ref is None:
        ref = next(model.buffers(), torch.empty(0))
    dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
    return torch.zeros((1, *chw), device=ref.device, dtype=dtype)


def _macs(counts: dict) -> int:
    return sum(n for op, n in counts.items() if op in _MAC_OPS) // 2


def count_macs(model: nn.Module, input_size: InputSize | None = None) -> int:
    """Multiply-accumulates of the conv and linear layers for one image of ``input_size``."""
    x = _example_input(model, _resolve_input_size(model, input_size))
    with _inspecting(model), FlopCounterMode(display=False) as counter:
        model(x)
    return _macs(counter.get_flop_counts().get("Global", {}))


# ----------------------------------------------------------------------------------------------
# summary
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerRow:
    """One call of one module: ``name`` is its qualified name, ``depth`` its nesting (1 = top level).

    ``params`` and ``macs`` include the module's children; a module called more than once has one row
    per call and its parameters and MACs on the first.
    """

    name: str
    depth: int
    type: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int


@dataclass(frozen=True)
class ModelSummary:
    """What :func:`summary` found; ``str()`` renders the table and the totals."""

    input_shape: tuple[int, ...]
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    macs: int

    def __str__(self) -> str:
        def shape(s: tuple[int, ...] | None) -> str:
            return "-" if s is None else str(list(s))

        cells = [
            ("  " * (r.depth - 1) + f"{r.name} ({r.type})", shape(r.output_shape), f"{r.params:,}", f"{r.macs:,}")
            for r in self.rows
        ]
        header = ("Layer (type)", "Output shape", "Params", "MACs")
        widths = [max(len(c[i]) for c in [header, *cells]) for i in range(4)]

        def line(c: tuple[str, ...]) -> str:
            return f"{c[0]:<{widths[0]}}  {c[1]:<{widths[1]}}  {c[2]:>{widths[2]}}  {c[3]:>{widths[3]}}"

        rule = "-" * len(line(header))
        lines = [line(header), rule, *(line(c) for c in cells), rule]
        lines += [
            f"Input shape:      {list(self.input_shape)}",
            f"Total params:     {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable:    {self.total_params - self.trainable_params:,}",
            f"MACs (conv + linear, one image): {self.macs:,} ({human(self.macs)})",
        ]
        return "\n".join(lines)


@dataclass
class Call:
    """One call of a module during a traced forward pass."""

    name: str  # qualified module name
    module: nn.Module
    output_shape: tuple[int, ...] | None = None  # None: the output is not a tensor
    output_type: str = ""  # the output's class name
    ended: int = -1  # the order in which the call ended (calls nest: a child ends before its parent)


@contextmanager
def tracing(model: nn.Module, modules: Sequence[tuple[str, nn.Module]] | None = None) -> Iterator[list[Call]]:
    """**The one shape trace**: while the block runs, every call of ``modules`` (``(name, module)`` pairs; default
    every named submodule) in the order calls start, each filled in when it ends. The summary, the book's trace
    and the choice of the layer Grad-CAM reads all use it."""
    calls: list[Call] = []
    open_calls: list[int] = []
    ended = iter(range(1 << 62))
    named = list(model.named_modules())[1:] if modules is None else list(modules)

    def enter_for(name: str):
        def enter(module: nn.Module, _inputs: tuple) -> None:
            open_calls.append(len(calls))
            calls.append(Call(name, module))

        return enter

    def leave(_module: nn.Module, _inputs: tuple, output: object) -> None:
        call = calls[open_calls.pop()]  # calls nest: the call that ends is the innermost open one
        call.output_shape = tuple(output.shape) if isinstance(output, torch.Tensor) else None
        call.output_type = type(output).__name__
        call.ended = next(ended)

    handles = [m.register_forward_pre_hook(enter_for(name)) for name, m in named]
    handles += [m.register_forward_hook(leave) for _, m in named]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def summary(model: nn.Module, input_size: InputSize | None = None, *, depth: int | None = None) -> ModelSummary:
    """Run one image through ``model`` and tabulate every module: output shape, parameters, MACs.

    ``input_size`` is an int side, ``(H, W)`` or ``(C, H, W)``; ``None`` means the model's default size.
    ``depth`` limits the table to modules nested at most that deep (1 = the top-level children); the
    totals always cover the whole model. The model runs in eval mode without autograd; its training
    flags are restored afterwards. An input the model refuses raises the model's own error
    (e.g. :class:`~cnnzoo.base.errors.InputTooSmallError`).
    """
    chw = _resolve_input_size(model, input_size)
    x = _example_input(model, chw)
    watched = [(name, m) for name, m in model.named_modules() if name and (depth is None or _depth(name) <= depth)]
    with tracing(model, watched) as calls, _inspecting(model), FlopCounterMode(display=False) as counter:
        model(x)

    flops = counter.get_flop_counts()
    prefix = type(model).__name__  # FlopCounterMode names modules "<RootClass>.<qualified name>"
    seen: set[nn.Module] = set()
    rows = []
    for call in calls:
        first = call.module not in seen
        seen.add(call.module)
        rows.append(
            LayerRow(
                name=call.name,
                depth=_depth(call.name),
                type=type(call.module).__name__,
                output_shape=call.output_shape,
                params=sum(p.numel() for p in call.module.parameters()) if first else 0,
                macs=_macs(flops.get(f"{prefix}.{call.name}", {})) if first else 0,
            )
        )
    return ModelSummary(
        input_shape=tuple(x.shape),
        rows=rows,
        total_params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        macs=_macs(flops.get("Global", {})),
    )


def _depth(name: str) -> int:
    return name.count(".") + 1


def shape_trace(model: nn.Module, input_size: InputSize | None = None) -> str:
    """The book's shape trace: the output shape of each top-level child for one image, one line each.

    ``Sequential output shape:\\t torch.Size([1, 64, 24, 24])``: children with index names are labelled
    by their class (as the book's ``for layer in net`` loop does), named ones by their name (as the
    book's ``named_children()`` loop does).
    """
    chw = _resolve_input_size(model, input_size)
    x = _example_input(model, chw)
    children = list(model.named_children())
    with tracing(model, children) as calls, _inspecting(model):
        model(x)
    lines = []
    for call in calls:
        label = type(call.module).__name__ if call.name.isdigit() else call.name
        size = torch.Size(call.output_shape) if call.output_shape is not None else call.output_type
        lines.append(f"{label} output shape:\t {size}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The model table (`cnnzoo models`)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelRow:
    """One registered model with default arguments: sizes are square sides, MACs at the default size."""

    name: str
    family: str
    input_size: int
    min_input_size: int
    max_input_size: int | None
    params: int
    macs: int
    description: str


def models_table(names: Sequence[str] | None = None) -> list[ModelRow]:
    """Name, family, input sizes, parameters and MACs of every registered model (or of ``names``).

    Models are built on the meta device: no memory, no initialization, no arithmetic.
    """
    rows = []
    for name in names if names is not None else list_models():
        info = get_model_info(name)
        with torch.device("meta"):
            model = create_model(name)
        rows.append(
            ModelRow(
                name=name,
                family=info.family,
                input_size=model.default_input_size,
                min_input_size=model.min_input_size,
                max_input_size=model.max_input_size,
                params=sum(p.numel() for p in model.parameters()),
                macs=count_macs(model),
                description=info.description,
            )
        )
    return rows


def human(n: float) -> str:
    """``1234567`` -> ``"1.23M"``: a count with an SI suffix, three significant figures."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.3g}{suffix}"
    return f"{n:g}"


def format_models_table(rows: Sequence[ModelRow], *, markdown: bool = False) -> str:
    """The rows as an aligned text table (or a Markdown table); MACs are for one image at the input size."""
    header = ("model", "family", "input", "accepts", "params", "MACs")
    cells = [
        (
            r.name,
            r.family,
            f"{r.input_size}x{r.input_size}",
            f"{r.min_input_size}-{r.max_input_size}" if r.max_input_size else f">= {r.min_input_size}",
            f"{r.params:,}",
            human(r.macs),
        )
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 4) + "|"]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    align = ["<", "<", ">", ">", ">", ">"]
    return "\n".join("  ".join(f"{v:{a}{w}}" for v, a, w in zip(c, align, widths)).rstrip() for c in [header, *cells])


# ----------------------------------------------------------------------------------------------
# The book's Inception cost table
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostRow:
    """``weights``: conv/linear weights, biases excluded (as the book counts); ``macs``: one image."""

    block: str
    weights: int
    macs: int


def inception_cost_table(side: int = 28) -> list[CostRow]:
    """The book's comparison: an Inception block against a plain 3x3 and 5x5 convolution, 192 -> 256
    channels, on a ``side`` x ``side`` input; counted on real modules, not by formula."""
    with torch.device("meta"):
        blocks = {
            "Inception(192, 64, (96, 128), (16, 32), 32)": Inception(192, 64, (96, 128), (16, 32), 32),
            "3x3 conv, 192 -> 256": nn.Conv2d(192, 256, kernel_size=3, padding=1),
            "5x5 conv, 192 -> 256": nn.Conv2d(192, 256, kernel_size=5, padding=2),
        }
    rows = []
    for label, block in blocks.items():
        weights = sum(p.numel() for name, p in block.named_parameters() if name.endswith("weight"))
        rows.append(CostRow(label, weights, count_macs(block, (192, side, side))))
    return rows


def format_cost_table(rows: Sequence[CostRow], side: int = 28) -> str:
    """The cost rows as a Markdown table, in millions with the exact counts beside them."""
    lines = [
        f"| block (192 -> 256 channels, {side}x{side} input) | weights | MACs |",
        "|---|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.block} | {r.weights / 1e6:.2f}M ({r.weights:,}) | {r.macs / 1e6:.1f}M ({r.macs:,}) |")
    return "\n".join(lines)
