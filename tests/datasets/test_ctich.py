"""CT-ICH as labelled studies: label rules on hand-made volumes, bad input named by file, the
converted studies through ingestion, and the real folder where it is present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ctich_source import AFFINE, small_source  # type: ignore[import-not-found]

from ich.datasets.ctich import (
    CtichDataError,
    import_ctich,
    label_volume,
    read_patient,
    read_slice_table,
)
from ich.evaluate.cases import labelled_case
from ich.nifti import write_volume_nifti
from ich.phantom.dataset import UNCLASSIFIED, SynthOutputError
from ich.pipeline import SeriesContext, prepare
from ich.preprocess import InputSpec
from ich.preprocess.stored_window import StoredWindow

IPH, EDH_SDH, SAH = 1, 2, 3


def _mask(slices: int, *blobs: tuple[int, int, int]) -> np.ndarray:
    """(slices, 32, 32) with a 4x4 square at each (slice, row, column)."""
    mask = np.zeros((slices, 32, 32), dtype=bool)
    for k, r, c in blobs:
        mask[k, r : r + 4, c : c + 4] = True
    return mask


def test_a_slice_with_one_type_labels_its_whole_mask() -> None:
    mask = _mask(2, (0, 2, 2), (0, 20, 20), (1, 10, 10))
    label = label_volume(mask, [{IPH}, {EDH_SDH}])
    assert set(np.unique(label[0])) == {0, IPH} and (label[0] == IPH).sum() == 32
    assert set(np.unique(label[1])) == {0, EDH_SDH}


def test_mixed_slices_take_the_class_each_component_continues() -> None:
    # Slice 1 holds IPH (continuing slice 0's) and SDH (continuing slice 2's); slice 3 is mixed
    # too and continues slice 2's SDH through it, one more step away from a one-type slice.
    mask = _mask(4, (0, 2, 2), (1, 3, 3), (1, 20, 20), (2, 21, 21), (3, 22, 22), (4 - 1, 2, 24))
    types = [{IPH}, {IPH, EDH_SDH}, {EDH_SDH}, {SAH, EDH_SDH}]
    label = label_volume(mask, types)
    assert label[1, 4, 4] == IPH and label[1, 21, 21] == EDH_SDH
    assert label[3, 23, 23] == EDH_SDH
    # A component with nothing to continue from is left unclassified, not guessed.
    assert label[3, 3, 25] == UNCLASSIFIED


def test_intraventricular_blood_is_unclassified() -> None:
    mask = _mask(2, (0, 2, 2), (1, 3, 3), (1, 20, 20))
    label = label_volume(mask, [{UNCLASSIFIED}, {UNCLASSIFIED, IPH}])
    assert (label[0][mask[0]] == UNCLASSIFIED).all()
    assert label[1, 4, 4] == UNCLASSIFIED and label[1, 21, 21] == UNCLASSIFIED


def test_blood_on_a_slice_listed_without_hemorrhage_is_unclassified() -> None:
    label = label_volume(_mask(1, (0, 2, 2)), [set()])
    assert (label[label > 0] == UNCLASSIFIED).all() and label.any()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return small_source(tmp_path / "ctich")


def test_converted_studies_ingest_with_stored_hu_and_truth_on_the_blood(
    source: Path, tmp_path: Path
) -> None:
    manifest = import_ctich(source, tmp_path / "out")
    assert [c["case"] for c in manifest["cases"]] == ["case_049", "case_050"]
    assert "Hssayeni" in manifest["citation"]
    case = labelled_case(tmp_path / "out" / "case_049")
    volume = case.volume
    assert volume.spacing_mm == pytest.approx((5.0, 0.45, 0.45))
    assert float(volume.hu.min()) == pytest.approx(-20) and float(volume.hu.max()) == 100
    # The truth sits on the bleed's own pixels (about 85 HU), every one of them EDH/SDH.
    assert (case.label == EDH_SDH).sum() == 2 * 6 * 10
    assert np.all(np.abs(volume.hu[case.label > 0] - 85) < 1)
    assert case.record["patient"] == "049" and case.record["approximate_spacing"]
    assert case.record["classes_present"] == ["EDH/SDH"]
    prepared = prepare(volume, InputSpec(size=64, pixel_mm=2.0))
    assert prepared.grid.window == StoredWindow(-20.0, 100.0)
    warnings = SeriesContext.of(volume, prepared).warnings
    assert [w.code for w in warnings] == ["windowed_series"]
    assert "-20 to 100 HU" in warnings[0].message
    with pytest.raises(SynthOutputError, match="already holds"):
        import_ctich(source, tmp_path / "out")


def test_bad_input_is_refused_naming_the_file(source: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CtichDataError, match="no patient folders"):
        import_ctich(tmp_path / "empty", tmp_path / "x")
    (source / "slices.csv").rename(source / "gone.csv")
    with pytest.raises(CtichDataError, match=r"slices\.csv not found"):
        import_ctich(source, tmp_path / "a")
    (source / "gone.csv").rename(source / "slices.csv")
    text = (source / "slices.csv").read_text()
    (source / "slices.csv").write_text(text.replace("Subdural", "Sub"))
    with pytest.raises(CtichDataError, match="lacks the column"):
        read_slice_table(source / "slices.csv")
    (source / "slices.csv").write_text(text)
    write_volume_nifti(source / "050" / "mask.nii.gz", np.zeros((5, 64, 64), np.uint8), AFFINE)
    with pytest.raises(CtichDataError, match=r"050/mask.nii.gz has shape \(5, 64, 64\)"):
        import_ctich(source, tmp_path / "b")
    assert not (tmp_path / "b").exists()  # nothing half-written
    (source / "050" / "mask.nii.gz").unlink()
    with pytest.raises(CtichDataError, match=r"050/mask\.nii\.gz not found"):
        import_ctich(source, tmp_path / "c")
    (source / "050" / "mask.nii.gz").write_bytes(b"not a volume")
    with pytest.raises(CtichDataError, match=r"050/mask\.nii\.gz is not a readable NIfTI"):
        import_ctich(source, tmp_path / "c")
    table = read_slice_table(source / "slices.csv")
    with pytest.raises(CtichDataError, match="no row for slice"):
        read_patient(source / "049", {k: v for k, v in table["049"].items() if k != 5})


def test_the_real_ctich_folder_converts_with_few_unclassified_voxels(real: Path) -> None:
    folder = real / "ctich_volumes"
    table = read_slice_table(folder / "slices.csv")
    assert len(table) == 44
    patient = read_patient(folder / "070", table["070"])
    label = label_volume(patient.mask, patient.types)
    blood = (label > 0).sum()
    assert blood == patient.mask.sum() > 0
    assert (label == UNCLASSIFIED).sum() < 0.1 * blood
