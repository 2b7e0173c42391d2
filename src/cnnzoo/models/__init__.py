"""The model families, one module each; importing this package registers every built-in model.

All but :mod:`~cnnzoo.models.speednet` are the book's networks (and the deeper ResNets/DenseNet it mentions);
SpeedNet is cnnzoo's own design, for training on a CPU.

The registry (:mod:`cnnzoo.models.registry`) lives here too: each family registers into it when imported, and
importing any module of this package imports them all, so the registry is always full. Build models with
:func:`cnnzoo.create_model` and list them with :func:`cnnzoo.list_models`.
"""

from cnnzoo.models import (
    alexnet,
    densenet,
    googlenet,
    lenet,
    nin,
    registry,  # first: every family registers into it
    resnet,
    speednet,
    vgg,
)

__all__ = ["alexnet", "densenet", "googlenet", "lenet", "nin", "registry", "resnet", "speednet", "vgg"]
