"""Shared fixtures: the real samples in ../shared/data/real, synthetic series builders, and one
real tritonserver and one real gateway process (``ich serve --no-triton``) per session, on free
ports and stopped by their process ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from ellipsoid_head import Ellipsoid, EllipsoidHead
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from api.process import GatewayProcess, start_gateway
from ich.phantom.series_writer import (
    SeriesSpec,
    StudyInfo,
    to_bytes,
    write_enhanced_series,
    write_series,
)
from ich.serving.server import TritonServer

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"

BLEED = Ellipsoid(centre=(20.0, 10.0, 12.0), radii=(9.0, 9.0, 9.0), hu=65.0)
"""A sphere of known position and volume (3.05 mL) inside the phantom's brain."""

SMALL = SeriesSpec(
    slices=12, matrix=96, pixel_spacing_mm=2.4, table_increment_mm=5.0, first_z_mm=-25.0
)
"""A small axial series that still covers the phantom's brain and bleed."""


@pytest.fixture
def real() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real samples not found at {REAL}")
    return REAL


@pytest.fixture
def bleed() -> Ellipsoid:
    return BLEED


@pytest.fixture
def study() -> StudyInfo:
    return StudyInfo()


@pytest.fixture
def phantom() -> EllipsoidHead:
    return EllipsoidHead(bleeds=(BLEED,))


@pytest.fixture
def series(phantom: EllipsoidHead, study: StudyInfo) -> Callable[..., list[Dataset]]:
    """Build a series of the phantom: ``series(tilt_deg=15, slices=8, ...)``."""

    def build(in_study: StudyInfo | None = None, **overrides: object) -> list[Dataset]:
        # Each call is a new series (SOP Instance UIDs derive from the series UID).
        overrides.setdefault("series_uid", generate_uid())
        return write_series(phantom, replace(SMALL, **overrides), in_study or study)

    return build


@pytest.fixture
def enhanced(phantom: EllipsoidHead, study: StudyInfo) -> Callable[..., Dataset]:
    """The same series as ``series(**overrides)``, as one Enhanced CT multi-frame instance."""

    def build(**overrides: object) -> Dataset:
        return write_enhanced_series(phantom, replace(SMALL, **overrides), study)

    return build


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Write datasets (and raw files) into a fresh folder: ``write(datasets, extra={...})``."""
    counter = iter(range(1_000_000))

    def save(datasets: list[Dataset], extra: dict[str, bytes] | None = None) -> Path:
        folder = tmp_path / f"input{next(counter)}"
        folder.mkdir()
        for index, ds in enumerate(datasets):
            (folder / f"f{index:04d}.dcm").write_bytes(to_bytes(ds))
        for name, data in (extra or {}).items():
            (folder / name).write_bytes(data)
        return folder

    return save


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small synthetic studies with blood and its ground truth (128 matrix, 5 mm)."""
    from ich.phantom.dataset import DatasetPlan, write_dataset
    from ich.phantom.generate import CaseOptions, synthesize

    out = tmp_path_factory.mktemp("small_synth")
    options = CaseOptions(prevalence=1.0, matrix=128, slice_mm=5.0)
    write_dataset(out, DatasetPlan(5, 4, synthesize, options, 0.0), {"seed": 5}, workers=2)
    return out


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    server = TritonServer.on_free_ports(tmp_path_factory.mktemp("triton")).start()
    yield server
    server.stop()
    assert server.process is not None and server.process.poll() is not None


@pytest.fixture(scope="session")
def gateway(
    triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    running = start_gateway(
        tmp_path_factory.mktemp("gateway") / "data",
        triton.grpc_url,
        ICH_STOW_QUIET_S="1",
        ICH_WEBHOOK_BACKOFF_S="0.2",
        ICH_WEBHOOK_ALLOW_LOOPBACK="true",
    )
    yield running
    running.stop()
    assert running.process.poll() is not None
