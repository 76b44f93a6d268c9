"""Connection settings shared by both clients: base URL, credentials, timeouts, user agent."""

from __future__ import annotations

from typing import Any

import httpx

from ich_client import __version__

DEFAULT_WAIT_S = 600.0
"""How long ``analyze``/``wait`` wait for a result by default (the gateway's own limit)."""


def client_options(
    url: str, api_key: str | None, token: str | None, timeout: float | httpx.Timeout
) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client``/``httpx.AsyncClient``.

    Raises:
        ValueError: no http(s) URL, or both an API key and a token.
    """
    if not url or not url.startswith(("http://", "https://")):
        raise ValueError(f"url must be the gateway's http(s) address, got {url!r}.")
    if api_key and token:
        raise ValueError("Pass one of api_key (ich keys create) or token (OAuth2), not both.")
    headers = {"User-Agent": f"ich-client/{__version__} httpx/{httpx.__version__}"}
    if api_key:
        headers["X-API-Key"] = api_key
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    return {
        "base_url": url.rstrip("/"),
        "headers": headers,
        "timeout": timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
        "follow_redirects": False,
    }
