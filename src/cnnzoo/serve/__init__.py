"""Using a trained model: :func:`~cnnzoo.serve.predictor.load_model` and its :class:`~cnnzoo.serve.predictor.Predictor`
for pictures, and :mod:`~cnnzoo.serve.export` for ONNX and safetensors files."""
