"""Python SDK of the ICH triage service: submit head CT studies, read detections, masks and
hemorrhage volumes, verify webhooks and write FHIR R4 (``ich_client.fhir``, extra ``[fhir]``).

>>> from ich_client import Client
>>> with Client("http://127.0.0.1:8000", api_key="ich_...") as ich:  # doctest: +SKIP
...     analysis = ich.analyze("path/to/study")
...     for finding in analysis.result.classes:
...         print(finding.hemorrhage_class, finding.flagged, finding.total_volume_ml)
"""

__version__ = "0.1.0"

from ich_client.async_client import AsyncAnalysis, AsyncClient
from ich_client.client import Analysis, Client
from ich_client.errors import (
    AnalysisFailedError,
    AuthenticationError,
    ConflictError,
    ConnectionFailedError,
    ICHError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProblemError,
    RateLimitError,
    ServiceUnavailableError,
    StudyInputError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from ich_client.models import (
    AnalysisRecord,
    ClassFinding,
    ExamResult,
    Health,
    Hemorrhage,
    HemorrhageClass,
    Outputs,
    SizeStratum,
    SliceDetection,
    Status,
    ViewerLink,
    WorklistItem,
)
from ich_client.retries import Retries
from ich_client.webhooks import WebhookEvent, parse_webhook, verify_signature

__all__ = [
    "Analysis",
    "AnalysisFailedError",
    "AnalysisRecord",
    "AsyncAnalysis",
    "AsyncClient",
    "AuthenticationError",
    "ClassFinding",
    "Client",
    "ConflictError",
    "ConnectionFailedError",
    "ExamResult",
    "Health",
    "Hemorrhage",
    "HemorrhageClass",
    "ICHError",
    "InvalidRequestError",
    "NotFoundError",
    "Outputs",
    "PermissionDeniedError",
    "ProblemError",
    "RateLimitError",
    "Retries",
    "ServiceUnavailableError",
    "SizeStratum",
    "SliceDetection",
    "Status",
    "StudyInputError",
    "ViewerLink",
    "WaitTimeoutError",
    "WebhookEvent",
    "WebhookVerificationError",
    "WorklistItem",
    "parse_webhook",
    "verify_signature",
]
