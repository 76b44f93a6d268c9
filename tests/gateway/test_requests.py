"""Request-level rules on an in-process app (real SQLite, real Triton for readiness): auth,
scopes, rate limits, upload limits, hostile archives and content types, backpressure."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from archive_cases import (  # type: ignore[import-not-found]
    member_ratios,
    study_with_an_air_slice,
    understated,  # type: ignore[import-not-found]
    zipped,
)
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from api.auth import RateLimiter
from api.keys import create_key, revoke_key
from api.settings import Settings
from api.state import gateway as gateway_of

App = Callable[..., TestClient]


def _key(client: TestClient, scopes: tuple[str, ...] = ("analyses:write", "analyses:read")) -> str:
    return create_key(client.app.state.gateway.engine, "test", scopes).key  # type: ignore[attr-defined]


def _problem(answer, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["type"] == f"/v1/problems/{code}" and body["status"] == status and body["detail"]
    return body


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_no_key_wrong_key_revoked_key_and_scope(app_client: App) -> None:
    client = app_client()
    _problem(client.get("/v1/analyses"), 401, "unauthorized")
    _problem(client.get("/v1/analyses", headers={"X-API-Key": "ich_0000_nope"}), 401, "unknown-key")
    reader = _key(client, ("analyses:read",))
    assert client.get("/v1/analyses", headers={"Authorization": f"Bearer {reader}"}).is_success
    _problem(
        client.post("/v1/analyses", headers={"X-API-Key": reader}, content=b"x"), 403, "forbidden"
    )
    revoke_key(client.app.state.gateway.engine, reader.split("_")[1])  # type: ignore[attr-defined]
    _problem(client.get("/v1/analyses", headers={"X-API-Key": reader}), 401, "unknown-key")
    _problem(client.get("/v1/analyses/nope", headers={"X-API-Key": _key(client)}), 404, "not-found")


def test_keys_with_underscores_in_their_secret_are_found(
    app_client: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app_client()
    monkeypatch.setattr("secrets.token_urlsafe", lambda n: "a_b_c-d" * 4)
    assert client.get("/v1/analyses", headers={"X-API-Key": _key(client)}).is_success


def test_rate_limit_answers_429_with_retry_after(app_client: App) -> None:
    client = app_client(rate_limit_per_minute=3)
    headers = {"X-API-Key": _key(client)}
    answers = [client.get("/v1/analyses", headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200] * 3
    _problem(answers[3], 429, "rate-limited")
    assert int(answers[3].headers["retry-after"]) >= 1
    limiter = RateLimiter(60)
    assert all(limiter.take("a") == 0 for _ in range(60)) and limiter.take("a") > 0
    assert limiter.take("b") == 0  # buckets are per client


def test_upload_limits_and_hostile_archives(app_client: App, tmp_path: Path) -> None:
    client = app_client(max_upload_bytes=50_000, max_files=3)
    headers = {"X-API-Key": _key(client)}
    zipped = {"Content-Type": "application/zip", **headers}
    big = client.post(
        "/v1/analyses",
        content=b"\0" * 60_000,
        headers={"Content-Type": "application/dicom", **headers},
    )
    _problem(big, 413, "too-large")
    many = client.post(
        "/v1/analyses",
        headers=headers,
        files=[("files", (f"{n}.dcm", b"DICM", "application/dicom")) for n in range(4)],
    )
    _problem(many, 413, "input-limit")
    escape = client.post("/v1/analyses", headers=zipped, content=_zip({"../../etc/x.dcm": b"1"}))
    assert "outside" in _problem(escape, 413, "input-limit")["detail"]
    ratio = app_client(max_zip_ratio=50)
    dense = _zip({"a.dcm": b"\0" * 100_000}, zipfile.ZIP_DEFLATED)
    bombed = ratio.post(
        "/v1/analyses",
        content=dense,
        headers={"Content-Type": "application/zip", "X-API-Key": _key(ratio)},
    )
    assert "fold" in _problem(bombed, 413, "input-limit")["detail"]
    bomb = _zip({"a.dcm": b"\0" * 5_000_000}, zipfile.ZIP_DEFLATED)
    assert len(bomb) < 50_000
    _problem(client.post("/v1/analyses", headers=zipped, content=bomb), 413, "input-limit")
    lying = understated(b"\0" * 5_000_000, 100)  # its headers admit 100 bytes
    refused = _problem(
        client.post("/v1/analyses", headers=zipped, content=lying), 413, "input-limit"
    )
    assert "expands to more than" in refused["detail"]
    _problem(
        client.post("/v1/analyses", headers=zipped, content=b"PK\x03\x04broken"), 400, "bad-request"
    )
    odd = client.post(
        "/v1/analyses", content=b"{}", headers={"Content-Type": "application/json", **headers}
    )
    _problem(odd, 415, "unsupported-media-type")
    for forbidden in (
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:8011/",
        "http://[::1]/",
        "http://[::1",
        "http://no-such-host.invalid/",
    ):
        refused = client.post(
            f"/v1/analyses?callback_url={forbidden}",
            headers=headers,
            files=[("files", ("a.dcm", b"DICM", "application/dicom"))],
        )
        _problem(refused, 400, "bad-request")
    form = client.post(
        "/v1/analyses",
        headers=headers,
        data={"callback_url": "http://169.254.169.254/"},
        files=[("files", ("a.dcm", b"DICM", "application/dicom"))],
    )
    _problem(form, 400, "bad-request")
    callback = client.post(
        "/v1/analyses?callback_url=file:///etc/passwd",
        headers=headers,
        files=[("files", ("a.dcm", b"DICM", "application/dicom"))],
    )
    _problem(callback, 400, "bad-request")
    # Nothing refused is left behind in the spool.
    spool = gateway_of(client).settings.spool_dir  # type: ignore[arg-type]
    assert not any(spool.iterdir())


def test_unavailable_triton_and_a_full_queue_answer_503_with_retry_after(
    app_client: App,
) -> None:
    from ich.serving.server import free_port

    down = app_client(triton_url=f"127.0.0.1:{free_port()}")
    answer = down.post("/v1/analyses", headers={"X-API-Key": _key(down)}, content=b"x")
    _problem(answer, 503, "triton-unavailable")
    assert answer.headers["retry-after"] == "5"
    ready = down.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"] == {
        "triton": False,
        "database": True,
    }
    full = app_client(queue_limit=1)
    gw = full.app.state.gateway  # type: ignore[attr-defined]
    owner = create_key(gw.engine, "o")
    from api.schemas import Status

    gw.store.create(owner.client.id, "upload", Status.QUEUED)  # a queued analysis fills it
    answer = full.post("/v1/analyses", headers={"X-API-Key": owner.key}, content=b"x")
    _problem(answer, 503, "queue-full")
    assert answer.headers["retry-after"]


def test_tokens_need_an_issuer_and_an_audience(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ICH_JWT_ISSUER"):
        Settings(jwks_file=tmp_path / "jwks.json", jwt_audience="ich")


def test_bearer_jwt_from_a_jwks_file(app_client: App, tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public | {"kid": "k1"}]}))
    client = app_client(
        jwks_file=tmp_path / "jwks.json",
        jwt_issuer="https://idp.example",
        jwt_audience="ich-gateway",
    )

    def token(**claims: object) -> dict[str, str]:
        body = {
            "sub": "ehr-1",
            "iss": "https://idp.example",
            "aud": "ich-gateway",
            "exp": int(time.time()) + 60,
            "scope": "analyses:read",
            **claims,
        }
        signed = jwt.encode(body, private, algorithm="RS256", headers={"kid": "k1"})
        return {"Authorization": f"Bearer {signed}"}

    assert client.get("/v1/analyses", headers=token()).status_code == 200
    _problem(client.get("/v1/analyses", headers=token(aud="other")), 401, "unauthorized")
    _problem(
        client.get("/v1/analyses", headers=token(iss="https://evil.example")), 401, "unauthorized"
    )
    assert client.get("/v1/analyses", headers=token(scope={"odd": 1})).status_code == 403
    _problem(
        client.get("/v1/analyses", headers=token(exp=int(time.time()) - 5)), 401, "unauthorized"
    )
    _problem(client.post("/v1/analyses", headers=token(), content=b"x"), 403, "forbidden")
    forged = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = jwt.encode(
        {"sub": "x", "exp": int(time.time()) + 60}, forged, algorithm="RS256", headers={"kid": "k1"}
    )
    _problem(
        client.get("/v1/analyses", headers={"Authorization": f"Bearer {bad}"}), 401, "unauthorized"
    )


def test_unknown_routes_and_bad_parameters_are_problems_too(app_client: App) -> None:
    client = app_client()
    _problem(client.get("/v2/nothing"), 404, "not-found")
    headers = {"X-API-Key": _key(client)}
    _problem(client.get("/v1/analyses?limit=0", headers=headers), 400, "bad-request")
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/v1/problems/queue-full").json()["status"] == 503


def test_the_openapi_examples_are_valid_documents(app_client: App) -> None:
    from api.schemas import EXAMPLE_ANALYSIS, Analysis, ProblemDetail

    schema = app_client().get("/openapi.json").json()["components"]["schemas"]
    assert Analysis.model_validate(schema["Analysis"]["examples"][0]) == Analysis.model_validate(
        EXAMPLE_ANALYSIS
    )
    assert ProblemDetail.model_validate(schema["ProblemDetail"]["examples"][0]).status == 422


def test_a_study_whose_slice_compresses_500_fold_is_analysed(app_client: App) -> None:
    """The refused-study regression: a valid zip whose air slice compresses past the old
    per-member limit (200-fold) goes through POST /v1/analyses to a result."""
    study_uid, files = study_with_an_air_slice()
    archive = zipped(files)
    assert max(member_ratios(archive)) > 200
    client = app_client()
    answer = client.post(
        "/v1/analyses",
        content=archive,
        headers={"Content-Type": "application/zip", "X-API-Key": _key(client)},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "done" and body["result"]["study_uid"] == study_uid
