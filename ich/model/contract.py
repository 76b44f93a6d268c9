"""The detector's output contract, torch-free: what the exporters name the outputs of the
TorchScript, ONNX and TensorRT files, and what the Triton backend reads back, in order."""

DETECTOR_OUTPUTS = ("boxes__0", "labels__1", "scores__2", "masks__3", "counts__4")
""":class:`ich.model.detector.Detector`'s outputs, named as Triton's libtorch backend requires
(``name__index``)."""
