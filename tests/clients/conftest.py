"""The SDK against the session's real gateway and Triton: clients holding its local key, the
synthetic studies, and a second key whose webhook secret the tests know."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ich_client import Client

from api.db import connect
from api.keys import IssuedKey, create_key
from api.process import GatewayProcess


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[Client]:
    with Client(gateway.url, api_key=gateway.key, timeout=120) as sdk:
        yield sdk


@pytest.fixture(scope="session")
def study(small_synth: Path) -> Path:
    """A folder of one synthetic study with blood."""
    return sorted(small_synth.glob("case_*"))[0] / "dicom"


@pytest.fixture(scope="session")
def issued(gateway: GatewayProcess) -> IssuedKey:
    """A second client of the gateway, with its webhook secret."""
    return create_key(connect(f"sqlite:///{gateway.data_dir.resolve() / 'ich.db'}"), "sdk")
