"""What each stage of a network makes of a picture, and what its first layer looks for.

:func:`stage_activations` is the book's shape trace with the tensors kept: the same top-level stages
(:func:`cnnzoo.models.inspection.shape_trace` prints their shapes), their outputs for a real input, ready to be
drawn as feature maps. :func:`first_conv_filters` gives the first convolution's kernels, the one layer whose
weights can be read as pictures (the later ones act on feature maps, not on pixels).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cnnzoo.base.errors import ConfigError
from cnnzoo.base.modes import eval_mode
from cnnzoo.models.whitening import PatchWhitening

__all__ = ["StageActivation", "first_conv_filters", "keeping_stages", "stage_activations"]


@dataclass(frozen=True)
class StageActivation:
    """One call of one top-level stage: ``name`` as in ``model.named_children()`` (``"0"``, ``"features"``),
    ``type`` its class (what the shape trace prints for an index name), ``output`` detached, on the CPU."""

    name: str
    shape: tuple[int, ...]
    output: Tensor
    type: str = ""

    @property
    def label(self) -> str:
        """``"0 (Sequential)"``, or the name alone when it already says what it is."""
        return self.name if not self.type or self.type == self.name else f"{self.name} ({self.type})"


@contextmanager
def keeping_stages(model: nn.Module) -> Iterator[list[StageActivation]]:
    """While the block runs, the output of every call of a top-level stage of ``model``, kept (detached, on the
    CPU), in call order. A stage whose output is not a tensor is left out."""
    found: list[StageActivation] = []

    def hook_for(name: str, module: nn.Module):
        def record(_module: nn.Module, _inputs: tuple, output: object) -> None:
            if isinstance(output, Tensor):
                kept = output.detach().float().cpu().clone()  # clone: a later in-place op must not rewrite it
                found.append(StageActivation(name, tuple(output.shape), kept, type(module).__name__))

        return record

    handles = [child.register_forward_hook(hook_for(name, child)) for name, child in model.named_children()]
    try:
        yield found
    finally:
        for handle in handles:
            handle.remove()


def stage_activations(model: nn.Module, x: Tensor) -> list[StageActivation]:
    """The output of every top-level stage of ``model`` for the normalised input ``x`` (``[N, C, H, W]``, on the
    model's device), in call order; the model runs once in eval mode without autograd, its flags restored.
    A stage whose output is not a tensor is left out."""
    with keeping_stages(model) as found, eval_mode(model), torch.no_grad():
        model(x)
    return found


def first_conv_filters(model: nn.Module) -> Tensor:
    """A CPU copy of the first convolution's weights, ``[out_channels, in_channels, kH, kW]``: an ``nn.Conv2d``'s,
    or a patch-whitening layer's (``speednet:whiten``), whose frozen 2x2 filters are the ones that see pixels."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | PatchWhitening):
            return module.weight.detach().float().cpu().clone()
    raise ConfigError(f"{type(model).__name__} has no nn.Conv2d: there are no filters to show")
