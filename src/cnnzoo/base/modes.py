"""Running a model cnnzoo does not own (an evaluation, a trace, an explanation, a prediction): in eval mode, and
left exactly as it was found. The one guard every such use goes through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the block (no dropout, batch norm on its running statistics); afterwards every submodule's
    train/eval flag and every parameter's ``requires_grad`` are what they were, whatever the block did or
    raised. Autograd is the caller's choice (``torch.no_grad()``, or gradients for Grad-CAM)."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)
