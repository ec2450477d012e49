"""Property-based run of the OpenAPI document against the real server (schemathesis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import make_settings
from tests.live import live_server


@pytest.fixture(scope="module")
def api_schema(shared_site_dsn: str) -> Iterator[schemathesis.BaseSchema]:
    with live_server(make_settings(shared_site_dsn)) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


EXAMPLES_PER_OPERATION = 40


def test_every_operation_answers_within_its_documented_contract(
    api_schema: schemathesis.BaseSchema,
) -> None:
    # schemathesis' own pytest plugin does not run under pytest 9, so drive Hypothesis
    # directly: one bounded property per operation, failing on any 5xx or schema violation.
    # "Positive data acceptance" is left out: a random string is a schema-valid cursor, and
    # refusing forged cursors with 400 is the documented behaviour.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        conforms()


def test_the_schema_documents_every_api_endpoint(api_schema: schemathesis.BaseSchema) -> None:
    paths = set(api_schema.raw_schema["paths"])
    assert {
        "/api/v1/sites",
        "/api/v1/services",
        "/api/v1/locations",
        "/api/v1/pages",
        "/api/v1/pages/{service}/{location}",
        "/api/v1/export.ndjson",
        "/healthz",
        "/readyz",
    } <= paths
