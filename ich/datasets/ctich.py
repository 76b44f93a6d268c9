"""CT-ICH whole-head scans (Hssayeni et al., Data 2020; PhysioNet, CC BY 4.0) as labelled
studies in the layout ``ich synth`` writes, so training, cross-validation and evaluation read
them through the same ingestion and model grid as every other study.

The source folder holds ``NNN/image.nii.gz`` (uint8, brain window 40/120: HU = value x 120/255
- 20, so HU are clipped to -20..100), ``NNN/mask.nii.gz`` (all hemorrhage, binary) and one
``slices.csv`` with the hemorrhage types present on each slice. Each patient becomes
``case_NNN/dicom`` (CT images whose rescale gives exactly the stored HU, clipped range and all)
and ``case_NNN/truth`` (label and instance volumes, ``case.json``).

Class labels come from the per-slice types (:func:`label_volume`): a slice with one of our
types gives its mask that class; a slice with several gives each blood component the class it
continues from a neighbouring slice that has one type; intraventricular blood, and components
no rule can name, get :data:`UNCLASSIFIED` (counted as blood, left out of training).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ich import __version__
from ich.errors import IchError
from ich.nifti import read_volume_nifti, write_volume_nifti
from ich.phantom.dataset import LABEL_NAMES, UNCLASSIFIED, prepare_output
from ich.phantom.series_writer import SeriesSpec, StudyInfo, derived_uid, encode_series, to_bytes
from ich.phantom.study import write_files
from ich.schema import HemorrhageClass

SOURCE = "ct-ich"
CITATION = (
    "Hssayeni MD et al. Intracranial hemorrhage segmentation using a deep convolutional model. "
    "Data 2020;5(1):14. CT-ICH, PhysioNet, doi:10.13026/w8q8-ky94 (v1.0.0, CC BY 4.0)"
)
STORED_WINDOW_HU = (-20.0, 100.0)
"""The brain window the data set stores (level 40, width 120): HU outside it are clipped."""
HU_PER_VALUE = 120.0 / 255.0
PIXEL_MM = 0.45
"""The data set's files carry no true spacing; 0.45 mm is typical of it (volumes approximate)."""

TYPE_CLASS: dict[str, int] = {
    "Intraparenchymal": HemorrhageClass.IPH.label,
    "Epidural": HemorrhageClass.EDH_SDH.label,
    "Subdural": HemorrhageClass.EDH_SDH.label,
    "Subarachnoid": HemorrhageClass.SAH.label,
    "Intraventricular": UNCLASSIFIED,
}
"""Per-slice type columns of ``slices.csv`` and the label each gives."""
_COLUMNS = ("patient", "slice_index", *TYPE_CLASS)
_EIGHT = np.ones((3, 3), dtype=bool)


class CtichDataError(IchError):
    code = "ctich_data_unusable"
    title = "CT-ICH data unusable"


@dataclass(frozen=True)
class Patient:
    """One scan: brain-window values (k, rows, cols), its mask, and the types of each slice."""

    patient: str
    values: np.ndarray
    mask: np.ndarray
    types: list[set[int]]
    """Per slice k: the labels its types give (empty: no hemorrhage)."""


def read_slice_table(path: Path) -> dict[str, dict[int, set[int]]]:
    """``slices.csv`` as {patient: {slice index: labels present}}.

    Raises:
        CtichDataError: the file is missing or lacks a column.
    """
    if not path.is_file():
        raise CtichDataError(
            f"{path} not found: a CT-ICH volumes folder has slices.csv beside the patients' "
            "folders (patient, slice_index and one column per hemorrhage type)"
        )
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CtichDataError(f"{path} lacks the column(s) {', '.join(missing)}")
        table: dict[str, dict[int, set[int]]] = {}
        for line, row in enumerate(reader, start=2):
            try:
                patient = f"{int(row['patient']):03d}"
                index = int(row["slice_index"])
                present = {label for name, label in TYPE_CLASS.items() if int(row[name]) == 1}
            except (TypeError, ValueError) as error:
                raise CtichDataError(f"{path}, line {line}: not a number ({error})") from error
            table.setdefault(patient, {})[index] = present
    return table


def read_patient(folder: Path, types: dict[int, set[int]]) -> Patient:
    """One patient's image, mask and slice types, checked against each other.

    Raises:
        CtichDataError: a file missing or unreadable, image and mask of different shapes,
            values that are not the stored window, or slices the table does not list.
    """
    volumes = []
    for name in ("image.nii.gz", "mask.nii.gz"):
        path = folder / name
        if not path.is_file():
            raise CtichDataError(f"{path} not found: each patient folder holds {name}")
        try:
            array, _ = read_volume_nifti(path)
        except (ValueError, OSError, EOFError) as error:
            raise CtichDataError(f"{path} is not a readable NIfTI volume: {error}") from error
        if array.ndim != 3:
            raise CtichDataError(f"{path} is {array.ndim}-dimensional; expected one 3D volume")
        volumes.append(array)
    values, mask = volumes
    if values.shape != mask.shape:
        raise CtichDataError(
            f"{folder / 'mask.nii.gz'} has shape {mask.shape}, its image {values.shape}: "
            "mask and image must cover the same voxels"
        )
    if values.min() < 0 or values.max() > 255:
        raise CtichDataError(
            f"{folder / 'image.nii.gz'} holds values {values.min()}..{values.max()}; the data "
            "set stores 0..255 (brain window 40/120)"
        )
    if not np.isin(mask, (0, 1, 255)).all():
        raise CtichDataError(f"{folder / 'mask.nii.gz'} is not binary (0 and 1 or 255)")
    unlisted = sorted(set(range(values.shape[0])) - set(types))
    if unlisted:
        raise CtichDataError(
            f"slices.csv lists no row for slice(s) {unlisted[:5]} of patient {folder.name} "
            f"({values.shape[0]} slices in {folder / 'image.nii.gz'})"
        )
    # The data set's orientation (LPS rows run anterior) turned to the usual DICOM one:
    # rows run posterior, columns to the patient's left.
    values = np.ascontiguousarray(values[:, ::-1, ::-1])
    mask = np.ascontiguousarray(mask[:, ::-1, ::-1] > 0)
    return Patient(folder.name, values, mask, [types[k] for k in range(values.shape[0])])


def label_volume(mask: np.ndarray, types: list[set[int]]) -> np.ndarray:
    """uint8 (k, rows, cols) labels: 0, a class, or :data:`UNCLASSIFIED`.

    A slice with one class and no intraventricular blood gives its whole mask that class.
    On other slices with blood, each 8-connected component takes the class it overlaps on an
    adjacent slice already labelled with exactly one class (repeated until nothing changes,
    so a bleed continues through several mixed slices); what remains, intraventricular blood
    included, is :data:`UNCLASSIFIED`. Blood drawn on a slice listed without hemorrhage is
    unclassified too.
    """
    if len(types) != mask.shape[0]:
        raise ValueError(f"{len(types)} slice type sets for {mask.shape[0]} slices")
    label = np.zeros(mask.shape, dtype=np.uint8)
    pending: list[tuple[int, np.ndarray]] = []
    for k, present in enumerate(types):
        if not mask[k].any():
            continue
        if len(present) == 1 and UNCLASSIFIED not in present:
            label[k][mask[k]] = next(iter(present))
            continue
        components, count = ndi.label(mask[k], _EIGHT)
        pending += [(k, components == n) for n in range(1, count + 1)]
    changed = True
    while changed:
        changed = False
        remaining = []
        for k, component in pending:
            neighbours = [label[j][component] for j in (k - 1, k + 1) if 0 <= j < len(types)]
            found = {int(v) for n in neighbours for v in np.unique(n)} - {0, UNCLASSIFIED}
            classes = found & types[k]
            if len(classes) == 1:
                label[k][component] = classes.pop()
                changed = True
            else:
                remaining.append((k, component))
        pending = remaining
    for k, component in pending:
        label[k][component] = UNCLASSIFIED
    return label


def instance_volume(label: np.ndarray) -> np.ndarray:
    """uint16 instance ids: 26-connected components of each label, numbered from 1."""
    out = np.zeros(label.shape, dtype=np.uint16)
    next_id = 1
    for value in (*(c.label for c in HemorrhageClass), UNCLASSIFIED):
        components, count = ndi.label(label == value, np.ones((3, 3, 3), dtype=bool))
        out[components > 0] = components[components > 0] + next_id - 1
        next_id += count
    return out


def _series(shape: tuple[int, int, int], patient: str) -> SeriesSpec:
    """An axial series of 5 mm slices at 0.45 mm centred on the table axis, whose stored
    values are the data set's own (rescale slope 120/255, intercept -20)."""
    half = (shape[1] - 1) / 2 * PIXEL_MM
    return SeriesSpec(
        slices=shape[0],
        matrix=shape[1],
        pixel_spacing_mm=PIXEL_MM,
        table_increment_mm=5.0,
        orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        origin_mm=(-half, -half, 0.0),
        rescale_intercept=STORED_WINDOW_HU[0],
        rescale_slope=HU_PER_VALUE,
        pad_outside_fov=False,
        kernel="UNKNOWN",
        description="HEAD 5mm brain window (CT-ICH)",
        manufacturer="CT-ICH (PhysioNet)",
        series_uid=derived_uid("ctich", patient, "series"),
    )


def case_record(
    patient: Patient, label: np.ndarray, spec: SeriesSpec, study: StudyInfo, folder: str
) -> dict:
    """The case's JSON record, in the shape ``ich synth`` writes (what evaluation reads)."""
    voxel_ml = float(abs(np.linalg.det(spec.affine()[:3, :3]))) / 1000.0
    volumes = {
        name: round(float((label == value).sum()) * voxel_ml, 4)
        for value, name in LABEL_NAMES.items()
        if value
    }
    return {
        "case": folder,
        "source": SOURCE,
        "patient": patient.patient,
        "study_instance_uid": study.study_uid,
        "series_instance_uid": spec.series_uid,
        "classes_present": [c.value for c in HemorrhageClass if volumes[c.value] > 0],
        "hemorrhage": bool(label.any()),
        "total_volume_ml": round(sum(volumes.values()), 4),
        "volume_ml": volumes,
        "stored_window_hu": list(STORED_WINDOW_HU),
        "approximate_spacing": True,
        "protocol": {
            "slices": spec.slices,
            "matrix": spec.matrix,
            "pixel_spacing_mm": PIXEL_MM,
            "slice_mm": spec.table_increment_mm,
        },
        "truth": {
            "label": "truth/label.nii.gz",
            "instance": "truth/instance.nii.gz",
            "labels": LABEL_NAMES,
            "shape": list(label.shape),
            "voxel_ml": voxel_ml,
            "affine_lps": np.round(spec.affine(), 6).tolist(),
        },
    }


def write_patient(patient: Patient, folder: Path) -> dict[str, Any]:
    """One patient as a case folder: DICOM series, truth volumes and record."""
    spec = _series(patient.values.shape, patient.patient)
    study = StudyInfo(
        study_uid=derived_uid("ctich", patient.patient, "study"),
        frame_of_reference_uid=derived_uid("ctich", patient.patient, "frame"),
        patient_id=f"CTICH-{patient.patient}",
        patient_name=f"CT-ICH^{patient.patient}",
        accession=f"CTICH{patient.patient}",
    )
    hu = patient.values.astype(np.float32) * HU_PER_VALUE + STORED_WINDOW_HU[0]
    datasets = encode_series(hu, spec, study)
    write_files(
        folder / "dicom",
        {f"{ds.InstanceNumber:03d}.dcm": to_bytes(ds) for ds in datasets},
    )
    label = label_volume(patient.mask, patient.types)
    truth = folder / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    write_volume_nifti(truth / "label.nii.gz", label, spec.affine())
    write_volume_nifti(truth / "instance.nii.gz", instance_volume(label), spec.affine())
    record = case_record(patient, label, spec, study, folder.name)
    (truth / "case.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def patient_folders(source: Path) -> list[Path]:
    """The patients' folders of a CT-ICH volumes folder, in number order.

    Raises:
        CtichDataError: ``source`` is not such a folder.
    """
    if not source.is_dir():
        raise CtichDataError(f"{source} is not a folder (expected the CT-ICH volumes folder)")
    folders = sorted(p for p in source.iterdir() if p.is_dir() and p.name.isdigit())
    if not folders:
        raise CtichDataError(
            f"{source} holds no patient folders (NNN/image.nii.gz and NNN/mask.nii.gz): "
            "not a CT-ICH volumes folder"
        )
    return folders


def import_ctich(
    source: Path,
    out: Path,
    on_case: Callable[[dict[str, Any]], None] = lambda record: None,
    patients: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write every patient of ``source`` (or those named in ``patients``) into ``out``
    (``case_NNN``) with a manifest.

    Every patient is read and checked before anything is written, so bad input leaves no
    half-written data set.

    Raises:
        CtichDataError: see :func:`read_slice_table`, :func:`read_patient`.
        SynthOutputError: ``out`` already holds a data set.
    """
    folders = patient_folders(source)
    if patients is not None:
        missing = sorted(set(patients) - {f.name for f in folders})
        if missing:
            raise CtichDataError(f"{source} holds no patient(s) {missing}")
        folders = [f for f in folders if f.name in patients]
    table = read_slice_table(source / "slices.csv")
    unlisted = [f.name for f in folders if f.name not in table]
    if unlisted:
        raise CtichDataError(f"{source / 'slices.csv'} has no rows for patient(s) {unlisted}")
    for folder in folders:  # check all first: a bad patient must not leave half a data set
        read_patient(folder, table[folder.name])
    prepare_output(out, overwrite=False)
    manifest: dict[str, Any] = {
        "generator": f"ich {__version__}",
        "source": SOURCE,
        "source_folder": str(source),
        "citation": CITATION,
        "cases": [],
    }
    for folder in folders:
        patient = read_patient(folder, table[folder.name])
        record = write_patient(patient, out / f"case_{folder.name}")
        manifest["cases"].append(record)
        on_case(record)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
