"""From an ingested volume to the detector's input, and from its output back (numpy only).

One implementation serves ``ich analyze``, training and the Triton preprocess and postprocess
steps, so the three see the same pixels for the same study.
"""

from ich.preprocess.grid import ModelGrid
from ich.preprocess.spec import InputSpec
from ich.preprocess.stacks import BLOCK_PLANES, blocks, model_input, stack_indices, windowed

__all__ = [
    "BLOCK_PLANES",
    "InputSpec",
    "ModelGrid",
    "blocks",
    "model_input",
    "stack_indices",
    "windowed",
]
