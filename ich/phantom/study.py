"""A whole synthetic study as a scanner exports it: the analysable series plus distractors.

Besides the soft-tissue axial series, a study may hold a localizer, a bone-kernel
reconstruction, a post-contrast series, a sagittal reformat and a dose report, all in one
``dicom/`` folder under file names that say nothing about their order, plus a stray text file
beside it, so series selection and slice sorting are exercised on every run.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian
from scipy import ndimage as ndi

from ich.phantom.generate import Case, Stream, stream
from ich.phantom.series_writer import (
    SeriesSpec,
    StudyInfo,
    derived_uid,
    encode_series,
    new_instance,
    to_bytes,
)

SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def reformat(case: Case, spec: SeriesSpec, slab_mm: float = 0.0) -> np.ndarray:
    """The case's volume resampled on another series' planes (optionally a thick slab)."""
    row, col = spec.row_column()
    normal = np.cross(row, col)
    ij = np.arange(spec.matrix) * spec.pixel_spacing_mm
    in_plane = ij[:, None, None] * col + ij[None, :, None] * row
    inverse = np.linalg.inv(case.affine)
    offsets = np.linspace(-slab_mm / 2, slab_mm / 2, max(int(slab_mm / 4), 1))
    planes = np.zeros((spec.slices, spec.matrix, spec.matrix), dtype=np.float32)
    for k, origin in enumerate(spec.origins()):
        for offset in offsets:
            points = origin + offset * normal + in_plane
            kij = points @ inverse[:3, :3].T + inverse[:3, 3]
            planes[k] += ndi.map_coordinates(
                case.hu, np.moveaxis(kij, -1, 0), order=1, cval=-1000.0, prefilter=False
            )
    return planes / len(offsets)


def _sr(study: StudyInfo, uid: str) -> Dataset:
    """A minimal dose report: the kind of non-image object a scanner sends with a study."""
    ds = new_instance(BasicTextSRStorage, derived_uid(uid, "sr"))
    ds.PatientName, ds.PatientID = study.patient_name, study.patient_id
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.StudyInstanceUID, ds.StudyID = study.study_uid, "1"
    ds.StudyDate = ds.ContentDate = study.study_date
    ds.StudyTime = ds.ContentTime = "120000"
    ds.AccessionNumber, ds.ReferringPhysicianName = study.accession, ""
    ds.SeriesInstanceUID = uid
    ds.Modality = "SR"
    ds.SeriesNumber = 900
    ds.InstanceNumber = 1
    ds.SeriesDescription = "Dose report"
    ds.Manufacturer = "ICH Phantom"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ContentSequence = []
    return ds


def _bone_kernel(hu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same scan through a sharp kernel: edges enhanced, noise several times higher."""
    sharp = hu + 1.2 * (hu - ndi.gaussian_filter(hu, (0, 1.2, 1.2)))
    return sharp + rng.normal(0.0, 18.0, hu.shape).astype(np.float32)


def _name(ds: Dataset) -> str:
    """A file name that reveals neither series nor order (as many PACS exports do)."""
    return "dicom/" + hashlib.sha1(ds.SOPInstanceUID.encode()).hexdigest()[:16] + ".dcm"


def study_files(case: Case, distractors: bool) -> dict[str, bytes]:
    """All files of the study (relative path -> bytes); the target series is always there."""
    datasets = encode_series(case.hu, case.spec, case.study)
    files: dict[str, bytes] = {}
    if distractors:
        rng = stream(case.seed, case.index, Stream.BONE_KERNEL)
        target = replace(case.spec, transfer_syntax=ExplicitVRLittleEndian)
        uid = case.study.study_uid
        centre_z = float(case.spec.first_z_mm + case.spec.table_increment_mm * case.spec.slices / 2)
        sagittal = replace(
            target,
            slices=1,
            orientation=SAGITTAL,
            first_z_mm=centre_z,
            tilt_deg=0.0,
            table_increment_mm=1.0,
        )
        scout = replace(
            sagittal,
            image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
            description="Scout",
            series_number=1,
            series_uid=derived_uid(uid, "scout"),
        )
        datasets += encode_series(reformat(case, scout, slab_mm=120.0), scout, case.study)
        bone = replace(
            target,
            kernel="BONE",
            description=f"HEAD {case.spec.table_increment_mm:.3g}mm BONE",
            series_number=3,
            series_uid=derived_uid(uid, "bone"),
        )
        datasets += encode_series(_bone_kernel(case.hu, rng), bone, case.study)
        if "contrast" in case.extras:
            contrast = replace(
                target,
                contrast_agent="IOHEXOL 350",
                description="HEAD C+",
                series_number=4,
                series_uid=derived_uid(uid, "contrast"),
            )
            datasets += encode_series(case.extras["contrast"], contrast, case.study)
        half = (target.matrix - 1) / 2 * target.pixel_spacing_mm
        mpr = replace(
            sagittal,
            slices=5,
            origin_mm=(20.0, -half, centre_z + half),  # planes at x = 20 ... -20 mm
            table_increment_mm=10.0,
            image_type=("DERIVED", "SECONDARY", "REFORMATTED"),
            description="SAG MPR",
            series_number=5,
            series_uid=derived_uid(uid, "mpr"),
        )
        datasets += encode_series(reformat(case, mpr), mpr, case.study)
        files["dicom/" + "report.dcm"] = to_bytes(_sr(case.study, derived_uid(uid, "report")))
        files["README.txt"] = b"Synthetic study written by ich synth; no patient data.\n"
    files |= {_name(ds): to_bytes(ds) for ds in datasets}
    return files


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write ``study_files`` output under ``folder``."""
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
