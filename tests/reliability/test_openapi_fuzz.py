"""Schemathesis against the gateway's own OpenAPI schema: generated requests to every
operation, checked for server errors, undocumented status codes and content types, and
answers that break their declared schema."""

from __future__ import annotations

import collections
from typing import Any

import schemathesis
from hypothesis import given
from reliability_support import PROFILE, fuzzing, record  # type: ignore[import-not-found]
from schemathesis import checks

from api.process import GatewayProcess

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@schemathesis.serializer('multipart/related; type="application/dicom"')
def _stow_body(_: object, value: Any) -> bytes:
    """STOW-RS bodies as generated (bytes or text): the gateway must refuse what is not one."""
    return value if isinstance(value, bytes) else str(value).encode()


def test_every_operation_answers_as_documented(drilled: GatewayProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{drilled.url}/openapi.json")
    cases: collections.Counter[str] = collections.Counter()
    for found in schema.get_all_operations():
        _fuzz(found.ok(), drilled, cases)
    record("openapi", operations=len(cases), cases=sum(cases.values()))


def _fuzz(operation: Any, gateway: GatewayProcess, cases: collections.Counter[str]) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @given(operation.as_strategy())
    @fuzzing(PROFILE.api_examples)
    def fuzz(case: schemathesis.Case) -> None:
        cases[label] += 1
        case.call_and_validate(
            base_url=gateway.url, headers={"X-API-Key": gateway.key}, checks=CHECKS, timeout=120
        )

    fuzz()
