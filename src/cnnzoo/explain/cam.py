"""Class-activation maps: where in the picture the evidence for a class lies.

Grad-CAM (Selvaraju et al., 2017, https://arxiv.org/abs/1610.02391) weighs each channel of a late feature map
by the mean gradient of the class score over it, sums the weighted channels and keeps the positive part: a
coarse map of the places that raise the score. It works for every network here, whatever its head (the
original CAM needs a global-average-pool + linear head, which LeNet, AlexNet and VGG do not have). The
arithmetic is captum's (:class:`captum.attr.LayerGradCam`); this module picks the layer, runs it without
disturbing the model, and brings the maps to the input's size and to [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cnnzoo.base.errors import ConfigError
from cnnzoo.base.modes import eval_mode
from cnnzoo.explain.activations import StageActivation, keeping_stages
from cnnzoo.models.inspection import Call, tracing

__all__ = ["COARSE", "MIN_SIDE", "CamResult", "Look", "cam_layer", "class_activation_maps", "grad_cam", "look_at"]

# The map's layer: the last feature map at least MIN_SIDE on its shorter side (LeNet's 10x10, not its 5x5; a
# ResNet-18 at 32x32 its 8x8 stage, not the 1x1 one), so the map says *where* at a useful resolution; when no map
# is that large, the last one at least 2x2. A map coarser than COARSE says so on the figure and in the studio.
MIN_SIDE = 7
COARSE = 8


@dataclass(frozen=True)
class CamResult:
    """``maps``: float ``[N, H, W]`` on the CPU in [0, 1] (1 = the strongest evidence in that image; an
    all-zero map means nothing in the image raised the class score); ``targets``: the class each map is for;
    ``probabilities``: the model's softmax ``[N, num_classes]`` for the same input; ``layer``: the module whose
    output was used."""

    maps: Tensor
    targets: list[int]
    probabilities: Tensor
    layer: str
    grid: tuple[int, int] = (0, 0)  # the chosen layer's map size: the map's true resolution before upsampling

    def note(self, i: int = 0) -> str | None:
        """What to say beside image ``i``'s map when it cannot be read as a picture of *where*: empty (nothing
        raised the class score), or coarser than :data:`COARSE` (a few blurry blobs); None otherwise."""
        if not float(self.maps[i].max()) > 0:
            return "empty: nothing in the picture raised this class's score"
        if min(self.grid) < COARSE:
            return f"coarse: the layer's map is {self.grid[0]}x{self.grid[1]}, blown up to the picture"
        return None


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters(), None)
    if p is None:
        return torch.device("cpu"), torch.get_default_dtype()
    return p.device, p.dtype if p.is_floating_point() else torch.get_default_dtype()


def _pick_layer(model: nn.Module, calls: Sequence[Call]) -> str:
    """:func:`cam_layer`'s rule applied to the calls of one forward pass (taken in the order they ended)."""
    ends = sorted(calls, key=lambda call: call.ended)
    maps = [(c.name, c.output_shape) for c in ends if c.output_shape is not None and len(c.output_shape) == 4]
    if not maps:
        raise ConfigError(f"{type(model).__name__} makes no 4-D feature map: a class-activation map needs a CNN")
    sharp = [(name, shape) for name, shape in maps if min(shape[2:]) >= MIN_SIDE]
    spatial = [(name, shape) for name, shape in maps if min(shape[2:]) >= 2]
    name, shape = (sharp or spatial or maps)[-1]
    stage = name.split(".", 1)[0]
    if stage != name and dict(maps).get(stage) == shape:
        return stage
    return name


def cam_layer(model: nn.Module, input_size: int, in_channels: int = 1) -> str:
    """The qualified name of the module whose output :func:`class_activation_maps` uses by default.

    That is the last module (in the order calls end) whose output is a 4-D feature map at least
    :data:`MIN_SIDE` on a side at ``input_size`` (else at least 2x2): the latest map that still says *where* at
    a useful resolution. When the top-level stage holding it ends with a
    map of the same shape, the stage itself is named (its output is what the next stage reads, so no in-place
    activation inside the stage rewrites it after it is captured). An input so small that every map is 1x1
    gets the last 1x1 map (its CAM is flat). Found by running one zero image through the model.
    """
    device, dtype = _device_dtype(model)
    x = torch.zeros((1, in_channels, input_size, input_size), device=device, dtype=dtype)
    with tracing(model) as calls, eval_mode(model), torch.no_grad():
        model(x)
    return _pick_layer(model, calls)


def _module(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_children()]
        raise ConfigError(
            f"the model has no layer {name!r}: give a qualified module name such as {names[0]!r}"
        ) from None


def class_activation_maps(
    model: nn.Module,
    x: Tensor,
    targets: Sequence[int] | None = None,
    *,
    layer: str | None = None,
) -> CamResult:
    """Grad-CAM maps of ``model`` for the normalised input ``x`` (``[N, C, H, W]``, on the model's device).

    ``targets``: one class per image (None: the class the model predicts for it). ``layer``: a qualified
    module name (default :func:`cam_layer`). The maps are upsampled bilinearly to ``H x W``, their negative
    part dropped, and each scaled to a maximum of 1. The model runs in eval mode; its flags and weights are
    left as they were, and no ``.grad`` is accumulated (captum takes gradients with ``torch.autograd.grad``).
    """
    _check_input(x)
    with tracing(model) as calls, eval_mode(model), torch.no_grad():
        probabilities = torch.softmax(model(x).float(), dim=1)
    return grad_cam(model, x, probabilities, layer if layer is not None else _pick_layer(model, calls), targets)


@dataclass(frozen=True)
class Look:
    """What a model makes of some pictures: its softmax ``[N, num_classes]`` (on the CPU), each top-level stage's
    output, and the Grad-CAM maps."""

    probabilities: Tensor
    stages: list[StageActivation]
    cam: CamResult


def look_at(model: nn.Module, x: Tensor, targets: Sequence[int] | None = None) -> Look:
    """The prediction, each stage's output and the Grad-CAM maps of the normalised input ``x``, in two passes of
    the model: one plain forward pass gives the probabilities, the stages and the layer Grad-CAM reads (as
    :func:`cam_layer` picks it); Grad-CAM adds captum's forward and backward pass. The model runs in eval mode,
    its flags restored."""
    _check_input(x)
    with keeping_stages(model) as stages, tracing(model) as calls, eval_mode(model), torch.no_grad():
        probabilities = torch.softmax(model(x).float(), dim=1)
    cam = grad_cam(model, x, probabilities, _pick_layer(model, calls), targets)
    return Look(probabilities=cam.probabilities, stages=stages, cam=cam)


def _check_input(x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"x must be [N, C, H, W], got shape {tuple(x.shape)}")


def grad_cam(
    model: nn.Module, x: Tensor, probabilities: Tensor, layer: str, targets: Sequence[int] | None = None
) -> CamResult:
    """Grad-CAM maps of ``model`` for ``x`` at the module named ``layer`` (captum: one forward and one backward
    pass), given the model's ``probabilities`` for ``x`` (they choose the class when ``targets`` is None)."""
    # Imported here: captum costs ~0.4 s, and every `cnnzoo` command imports this package (the run layer
    # writes the report's example with it), most of them without ever drawing a map.
    from captum.attr import LayerAttribution, LayerGradCam

    n, _, h, w = x.shape
    module = _module(model, layer)
    chosen = probabilities.argmax(dim=1).tolist() if targets is None else [int(t) for t in targets]
    if len(chosen) != n:
        raise ValueError(f"{n} images but {len(chosen)} targets")
    k = probabilities.shape[1]
    if any(not 0 <= t < k for t in chosen):
        raise ConfigError(f"target classes {chosen}: the model has classes 0-{k - 1}")
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone()  # a normal tensor even when x was made under inference_mode
        raw = LayerGradCam(model, module).attribute(x, target=chosen)
    if isinstance(raw, tuple):
        raw = raw[0]
    maps = LayerAttribution.interpolate(raw.detach().float(), (h, w), interpolate_mode="bilinear").relu()[:, 0]
    peak = maps.flatten(1).amax(dim=1).view(n, 1, 1)
    maps = torch.where(peak > 0, maps / peak.clamp_min(torch.finfo(maps.dtype).tiny), torch.zeros_like(maps))
    grid = (int(raw.shape[-2]), int(raw.shape[-1]))
    return CamResult(maps=maps.clamp(0, 1).cpu(), targets=chosen, probabilities=probabilities.cpu(), layer=layer,
                     grid=grid)  # fmt: skip
