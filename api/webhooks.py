"""Signed webhooks: the result is POSTed to the client's callback URL, retried with backoff.

The signature header is ``ICH-Signature: t=<unix time>,v1=<hex HMAC-SHA256>`` over
``"<t>.<body>"`` with the client's webhook secret, so a receiver can check origin, integrity
and freshness (:func:`verify` does). Callback URLs must be http(s) and may not point at
loopback, link-local (cloud metadata) or unspecified addresses: a client cannot make the
gateway call itself, Triton or the host's metadata service.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
import uuid
from urllib.parse import urlsplit

import httpx

from api.problems import ProblemError
from api.schemas import Analysis

SIGNATURE_HEADER = "ICH-Signature"
log = logging.getLogger("api.webhooks")


def positive_notice(analysis: Analysis) -> bytes:
    """What the positive-study hook carries: where to read the analysis and what was found
    (UIDs, flags, probabilities, volumes), nothing about the patient."""
    result = analysis.result
    assert result is not None
    notice = {
        "event": "analysis.positive",
        "analysis_id": analysis.id,
        "link": analysis.links.get("self", ""),
        "finished": analysis.finished.isoformat() if analysis.finished else None,
        "study_uid": result.study_uid,
        "series_uid": result.series_uid,
        "any_ich_probability": result.any_ich_probability,
        "classes": [
            {
                "hemorrhage_class": c.hemorrhage_class.value,
                "flagged": c.flagged,
                "probability": c.probability,
                "total_volume_ml": c.total_volume_ml,
            }
            for c in result.classes
        ],
    }
    return json.dumps(notice).encode()


def check_callback(url: str, allow_loopback: bool = False) -> None:
    """Refuse a callback URL that is not http(s) or resolves to a forbidden address.

    Raises:
        ProblemError: bad-request, naming why.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port, parts = None, None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ProblemError("bad-request", f"callback_url must be an http(s) URL, got {url!r}.")
    try:
        addresses = {a[4][0] for a in socket.getaddrinfo(host, port or 443)}
    except (socket.gaierror, UnicodeError):
        raise ProblemError("bad-request", f"callback_url host {host!r} does not resolve.") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if (
            ip.is_link_local
            or ip.is_unspecified
            or ip.is_multicast
            or (ip.is_loopback and not allow_loopback)
        ):
            raise ProblemError(
                "bad-request",
                f"callback_url {host!r} resolves to {ip}, which webhooks may not call.",
            )


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    stamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance_s: float = 300.0) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of now."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        stamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, stamp), header)


async def deliver(
    url: str,
    secret: str,
    event: str,
    body: bytes,
    attempts: int,
    backoff_s: float,
    timeout_s: float,
) -> bool:
    """POST until a 2xx answer, waiting backoff_s, 2*backoff_s, ... between attempts."""
    delivery = str(uuid.uuid4())
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
        for attempt in range(1, attempts + 1):
            headers = {
                "Content-Type": "application/json",
                "ICH-Event": event,
                "ICH-Delivery": delivery,
                SIGNATURE_HEADER: sign(secret, body),
            }
            try:
                answer = await client.post(url, content=body, headers=headers)
                if answer.is_success:
                    return True
                reason = f"HTTP {answer.status_code}"
            except Exception as error:  # refused, reset, invalid URL, TLS: all retried alike
                reason = type(error).__name__
            log.warning("webhook %s attempt %d/%d failed: %s", delivery, attempt, attempts, reason)
            if attempt < attempts:
                await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
    return False
