"""Gateway configuration, read once from the environment (``ICH_*`` and ``DATABASE_URL``).

Every limit a hospital's IT team may need to tune lives here, with a default that is safe on a
single workstation: SQLite beside the spool, two workers, CORS off, 127.0.0.1 only.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ich.dicom import InputLimits


class Settings(BaseModel):
    """The gateway's settings; ``Settings.from_env()`` reads ``ICH_<FIELD>`` variables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Field(Path(".ich"), description="Spool, results and the SQLite database.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL (postgresql+psycopg://...); SQLite in data_dir if unset."
    )
    triton_url: str = Field("127.0.0.1:8011", description="host:port of Triton's endpoint.")
    triton_protocol: str = Field("grpc", pattern="^(grpc|http)$")
    workers: int = Field(2, ge=1, le=64, description="Analyses run at once.")
    queue_limit: int = Field(
        32, ge=1, description="Analyses accepted but not finished, at most (per replica)."
    )
    replica_id: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=64,
        description="This gateway among replicas sharing a database (the pod name on "
        "Kubernetes); a restart under the same id resumes its own work at once.",
    )
    lease_s: float = Field(
        30.0,
        ge=1,
        description="A replica without a heartbeat for this long has its unfinished work "
        "taken over by the others (heartbeats every third of it).",
    )
    sync_timeout_s: float = Field(
        120.0, gt=0, description="How long a synchronous POST waits before answering 202."
    )
    analysis_timeout_s: float = Field(600.0, gt=0, description="Triton call limit per analysis.")
    keep_spool: bool = Field(False, description="Keep uploaded DICOM after the analysis.")
    max_upload_bytes: int = Field(4 << 30, gt=0, description="Largest request body.")
    max_files: int = Field(5000, gt=0, description="Most files (or zip members) per study.")
    max_slices: int = Field(2000, gt=0, description="Most images in the analysed series.")
    max_zip_ratio: float = Field(
        200.0,
        gt=1,
        description="An archive is refused once its members have expanded to this many times "
        "its own size (counted while unpacking; one blank slice alone may compress 500-fold).",
    )
    min_free_bytes: int = Field(
        1 << 30,
        ge=0,
        description="Uploads (503 storage-full) and DICOM instances (out of resources) are "
        "refused while the spool has less free space than this.",
    )
    upload_idle_timeout_s: float = Field(
        30.0, gt=0, description="An upload that sends nothing for this long is dropped (408)."
    )
    rate_limit_per_minute: int = Field(120, ge=1, description="Requests per client per minute.")
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwks_file: Path | None = Field(None, description="JSON Web Key Set used to verify JWTs.")
    cors_origins: tuple[str, ...] = Field((), description="Origins allowed by CORS (none).")
    webhook_attempts: int = Field(6, ge=1)
    webhook_backoff_s: float = Field(2.0, gt=0, description="First retry delay; doubles.")
    webhook_timeout_s: float = Field(10.0, gt=0)
    webhook_allow_loopback: bool = Field(
        False, description="Let callbacks reach 127.0.0.1 (tests, single-host set-ups)."
    )
    stow_quiet_s: float = Field(
        5.0, ge=0, description="A STOW-RS study is complete this long after its last instance."
    )
    retry_after_s: int = Field(5, ge=1, description="Retry-After sent with 429 and 503.")
    dicom_port: int | None = Field(
        None, ge=1, le=65535, description="Port of the DICOM C-STORE receiver; off if unset."
    )
    dicom_host: str = Field("127.0.0.1", description="Address the DICOM receiver listens on.")
    dicom_ae_title: str = Field("ICH_TRIAGE", min_length=1, max_length=16)
    dicom_allowed_aes: tuple[str, ...] = Field(
        (), description="Calling AE titles the receiver accepts (any if empty)."
    )
    dicom_client: str = Field(
        "local", description="The API client (``ich keys create NAME``) owning received studies."
    )
    dicom_quiet_s: float = Field(
        10.0, gt=0, description="A received study is complete this long after its last instance."
    )
    dicom_max_associations: int = Field(8, ge=1, description="Associations at once.")
    dicom_destination: str | None = Field(
        None,
        pattern=r"^[^@]{1,16}@[^:]+:\d+$",
        description="AE@host:port that receives the SEG and SR of each received study.",
    )
    dicomweb_url: str | None = Field(
        None, description="QIDO-RS/WADO-RS base URL polled for new head CT studies; off if unset."
    )
    dicomweb_token: str | None = Field(None, description="Bearer token for the DICOMweb server.")
    dicomweb_poll_s: float = Field(60.0, gt=0, description="Seconds between DICOMweb polls.")
    dicomweb_lookback_days: int = Field(
        1, ge=0, description="Studies dated this many days back (and today) are considered."
    )
    dicomweb_head_pattern: str = Field(
        r"(?i)\b(head|brain|cranial|cranium|skull|neuro|ich)\b",
        description="A study is a head CT when its or a series' description or body part "
        "matches this.",
    )
    positive_webhook_url: str | None = Field(
        None, description="Notified (signed, no patient data) of every positive study."
    )
    positive_webhook_secret: str | None = Field(
        None, min_length=16, description="Signs the positive-study notices (ICH-Signature)."
    )
    link_secret: str | None = Field(
        None,
        min_length=32,
        description="Signs viewer links; a random key in data_dir (shared by replicas) if unset.",
    )
    viewer_link_ttl_s: int = Field(
        900, ge=30, le=86400, description="How long a viewer link (and its page) stays valid."
    )
    viewer_frame_ancestors: tuple[str, ...] = Field(
        (),
        description="Origins allowed to embed the viewer in a frame (e.g. the EHR's); none if "
        "empty.",
    )

    @model_validator(mode="after")
    def _notices_are_signed(self) -> Settings:
        if self.positive_webhook_url and not self.positive_webhook_secret:
            raise ValueError(
                "ICH_POSITIVE_WEBHOOK_URL needs ICH_POSITIVE_WEBHOOK_SECRET (16 characters or "
                "more): the receiver checks each notice's signature with it"
            )
        return self

    @model_validator(mode="after")
    def _tokens_are_bound(self) -> Settings:
        if self.jwks_file is not None and not (self.jwt_issuer and self.jwt_audience):
            raise ValueError(
                "ICH_JWKS_FILE needs ICH_JWT_ISSUER and ICH_JWT_AUDIENCE: tokens must be checked "
                "for who issued them and for whom"
            )
        return self

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        values: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            raw = os.environ.get(f"ICH_{name.upper()}")
            if raw is None:
                continue
            values[name] = (
                tuple(v for v in raw.split(",") if v)
                if field.annotation == tuple[str, ...]
                else raw
            )
        if "DATABASE_URL" in os.environ:
            values["database_url"] = os.environ["DATABASE_URL"]
        return cls.model_validate({**values, **overrides})

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'ich.db').resolve()}"

    @property
    def input_limits(self) -> InputLimits:
        return InputLimits(
            max_files=self.max_files,
            max_total_bytes=self.max_upload_bytes * 4,
            max_zip_ratio=self.max_zip_ratio,
        )
