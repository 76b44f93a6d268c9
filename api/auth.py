"""Who is calling: an API key (``X-API-Key`` or ``Authorization: Bearer ich_...``) or, when
configured, an OAuth2 bearer JWT checked against a JWKS file (issuer, audience, expiry).

No credentials, no access (401); a missing scope is 403; each client has a token bucket of
``rate_limit_per_minute`` requests (429 with Retry-After).
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field

import jwt
from fastapi import Request
from sqlalchemy import Engine

from api.keys import Client, find_key, token_client
from api.problems import ProblemError
from api.settings import Settings

BEARER = "bearer "


@dataclass
class RateLimiter:
    """Token buckets per client: ``per_minute`` requests, refilled continuously."""

    per_minute: int
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, client_id: str) -> float:
        """0 if the request may go, else the seconds until it may."""
        rate = self.per_minute / 60.0
        with self.lock:
            tokens, stamp = self.buckets.get(client_id, (float(self.per_minute), time.monotonic()))
            current = time.monotonic()
            tokens = min(float(self.per_minute), tokens + (current - stamp) * rate)
            if tokens < 1.0:
                self.buckets[client_id] = (tokens, current)
                return (1.0 - tokens) / rate
            self.buckets[client_id] = (tokens - 1.0, current)
            return 0.0


class Authenticator:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings, self.engine = settings, engine
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.jwks: jwt.PyJWKSet | None = None
        if settings.jwks_file is not None:
            self.jwks = jwt.PyJWKSet.from_dict(json.loads(settings.jwks_file.read_text()))

    def client(self, request: Request, scope: str) -> Client:
        """The authenticated client holding ``scope``, counted against its rate limit.

        Raises:
            ProblemError: unauthorized (401), forbidden (403) or rate-limited (429).
        """
        client = self._identify(request)
        if scope not in client.scopes:
            raise ProblemError(
                "forbidden",
                f"These credentials lack the {scope!r} scope; ask for a key or token with it.",
            )
        wait = self.limiter.take(client.id)
        if wait:
            raise ProblemError(
                "rate-limited",
                f"More than {self.settings.rate_limit_per_minute} requests a minute; retry in "
                f"{math.ceil(wait)} s.",
                "Too many requests",
                retry_after_s=math.ceil(wait),
            )
        request.state.client_id = client.id
        return client

    def _identify(self, request: Request) -> Client:
        header = request.headers.get("authorization", "")
        token = request.headers.get("x-api-key") or (
            header[len(BEARER) :].strip() if header.lower().startswith(BEARER) else ""
        )
        if not token:
            raise ProblemError(
                "unauthorized",
                "Send an API key (X-API-Key header, or Authorization: Bearer <key>) or an "
                "OAuth2 bearer token; create keys with `ich keys create`.",
                "Authentication required",
            )
        if token.startswith("ich_"):
            client = find_key(self.engine, token)
            if client is None:
                raise ProblemError(
                    "unknown-key", "The API key is unknown or was revoked.", "Invalid API key"
                )
            return client
        return self._jwt(token)

    def _jwt(self, token: str) -> Client:
        if self.jwks is None:
            raise ProblemError(
                "unauthorized",
                "Bearer tokens are not enabled here; send an API key.",
                "Invalid credentials",
            )
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.jwks[kid] if kid else self.jwks.keys[0]
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=["RS256", "ES256", "PS256", "EdDSA"],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except (jwt.PyJWTError, KeyError) as error:
            raise ProblemError(
                "unauthorized", f"The bearer token was refused: {error}.", "Invalid token"
            ) from None
        raw = claims.get("scope", claims.get("scp", ""))
        if isinstance(raw, str):
            scopes = frozenset(raw.split())
        elif isinstance(raw, list):
            scopes = frozenset(str(s) for s in raw)
        else:
            scopes = frozenset()
        return token_client(self.engine, str(claims["sub"]), scopes)
