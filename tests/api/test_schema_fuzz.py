"""Schemathesis fuzzes the API against its own OpenAPI document, with an operate token, over the real
store, broker and worker: no answer is a 500, every answer conforms to the document (status,
content type, schema), and every error has the one error body. A bounded number of examples per
operation keeps it under a minute."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import OPERATE, assert_error, make_app

schema = schemathesis.openapi.from_asgi("/openapi.json", make_app())
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_own_schema(case: Any, worker: object) -> None:
    response = case.call_and_validate(headers=OPERATE, checks=CHECKS)
    if response.status_code >= 400:
        body = response.json()
        assert_error(body, body.get("error", {}).get("code", "?"))
