"""Logging without patient data: identifiers appear only as short digests.

A digest is stable, so log lines about one study can be correlated, but a UID cannot be read
back from it. Names, IDs and dates never reach a log line.
"""

from __future__ import annotations

import hashlib


def uid_digest(uid: str) -> str:
    """A 12-hex-digit SHA-256 digest of a DICOM UID, for log lines."""
    return hashlib.sha256(uid.encode()).hexdigest()[:12]
