"""A whole synthetic study as a scanner sends it: the series to analyse plus the distractors.

Besides the soft-tissue axial series it holds a localizer, a bone-kernel reconstruction, a
contrast-enhanced series, a sagittal reformat, a structured report and a stray text file, so
series selection is exercised on every run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import BasicTextSRStorage, generate_uid

from ich.phantom.ellipsoid_head import EllipsoidHead
from ich.phantom.series_writer import (
    Phantom,
    SeriesSpec,
    StudyInfo,
    new_instance,
    to_bytes,
    write_series,
)

SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


@dataclass(frozen=True)
class SynthStudy:
    """The files of a study (relative path -> bytes) and the series meant to be analysed."""

    files: dict[str, bytes]
    study: StudyInfo
    target: SeriesSpec

    def write(self, out_dir: Path) -> list[Path]:
        paths = []
        for name, data in self.files.items():
            path = out_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            paths.append(path)
        return paths


def _sr(study: StudyInfo) -> Dataset:
    ds = new_instance(BasicTextSRStorage)
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.SeriesNumber = 900
    ds.SeriesDescription = "Dose report"
    ds.ValueType = "CONTAINER"
    return ds


def _series_files(prefix: str, datasets: list[Dataset]) -> dict[str, bytes]:
    return {f"{prefix}/IM{index:04d}.dcm": to_bytes(ds) for index, ds in enumerate(datasets)}


def synth_study(
    phantom: Phantom | None = None,
    matrix: int = 512,
    tilt_deg: float = 0.0,
    slice_mm: float = 5.0,
    distractors: bool = True,
) -> SynthStudy:
    """Render the study in memory; ``distractors`` adds the series that must not be chosen."""
    phantom = phantom or EllipsoidHead()
    study = StudyInfo()
    spacing = 230.0 / matrix
    slices = int(160 / slice_mm)
    target = SeriesSpec(
        slices=slices,
        matrix=matrix,
        pixel_spacing_mm=spacing,
        table_increment_mm=slice_mm,
        first_z_mm=-80.0,
        tilt_deg=tilt_deg,
        series_number=2,
        description=f"HEAD {slice_mm:g}mm STND",
    )
    files = _series_files("S0002_axial_soft", write_series(phantom, target, study))
    if distractors:
        others = {
            "S0001_scout": replace(
                target,
                slices=1,
                orientation=SAGITTAL,
                image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                description="Scout",
                series_number=1,
                series_uid=generate_uid(),
            ),
            "S0003_axial_bone": replace(
                target,
                kernel="BONE",
                description=f"HEAD {slice_mm:g}mm BONE",
                series_number=3,
                series_uid=generate_uid(),
            ),
            "S0004_contrast": replace(
                target,
                contrast_agent="IOHEXOL 350",
                description="HEAD C+",
                series_number=4,
                series_uid=generate_uid(),
            ),
            "S0005_sagittal_mpr": replace(
                target,
                slices=7,
                orientation=SAGITTAL,
                table_increment_mm=3.0,
                image_type=("DERIVED", "SECONDARY", "REFORMATTED"),
                description="SAG MPR",
                series_number=5,
                first_z_mm=0.0,
                series_uid=generate_uid(),
            ),
        }
        for prefix, spec in others.items():
            files |= _series_files(prefix, write_series(phantom, spec, study))
        files["S0900_report/SR0001.dcm"] = to_bytes(_sr(study))
        files["README.txt"] = b"Synthetic study written by ich synth; no patient data.\n"
    return SynthStudy(files, study, target)
