"""Short-lived signed links to the viewer: a browser cannot send an API key, so the API issues a
link whose token names one analysis, the client that asked and an expiry, signed with HMAC.

The signing key is ``ICH_LINK_SECRET`` or, when unset, a random key kept in the data folder,
which replicas share; rotating either invalidates every link issued before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from api.problems import ProblemError
from api.settings import Settings

KEY_FILE = "link.key"


@dataclass(frozen=True)
class Grant:
    """What a valid token allows: reading ``analysis_id`` as ``client_id`` until ``expires``."""

    analysis_id: str
    client_id: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_key(settings: Settings) -> bytes:
    """The configured secret, else the data folder's key (made once, readable by owner only)."""
    if settings.link_secret:
        return settings.link_secret.encode()
    path = settings.data_dir / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another replica made it first
        return _wait_for(path)
    with os.fdopen(descriptor, "wb") as out:
        out.write(secrets.token_hex(32).encode())
    return path.read_bytes()


def _wait_for(path: Path) -> bytes:
    for _ in range(50):
        data = path.read_bytes()
        if data:
            return data
        time.sleep(0.02)
    raise RuntimeError(f"{path} stays empty; remove it so a new link key is made")


class Links:
    """Issues and checks viewer tokens with one key."""

    def __init__(self, key: bytes, ttl_s: int) -> None:
        self.key, self.ttl_s = key, ttl_s

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self.key, payload, hashlib.sha256).digest())

    def issue(self, analysis_id: str, client_id: str, now: float | None = None) -> tuple[str, int]:
        """A token for ``analysis_id`` and its expiry (Unix seconds)."""
        expires = int(now if now is not None else time.time()) + self.ttl_s
        payload = json.dumps([analysis_id, client_id, expires], separators=(",", ":")).encode()
        return f"{_b64(payload)}.{self._sign(payload)}", expires

    def check(self, token: str, analysis_id: str, now: float | None = None) -> Grant:
        """The grant of a token for ``analysis_id``.

        Raises:
            ProblemError: invalid-link (401) when it is malformed, forged, for another analysis
                or expired.
        """
        try:
            encoded, signature = token.split(".")
            payload = _unb64(encoded)
            valid = hmac.compare_digest(signature, self._sign(payload))
            linked, client_id, expires = json.loads(payload) if valid else ("", "", 0)
        except ValueError:
            valid = False
        if not valid or linked != analysis_id:
            raise ProblemError(
                "invalid-link",
                "This viewer link is not valid for this analysis; ask the API for a new one "
                "(POST /v1/analyses/{id}/viewer).",
                "Invalid viewer link",
            )
        if expires <= (now if now is not None else time.time()):
            raise ProblemError(
                "invalid-link",
                "This viewer link has expired; ask the API for a new one "
                "(POST /v1/analyses/{id}/viewer).",
                "Viewer link expired",
            )
        return Grant(analysis_id, str(client_id), int(expires))
