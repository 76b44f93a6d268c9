"""Layering rules of ARCHITECTURE.md that code review alone would not keep."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "ich.dicom",
        "ich.schema",
        "ich.cli",
        "ich.nifti",
        "ich.quantify",
        "ich.evaluate.report",
        "ich.phantom.dataset",
        "ich.phantom.real_background",
        "ich.preprocess",
        "ich.preprocess.outputs",
        "ich.pipeline",
        "ich.overlays",
        "ich.model.config",
        "ich.evaluate.operating",
        "ich.serving.steps",
        "ich.serving.backend",
        "ich.serving.client",
        "ich.serving.server",
        "ich.reports",
        "api.app",
        "api.serve",
        "api.process",
    ],
)
def test_torch_free_modules_do_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
