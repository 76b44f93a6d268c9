"""Hard negatives mined by the model itself: how strongly it detects blood on each plane.

Bone share (:func:`ich.train.sampling.bone_share`) guesses where false positives gather; the
starting model shows where they do: on real heads, normal sulci called SAH, the skull base
called IPH, the vertex called EDH/SDH. Each plane is scored once, before training, by the model
training starts from (a fixed file, so a resumed run draws the same planes).
"""

from __future__ import annotations

import numpy as np
import torch

from ich.model.analyzer import Analyzer
from ich.model.checkpoint import untuned_operating_point
from ich.model.config import ModelConfig
from ich.model.detector import Detector
from ich.preprocess import model_input
from ich.train.cache import CachedCase


def detection_scores(
    network: torch.nn.Module, config: ModelConfig, cases: list[CachedCase]
) -> np.ndarray:
    """float (planes of every case, in order): the highest detection score on each plane,
    0 where the model detects nothing. Leaves ``network`` in training mode."""
    detector = Detector.for_config(network, config)
    analyzer = Analyzer.from_network(detector, config, untuned_operating_point())
    scores = []
    for case in cases:
        series = model_input(np.asarray(case.hu(), dtype=np.float32), config.input)
        outputs = analyzer.detect(series)
        scores.append(outputs.scores.max(axis=1, initial=0.0))
    network.train()
    return np.concatenate(scores)
