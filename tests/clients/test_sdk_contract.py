"""The SDK's contract with the service and with its users: its models are the gateway's
OpenAPI schema, and it installs and imports with httpx and pydantic alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import ich_client
import pytest
from ich_client import models
from pydantic import BaseModel

from api.app import create_app
from api.settings import Settings

SDK = Path(__file__).resolve().parents[2] / "clients" / "python"
NAMES = {"AnalysisRecord": "Analysis"}
"""SDK model names that differ from the gateway's schema names."""
IGNORED = {"title", "description", "examples", "default"}


def _normal(schema: Any) -> Any:
    """A schema without documentation, with references by the gateway's names."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "$ref":
                name = value.rsplit("/", 1)[-1]
                out[key] = NAMES.get(name, name)
            elif key == "required":
                out[key] = sorted(value)
            elif key not in IGNORED:
                out[key] = _normal(value)
        return out
    if isinstance(schema, list):
        return [_normal(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = Settings.model_validate({"data_dir": tmp_path_factory.mktemp("openapi")})
    return create_app(settings).openapi()["components"]["schemas"]


def _sdk_models() -> dict[str, type[BaseModel] | Any]:
    found: dict[str, Any] = {}
    described = {
        "Analysis": models.AnalysisRecord,
        "WorklistItem": models.WorklistItem,
        "ViewerLink": models.ViewerLink,
    }
    for name, model in described.items():
        schema = model.model_json_schema(mode="serialization")
        found.update(schema.pop("$defs", {}))
        found[name] = schema
    return found


def test_the_sdk_models_are_the_gateways_openapi_schema(served: dict[str, Any]) -> None:
    sdk = _sdk_models()
    assert set(sdk) <= set(served), f"SDK models the gateway lacks: {set(sdk) - set(served)}"
    for name, schema in sdk.items():
        assert _normal(schema) == _normal(served[name]), f"{name} drifted from the gateway"
    lists = ("ValidationError", "AnalysisList", "Worklist")  # envelopes the SDK unwraps
    described = {n for n in served if not n.endswith(lists)}
    assert described == set(sdk), f"gateway models the SDK lacks: {described - set(sdk)}"


def test_the_drift_check_notices_a_changed_field(served: dict[str, Any]) -> None:
    changed = _normal(served["Hemorrhage"]) | {"required": []}
    assert _normal(_sdk_models()["Hemorrhage"]) != changed


def test_the_sdk_depends_on_httpx_and_pydantic_only(tmp_path: Path) -> None:
    source = tmp_path / "ich-client"  # built from a copy: nothing is written into the checkout
    shutil.copytree(
        SDK, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
    )
    wheel = next(tmp_path.glob("ich_client-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = sorted(
        line.split(":", 1)[1].split(";")[0].split("<")[0].split(">")[0].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    )
    assert requires == ["fhir.resources", "httpx", "pydantic"]
    assert 'fhir.resources<9,>=8; extra == "fhir"' in metadata
    assert "ich_client/py.typed" in names
    assert not [n for n in names if n.startswith(("ich/", "api/"))]


def test_importing_the_sdk_loads_nothing_of_the_service() -> None:
    probe = (
        "import sys, ich_client, ich_client.fhir, ich_client.cli\n"
        "heavy = {'torch', 'numpy', 'ich', 'api', 'pydicom', 'tritonclient', 'fastapi'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    answer = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "[]"
    assert ich_client.__version__ == "0.1.0"
