"""Export of the trained detector to TorchScript, ONNX and TensorRT, and the Triton model
repository around it (``ich export``). Kept apart from :mod:`ich.model`, which has no
deployment dependencies."""
