"""The OpenAPI document is complete and the API keeps to it (Schemathesis, a few examples each).

A fast sweep of every operation on one demo database, signed in as the demo admin: each answer
must have a documented status, a body matching that status's schema, a documented content type,
and schema-violating requests must be refused. tests/api/test_api_fuzz.py goes deeper per
operation; this one guards the document itself in well under a minute.
"""

from __future__ import annotations

import time

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
MAX_EXAMPLES = 10  # per operation: every operation in about 15 s


def _operations(spec: dict) -> list[tuple[str, str, dict]]:
    return [
        (method, path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if path.startswith("/api/")
    ]


def test_every_operation_documents_its_answers(app) -> None:  # noqa: ANN001
    """2xx with a schema, 4xx with the error body, bodies required, bearer security."""
    spec = app.spec
    error = spec["components"]["schemas"]["HTTPError"]
    assert set(error["required"]) == {"error", "message"}
    assert spec["security"] == [{"BearerAuth": []}]
    for method, path, op in _operations(spec):
        where = f"{method.upper()} {path}"
        ok = [code for code in op["responses"] if code.startswith("2")]
        assert len(ok) == 1, where
        (content,) = op["responses"][ok[0]]["content"].values()
        assert content["schema"], where  # a schema, not {}
        assert "400" in op["responses"], where
        if path != "/api/health":
            assert "401" in op["responses"], where
        for code, answer in op["responses"].items():
            if code.startswith("4"):
                schema = answer["content"]["application/json"]["schema"]["$ref"]
                assert schema.rsplit("/", 1)[1] in ("HTTPError", "ValidationError"), where
        if "requestBody" in op:
            assert op["requestBody"]["required"] is True, where
            assert "413" in op["responses"] and "422" in op["responses"], where
        if method == "post":
            assert {"401", "403", "409", "422"} <= set(op["responses"]), where


def test_created_answers_are_documented_as_201(client, auth) -> None:  # noqa: ANN001
    """A POST that creates answers 201, and that is the status the document names."""
    spec = client.application.spec
    r = client.post(
        "/api/samples", json={"sample_type": "PBMC", "project": "CART-001"}, headers=auth("tech1")
    )
    assert r.status_code == 201, r.json
    assert "201" in spec["paths"]["/api/samples"]["post"]["responses"]
    assert "200" not in spec["paths"]["/api/samples"]["post"]["responses"]


def test_a_number_is_not_a_time_in_a_query(client, auth) -> None:  # noqa: ANN001
    """until=0.5 was read as 0.5 s after 1970 and answered 200 (Schemathesis found it)."""
    h = auth("qa1")
    for path in ("/api/audit", "/api/audit/export.csv"):
        for bad in ("0.5", "1e3", "1700000000"):
            r = client.get(f"{path}?until={bad}", headers=h)
            assert r.status_code == 400, (path, bad, r.data[:200])
            assert r.json["error"] == "malformed"
        assert client.get(f"{path}?until=2030-01-01T00:00:00Z", headers=h).status_code == 200


def test_the_api_keeps_to_its_document(app, auth) -> None:  # noqa: ANN001
    """Valid and invalid generated requests to every operation: no answer outside the document."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    headers = auth("admin")
    started = time.monotonic()
    failures: list[str] = []
    for method, path, _ in _operations(app.spec):
        operation = schema[path][method]
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @given(case=cases)
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case) -> None:  # noqa: ANN001
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except Exception as err:  # noqa: BLE001 - collect every operation's failure, then fail
            failures.append(f"{method.upper()} {path}: {str(err)[:600]}")
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < 60
