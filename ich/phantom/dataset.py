"""Writes synthetic studies to disk: DICOM, ground-truth volumes and JSON manifests.

Layout of ``ich synth --out DIR``::

    DIR/manifest.json                 every case: classes, instances, protocol
    DIR/case_00000/dicom/*.dcm        the study (file names in no particular order)
    DIR/case_00000/truth/label.nii.gz     0 background, 1 IPH, 2 EDH/SDH, 3 SAH
    DIR/case_00000/truth/instance.nii.gz  0 background, else the instance id
    DIR/case_00000/truth/case.json    this case's record (same as in the manifest)

The label and instance volumes are on the grid of the analysable series as stored: slices in
position order, rows and columns as in the images, with that series' (possibly tilted)
affine. :func:`truth_on_volume` brings them onto the grid ingestion produces.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ich import __version__
from ich.dicom.volume import Volume
from ich.errors import IchError
from ich.nifti import read_volume_nifti, write_volume_nifti
from ich.phantom.generate import Case, CaseOptions, Stream, stream
from ich.phantom.study import study_files, write_files
from ich.schema import HemorrhageClass


class SynthOutputError(IchError):
    code = "synth_output_unusable"
    title = "Output folder unusable"


def prepare_output(out: Path, overwrite: bool) -> None:
    """Make sure ``out`` can take a new data set without mixing it with an old one.

    With ``overwrite`` the previous data set (its ``case_*`` folders and manifest) is removed;
    anything else in the folder is left alone.

    Raises:
        SynthOutputError: ``out`` is a file, holds a data set and ``overwrite`` is off, or
            cannot be created.
    """
    if out.exists() and not out.is_dir():
        raise SynthOutputError(f"{out} is a file; give a folder to write the studies into.")
    previous = [*out.glob("case_*"), *out.glob("manifest.json")] if out.is_dir() else []
    if previous and not overwrite:
        raise SynthOutputError(
            f"{out} already holds a data set ({len(previous)} entries). Choose an empty "
            "folder, or pass --overwrite to replace its case_* folders and manifest.json."
        )
    for path in previous:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SynthOutputError(f"Cannot create {out}: {exc.strerror}.") from exc


UNCLASSIFIED = 4
"""Truth label of blood none of the classes names (intraventricular, or a type the source does
not place): it counts as blood for the exam and for all-blood Dice, and training leaves its
planes out, so it is learned neither as a class nor as background."""
LABEL_NAMES = (
    {0: "background"} | {c.label: c.value for c in HemorrhageClass} | {UNCLASSIFIED: "unclassified"}
)


def case_record(case: Case, folder: str) -> dict[str, Any]:
    """The JSON record of one case: what is in it and how it was scanned."""
    protocol = case.protocol
    return {
        "case": folder,
        "seed": case.seed,
        "index": case.index,
        "background": case.background,
        "study_instance_uid": case.study.study_uid,
        "series_instance_uid": case.spec.series_uid,
        "classes_present": case.classes_present,
        "hemorrhage": bool(case.instances),
        "instances": [asdict(i) for i in case.instances],
        "total_volume_ml": round(sum(i.volume_ml for i in case.instances), 5),
        "midline_shift_mm": case.midline_shift_mm,
        "dropped_lesions": case.dropped_lesions,
        "mimics": case.mimics,
        "head": case.head,
        "protocol": {
            "slices": case.spec.slices,
            "matrix": protocol.matrix,
            "pixel_spacing_mm": round(protocol.pixel_spacing_mm, 4),
            "slice_mm": protocol.slice_mm,
            "gantry_tilt_deg": round(protocol.gantry_tilt_deg, 2),
            "manufacturer": protocol.manufacturer,
            "kernel": protocol.kernel,
            "rescale_intercept": protocol.rescale_intercept,
            "transfer_syntax": str(protocol.transfer_syntax),
            "noise_sd_hu": round(protocol.noise_sd_hu, 2),
        },
        "truth": {
            "label": "truth/label.nii.gz",
            "instance": "truth/instance.nii.gz",
            "labels": LABEL_NAMES,
            "shape": list(case.label.shape),
            "voxel_ml": case.voxel_ml,
            "affine_lps": np.round(case.affine, 6).tolist(),
        },
    }


def write_case(case: Case, folder: Path, files: dict[str, bytes]) -> dict[str, Any]:
    """Write one case's study files and ground truth; returns its record."""
    write_files(folder, files)
    truth = folder / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    write_volume_nifti(truth / "label.nii.gz", case.label, case.affine)
    write_volume_nifti(truth / "instance.nii.gz", case.instance, case.affine)
    record = case_record(case, folder.name)
    (truth / "case.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


@dataclass(frozen=True)
class DatasetPlan:
    """What to write: cases ``0..studies-1`` of ``seed``, each made by ``synthesize``."""

    seed: int
    studies: int
    synthesize: Callable[[int, int, CaseOptions], Case]
    options: CaseOptions
    distractor_rate: float

    def case_files(self, index: int) -> tuple[Case, dict[str, bytes]]:
        """Case ``index`` and its files; whether it gets distractors is drawn per case."""
        coin = stream(self.seed, index, Stream.DISTRACTORS).random()
        distractors = bool(coin < self.distractor_rate)
        case = self.synthesize(self.seed, index, replace(self.options, contrast=distractors))
        return case, study_files(case, distractors)

    def write(self, out: Path, index: int) -> dict[str, Any]:
        case, files = self.case_files(index)
        return write_case(case, out / f"case_{index:05d}", files)


_WORKER: dict[str, Any] = {}
"""The plan and folder of a worker process, set once by :func:`_start_worker`."""


def _start_worker(plan: DatasetPlan, out: Path) -> None:
    _WORKER.update(plan=plan, out=out)


def _write_in_worker(index: int) -> dict[str, Any]:
    return _WORKER["plan"].write(_WORKER["out"], index)


def write_dataset(
    out: Path,
    plan: DatasetPlan,
    settings: dict[str, Any],
    on_case: Callable[[dict[str, Any]], None] = lambda record: None,
    workers: int = 1,
) -> dict[str, Any]:
    """Write every case and the data set manifest (rewritten after each case, so an
    interrupted run still leaves a consistent manifest of what it wrote).

    With ``workers`` > 1 cases are made in that many processes; every case depends only on
    its own (seed, index), so the files are the same as with one.
    """
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"generator": f"ich {__version__}", **settings, "cases": []}
    indices = range(plan.studies)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(
                ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(plan, out))
            )
            records = pool.map(_write_in_worker, indices)
        else:
            records = (plan.write(out, index) for index in indices)
        for record in records:
            manifest["cases"].append(record)
            (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            on_case(record)
    return manifest


def patient_key(record: dict[str, Any]) -> str | None:
    """Whose scan a study is, across data sets ("ct-ich:049" for a converted CT-ICH scan and
    for every synthetic study made on that head); None for procedural heads."""
    if record.get("source") and record.get("patient"):
        return f"{record['source']}:{record['patient']}"
    return (record.get("head") or {}).get("patient")


def load_truth(case_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(label, instance, affine, record) of a written case."""
    label, affine = read_volume_nifti(case_dir / "truth" / "label.nii.gz")
    instance, _ = read_volume_nifti(case_dir / "truth" / "instance.nii.gz")
    record = json.loads((case_dir / "truth" / "case.json").read_text())
    return label, instance, affine, record


def truth_on_volume(truth: np.ndarray, volume: Volume) -> np.ndarray:
    """A ground-truth volume on the source slices, resampled (nearest) onto ``volume``'s grid.

    Undoes nothing by hand: every grid voxel asks :meth:`Volume.to_source_pixel` where it came
    from, so tilt shear, flips, transposition and interpolated planes are all handled the way
    ingestion handled the images.
    """
    planes, rows, cols = volume.shape
    out = np.zeros(volume.shape, dtype=truth.dtype)
    ii, jj = np.mgrid[:rows, :cols]
    for k in range(planes):
        source, row0, col0 = volume.to_source_pixel(k, 0.0, 0.0)
        _, row1, col1 = volume.to_source_pixel(k, 1.0, 1.0)
        r = np.rint(row0 + (row1 - row0) * (ii if not volume.transposed else jj)).astype(int)
        c = np.rint(col0 + (col1 - col0) * (jj if not volume.transposed else ii)).astype(int)
        inside = (r >= 0) & (r < truth.shape[1]) & (c >= 0) & (c < truth.shape[2])
        out[k][inside] = truth[source][r[inside], c[inside]]
    return out
