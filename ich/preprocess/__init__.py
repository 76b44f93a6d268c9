"""From an ingested volume to the detector's input, and from its output back (numpy only).

One implementation serves ``ich analyze``, training and the Triton preprocess and postprocess
steps, so the three see the same pixels for the same study.
"""

from ich.preprocess.grid import ModelGrid
from ich.preprocess.spec import InputSpec
from ich.preprocess.stacks import (
    BLOCK_PLANES,
    BLOCKS_PER_CALL,
    blocks,
    model_input,
    run_blocks,
    stack_indices,
    windowed,
)

__all__ = [
    "BLOCKS_PER_CALL",
    "BLOCK_PLANES",
    "InputSpec",
    "ModelGrid",
    "blocks",
    "model_input",
    "run_blocks",
    "stack_indices",
    "windowed",
]
