"""Header classifiers: kernels across vendors, contrast evidence, orientation."""

from __future__ import annotations

import pytest

from ich.dicom.classify import (
    KernelClass,
    axial_tilt_deg,
    classify_kernel,
    contrast_evidence,
    orientation_label,
)


@pytest.mark.parametrize(
    ("kernel", "description", "expected"),
    [
        ("STANDARD", "", KernelClass.SOFT),  # GE
        ("SOFT", "", KernelClass.SOFT),
        ("STD+", "", KernelClass.SOFT),
        ("BONE", "", KernelClass.SHARP),
        ("BONEPLUS", "", KernelClass.SHARP),
        ("H30s", "", KernelClass.SOFT),  # Siemens
        ("Hr38", "", KernelClass.SOFT),
        ("J40s", "", KernelClass.SOFT),
        ("H70h", "", KernelClass.SHARP),
        ("Br64", "", KernelClass.SHARP),
        ("FC26", "", KernelClass.SOFT),  # Canon
        ("FC30", "", KernelClass.SHARP),
        ("UB", "", KernelClass.SOFT),  # Philips
        ("", "HEAD BONE 2.5", KernelClass.SHARP),
        ("", "Brain 5mm", KernelClass.SOFT),
        ("", "", KernelClass.UNKNOWN),
    ],
)
def test_kernel_classes(kernel: str, description: str, expected: KernelClass) -> None:
    assert classify_kernel(kernel, description) is expected


@pytest.mark.parametrize(
    ("agent", "route", "description", "contrast"),
    [
        ("", "", "HEAD WO CONTRAST", False),
        ("NONE", "", "", False),
        ("IOHEXOL", "", "", True),
        ("", "IV", "", True),
        ("", "", "CTA HEAD", True),
        ("", "", "HEAD C+", True),
        ("", "", "NON CONTRAST HEAD", False),
        ("", "", "4cc sec 150cc D3D on", False),
    ],
)
def test_contrast_evidence(agent: str, route: str, description: str, contrast: bool) -> None:
    assert (contrast_evidence(agent, route, description) is not None) is contrast


def test_orientation() -> None:
    assert orientation_label((1, 0, 0, 0, 1, 0)) == "AXIAL"
    assert orientation_label((0, 1, 0, 0, 0, -1)) == "SAGITTAL"
    assert orientation_label((1, 0, 0, 0, 0, -1)) == "CORONAL"
    assert orientation_label(None) == "UNKNOWN"
    assert axial_tilt_deg((1, 0, 0, 0, 0.9483237, -0.3173047)) == pytest.approx(18.5, abs=0.01)
