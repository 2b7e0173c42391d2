"""The model families, one module each; importing this package registers every built-in model.

Build models with :func:`cnnzoo.create_model` and list them with :func:`cnnzoo.list_models`.
"""

from cnnzoo.models import alexnet, densenet, googlenet, lenet, nin, resnet, vgg

__all__ = ["alexnet", "densenet", "googlenet", "lenet", "nin", "resnet", "vgg"]
