"""Receiving the gateway's webhooks: check the signature, then read the analysis.

Each delivery is a POST whose body is the analysis as JSON, with headers
``ICH-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` (keyed with the client's
webhook secret, shown by ``ich keys create``), ``ICH-Event`` (``analysis.done`` or
``analysis.failed``) and ``ICH-Delivery`` (one id per delivery, the same on its retries).

>>> event = parse_webhook(request_body, request_headers, secret)  # doctest: +SKIP
>>> event.analysis.result.any_ich_flagged  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from ich_client.errors import WebhookVerificationError
from ich_client.models import AnalysisRecord

SIGNATURE_HEADER = "ICH-Signature"
EVENT_HEADER = "ICH-Event"
DELIVERY_HEADER = "ICH-Delivery"
TOLERANCE_S = 300.0
"""Older signatures are refused, so a captured delivery cannot be replayed later."""


@dataclass(frozen=True)
class WebhookEvent:
    event: str
    delivery: str
    analysis: AnalysisRecord


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value the gateway sends for ``body`` at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, body: bytes, signature: str | None, *, tolerance_s: float = TOLERANCE_S
) -> None:
    """Check an ``ICH-Signature`` header against the raw body (before any JSON parsing).

    Raises:
        WebhookVerificationError: missing, malformed, older than ``tolerance_s`` (or from the
            future by as much), or not made with ``secret``.
    """
    if not signature:
        raise WebhookVerificationError(f"No {SIGNATURE_HEADER} header: not from the gateway.")
    stamp, macs = None, []
    for item in signature.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            stamp = int(value)
        elif key == "v1":
            macs.append(value)
    if stamp is None or not macs:
        raise WebhookVerificationError(f"Malformed {SIGNATURE_HEADER} header: {signature!r}.")
    age = time.time() - stamp
    if abs(age) > tolerance_s:
        raise WebhookVerificationError(
            f"Signature is {age:.0f} s old (tolerance {tolerance_s:g} s): a replay, or a clock "
            "that is off."
        )
    expected = sign(secret, body, stamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, mac) for mac in macs):
        raise WebhookVerificationError("Signature does not match: wrong secret or altered body.")


def parse_webhook(
    body: bytes, headers: Mapping[str, str], secret: str, *, tolerance_s: float = TOLERANCE_S
) -> WebhookEvent:
    """Verify a delivery and return its event, delivery id and analysis.

    Args:
        body: the request body exactly as received.
        headers: the request headers (any letter case).
        secret: this client's webhook secret.

    Raises:
        WebhookVerificationError: see :func:`verify_signature`, or a body that is not an
            analysis.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    verify_signature(secret, body, lower.get(SIGNATURE_HEADER.lower()), tolerance_s=tolerance_s)
    try:
        analysis = AnalysisRecord.model_validate_json(body)
    except ValidationError as error:
        raise WebhookVerificationError(f"Signed body is not an analysis: {error}") from None
    return WebhookEvent(
        event=lower.get(EVENT_HEADER.lower(), f"analysis.{analysis.status.value}"),
        delivery=lower.get(DELIVERY_HEADER.lower(), ""),
        analysis=analysis,
    )
