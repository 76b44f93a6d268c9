"""``ich keys create|list|revoke`` manage the gateway's clients in its database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.db import connect
from api.keys import find_key
from ich.cli import app


def test_keys_are_created_listed_and_revoked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ICH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "pacs-bridge", "--scope", "analyses:read"])
    assert created.exit_code == 0, created.output
    key = re.search(r"api key\s+(ich_\S+)", created.output).group(1)  # type: ignore[union-attr]
    engine = connect(f"sqlite:///{(tmp_path / 'ich.db').resolve()}")
    client = find_key(engine, key)
    assert client is not None and client.scopes == {"analyses:read"}
    listed = runner.invoke(app, ["keys", "list"], env={"COLUMNS": "200"})
    prefix = key.split("_")[1]
    assert "pacs-bridge" in listed.output and prefix in listed.output and key not in listed.output
    assert runner.invoke(app, ["keys", "revoke", prefix]).exit_code == 0
    assert find_key(engine, key) is None
    unknown = runner.invoke(app, ["keys", "revoke", "nope"])
    assert unknown.exit_code == 2 and "No key" in unknown.output
    bad = runner.invoke(app, ["keys", "create", "x", "--scope", "admin"])
    assert bad.exit_code != 0
