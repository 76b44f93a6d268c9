"""The preprocessed cache: each study ingested once, stored as model-grid planes on disk.

Training reads planes through memory maps, so a data set far larger than memory streams from
disk. Studies go through the same ingestion (``ich.dicom.load``) and model grid as the service.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ich.dicom import load
from ich.errors import IchError
from ich.phantom.dataset import UNCLASSIFIED, load_truth, truth_on_volume
from ich.preprocess import InputSpec, ModelGrid

CACHE_VERSION = 2


class TrainingDataError(IchError):
    code = "training_data_unusable"
    title = "Training data unusable"


@dataclass(frozen=True)
class CachedCase:
    """One study on the model grid: ``hu.npy`` int16 and ``label.npy`` uint8, (planes, S, S)."""

    folder: Path
    name: str
    areas: np.ndarray
    """int (planes, 3): pixels of each class per plane."""
    unclassified: np.ndarray
    """int (planes,): pixels of blood no class names (left out of training)."""
    real: bool = False
    """A real scan with real blood (not a synthetic study): drawn with its own share."""
    windowed: bool = False
    """Stored in a display window (bone and air restored on the grid)."""

    def hu(self) -> np.ndarray:
        return np.load(self.folder / "hu.npy", mmap_mode="r")

    def label(self) -> np.ndarray:
        return np.load(self.folder / "label.npy", mmap_mode="r")

    @property
    def positive(self) -> bool:
        return bool(self.areas.any())


def list_cases(data: Path) -> list[Path]:
    """The case folders of an `ich synth` output, in manifest order."""
    manifest = data / "manifest.json"
    if not manifest.is_file():
        raise TrainingDataError(f"{manifest} not found: training data are `ich synth` folders")
    return [data / entry["case"] for entry in json.loads(manifest.read_text())["cases"]]


def _key(case_dir: Path, spec: InputSpec) -> str:
    """Where a case's planes live: by its folder, its content (a study written anew into the
    same folder has another ``case.json``) and the model grid."""
    record = case_dir / "truth" / "case.json"
    content = hashlib.sha256(record.read_bytes()).hexdigest() if record.is_file() else ""
    text = json.dumps(
        [CACHE_VERSION, str(case_dir.resolve()), content, spec.model_dump(mode="json")]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _build(case_dir: Path, spec: InputSpec, folder: Path) -> dict[str, Any]:
    volume = load(case_dir / "dicom")
    label, _, _, record = load_truth(case_dir)
    grid = ModelGrid.fit(volume.hu, volume.spacing_mm, spec)
    hu = np.clip(np.rint(grid.hu_planes(volume.hu)), -1024, 3071).astype(np.int16)
    truth = truth_on_volume(label, volume)
    labels = grid.labels(truth)
    areas = np.stack([(labels == c).sum(axis=(1, 2)) for c in (1, 2, 3)], axis=1)
    # Any share of unnamed blood marks the plane: it is neither a target nor background.
    unnamed = grid.coverage(truth == UNCLASSIFIED) > 0
    unclassified = unnamed.sum(axis=(1, 2))
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "hu.npy", hu)
    np.save(folder / "label.npy", labels)
    meta = {
        "case": str(case_dir),
        "name": f"{case_dir.parent.name}/{case_dir.name}",
        "areas": areas.tolist(),
        "unclassified": unclassified.tolist(),
        "real": record.get("source") is not None,
        "windowed": grid.window is not None,
        "group": grid.group,
        "classes": record.get("classes"),
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    return meta


def cache_cases(
    case_dirs: list[Path], spec: InputSpec, root: Path, workers: int = 1, on_case: Any = None
) -> list[CachedCase]:
    """Every case on the model grid, built where missing (in ``workers`` processes);
    ``on_case`` is called once per case, cached or built."""
    folders = [root / _key(c, spec) for c in case_dirs]
    missing = [
        (c, f) for c, f in zip(case_dirs, folders, strict=True) if not (f / "meta.json").is_file()
    ]
    tick = on_case or (lambda: None)
    for _ in range(len(case_dirs) - len(missing)):
        tick()
    with ExitStack() as stack:
        mapper = map  # one process: plain tracebacks
        if workers > 1 and len(missing) > 1:
            mapper = stack.enter_context(ProcessPoolExecutor(workers)).map
        arguments = ([c for c, _ in missing], [spec] * len(missing), [f for _, f in missing])
        for _ in mapper(_build, *arguments):
            tick()
    cases = []
    for folder in folders:
        meta = json.loads((folder / "meta.json").read_text())
        cases.append(
            CachedCase(
                folder,
                meta["name"],
                np.asarray(meta["areas"], dtype=np.int64),
                np.asarray(meta["unclassified"], dtype=np.int64),
                bool(meta["real"]),
                bool(meta["windowed"]),
            )
        )
    return cases
