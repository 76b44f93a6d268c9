"""Every Python example of the SDK's README runs as written against the real gateway, with
``study/`` and ``study.zip`` in the working folder and a FHIR endpoint to post to."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from api.process import GatewayProcess

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_a_readme_example_runs(
    index: int,
    gateway: GatewayProcess,
    study: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    receiver: tuple[str, Any],
) -> None:
    url, handler = receiver
    created = [{"response": {"status": "201 Created"}}] * 7  # Device, 4 Observations, ...
    handler.reply = (
        200,
        {"resourceType": "Bundle", "type": "transaction-response", "entry": created},
    )
    (tmp_path / "study").symlink_to(study, target_is_directory=True)
    with zipfile.ZipFile(tmp_path / "study.zip", "w") as archive:
        for path in sorted(study.glob("*.dcm")):
            archive.write(path, path.name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ICH_URL", gateway.url)
    monkeypatch.setenv("ICH_API_KEY", gateway.key)
    monkeypatch.setenv("FHIR_URL", f"{url}/fhir")
    exec(compile(EXAMPLES[index], f"{README.name} example {index + 1}", "exec"), {})
