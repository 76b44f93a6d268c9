"""A finished analysis as FHIR R4 resources for the EHR (requires the ``[fhir]`` extra).

:func:`to_fhir_bundle` gives one transaction Bundle:

- **DiagnosticReport** ``preliminary``, LOINC 30799-1 "CT Head WO contrast", category
  Radiology, referencing the study as ``ImagingStudy`` by its Study Instance UID
  (``urn:dicom:uid``), with a conclusion and, when flagged, SNOMED CT 1386000.
- **Observation**s: any intracranial hemorrhage, then one per class (presence as SNOMED CT
  Present/Absent, components: probability (DCM 122157), volume (SNOMED CT 118565006, UCUM
  ``mL``) and number of hemorrhages), each naming the model as its ``device``.
- **Device**: the model, by name, version and weights digest.
- **Provenance**: the Device as author of the report and observations (FHIR R4 does not let
  a Device be a report's or observation's ``performer``), with the study as source.

The resources are tagged ``AIAST`` (asserted by artificial intelligence) and stay
``preliminary``: they are unverified until a radiologist reads the study. Codes are standard
(SNOMED CT, LOINC, DICOM, UCUM) where one exists; the epidural-or-subdural class and the
hemorrhage count have none and use :data:`LOCAL_SYSTEM`. FHIR version: the models of
``fhir.resources.R4B`` (4.3), whose DiagnosticReport, Observation, Device, Provenance and
Bundle are those of R4 (4.0.1).

>>> bundle = to_fhir_bundle(analysis, patient="Patient/123")  # doctest: +SKIP
>>> post_to_fhir(bundle, "https://fhir.hospital.org/r4", token="...")  # doctest: +SKIP
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from ich_client.errors import ICHError
from ich_client.models import (
    AnalysisRecord,
    ClassFinding,
    ExamResult,
    HemorrhageClass,
    ModelInfo,
)

try:
    from fhir.resources.R4B.bundle import Bundle
except ImportError as missing:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "FHIR output needs the fhir extra: pip install 'ich-client[fhir]'"
    ) from missing

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
UCUM = "http://unitsofmeasure.org"
LOCAL_SYSTEM = "urn:ich-triage:codes"
"""Codes of this service where no standard code exists (a URN no other system uses)."""
ANALYSIS_SYSTEM = "urn:ich-triage:analysis"
"""Identifier system of reports and observations: the analysis id (plus the finding)."""
MODEL_SYSTEM = "urn:ich-triage:model-sha256"
"""Identifier system of the Device: the SHA-256 of the model's weights."""

_AI = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "AIAST",
    "display": "Artificial Intelligence asserted",
}
_FINDINGS: dict[HemorrhageClass | None, dict[str, str]] = {
    None: {"system": SNOMED, "code": "1386000", "display": "Intracranial hemorrhage"},
    HemorrhageClass.IPH: {"system": SNOMED, "code": "274100004", "display": "Cerebral hemorrhage"},
    HemorrhageClass.EDH_SDH: {
        "system": LOCAL_SYSTEM,
        "code": "EDH-SDH",
        "display": "Epidural or subdural hemorrhage",
    },
    HemorrhageClass.SAH: {
        "system": SNOMED,
        "code": "21454007",
        "display": "Subarachnoid intracranial hemorrhage",
    },
}
_PRESENT = {"system": SNOMED, "code": "52101004", "display": "Present"}
_ABSENT = {"system": SNOMED, "code": "272519000", "display": "Absent"}
_PROBABILITY = {"system": DCM, "code": "122157", "display": "Probability"}
_VOLUME = {"system": SNOMED, "code": "118565006", "display": "Volume"}
_COUNT = {"system": LOCAL_SYSTEM, "code": "hemorrhage-count", "display": "Number of hemorrhages"}
_REPORT_CODE = {"system": LOINC, "code": "30799-1", "display": "CT Head WO contrast"}
_RADIOLOGY = [
    {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"},
    {"system": LOINC, "code": "LP29684-5", "display": "Radiology"},
]
_IMAGING = {
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "imaging",
}
UNVERIFIED = (
    "Computer-generated and unverified: a triage aid that does not replace the radiologist's "
    "reading of the study."
)


class FHIRError(ICHError):
    """The FHIR server refused the bundle; ``outcome`` is its OperationOutcome, if any."""

    def __init__(self, message: str, status: int, outcome: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.status, self.outcome = status, outcome


def to_fhir_bundle(
    analysis: AnalysisRecord, *, patient: str | None = None, performer: str | None = None
) -> Bundle:
    """The transaction Bundle of a done analysis.

    Args:
        analysis: a done analysis (``Client.analyze`` or a webhook's payload).
        patient: the subject as the EHR knows it, e.g. ``"Patient/123"``; the service never
            holds patient identity, so it comes from the integration.
        performer: the organisation responsible for the service, e.g. ``"Organization/7"``.

    Entries are conditional creates on their identifiers (the analysis id, the model digest),
    so posting the same bundle twice does not duplicate the report, observations or device;
    the Provenance, which has no identifier in R4, is created again.

    Raises:
        ValueError: the analysis is not done.
    """
    result, model = analysis.result, analysis.model
    if result is None or model is None:
        raise ValueError(
            f"Analysis {analysis.id} is {analysis.status.value}: only a done analysis has "
            "findings to report."
        )
    issued = (analysis.finished or datetime.now(UTC)).isoformat()
    study = {
        "type": "ImagingStudy",
        "identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{result.study_uid}"},
    }
    common: dict[str, Any] = {"meta": {"security": [_AI]}, "status": "preliminary"}
    if patient:
        common["subject"] = {"reference": patient}
    digest = model.sha256 or f"{model.name}-{model.version}"
    device = _Entry("Device", _device(model, digest))
    members = [_Entry("Observation", _class_observation(f)) for f in result.classes]
    observations = [_Entry("Observation", _any_observation(result, members)), *members]
    keys = ["any", *(f.hemorrhage_class.value.replace("/", "-") for f in result.classes)]
    thresholds = [result.any_ich_threshold, *(f.threshold for f in result.classes)]
    for key, threshold, entry in zip(keys, thresholds, observations, strict=True):
        entry.resource |= common | {
            "identifier": [{"system": ANALYSIS_SYSTEM, "value": f"{analysis.id}/{key}"}],
            "category": [{"coding": [_IMAGING]}],
            "issued": issued,
            "device": {"reference": device.url},
            "derivedFrom": [study],
            "method": {"text": f"{model.name} {model.version}"},
            "note": [
                {"text": f"Present when the probability is {threshold:.2f} or more. {UNVERIFIED}"}
            ],
        }
    report = _Entry(
        "DiagnosticReport",
        common
        | {
            "identifier": [{"system": ANALYSIS_SYSTEM, "value": analysis.id}],
            "category": [{"coding": _RADIOLOGY}],
            "code": {"coding": [_REPORT_CODE], "text": "CT head: intracranial hemorrhage triage"},
            "issued": issued,
            "imagingStudy": [study],
            "result": [{"reference": o.url} for o in observations],
            "conclusion": f"{conclusion(result)} {UNVERIFIED}",
        },
    )
    if result.any_ich_flagged:
        report.resource["conclusionCode"] = [{"coding": [_FINDINGS[None]]}]
    if performer:
        report.resource["performer"] = [{"reference": performer}]
    provenance = _Entry("Provenance", _provenance([report, *observations], device, issued, study))
    entries = [device, *observations, report, provenance]
    return Bundle.model_validate(
        {"resourceType": "Bundle", "type": "transaction", "entry": [e.json() for e in entries]}
    )


def conclusion(result: ExamResult) -> str:
    """One sentence a clinician reads first: which classes were flagged, volumes, probabilities."""
    flagged = [c for c in result.classes if c.flagged]
    if not flagged:
        return (
            f"No intracranial hemorrhage detected (probability {result.any_ich_probability:.2f}, "
            f"threshold {result.any_ich_threshold:.2f})."
        )
    parts = [
        f"{c.hemorrhage_class.value} {c.total_volume_ml:.1f} mL (probability {c.probability:.2f})"
        for c in flagged
    ]
    return f"Intracranial hemorrhage suspected: {'; '.join(parts)}."


def post_to_fhir(
    bundle: Bundle,
    base_url: str,
    *,
    token: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> Bundle:
    """POST the transaction to a FHIR server's base URL; returns its transaction-response.

    Raises:
        FHIRError: the server answered an error (its OperationOutcome is on the error).
        httpx.TransportError: the server could not be reached.
    """
    sent = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    with httpx.Client(timeout=timeout, transport=transport) as http:
        answer = http.post(
            base_url.rstrip("/"),
            content=bundle.model_dump_json(exclude_none=True),
            headers=sent | dict(headers or {}),
        )
    document = _json(answer)
    if not answer.is_success:
        issues = "; ".join(
            str(i.get("diagnostics") or i.get("details", {}).get("text") or i.get("code"))
            for i in (document or {}).get("issue", [])
        )
        raise FHIRError(
            f"The FHIR server answered {answer.status_code}: {issues or answer.reason_phrase}",
            answer.status_code,
            document,
        )
    return Bundle.model_validate(document)


def _json(answer: httpx.Response) -> dict[str, Any] | None:
    try:
        document = answer.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


@dataclass
class _Entry:
    """One resource of the transaction, created unless one with its first identifier exists."""

    kind: str
    resource: dict[str, Any]
    url: str = field(default_factory=lambda: f"urn:uuid:{uuid.uuid4()}")

    def json(self) -> dict[str, Any]:
        request = {"method": "POST", "url": self.kind}
        if identifiers := self.resource.get("identifier"):
            first = identifiers[0]
            request["ifNoneExist"] = urlencode(
                {"identifier": f"{first['system']}|{first['value']}"}
            )
        resource = {"resourceType": self.kind} | self.resource
        return {"fullUrl": self.url, "resource": resource, "request": request}


def _device(model: ModelInfo, digest: str) -> dict[str, Any]:
    return {
        "identifier": [{"system": MODEL_SYSTEM, "value": digest}],
        "status": "active",
        "deviceName": [{"name": model.name, "type": "model-name"}],
        "version": [{"value": model.version}],
        "type": {"text": "Software: intracranial hemorrhage detection on head CT"},
        "note": [{"text": UNVERIFIED}],
    }


def _provenance(
    targets: list[_Entry], device: _Entry, recorded: str, study: dict[str, Any]
) -> dict[str, Any]:
    author = {
        "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
        "code": "author",
        "display": "Author",
    }
    return {
        "target": [{"reference": t.url} for t in targets],
        "recorded": recorded,
        "agent": [{"type": {"coding": [author]}, "who": {"reference": device.url}}],
        "entity": [{"role": "source", "what": study}],
    }


def _presence(flagged: bool) -> dict[str, Any]:
    return {"coding": [_PRESENT if flagged else _ABSENT]}


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": round(value, 4), "unit": unit, "system": UCUM, "code": code}


def _components(probability: float, volume_ml: float, count: int) -> list[dict[str, Any]]:
    return [
        {"code": {"coding": [_PROBABILITY]}, "valueQuantity": _quantity(probability, "1", "1")},
        {"code": {"coding": [_VOLUME]}, "valueQuantity": _quantity(volume_ml, "mL", "mL")},
        {"code": {"coding": [_COUNT]}, "valueInteger": count},
    ]


def _class_observation(finding: ClassFinding) -> dict[str, Any]:
    code = _FINDINGS[finding.hemorrhage_class]
    return {
        "code": {"coding": [code], "text": code["display"]},
        "valueCodeableConcept": _presence(finding.flagged),
        "component": _components(finding.probability, finding.total_volume_ml, finding.count),
    }


def _any_observation(result: ExamResult, members: list[_Entry]) -> dict[str, Any]:
    total = sum(c.total_volume_ml for c in result.classes)
    return {
        "code": {"coding": [_FINDINGS[None]], "text": "Acute intracranial hemorrhage"},
        "valueCodeableConcept": _presence(result.any_ich_flagged),
        "component": _components(result.any_ich_probability, total, len(result.hemorrhages)),
        "hasMember": [{"reference": m.url} for m in members],
    }
