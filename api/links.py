"""Short-lived signed links to the viewer: a browser cannot send an API key, so the API issues a
link whose token names one analysis, the client that asked and an expiry, signed with HMAC.

The signing key is ``ICH_LINK_SECRET`` or, when unset, a random key kept in the data folder,
which replicas share; rotating either invalidates every link issued before.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

from api.problems import ProblemError
from api.settings import Settings

KEY_FILE = "link.key"
MIN_KEY_BYTES = 32


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
    """The configured secret, else the data folder's key: made once, readable by its owner
    only, and put in place whole (written aside, then hard-linked), so that no replica ever
    reads a partly written key."""
    if settings.link_secret:
        return settings.link_secret.encode()
    path = settings.data_dir / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        aside = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(secrets.token_hex(32).encode())
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another replica's came first
                os.link(aside, path)
        finally:
            aside.unlink(missing_ok=True)
    key = path.read_bytes()
    if len(key) < MIN_KEY_BYTES:
        raise RuntimeError(
            f"{path} holds {len(key)} bytes, under the {MIN_KEY_BYTES} a link key needs; "
            "remove it (a new one is made at start) or set ICH_LINK_SECRET"
        )
    return key


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
            valid = hmac.compare_digest(signature.encode(), self._sign(payload).encode())
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
