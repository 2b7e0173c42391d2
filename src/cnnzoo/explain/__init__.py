"""Seeing inside a trained network: where it looks (Grad-CAM), what each stage makes of a picture, what its first
filters look for, and what it gets wrong.

* :func:`class_activation_maps` (:mod:`~cnnzoo.explain.cam`): Grad-CAM through captum, for every registered model;
* :func:`stage_activations`, :func:`first_conv_filters` (:mod:`~cnnzoo.explain.activations`): the shape trace
  with its tensors, the first layer's kernels;
* :func:`top_losses`, :func:`class_samples` (:mod:`~cnnzoo.explain.mistakes`): the most confident mistakes on a
  split, a fixed sample of each class;
* the figures of all of these (:mod:`~cnnzoo.explain.figures`), and the files ``cnnzoo explain`` and a finished
  run's report write (:mod:`~cnnzoo.explain.files`).

None of it changes the model: every call runs it in eval mode and restores its flags.
"""

from cnnzoo.explain.activations import StageActivation, first_conv_filters, stage_activations
from cnnzoo.explain.cam import CamResult, Look, cam_layer, class_activation_maps, look_at
from cnnzoo.explain.figures import (
    cam_figure,
    class_grid_figure,
    feature_maps_figure,
    filters_figure,
    top_losses_figure,
)
from cnnzoo.explain.mistakes import Mistake, class_samples, model_inputs, predictions, top_losses

__all__ = [
    "CamResult",
    "Look",
    "Mistake",
    "StageActivation",
    "cam_figure",
    "cam_layer",
    "class_activation_maps",
    "class_grid_figure",
    "class_samples",
    "feature_maps_figure",
    "filters_figure",
    "first_conv_filters",
    "look_at",
    "model_inputs",
    "predictions",
    "stage_activations",
    "top_losses",
    "top_losses_figure",
]
