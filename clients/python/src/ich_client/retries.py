"""When a request is tried again and how long to wait first.

429 and 503 answers carry Retry-After, which is honoured exactly; other retryable failures
(502, 504 from a proxy, a refused or broken connection) back off exponentially with jitter.
A submission is retried only with its Idempotency-Key, so a retry never analyses a study twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from ich_client.errors import ConnectionFailedError, from_response, retry_after

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Retries:
    """Retry policy.

    Args:
        attempts: tries in all, the first included (1 turns retries off).
        backoff_s: first wait without a Retry-After; doubled each try, with jitter.
        max_wait_s: the longest single wait; a Retry-After above it is not waited out but
            raised, so a caller is never blocked for minutes without knowing.
    """

    attempts: int = 4
    backoff_s: float = 0.5
    max_wait_s: float = 60.0

    def after_response(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before trying again, or None to give the answer to the caller."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.attempts:
            return None
        if _failed_analysis(response):
            return None  # a study that failed (e.g. Triton down too long) fails again
        server = retry_after(response)
        wait = self._backoff(attempt) if server is None else server
        return wait if wait <= self.max_wait_s else None

    def after_error(self, attempt: int) -> float | None:
        """Seconds to wait after a transport error (refused, reset, timed out), or None."""
        return self._backoff(attempt) if attempt < self.attempts else None

    def _backoff(self, attempt: int) -> float:
        full = min(self.backoff_s * 2 ** (attempt - 1), self.max_wait_s)
        return full / 2 + random.uniform(0, full / 2)


def _failed_analysis(response: httpx.Response) -> bool:
    """A problem naming an analysis: that analysis ended, and resending brings it back."""
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return False
    try:
        return "analysis_id" in response.json()
    except ValueError:
        return False


class Attempts:
    """The retry loop's decisions for one call, shared by both clients (which only send and
    sleep): a delay to wait, the answer to return, or the error to raise."""

    def __init__(self, retries: Retries, target: str, raising: bool = True) -> None:
        self.retries, self.target, self.raising, self.attempt = retries, target, raising, 1

    def after_error(self, error: httpx.TransportError) -> float:
        delay = self.retries.after_error(self.attempt)
        if delay is None:
            raise ConnectionFailedError(
                f"{self.target} failed after {self.attempt} tries: {type(error).__name__} {error}"
            ) from error
        self.attempt += 1
        return delay

    def after_response(self, response: httpx.Response) -> float | None:
        """None when ``response`` is the answer (raised as its typed error if not 2xx)."""
        delay = self.retries.after_response(self.attempt, response)
        if delay is None:
            if self.raising and not response.is_success:
                raise from_response(response)
            return None
        self.attempt += 1
        return delay
