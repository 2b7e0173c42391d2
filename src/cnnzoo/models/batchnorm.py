"""Batch normalization written out by hand, as the book does, but as a drop-in for PyTorch's.

Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing Internal
Covariate Shift" (2015). :class:`BatchNorm1d` and :class:`BatchNorm2d` take the same constructor
arguments as ``nn.BatchNorm1d``/``nn.BatchNorm2d``, have the same ``state_dict`` keys (``weight``,
``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``) and compute the same numbers, so a
network can switch between the two and keep its weights (``lenet_bn_scratch`` loads ``lenet_bn``).

Fixed from the book's ``batch_norm``/``BatchNorm`` (D2L 8.5), and why:

* The running statistics were plain tensor attributes: lost by ``state_dict()`` (an evaluated checkpoint
  silently used mean 0 / variance 1) and left behind by ``.to(device)``. Here they are registered buffers.
* The book's ``momentum=0.9`` weighted the *old* value (``moving = 0.9 * moving + 0.1 * batch``). Here
  ``momentum`` is PyTorch's: the weight of the *new* batch statistic (default 0.1, same average), and
  ``momentum=None`` gives the cumulative average, as in PyTorch.
* The book's code updated the running variance with the biased batch variance; PyTorch uses the unbiased one
  (``n / (n - 1)``) for the running estimate and the biased one to normalize. Here too.
* The book's code chose batch or running statistics with ``torch.is_grad_enabled()``; evaluating under
  autograd used batch statistics, and a ``no_grad`` training step used the running ones. Here the
  module's ``training`` flag decides, as in PyTorch.
* The learnable scale and shift are ``weight``/``bias`` (PyTorch's names, for ``state_dict``
  compatibility) of shape ``(C,)``; ``gamma``/``beta`` are read-only aliases, the book's names.
  The constructor is PyTorch's, keyword-only ``bias`` (no learned shift) included.

:func:`norm_parameters` reads the learned gamma/beta of every norm layer of a model (the book prints
``net[1].gamma`` after training).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["BatchNorm1d", "BatchNorm2d", "NormParameters", "is_norm_layer", "norm_parameters"]


class _BatchNorm(nn.Module):
    """Shared body of the 1d/2d variants; they differ only in the input ranks they accept."""

    _input_ranks: tuple[int, ...] = ()
    _version = 2  # the state_dict layout of nn.BatchNorm* that has num_batches_tracked

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.empty(num_features, **factory))
            if bias:
                self.bias = nn.Parameter(torch.empty(num_features, **factory))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            # Buffers: saved in state_dict, moved by .to(), excluded from parameters().
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            if self.bias is not None:
                nn.init.zeros_(self.bias)

    @property
    def gamma(self) -> torch.Tensor | None:
        """The learned scale (the book's name for ``weight``)."""
        return self.weight

    @property
    def beta(self) -> torch.Tensor | None:
        """The learned shift (the book's name for ``bias``)."""
        return self.bias

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in self._input_ranks:
            ranks = " or ".join(f"{r}D" for r in self._input_ranks)
            raise ValueError(f"expected {ranks} input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        # Statistics are per channel (dim 1): reduce over the batch and every spatial position.
        dims = [0, *range(2, x.dim())]
        shape = [1, self.num_features] + [1] * (x.dim() - 2)

        # Batch statistics in training, and in eval when no running statistics are kept (PyTorch's rule).
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            n = x.numel() // x.shape[1]
            if self.training and n <= 1:
                raise ValueError(
                    f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}"
                )
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            if self.training and self.track_running_stats:
                self._update_running_stats(mean, var, n)
        else:
            mean, var = self.running_mean, self.running_var

        y = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.weight is not None:
            y = y * self.weight.reshape(shape)
        if self.bias is not None:
            y = y + self.bias.reshape(shape)
        return y

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
        self.num_batches_tracked.add_(1)
        # PyTorch's convention: momentum is the weight of the new batch; None = cumulative average.
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased_var = var * (n / (n - 1))
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased_var, alpha=factor)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, *args) -> None:
        # A state_dict saved before num_batches_tracked existed (version 1) still loads, as in PyTorch.
        version = local_metadata.get("version")
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state_dict:
            state_dict[key] = torch.tensor(0, dtype=torch.long)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, *args)


class BatchNorm1d(_BatchNorm):
    """Hand-written drop-in for ``nn.BatchNorm1d``: inputs ``(N, C)`` or ``(N, C, L)``."""

    _input_ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Hand-written drop-in for ``nn.BatchNorm2d``: inputs ``(N, C, H, W)``."""

    _input_ranks = (4,)


_NORM_TYPES: tuple[type[nn.Module], ...] = (
    _BatchNorm,
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def is_norm_layer(module: nn.Module) -> bool:
    """True for cnnzoo's and PyTorch's batch/group/layer/instance norm layers."""
    return isinstance(module, _NORM_TYPES)


@dataclass(frozen=True)
class NormParameters:
    """The learned scale ``gamma`` and shift ``beta`` of one norm layer (detached 1-D copies)."""

    name: str
    layer: str
    gamma: torch.Tensor
    beta: torch.Tensor


def norm_parameters(model: nn.Module) -> list[NormParameters]:
    """The learned gamma/beta of every affine norm layer of ``model``, in module order.

    ``name`` is the layer's qualified name in the model (``"1"``, ``"b2.0.bn1"``); ``layer`` its class.
    """
    found = []
    for name, module in model.named_modules():
        if is_norm_layer(module) and getattr(module, "weight", None) is not None:
            found.append(
                NormParameters(
                    name=name,
                    layer=type(module).__name__,
                    gamma=module.weight.detach().reshape(-1).clone(),
                    beta=(
                        module.bias.detach().reshape(-1).clone()
                        if module.bias is not None
                        else torch.zeros_like(module.weight.detach().reshape(-1))
                    ),
                )
            )
    return found
