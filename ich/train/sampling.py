"""Which planes a step sees: blood and no blood, every class and size, in fixed proportions.

Most planes of most studies hold no blood, and SAH and small bleeds are rarer still; drawn
uniformly, the detector would learn little of them. Each draw picks "no blood" with
``negative_fraction``, otherwise one of the (class, size) groups evenly (size: small or large
in that plane; groups without planes are left out), then a plane of it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from ich.train.cache import CachedCase, TrainingDataError

SMALL_PIXELS = 40
"""Bleed area in a plane (model pixels, about mm^2) below which it counts as small."""


class BalancedSampler(Sampler[tuple[int, int]]):
    """Yields ``(case, plane)`` pairs without end, from a seeded generator.

    Each training process seeds with its rank, so data-parallel processes see different
    planes; a resumed run seeds with the step it resumes at.
    """

    def __init__(
        self,
        cases: list[CachedCase],
        negative_fraction: float,
        seed: int,
        rank: int = 0,
        step: int = 0,
    ) -> None:
        planes = [(c, p) for c, case in enumerate(cases) for p in range(len(case.areas))]
        areas = np.concatenate([case.areas for case in cases])
        self.planes = np.asarray(planes, dtype=np.int64)
        self.negatives = np.flatnonzero(areas.sum(axis=1) == 0)
        self.groups = [
            group
            for c in range(areas.shape[1])
            for group in (
                np.flatnonzero((areas[:, c] > 0) & (areas[:, c] < SMALL_PIXELS)),
                np.flatnonzero(areas[:, c] >= SMALL_PIXELS),
            )
            if len(group)
        ]
        if not self.groups:
            raise TrainingDataError(
                "the training studies hold no plane with blood: nothing to learn from"
            )
        self.negative_fraction = negative_fraction if len(self.negatives) else 0.0
        self.rng = np.random.default_rng([seed, rank, step])

    def draw(self) -> tuple[int, int]:
        if self.rng.random() < self.negative_fraction:
            index = self.rng.choice(self.negatives)
        else:
            group = self.groups[self.rng.integers(len(self.groups))]
            index = self.rng.choice(group)
        case, plane = self.planes[index]
        return int(case), int(plane)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        while True:
            yield self.draw()
