"""Synthetic edge cases built with the project's own DICOM writer."""

from __future__ import annotations

import dataclasses
import io
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from ich.dicom import (
    AmbiguousStudyError,
    InputLimitError,
    InputLimits,
    NoAxialSeriesError,
    NoCtSeriesError,
    NoDicomError,
    NoEligibleSeriesError,
    SeriesGeometryError,
    TooFewSlicesError,
    UnreadableDicomError,
    inspect,
    load,
    scan,
    select,
)
from ich.dicom.volume import load_volume
from ich.phantom.series_writer import StudyInfo, to_bytes


def codes(warnings) -> set[str]:
    return {w.code for w in warnings}


def bleed_centroid_and_volume(volume) -> tuple[np.ndarray, float]:
    """Centroid (patient mm) and volume (mL) of the phantom's bleed.

    Interpolated skull-brain edges also pass through blood values in a one-pixel ring, so the
    centroid comes from the in-plane eroded core and the volume from the blood-valued voxels
    around that core only.
    """
    mask = (volume.hu > 55) & (volume.hu < 75)
    core = mask.copy()
    core[:, 1:] &= mask[:, :-1]
    core[:, :-1] &= mask[:, 1:]
    core[:, :, 1:] &= mask[:, :, :-1]
    core[:, :, :-1] &= mask[:, :, 1:]
    kij = np.argwhere(core)
    low, high = np.maximum(kij.min(axis=0) - 3, 0), kij.max(axis=0) + 4
    region = mask[low[0] : high[0], low[1] : high[1], low[2] : high[2]]
    return volume.to_patient(kij.mean(axis=0)), region.sum() * volume.voxel_volume_ml


# --- ordering, duplicates, gaps -------------------------------------------------------------


def test_shuffled_files_are_sorted_by_position_not_instance_number(series, write) -> None:
    datasets = series()
    reference = load(write(datasets))
    shuffled = datasets[:]
    random.Random(3).shuffle(shuffled)
    for number, ds in enumerate(shuffled):
        ds.InstanceNumber = number + 1  # misleading instance numbers
    volume = load(write(shuffled))
    assert np.array_equal(volume.hu, reference.hu)
    assert volume.source_sop_instance_uids == reference.source_sop_instance_uids
    assert not volume.warnings


def test_same_file_twice_is_skipped_with_a_note(series, write) -> None:
    datasets = series()
    folder = write(datasets, extra={"copy.dcm": to_bytes(datasets[4])})
    result = scan(folder)
    assert any("same SOP instance" in s.reason for s in result.skipped)
    assert load(folder).shape[0] == len(datasets)


def test_duplicated_position_keeps_the_later_acquisition(series, write) -> None:
    datasets = series()
    repeat = series()[5]
    repeat.SOPInstanceUID = repeat.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    repeat.SeriesInstanceUID = datasets[0].SeriesInstanceUID
    repeat.AcquisitionNumber = 2
    volume = load(write([*datasets, repeat]))
    assert volume.shape[0] == len(datasets)
    assert "duplicate_positions" in codes(volume.warnings)
    assert repeat.SOPInstanceUID in volume.source_sop_instance_uids


def test_missing_slice_is_interpolated_and_reported(series, write) -> None:
    datasets = series()
    full = load(write(datasets))
    volume = load(write(datasets[:6] + datasets[7:]))
    assert volume.shape == full.shape
    assert "missing_slices" in codes(volume.warnings)
    assert list(np.flatnonzero(~volume.plane_is_source)) == [6]
    expected = (full.hu[5].astype(np.float32) + full.hu[7]) / 2
    assert np.abs(volume.hu[6] - expected).max() <= 1
    assert np.array_equal(volume.hu[7], full.hu[7])


def test_gap_that_would_corrupt_volumes_is_refused(series, write) -> None:
    datasets = series()
    with pytest.raises(SeriesGeometryError, match=r"gap of 15\.0 mm"):
        load(write(datasets[:5] + datasets[7:]))


def test_mixed_matrix_sizes_set_aside(series, write) -> None:
    datasets = series()
    odd = series(matrix=48, pixel_spacing_mm=4.8, slices=1, series_uid=generate_uid())[0]
    odd.SeriesInstanceUID = datasets[0].SeriesInstanceUID
    volume = load(write([*datasets, odd]))
    assert volume.shape == (len(datasets), 96, 96)
    assert "mixed_geometry" in codes(volume.warnings)


# --- geometry: tilt, orientation, spacing ----------------------------------------------------


@pytest.mark.parametrize("tilt", [0.0, 20.0, -12.0])
def test_gantry_tilt_correction_puts_structures_where_they_are(series, write, bleed, tilt) -> None:
    volume = load(write(series(tilt_deg=tilt, table_increment_mm=2.0, slices=24, first_z_mm=-10)))
    centroid, ml = bleed_centroid_and_volume(volume)
    assert np.linalg.norm(centroid - bleed.centre) < 1.0
    assert ml == pytest.approx(bleed.volume_ml(), rel=0.1)
    assert ("gantry_tilt_corrected" in codes(volume.warnings)) == (tilt != 0)


def test_without_shear_correction_the_bleed_would_be_misplaced(series, write, bleed) -> None:
    """Guards the test above: skipping the correction moves the structure by millimetres."""
    folder = write(series(tilt_deg=20.0, table_increment_mm=2.0, slices=24, first_z_mm=-10))
    grid = select(scan(folder)).chosen.grid
    uncorrected = load_volume(
        dataclasses.replace(grid, shifts_px=np.zeros_like(grid.shifts_px)), "", ""
    )
    centroid, _ = bleed_centroid_and_volume(uncorrected)
    assert np.linalg.norm(centroid - bleed.centre) > 3.0


@pytest.mark.parametrize(
    "orientation",
    [
        (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0),  # both in-plane axes mirrored
        (0.0, 1.0, 0.0, 1.0, 0.0, 0.0),  # rotated: rows run posterior, columns left
        (0.0, -1.0, 0.0, 1.0, 0.0, 0.0),  # rotated by 90 degrees the other way
    ],
)
def test_in_plane_orientation_is_made_radiological(series, write, bleed, orientation) -> None:
    reference = load(write(series()))
    # The writer stacks along the normal; start where the reference ends if it points down.
    downwards = np.cross(orientation[:3], orientation[3:])[2] < 0
    odd = load(write(series(orientation=orientation, first_z_mm=30.0 if downwards else -25.0)))
    assert np.allclose(odd.affine, reference.affine, atol=1e-3)
    assert np.abs(odd.hu.astype(int) - reference.hu).max() <= 1
    centroid, _ = bleed_centroid_and_volume(odd)
    assert np.linalg.norm(centroid - bleed.centre) < 2.5


def test_slice_order_is_inferior_to_superior_even_if_acquired_downwards(
    series, write, bleed
) -> None:
    down = series(table_increment_mm=-5.0, first_z_mm=30.0)
    volume = load(write(down))
    assert volume.affine[2, 0] > 0
    centroid, _ = bleed_centroid_and_volume(volume)
    assert np.linalg.norm(centroid - bleed.centre) < 2.5


def test_missing_pixel_spacing_falls_back_with_warning(series, write) -> None:
    datasets = series()
    for ds in datasets:
        del ds.PixelSpacing
    volume = load(write(datasets))
    assert volume.approximate
    assert volume.spacing_mm[1:] == (0.45, 0.45)
    assert "pixel_spacing_missing" in codes(volume.warnings)


def test_missing_positions_fall_back_to_instance_number(series, write) -> None:
    datasets = series()
    reference = load(write(datasets))
    shuffled = datasets[:]
    random.Random(1).shuffle(shuffled)
    for ds in shuffled:
        del ds.ImagePositionPatient
    volume = load(write(shuffled))
    assert "positions_missing" in codes(volume.warnings) and volume.approximate
    assert np.array_equal(volume.hu, reference.hu)


# --- pixels -----------------------------------------------------------------------------------


def test_rescale_intercept_zero_and_minus_1024_give_the_same_hu(series, write) -> None:
    a = load(write(series(rescale_intercept=-1024.0)))
    b = load(write(series(rescale_intercept=0.0)))
    assert np.array_equal(a.hu, b.hu)
    assert a.hu.min() == -1024  # padding outside the field of view is air


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_transfer_syntaxes_decode_losslessly(series, write, syntax) -> None:
    reference = load(write(series(slices=6)))
    volume = load(write(series(slices=6, transfer_syntax=syntax)))
    assert np.array_equal(volume.hu, reference.hu)


# --- inputs: zip, bytes, junk -------------------------------------------------------------------


def test_zip_and_in_memory_inputs(series) -> None:
    datasets = series()
    files = [(f"s{i}.dcm", to_bytes(ds)) for i, ds in enumerate(datasets)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            zf.writestr(f"study/{name}", data)
        zf.writestr("study/notes.txt", "not dicom")
    from_zip = load(buffer.getvalue())
    from_list = load(files)
    assert np.array_equal(from_zip.hu, from_list.hu)
    assert "files_skipped" in codes(from_zip.warnings)


def test_zip_bomb_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.dcm", b"\0" * 10_000_000)
    with pytest.raises(InputLimitError, match="zip bomb"):
        scan(buffer.getvalue())
    with pytest.raises(InputLimitError, match="More than 3 files"):
        scan([b"a", b"b", b"c", b"d"], InputLimits(max_files=3))


def test_mixed_study_selects_soft_kernel_axial(tmp_path: Path) -> None:
    from ich.phantom.generate import CaseOptions, synthesize
    from ich.phantom.study import study_files, write_files

    case = synthesize(1, 0, CaseOptions(matrix=64, slice_mm=5.0, contrast=True))
    write_files(tmp_path, study_files(case, distractors=True))
    report = inspect(tmp_path)
    assert report.error is None
    assert report.selected_series_uid == case.spec.series_uid
    by_number = {s.series_number: s for s in report.series}
    assert "localizer/scout" in by_number[1].reasons
    assert by_number[3].eligible and by_number[3].kernel_class == "sharp"
    assert any("contrast" in r for r in by_number[4].reasons)
    assert any("derived" in r for r in by_number[5].reasons)
    skipped = {s.name: s.reason for s in report.skipped}
    assert skipped["README.txt"] == "not a DICOM file"
    assert "Basic Text SR" in skipped["dicom/report.dcm"]


def test_thickness_preference_over_slice_count(series, write) -> None:
    thin = series(table_increment_mm=1.0, slices=50, series_uid=generate_uid())
    standard = series(series_uid=generate_uid())
    report = inspect(write(thin + standard))
    assert report.selected_series_uid == standard[0].SeriesInstanceUID


# --- bad input: typed errors with actionable messages --------------------------------------------


def test_not_dicom(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(NoDicomError, match="not a DICOM file"):
        load(tmp_path / "a.txt")
    with pytest.raises(NoDicomError, match="does not exist"):
        load(tmp_path / "missing")


def test_truncated_file(series) -> None:
    data = to_bytes(series(slices=1)[0])
    with pytest.raises(UnreadableDicomError, match="truncated"):
        load(("cut.dcm", data[: len(data) // 2]))
    with pytest.raises(UnreadableDicomError, match="unreadable"):
        load(("cut.dcm", data[:300]))


def test_no_ct(series, write) -> None:
    datasets = series(modality="MR")
    with pytest.raises(NoCtSeriesError, match="modalities found: MR"):
        load(write(datasets))


def test_no_axial(series, write) -> None:
    datasets = series(orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0), slices=8)
    with pytest.raises(NoAxialSeriesError, match="sagittal"):
        load(write(datasets))


def test_under_five_slices(series, write) -> None:
    with pytest.raises(TooFewSlicesError, match="at least 5"):
        load(write(series(slices=3)))


def test_contrast_only(series, write) -> None:
    with pytest.raises(NoEligibleSeriesError, match="contrast"):
        load(write(series(contrast_agent="IOHEXOL")))


def test_two_studies_with_eligible_series_are_ambiguous(series, write) -> None:
    other = series(in_study=StudyInfo(), series_uid=generate_uid())
    with pytest.raises(AmbiguousStudyError, match="2 studies"):
        load(write(series() + other))


def test_dicomdir_and_presentation_state_are_skipped(series, tmp_path: Path) -> None:
    from pydicom.fileset import FileSet
    from pydicom.uid import GrayscaleSoftcopyPresentationStateStorage

    from ich.phantom.series_writer import new_instance

    datasets = series(slices=6)
    fileset = FileSet()
    for ds in datasets:
        fileset.add(ds)
    fileset.write(tmp_path / "media")
    gsps = new_instance(GrayscaleSoftcopyPresentationStateStorage)
    gsps.Modality = "PR"
    (tmp_path / "media" / "ps.dcm").write_bytes(to_bytes(gsps))

    result = scan(tmp_path / "media")
    reasons = {s.name: s.reason for s in result.skipped}
    assert reasons["DICOMDIR"].startswith("DICOMDIR")
    assert "Presentation State" in reasons["ps.dcm"]
    assert load(tmp_path / "media").shape[0] == 6


def test_policy_can_name_the_series(series, write) -> None:
    from ich.dicom import SelectionPolicy

    soft = series(series_uid=generate_uid())
    bone = series(series_uid=generate_uid(), kernel="BONE")
    folder = write(soft + bone)
    assert inspect(folder).selected_series_uid == soft[0].SeriesInstanceUID
    chosen = inspect(folder, SelectionPolicy(series_uid=bone[0].SeriesInstanceUID))
    assert chosen.selected_series_uid == bone[0].SeriesInstanceUID


# --- robustness against headers that bend the standard ----------------------------------------


def test_padding_value_in_the_other_signedness(series, write) -> None:
    from pydicom.dataelem import DataElement

    datasets = series(slices=6)
    reference = load(write(datasets))
    for ds in datasets:  # the same bytes, declared unsigned, padding written as SS
        ds.PixelRepresentation = 0
        ds["PixelPaddingValue"] = DataElement(0x00280120, "SS", -2000)
    volume = load(write(datasets))
    assert volume.hu.max() < 3071  # padding did not turn into bone
    assert np.array_equal(volume.hu, reference.hu)


def test_degenerate_orientation_is_treated_as_missing(series, write) -> None:
    datasets = series(slices=6)
    for ds in datasets:
        ds.ImageOrientationPatient = [0, 0, 0, 0, 0, 0]
    volume = load(write(datasets))
    assert "orientation_missing" in codes(volume.warnings)


def test_empty_rows_is_an_unreadable_note_not_a_crash(series) -> None:
    ds = series(slices=1)[0]
    ds.Rows = None
    result = scan([("ok.dcm", to_bytes(series(slices=1)[0])), ("bad.dcm", to_bytes(ds))])
    assert [s.name for s in result.skipped] == ["bad.dcm"]


@pytest.mark.parametrize("syntax", [DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_deflated_and_implicit_syntaxes(series, write, syntax) -> None:
    reference = load(write(series(slices=6)))
    assert np.array_equal(load(write(series(slices=6, transfer_syntax=syntax))).hu, reference.hu)


def test_plane_past_the_last_slice_is_not_marked_as_source(series, write) -> None:
    datasets = series(slices=11)
    last = datasets[-1]
    x, y, z = (float(v) for v in last.ImagePositionPatient)
    last.ImagePositionPatient = [x, y, z + 3.5]
    volume = load(write(datasets))
    assert "uneven_spacing" in codes(volume.warnings)
    assert volume.shape[0] == 12 and not volume.plane_is_source[-1]
    assert volume.plane_is_source[:10].all()


def test_two_part_acquisition_is_uneven_not_missing(series, write) -> None:
    fine = series(slices=8, table_increment_mm=2.5, first_z_mm=-30.0)
    coarse = series(slices=8, table_increment_mm=5.0, first_z_mm=-30.0 + 8 * 2.5)
    for ds in coarse:
        ds.SeriesInstanceUID = fine[0].SeriesInstanceUID
    volume = load(write(fine + coarse))
    assert codes(volume.warnings) == {"uneven_spacing"}
    assert volume.spacing_mm[0] == pytest.approx(2.5, abs=0.01)


def test_position_jitter_is_not_unevenness(series, write) -> None:
    datasets = series()
    rng = np.random.default_rng(0)
    for ds in datasets:
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + rng.uniform(-0.05, 0.05)]
    volume = load(write(datasets))
    assert not volume.warnings
    assert volume.plane_is_source.all()


def test_screen_capture_does_not_hide_the_real_problem(series, write) -> None:
    from pydicom.uid import SecondaryCaptureImageStorage

    from ich.phantom.series_writer import new_instance

    capture = new_instance(SecondaryCaptureImageStorage)
    capture.update({"Modality": "CT", "StudyInstanceUID": series(slices=1)[0].StudyInstanceUID})
    capture.SeriesInstanceUID = generate_uid()
    capture.Rows = capture.Columns = 8
    capture.SamplesPerPixel, capture.PhotometricInterpretation = 3, "RGB"
    capture.BitsAllocated = capture.BitsStored = 8
    capture.HighBit, capture.PixelRepresentation, capture.PlanarConfiguration = 7, 0, 0
    capture.PixelData = bytes(8 * 8 * 3)
    with pytest.raises(TooFewSlicesError):
        load(write([*series(slices=3), capture]))
    with pytest.raises(NoAxialSeriesError):
        load(write([*series(slices=8, orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0)), capture]))


@pytest.mark.parametrize("tilt", [0.0, 15.0])
def test_enhanced_multiframe_ct_equals_the_classic_series(series, enhanced, write, tilt) -> None:
    classic = series(tilt_deg=tilt)
    multiframe = enhanced(tilt_deg=tilt, transfer_syntax=RLELossless)
    reference = load(write(classic))
    volume = load(write([multiframe]))
    assert np.array_equal(volume.hu, reference.hu)
    assert np.allclose(volume.affine, reference.affine)
    assert set(volume.source_sop_instance_uids) == {multiframe.SOPInstanceUID}
    assert volume.source_frame_numbers == tuple(range(1, len(classic) + 1))
    report = inspect(write([multiframe]))
    assert report.series[0].eligible and report.series[0].images == len(classic)


def test_enhanced_ct_with_one_frame_per_file(enhanced, series, write) -> None:
    reference = load(write(series()))
    singles = [enhanced(slices=1, first_z_mm=-25.0 + 5.0 * k) for k in range(12)]
    volume = load(write(singles))
    assert np.array_equal(volume.hu, reference.hu)
    assert not volume.warnings


def test_frames_without_positions_keep_their_order(enhanced, write) -> None:
    multiframe = enhanced()
    for item in multiframe.PerFrameFunctionalGroupsSequence:
        del item.PlanePositionSequence
    volume = load(write([multiframe]))
    assert volume.shape[0] == 12 and "positions_missing" in codes(volume.warnings)


def test_all_slices_at_one_position_are_too_few(series, write) -> None:
    datasets = series(slices=6)
    for ds in datasets:
        ds.ImagePositionPatient = datasets[0].ImagePositionPatient
    with pytest.raises(TooFewSlicesError):
        load(write(datasets))


def test_contrast_and_sagittal_report_the_contrast(series, write) -> None:
    sagittal = series(orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0), series_uid=generate_uid())
    contrast = series(contrast_agent="IOHEXOL", series_uid=generate_uid())
    with pytest.raises(NoEligibleSeriesError, match="contrast"):
        load(write(sagittal + contrast))


def test_unreadable_padding_value_is_ignored(series, write) -> None:
    from pydicom.dataelem import DataElement

    datasets = series(slices=6, pad_outside_fov=False)
    for ds in datasets:
        ds["PixelPaddingValue"] = DataElement(0x00280120, "OB", b"\x01\x02\x03")
    assert load(write(datasets)).shape[0] == 6


@pytest.mark.parametrize("cut", [1, 4, 12])
def test_slightly_truncated_file_is_skipped_not_fatal(series, cut) -> None:
    datasets = series()
    files = [(f"s{i}.dcm", to_bytes(ds)) for i, ds in enumerate(datasets)]
    name, data = files[-1]
    files[-1] = (name, data[:-cut])
    result = scan(files)
    assert [s.name for s in result.skipped] == [name]
    assert result.skipped[0].reason.startswith("truncated")


@pytest.mark.parametrize(
    "overrides",
    [
        {"tilt_deg": 20.0},
        {"orientation": (0.0, -1.0, 0.0, 1.0, 0.0, 0.0), "first_z_mm": 30.0},
        {"orientation": (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0), "first_z_mm": 30.0},
    ],
)
def test_grid_pixels_map_back_to_the_source_images(series, write, overrides) -> None:
    datasets = series(**overrides)
    volume = load(write(datasets))
    by_uid = {ds.SOPInstanceUID: ds for ds in datasets}
    for k, i, j in [(0, 0, 0), (5, 40, 70), (11, 95, 3)]:
        source, row, col = volume.to_source_pixel(k, i, j)
        ds = by_uid[volume.source_sop_instance_uids[source]]
        iop = np.array(ds.ImageOrientationPatient, float)
        dy, dx = (float(v) for v in ds.PixelSpacing)
        on_source = (
            np.array(ds.ImagePositionPatient, float) + col * dx * iop[:3] + row * dy * iop[3:]
        )
        assert np.allclose(on_source, volume.to_patient((k, i, j)), atol=1e-2)
