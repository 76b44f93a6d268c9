"""Which planes a step sees: blood and no blood, every class and size, in fixed proportions.

Most planes of most studies hold no blood, and SAH and small bleeds are rarer still; drawn
uniformly, the detector would learn little of them. Each draw picks "no blood" with
``negative_fraction``, otherwise one of the (class, size) groups evenly (size: small or large
in that plane; groups without planes are left out), then a plane of it.

The false positives of a detector trained on mid-brain planes gather where bone meets brain:
the skull base (petrous bone, sinuses, clinoids) and the vertex (skull cut tangentially). A
share of the "no blood" draws (``hard_fraction``) takes its plane from the quarter of each
pool's blood-free planes that are hardest: by default those with the most bone for the head
they hold, or those the starting model scores highest (:mod:`ich.train.mining`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Sampler

from ich.train.cache import CachedCase, TrainingDataError

SMALL_PIXELS = 40
"""Bleed area in a plane (model pixels, about mm^2) below which it counts as small."""
BONE_HU = 300
HEAD_HU = -200
HARD_QUANTILE = 0.75
"""Blood-free planes whose bone share reaches this quantile of their pool's are "hard"."""


def bone_share(case: CachedCase) -> np.ndarray:
    """float (planes,): bone pixels over head pixels of each plane (0 where no head)."""
    hu = case.hu()
    bone = (hu >= BONE_HU).sum(axis=(1, 2))
    head = (hu > HEAD_HU).sum(axis=(1, 2))
    return bone / np.maximum(head, 1)


class BalancedSampler(Sampler[tuple[int, int]]):
    """Yields ``(case, plane)`` pairs without end, from a seeded generator.

    With ``real_fraction`` > 0 and both kinds present, a draw first picks real scans with
    that probability (else synthetic studies), then balances within them as above: real
    anatomy (the skull base, bone edges, calcifications, beam hardening of real scanners) is
    then seen as often as asked, however many synthetic studies there are. Planes with
    unclassified blood are never drawn.

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
        real_fraction: float = 0.0,
        hard_fraction: float = 0.0,
        hardness: np.ndarray | None = None,
    ) -> None:
        """``hardness`` ranks every plane of ``cases`` (in order) for the hard draws; without
        it, planes rank by :func:`bone_share`."""
        planes = [(c, p) for c, case in enumerate(cases) for p in range(len(case.areas))]
        self.planes = np.asarray(planes, dtype=np.int64)
        areas = np.concatenate([case.areas for case in cases])
        usable = np.concatenate([case.unclassified == 0 for case in cases])
        real = np.concatenate([np.full(len(case.areas), case.real) for case in cases])
        if hardness is None:
            hardness = (
                np.concatenate([bone_share(case) for case in cases])
                if hard_fraction > 0
                else np.zeros(len(planes))
            )
        elif len(hardness) != len(planes):
            raise ValueError(f"hardness of {len(hardness)} planes for {len(planes)} planes")
        pools = (
            _Pool.of(areas, usable & real, hardness),
            _Pool.of(areas, usable & ~real, hardness),
        )
        if not any(pool.groups for pool in pools):
            raise TrainingDataError(
                "the training studies hold no plane with blood: nothing to learn from"
            )
        self.pools = [pool for pool in pools if pool.groups or len(pool.negatives)]
        self.real_fraction = real_fraction
        self.negative_fraction = negative_fraction
        self.hard_fraction = hard_fraction
        self.rng = np.random.default_rng([seed, rank, step])

    def draw(self) -> tuple[int, int]:
        pool = self.pools[0 if self.rng.random() < self.real_fraction else -1]
        index = pool.draw(self.rng, self.negative_fraction, self.hard_fraction)
        case, plane = self.planes[index]
        return int(case), int(plane)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        while True:
            yield self.draw()


@dataclass(frozen=True)
class _Pool:
    """The planes of one kind of study: without blood (all, and the hard ones), and by
    (class, size) group."""

    negatives: np.ndarray
    hard: np.ndarray
    groups: list[np.ndarray]

    @classmethod
    def of(cls, areas: np.ndarray, member: np.ndarray, hardness: np.ndarray) -> _Pool:
        groups = [
            group
            for c in range(areas.shape[1])
            for group in (
                np.flatnonzero(member & (areas[:, c] > 0) & (areas[:, c] < SMALL_PIXELS)),
                np.flatnonzero(member & (areas[:, c] >= SMALL_PIXELS)),
            )
            if len(group)
        ]
        negatives = np.flatnonzero(member & (areas.sum(axis=1) == 0))
        hard = negatives[:0]
        if len(negatives):
            cut = np.quantile(hardness[negatives], HARD_QUANTILE)
            hard = negatives[(hardness[negatives] >= cut) & (hardness[negatives] > 0)]
        return cls(negatives, hard, groups)

    def draw(self, rng: np.random.Generator, negative_fraction: float, hard_fraction: float) -> int:
        if len(self.negatives) and (not self.groups or rng.random() < negative_fraction):
            among = self.hard if len(self.hard) and rng.random() < hard_fraction else self.negatives
            return int(rng.choice(among))
        group = self.groups[rng.integers(len(self.groups))]
        return int(rng.choice(group))
