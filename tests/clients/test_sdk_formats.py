"""Webhooks received from the real gateway and verified by the SDK; FHIR R4 bundles of real
results, validated with fhir.resources and posted to a FHIR endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from ich_client import AnalysisRecord, Client, Status, WebhookVerificationError, parse_webhook
from ich_client.fhir import FHIRError, post_to_fhir, to_fhir_bundle
from ich_client.webhooks import sign
from pydantic import BaseModel

from api.keys import IssuedKey
from api.process import GatewayProcess


def test_a_webhook_from_the_gateway_verifies_and_parses(
    gateway: GatewayProcess,
    issued: IssuedKey,
    study: Path,
    receiver: tuple[str, Any],
) -> None:
    url, handler = receiver
    with Client(gateway.url, api_key=issued.key) as sdk:
        queued = sdk.submit(study, callback_url=f"{url}/hooks/ich")
        deadline = time.monotonic() + 60
        while not handler.received and time.monotonic() < deadline:
            time.sleep(0.2)
    assert handler.received, "no webhook arrived"
    headers, body = handler.received[0]
    event = parse_webhook(body, headers, issued.client.webhook_secret)
    assert event.event == "analysis.done" and event.delivery
    assert event.analysis.id == queued.id and event.analysis.status is Status.DONE
    assert event.analysis.result is not None and event.analysis.result.any_ich_flagged

    signature = next(v for k, v in headers.items() if k.lower() == "ich-signature")
    for secret, altered, why in (
        ("wrong-secret", body, "does not match"),
        (issued.client.webhook_secret, body + b" ", "does not match"),
    ):
        with pytest.raises(WebhookVerificationError, match=why):
            parse_webhook(altered, {"ICH-Signature": signature}, secret)
    with pytest.raises(WebhookVerificationError, match="No ICH-Signature"):
        parse_webhook(body, {}, issued.client.webhook_secret)
    stale = sign(issued.client.webhook_secret, body, int(time.time()) - 3600)
    with pytest.raises(WebhookVerificationError, match="old"):
        parse_webhook(body, {"ich-signature": stale}, issued.client.webhook_secret)


def _conforms(model: BaseModel, where: str = "") -> None:
    """What fhir.resources' structure check leaves out: coded values from their required
    bindings and references to the resource types an element allows."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        allowed = extra.get("enum_values")
        if allowed and value is not None and "+" not in allowed:
            assert value in allowed, f"{where}.{name}={value!r} not in {allowed}"
        kinds = extra.get("enum_reference_types")
        for item in value if isinstance(value, list) else [value]:
            if kinds and getattr(item, "type", None) and "Resource" not in kinds:
                assert item.type in kinds, f"{where}.{name} references {item.type}"
            if isinstance(item, BaseModel):
                _conforms(item, f"{where}.{name}")


def _resources(bundle: Bundle) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for entry in bundle.entry:
        found.setdefault(entry.resource.get_resource_type(), []).append(entry)
    return found


def test_a_real_result_maps_to_a_valid_fhir_transaction(client: Client, study: Path) -> None:
    analysis = client.analyze(study)
    bundle = to_fhir_bundle(analysis, patient="Patient/example")
    again = Bundle.model_validate_json(bundle.model_dump_json(exclude_none=True))
    assert again.type == "transaction"
    entries = _resources(again)
    assert {k: len(v) for k, v in entries.items()} == {
        "Device": 1,
        "Observation": 4,
        "DiagnosticReport": 1,
        "Provenance": 1,
    }
    urls = {e.fullUrl: e.resource.get_resource_type() for e in again.entry}
    for entry in again.entry:
        resource = entry.resource
        kind = resource.get_resource_type()
        get_fhir_model_class(kind).model_validate(resource.model_dump(exclude_none=True))
        _conforms(resource, kind)
        assert entry.request.method == "POST" and entry.request.url == kind
        for reference in _references(resource.model_dump(exclude_none=True)):
            assert reference in urls or reference == "Patient/example", reference

    report = entries["DiagnosticReport"][0].resource
    assert report.status == "preliminary" and report.subject.reference == "Patient/example"
    assert report.code.coding[0].system == "http://loinc.org"
    study_ref = report.imagingStudy[0]
    assert study_ref.type == "ImagingStudy"
    assert study_ref.identifier.system == "urn:dicom:uid"
    assert study_ref.identifier.value == f"urn:oid:{analysis.result.study_uid}"
    assert [r.reference for r in report.result] == [e.fullUrl for e in entries["Observation"]]
    assert report.conclusionCode[0].coding[0].code == "1386000"

    device = entries["Device"][0]
    assert device.resource.version[0].value == analysis.model.version
    assert device.resource.identifier[0].value == analysis.model.sha256
    assert device.request.ifNoneExist.endswith(analysis.model.sha256)

    by_class = {
        o.resource.identifier[0].value.split("/")[1]: o.resource for o in entries["Observation"]
    }
    for finding in analysis.result.classes:
        observation = by_class[finding.hemorrhage_class.value.replace("/", "-")]
        assert observation.status == "preliminary"
        assert observation.device.reference == device.fullUrl
        presence = observation.valueCodeableConcept.coding[0].code
        assert presence == ("52101004" if finding.flagged else "272519000")
        volume = next(c for c in observation.component if c.code.coding[0].code == "118565006")
        assert volume.valueQuantity.code == "mL"
        assert volume.valueQuantity.system == "http://unitsofmeasure.org"
        assert float(volume.valueQuantity.value) == pytest.approx(finding.total_volume_ml, abs=1e-4)
    assert by_class["EDH-SDH"].code.coding[0].system == "urn:ich-triage:codes"
    assert by_class["SAH"].code.coding[0].system == "http://snomed.info/sct"

    provenance = entries["Provenance"][0].resource
    assert provenance.agent[0].who.reference == device.fullUrl
    assert {t.reference for t in provenance.target} == {
        e.fullUrl for e in entries["Observation"] + entries["DiagnosticReport"]
    }


def _references(document: Any) -> Iterator[str]:
    if isinstance(document, dict):
        if isinstance(document.get("reference"), str):
            yield document["reference"]
        for value in document.values():
            yield from _references(value)
    elif isinstance(document, list):
        for value in document:
            yield from _references(value)


def test_only_a_done_analysis_maps_to_fhir(client: Client, study: Path) -> None:
    queued = AnalysisRecord.model_validate(
        client.submit(study).model_dump() | {"status": "queued", "result": None}
    )
    with pytest.raises(ValueError, match="only a done analysis"):
        to_fhir_bundle(queued)


def test_post_to_fhir_sends_the_transaction_and_reads_the_answer(
    client: Client, study: Path, receiver: tuple[str, Any]
) -> None:
    url, handler = receiver
    bundle = to_fhir_bundle(client.analyze(study))
    handler.reply = (
        200,
        {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [{"response": {"status": "201 Created"}} for _ in bundle.entry],
        },
    )
    answer = post_to_fhir(bundle, f"{url}/fhir", token="secret-token")
    assert answer.type == "transaction-response" and len(answer.entry) == len(bundle.entry)
    headers, body = handler.received[0]
    assert headers["Content-Type"] == "application/fhir+json"
    assert headers["Authorization"] == "Bearer secret-token"
    assert Bundle.model_validate_json(body).type == "transaction"

    handler.reply = (
        422,
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "invalid", "diagnostics": "bad subject"}],
        },
    )
    with pytest.raises(FHIRError, match="422: bad subject") as refused:
        post_to_fhir(bundle, f"{url}/fhir")
    assert refused.value.outcome["resourceType"] == "OperationOutcome"
