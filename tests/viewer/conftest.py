"""The viewer's fixtures: a positive synthetic study analysed by the session's real gateway and
Triton, and a real headless Chromium driven by Selenium (Debian's chromium and
chromium-driver, which `make test` installs)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from headless_chromium import headless_chromium  # type: ignore[import-not-found]
from ich_client import Analysis, Client
from selenium import webdriver

from api.process import GatewayProcess


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go, kept after the run: ``ICH_TEST_ARTIFACTS`` or ``.artifacts/``."""
    folder = Path(os.environ.get("ICH_TEST_ARTIFACTS", Path(__file__).parents[2] / ".artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def sdk(gateway: GatewayProcess) -> Iterator[Client]:
    with Client(gateway.url, api_key=gateway.key, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def positive(sdk: Client, small_synth: Path) -> Analysis:
    """A synthetic study with blood, analysed, with its DICOM objects and viewer planes."""
    study = sorted(small_synth.glob("case_*"))[1] / "dicom"
    analysis = sdk.analyze(study).wait(outputs=True)
    assert analysis.result is not None and analysis.result.any_ich_flagged, analysis
    return analysis


Plane = Callable[[Analysis, int], tuple[np.ndarray, np.ndarray]]


@pytest.fixture(scope="module")
def plane(gateway: GatewayProcess) -> Plane:
    """Plane ``k`` of an analysis as the API serves it (read with the key): HU and labels."""

    def read(analysis: Analysis, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert analysis.result is not None
        _, rows, columns = analysis.result.shape
        with gateway.client() as http:
            answer = http.get(f"/viewer/{analysis.id}/planes/{k}")
        answer.raise_for_status()
        pixels = rows * columns
        hu = np.frombuffer(answer.content[: 2 * pixels], "<i2").reshape(rows, columns)
        return hu, np.frombuffer(answer.content[2 * pixels :], np.uint8).reshape(rows, columns)

    return read


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    try:
        chrome = headless_chromium()
    except FileNotFoundError as missing:
        pytest.fail(str(missing))
    yield chrome
    chrome.quit()
