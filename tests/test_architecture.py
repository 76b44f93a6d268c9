"""The import rules of docs/architecture.md that code review alone would not keep."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _imports(folder: Path) -> dict[str, set[str]]:
    """Every module each Python file of ``folder`` imports, at top level or inside functions
    (relative to the repository root)."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def _offending(folder: str, banned: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return [
        f"{path} imports {name}"
        for path, names in _imports(ROOT / folder).items()
        if path not in allowed
        for name in sorted(names)
        if any(name == b or name.startswith(b + ".") for b in banned)
    ]


def test_only_the_service_commands_reach_the_gateway_and_the_exporters() -> None:
    assert _offending("ich", ("api", "export"), allowed=("ich/cli/service.py",)) == []


def test_the_gateway_never_loads_the_model_training_or_the_phantoms() -> None:
    banned = ("torch", "torchvision", "ich.model", "ich.train", "ich.phantom")
    assert _offending("api", banned) == []


def test_the_exporters_do_not_import_the_gateway() -> None:
    assert _offending("export", ("api",)) == []


def test_the_sdk_imports_nothing_from_this_repository() -> None:
    assert _offending("clients/python/src", ("ich", "api", "export")) == []


def test_the_rules_see_imports_inside_functions() -> None:
    """The checker itself: a lazy import counts like a top-level one."""
    folder = ROOT / "ich" / "cli"
    lazy = _imports(folder)["ich/cli/service.py"]
    assert "api.serve" in lazy and "export.repository" in lazy


@pytest.mark.parametrize(
    "module",
    [
        "ich.dicom",
        "ich.schema",
        "ich.cli",
        "ich.nifti",
        "ich.quantify",
        "ich.evaluate.report",
        "ich.evaluate.runner",
        "ich.phantom.dataset",
        "ich.phantom.real_background",
        "ich.datasets.ctich",
        "ich.preprocess",
        "ich.postprocess",
        "ich.pipeline",
        "ich.overlays",
        "ich.model.config",
        "ich.model.contract",
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
