"""The model families, one module each; importing this package registers every built-in model.

All but :mod:`~cnnzoo.models.speednet` are the book's networks (and the deeper ResNets/DenseNet it mentions);
SpeedNet is cnnzoo's own design, for training on a CPU.

Build models with :func:`cnnzoo.create_model` and list them with :func:`cnnzoo.list_models`.
"""

from cnnzoo.models import alexnet, densenet, googlenet, lenet, nin, resnet, speednet, vgg

__all__ = ["alexnet", "densenet", "googlenet", "lenet", "nin", "resnet", "speednet", "vgg"]
