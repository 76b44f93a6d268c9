"""Ingestion of the real head CT samples: compressed syntaxes, tilt, gaps, missing tags."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ich.dicom import SelectionPolicy, TooFewSlicesError, inspect, load, scan, select
from ich.dicom.pixels import decode_hu

pytestmark = pytest.mark.realdata


def codes(warnings) -> set[str]:
    return {w.code for w in warnings}


def test_cq500_selects_the_thin_series_among_three(real: Path) -> None:
    report = inspect(real / "cq500" / "dicom")
    assert report.error is None
    assert (report.files, len(report.series), report.studies) == (240, 3, 2)
    chosen = next(s for s in report.series if s.selected)
    assert chosen.images == 238
    assert chosen.transfer_syntax.startswith("JPEG Lossless")
    # 0.625 mm table increment under an 8.5 degree gantry tilt: planes are 0.618 mm apart.
    assert chosen.slice_spacing_mm == pytest.approx(0.625 * math.cos(math.radians(8.5)), abs=1e-3)
    others = [s for s in report.series if not s.selected]
    assert all("at least 5" in s.reasons[0] for s in others)
    assert {"other_studies", "missing_slices", "gantry_tilt_corrected"} <= codes(report.warnings)


def test_cq500_sorted_by_position_and_decoded(real: Path) -> None:
    selection = select(scan(real / "cq500" / "dicom"))
    grid = selection.chosen.grid
    assert len(grid.instances) == 238
    assert np.all(np.diff(grid.source_positions_mm) > 0)
    assert grid.table_increment_mm == pytest.approx(0.625, abs=1e-3)
    assert grid.tilt_deg == pytest.approx(8.5, abs=0.05)

    volume = load(real / "cq500" / "dicom")
    # 238 slices plus the one missing plane, interpolated.
    assert volume.shape == (239, 512, 512)
    assert int(volume.plane_is_source.sum()) == 238
    assert len(volume.source_sop_instance_uids) == 238
    assert volume.spacing_mm[1:] == pytest.approx((0.443359, 0.443359))
    mid = volume.hu[120]
    assert mid.min() == -1024 and mid.max() > 1000  # air and skull
    brain = mid[(mid > 0) & (mid < 80)]
    assert 20 < np.median(brain) < 50


def test_ge_gantry_tilt_and_uneven_gaps_are_corrected_and_reported(real: Path) -> None:
    selection = select(scan(real / "ge_head_gantry_tilt"))
    grid = selection.chosen.grid
    assert grid.tilt_deg == pytest.approx(18.5, abs=0.05)
    assert {"gantry_tilt_corrected", "uneven_spacing"} <= codes(selection.warnings)
    tilt_warning = next(w for w in selection.warnings if w.code == "gantry_tilt_corrected")
    assert "18.5" in tilt_warning.message
    # The in-plane shift grows with distance along the table, as a shear does.
    shifts = np.abs(grid.shifts_px[:, 0])
    assert shifts[0] == 0 and np.all(np.diff(shifts) >= -1e-6) and shifts[-1] > 50

    volume = load(real / "ge_head_gantry_tilt")
    assert volume.spacing_mm[0] == pytest.approx(4.0, abs=0.01)
    positions = volume.affine[:3, 0]
    assert np.linalg.norm(positions) == pytest.approx(volume.spacing_mm[0])
    # The affine is orthogonal after correction.
    axes = volume.affine[:3, :3] / np.linalg.norm(volume.affine[:3, :3], axis=0)
    assert np.allclose(axes.T @ axes, np.eye(3), atol=1e-6)
    assert volume.shape[0] == round(grid.source_positions_mm[-1] / volume.spacing_mm[0]) + 1


def test_ctich_slices_without_spacing_tags(real: Path) -> None:
    folder = real / "ctich_slices" / "images"
    report = inspect(folder)
    assert report.error is not None and report.error.type == "no-ct-series"
    assert all(s.pixel_spacing_mm is None for s in report.series)

    permissive = SelectionPolicy(modalities=("CT", "OT"), min_slices=1)
    volume = load(folder / "049_21.dcm", permissive)
    assert volume.approximate
    assert {"pixel_spacing_missing", "orientation_missing", "slice_spacing_missing"} <= codes(
        volume.warnings
    )
    assert volume.spacing_mm == (5.0, 0.45, 0.45)
    assert volume.hu.min() >= -1024 and np.median(volume.hu[volume.hu > 0]) < 100


def test_rsna_varied_rescale_gives_consistent_hu(real: Path) -> None:
    result = scan(real / "rsna_dicom")
    layouts = {(h.transfer_syntax_uid, h.rows) for h in result.headers}
    assert len(result.headers) == 8 and len(layouts) >= 2
    for header in result.headers:
        hu = decode_hu(header)
        assert hu.min() >= -1024 and hu.max() <= 3071
        air = hu[hu < -500]
        assert abs(np.median(air) - (-1000)) < 30, (
            header.name
        )  # air stays air, whatever the rescale
        tissue = hu[(hu > -100) & (hu < 100)]
        assert 0 < np.median(tissue) < 60, header.name
    with pytest.raises(TooFewSlicesError, match="at least 5"):
        load(real / "rsna_dicom")
