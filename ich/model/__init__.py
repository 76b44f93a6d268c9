"""The hybrid 3D/2D Mask R-CNN: configuration, network, inference module, checkpoints."""
