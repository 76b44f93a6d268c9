"""What SEG and SR share: codes for the classes, how they name the model, and input checks."""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from ich.errors import IchError
from ich.schema import HemorrhageClass, ModelInfo

MANUFACTURER = "ich-triage"
LESION = hd.sr.CodedConcept("49755003", "SCT", "Morphologically Abnormal Structure")
"""SNOMED CT 49755003, the category of lesions in CID 7150 (once named "Morphologically
Altered Structure")."""
HEMORRHAGE = codes.SCT.Hemorrhage
FINDING_SITES = {
    HemorrhageClass.IPH: codes.SCT.Brain,
    HemorrhageClass.EDH_SDH: codes.SCT.CranialCavity,
    HemorrhageClass.SAH: codes.SCT.CranialSubarachnoidSpace,
}
"""Where each class lies (SEG anatomic region, SR finding site): every class is of type
"Hemorrhage", so the site (and the label) tells them apart."""

_TYPE2 = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
    "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName",
)  # fmt: skip


class ReportInputError(IchError):
    """The label, volume, result or source images given for a report do not belong together."""

    code = "report-input-mismatch"
    title = "Report inputs do not match"


def unverified_note(model: ModelInfo) -> str:
    """What every report object says of itself: machine output no reader has checked (LO, so
    at most 64 characters)."""
    return f"Unverified triage aid by {model.name} {model.version}"[:64]


def device_uid(model: ModelInfo) -> str:
    """A UID for the model as an observer device: the same model always gets the same UID."""
    return generate_uid(entropy_srcs=["ich-model", model.name, model.version, model.sha256 or ""])


def check_sources(sources: Sequence[Dataset], series_uid: str) -> None:
    """Raise unless ``sources`` are images of the analysed series.

    Raises:
        ReportInputError: no sources, or one of another series.
    """
    if not sources:
        raise ReportInputError("No source images were given for the report.")
    if any(getattr(ds, "SeriesInstanceUID", None) != series_uid for ds in sources):
        raise ReportInputError("The source images are not all of the analysed series.")


def with_required_attributes(sources: Sequence[Dataset]) -> list[Dataset]:
    """``sources`` completed where highdicom requires what some files lack, on shallow copies
    (the callers' datasets are kept): type 2 patient and study attributes of the first image,
    which highdicom copies (some scanners and Enhanced CT writers leave them out), added empty;
    and a Frame of Reference UID, which a CT SEG needs and anonymised exports drop, on every
    image: the one some images have, else one derived from the series UID (the same for every
    object made of the series)."""
    first = Dataset(dict(sources[0].items()))
    for keyword in _TYPE2:
        if keyword not in first:
            setattr(first, keyword, "")
    completed = [first, *sources[1:]]
    if any("FrameOfReferenceUID" not in image for image in completed):
        known = [i.FrameOfReferenceUID for i in completed if "FrameOfReferenceUID" in i]
        frame = (
            known[0]
            if known
            else generate_uid(entropy_srcs=[str(first.SeriesInstanceUID), "FrameOfReferenceUID"])
        )
        completed = [Dataset(dict(image.items())) for image in completed]
        for image in completed:
            image.FrameOfReferenceUID = frame
    return completed
