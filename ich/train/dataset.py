"""Training samples: a stack of model-grid planes and the Mask R-CNN targets of its centre."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage as ndi
from torch.utils.data import Dataset, get_worker_info

from ich.preprocess import InputSpec, stack_indices, windowed
from ich.preprocess.stored_window import StoredWindow
from ich.train.augment import augment
from ich.train.cache import CachedCase

_EIGHT = np.ones((3, 3), dtype=bool)
BRAIN_WINDOW = StoredWindow(-20.0, 100.0)
"""The window full-range studies are sometimes stored in (as CT-ICH is): training shows
full-range planes this way too, so neither kind of series becomes a shortcut or a blind spot."""


def targets(label: np.ndarray) -> dict[str, torch.Tensor]:
    """One object per 8-connected region of each class: box (x1, y1, x2, y2), label, mask.

    Box coordinates put pixel centres at integers, as RoIAlign (``aligned=False``) samples the
    mask target and :meth:`ModelGrid.volume_mask` reads the mask back: pixels ``c0..c1 - 1``
    span ``c0 - 0.5`` to ``c1 - 0.5``, so the whole region, edges included, lies in its box.
    """
    boxes, labels, masks = [], [], []
    for c in (1, 2, 3):
        regions, _ = ndi.label(label == c, _EIGHT)
        for number, (rows, cols) in enumerate(ndi.find_objects(regions), start=1):
            boxes.append([cols.start - 0.5, rows.start - 0.5, cols.stop - 0.5, rows.stop - 0.5])
            labels.append(c)
            masks.append(regions == number)
    size = label.shape
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "masks": torch.from_numpy(np.stack(masks)).to(torch.uint8)
        if masks
        else torch.zeros((0, *size), dtype=torch.uint8),
    }


class PlaneStacks(Dataset):
    """``dataset[(case, plane)]`` -> (stack (C, S, S) float32, targets), augmented if asked."""

    def __init__(
        self,
        cases: list[CachedCase],
        spec: InputSpec,
        augmented: bool,
        seed: int,
        window_fraction: float = 0.0,
    ) -> None:
        self.cases = cases
        self.spec = spec
        self.augmented = augmented
        self.seed = seed
        self.window_fraction = window_fraction
        self._rng: np.random.Generator | None = None

    def _generator(self) -> np.random.Generator:
        if self._rng is None:
            info = get_worker_info()
            worker = 0 if info is None else info.id
            self._rng = np.random.default_rng([self.seed, worker, torch.initial_seed() % 2**32])
        return self._rng

    def __len__(self) -> int:
        return sum(len(c.areas) for c in self.cases)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, dict[str, Any]]:
        case_index, plane = key
        case = self.cases[case_index]
        hu_planes = case.hu()
        index = stack_indices(len(hu_planes), self.spec.context, np.array([plane]))[0]
        hu = np.asarray(hu_planes[index], dtype=np.float32)
        label = np.asarray(case.label()[plane])
        if self.augmented:
            rng = self._generator()
            hu, label = augment(hu, label, rng)
            if not case.windowed and rng.random() < self.window_fraction:
                hu = BRAIN_WINDOW.simulate(hu)
        win = windowed(hu, self.spec.windows)  # (windows, context, S, S)
        stack = torch.from_numpy(win.reshape(self.spec.channels, *hu.shape[1:]))
        return stack, targets(label)


def collate(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[list, list]:
    return [b[0] for b in batch], [b[1] for b in batch]
