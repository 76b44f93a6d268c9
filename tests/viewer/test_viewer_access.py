"""Who may open the viewer and what its endpoints serve, over HTTP against the session's real
gateway: signed links, their cookie, expiry, forgery, revocation, other clients, and planes
that hold the analysed HU and exactly the mask the API reports."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from ich_client import Analysis, AsyncClient, Client

from api.db import connect
from api.keys import create_key, revoke_key
from api.links import KEY_FILE, Links, signing_key
from api.process import GatewayProcess
from api.settings import Settings
from ich.quantify.rle import decode_rle
from ich.schema import HemorrhageClass

PROBLEM = "application/problem+json"


def _open(gateway: GatewayProcess, url: str) -> httpx.Client:
    """A browser-like session that has followed the link (cookie kept, no API key)."""
    session = httpx.Client(base_url=gateway.url, timeout=30, follow_redirects=True)
    answer = session.get(url)
    assert answer.status_code == 200, answer.text
    return session


def test_a_link_needs_the_key_and_belongs_to_its_client(
    gateway: GatewayProcess, positive: Analysis
) -> None:
    assert httpx.post(f"{gateway.url}/v1/analyses/{positive.id}/viewer").status_code == 401
    other = create_key(connect(f"sqlite:///{gateway.data_dir.resolve() / 'ich.db'}"), "stranger")
    with gateway.client(other.key) as stranger:
        answer = stranger.post(f"/v1/analyses/{positive.id}/viewer")
        assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM
        assert stranger.get(f"/viewer/{positive.id}/planes/0").status_code == 404


def test_opening_a_link_moves_its_token_into_a_cookie_for_that_viewer(
    gateway: GatewayProcess, sdk: Client, positive: Analysis
) -> None:
    link = sdk.viewer_link(positive)
    assert link.url.startswith(f"{gateway.url}/viewer/{positive.id}?token=")
    assert 0 < (link.expires_at.timestamp() - time.time()) <= 900
    with httpx.Client(timeout=30) as browser:
        answer = browser.get(link.url)
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/viewer/{positive.id}"
        cookie = answer.headers["set-cookie"].lower()
        for part in ("httponly", "samesite=lax", f"path=/viewer/{positive.id}", "max-age="):
            assert part in cookie
        assert answer.headers["cache-control"] == "private, no-store"
        page = browser.get(f"{gateway.url}/viewer/{positive.id}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "default-src 'none'" in policy
    for target in re.findall(r'(?:src|href)="([^"]*)"', page.text):
        assert not re.match(r"^(https?:)?//", target), f"page loads {target} from elsewhere"
    assert "token" not in page.text


def test_planes_hold_the_analysed_hu_and_the_apis_masks(
    gateway: GatewayProcess, sdk: Client, positive: Analysis, small_synth: Path
) -> None:
    result = positive.result
    assert result is not None
    _, rows, columns = result.shape
    sources = {
        ds.SOPInstanceUID: ds
        for ds in map(pydicom.dcmread, (sorted(small_synth.glob("case_*"))[1] / "dicom").glob("*"))
    }
    masks: dict[int, np.ndarray] = {}
    for h in result.hemorrhages:
        for m in h.masks:
            plane = masks.setdefault(m.index, np.zeros((rows, columns), np.uint8))
            plane[decode_rle(m.rle, (rows, columns))] = HemorrhageClass(h.hemorrhage_class).label
    session = _open(gateway, sdk.viewer_link(positive).url)
    compared = 0
    for k in sorted({*masks, 0, result.shape[0] - 1}):
        answer = session.get(f"/viewer/{positive.id}/planes/{k}")
        assert answer.headers["content-encoding"] == "gzip"
        assert len(answer.content) == 3 * rows * columns
        hu = np.frombuffer(answer.content[: 2 * rows * columns], "<i2").reshape(rows, columns)
        label = np.frombuffer(answer.content[2 * rows * columns :], np.uint8)
        np.testing.assert_array_equal(label.reshape(rows, columns), masks.get(k, 0))
        detection = next(d for d in result.detections if d.index == k) if k in masks else None
        uid = detection.sop_instance_uid if detection else None
        if uid:
            source = sources[uid]
            expected = source.pixel_array * float(source.RescaleSlope) + float(
                source.RescaleIntercept
            )
            np.testing.assert_array_equal(hu, np.clip(np.rint(expected), -1024, 3071))
            compared += 1
    assert compared, "no plane with blood maps to a source image"
    for refused in ("identity", "gzip;q=0, identity", "br"):
        plain = session.get(f"/viewer/{positive.id}/planes/0", headers={"Accept-Encoding": refused})
        assert "content-encoding" not in plain.headers and len(plain.content) == 3 * rows * columns
    starred = session.get(f"/viewer/{positive.id}/planes/0", headers={"Accept-Encoding": "*"})
    assert starred.headers["content-encoding"] == "gzip"
    beyond = session.get(f"/viewer/{positive.id}/planes/{result.shape[0]}")
    assert (
        beyond.status_code == 404
        and f"planes 0 to {result.shape[0] - 1}" in beyond.json()["detail"]
    )


def test_forged_expired_and_misdirected_links_are_refused(
    gateway: GatewayProcess, sdk: Client, positive: Analysis, small_synth: Path
) -> None:
    link = sdk.viewer_link(positive).url
    other = sdk.analyze(sorted(small_synth.glob("case_*"))[2] / "dicom", wait=False)
    token = link.split("token=", 1)[1]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    links = Links((gateway.data_dir / KEY_FILE).read_bytes(), 900)
    expired, _ = links.issue(positive.id, "any", now=time.time() - 1000)
    with httpx.Client(base_url=gateway.url, timeout=30) as browser:
        cases = {
            "forged": (f"/viewer/{positive.id}?token={forged}", "Invalid viewer link"),
            "expired": (f"/viewer/{positive.id}?token={expired}", "Viewer link expired"),
            "another analysis": (f"/viewer/{other.id}?token={token}", "Invalid viewer link"),
            "not ascii": (f"/viewer/{positive.id}?token=YQ.%C3%A9", "Invalid viewer link"),
        }
        for case, (url, title) in cases.items():
            answer = browser.get(url)
            assert answer.status_code == 401, case
            assert answer.headers["content-type"] == PROBLEM and answer.json()["title"] == title
            page = browser.get(url, headers={"Accept": "text/html"})
            assert page.status_code == 401 and f"<h1>{title}</h1>" in page.text, case
        browser.cookies.set("ich_viewer", token, path=f"/viewer/{other.id}")
        assert browser.get(f"/viewer/{other.id}/planes/0").status_code == 401
        assert browser.get(f"/viewer/{positive.id}").status_code == 401  # no cookie here


def test_revoking_the_client_or_deleting_the_analysis_ends_its_links(
    gateway: GatewayProcess, small_synth: Path
) -> None:
    engine = connect(f"sqlite:///{gateway.data_dir.resolve() / 'ich.db'}")
    issued = create_key(engine, "short-lived")
    with Client(gateway.url, api_key=issued.key, timeout=120) as client:
        mine = client.analyze(sorted(small_synth.glob("case_*"))[0] / "dicom").wait(outputs=True)
        first, second = client.viewer_link(mine).url, client.viewer_link(mine).url
        session = _open(gateway, first)
        assert session.get(f"/viewer/{mine.id}/planes/0").status_code == 200
        client.delete(mine)
        assert session.get(f"/viewer/{mine.id}/planes/0").status_code == 404
    revoke_key(engine, issued.client.id)
    assert httpx.get(second, timeout=30).status_code == 401


def test_assets_are_served_and_nothing_else(gateway: GatewayProcess) -> None:
    script = httpx.get(f"{gateway.url}/viewer/assets/viewer.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert "fetch(" in script.text and not re.search(r"fetch\(\s*[\"'`]https?:", script.text)
    assert httpx.get(f"{gateway.url}/viewer/assets/..%2Fsettings.py").status_code == 404
    assert httpx.get(f"{gateway.url}/viewer/assets/index.html").status_code == 404


def test_the_signing_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": tmp_path})
    key = signing_key(settings)
    assert signing_key(settings) == key and len(key) == 64
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600
    configured = Settings.model_validate({"data_dir": tmp_path, "link_secret": "s" * 32})
    assert signing_key(configured) == b"s" * 32
    with pytest.raises(ValueError, match="at least 32"):
        Settings.model_validate({"link_secret": "short"})
    (tmp_path / KEY_FILE).write_bytes(b"cut short")  # a damaged key is refused, not used
    with pytest.raises(RuntimeError, match="remove it"):
        signing_key(settings)


def test_a_token_is_bound_to_its_analysis_and_expiry() -> None:
    links = Links(b"k" * 32, ttl_s=60)
    token, expires = links.issue("a1", "client", now=1000)
    assert expires == 1060
    assert links.check(token, "a1", now=1059).client_id == "client"
    for analysis, now in (("a1", 1060), ("a2", 1000)):
        with pytest.raises(Exception, match="viewer link"):
            links.check(token, analysis, now=now)
    for bad in ("", "x", "x.y", token + "x", token.replace(".", ".A", 1), "YQ.\u00e9"):
        with pytest.raises(Exception, match="not valid"):
            links.check(bad, "a1", now=1000)
    assert Links(b"other" * 8, 60).issue("a1", "client", now=1000)[0] != token


def test_the_cli_and_the_async_client_issue_links(
    gateway: GatewayProcess, positive: Analysis
) -> None:
    cli = Path(sys.executable).with_name("ich-client")
    printed = subprocess.run(
        [cli, "viewer", positive.id, "--url", gateway.url, "--key", gateway.key],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert httpx.get(printed, timeout=30).status_code == 303

    async def issue() -> str:
        async with AsyncClient(gateway.url, api_key=gateway.key) as client:
            return (await (await client.get(positive.id)).viewer_link()).url

    assert _open(gateway, asyncio.run(issue())).get(f"/viewer/{positive.id}/planes/0").is_success
