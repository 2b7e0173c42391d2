"""Small reusable pieces the model families are built from."""

from cnnzoo.layers.batchnorm import BatchNorm1d, BatchNorm2d, NormParameters, is_norm_layer, norm_parameters

__all__ = ["BatchNorm1d", "BatchNorm2d", "NormParameters", "is_norm_layer", "norm_parameters"]
