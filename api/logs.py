"""Structured JSON logs, one object a line, each with the request id of the request it is about.

Only what the gateway itself writes reaches these lines: UIDs appear as digests, no header
value of an uploaded file (names, IDs, dates) is logged, and errors are logged by type and
stack without their messages.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import traceback
from datetime import UTC, datetime

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    FIELDS = ("method", "route", "status", "duration_ms", "client", "analysis")

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            line["request_id"] = rid
        line |= {k: getattr(record, k) for k in self.FIELDS if hasattr(record, k)}
        if record.exc_info and record.exc_info[0] is not None:
            # The type and the frames, not the message: messages of third-party parsers may
            # quote header values of the uploaded files.
            kind, _, trace = record.exc_info
            line["error"] = kind.__name__
            line["trace"] = "".join(traceback.format_tb(trace))
        return json.dumps(line, default=str)


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for the gateway, uvicorn and the ingestion code."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the gateway logs each request itself
    for chatty in ("httpx", "httpcore", "highdicom", "pydicom"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
