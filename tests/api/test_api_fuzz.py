"""API fuzzing: Schemathesis drives every operation in /openapi.json against the real app.

Generated requests (valid and deliberately invalid bodies, queries, path parameters) go through
the WSGI app on a copy of the demo centre, signed in as an admin. Whatever is sent, the API must
answer with a documented status and content type, a body that matches the schema declared for
that status, a 4xx (not a 2xx) for data the schema forbids, and never a 5xx.

Random path parameters and names only ever reach "404 not found", so in about half of the cases
whose path (or body) was generated as valid, a path parameter (or a body field naming a record)
gets a real value from the demo: a sample barcode, a lot number, a box, a station, a printer, a
user, a print job, a token, a custody action. The handlers behind the 404 are fuzzed too.

One pytest test per operation, each on its own fresh database, so a failure names the operation.
(Schemathesis' own lazy pytest loader does not work with this pytest version, so the strategies
are driven with Hypothesis directly.)
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlmodel import select

from lims import audit, create_app, custody, lots
from lims.db import new_session
from lims.models import (
    Location,
    Printer,
    PrintJob,
    Project,
    Sample,
    SampleType,
    Station,
    User,
    VectorLot,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    negative_data_rejection,
]
MAX_EXAMPLES = 25


def _operations() -> list[tuple[str, str]]:
    """Return (METHOD, path) of every operation the app documents (read without a database)."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "DATABASE_URL": f"sqlite:///{Path(tmp) / 'spec.sqlite3'}",
                "AUTO_MIGRATE": False,
                "SECRET_KEY": "spec",
            }
        )
        spec = app.spec
        app.extensions["lims"]["engine"].dispose()
    return [
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    ]


OPERATIONS = _operations()


def audit_count_of(app) -> int:  # noqa: ANN001
    """Return how many audit events the app's database holds."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        return audit.count_events(db)


def _known_values(app, auth) -> dict[str, list]:  # noqa: ANN001
    """Return real values for each path parameter name, from the app's demo database."""
    client = app.test_client()
    tech = auth("tech1")
    # A print job to reprint/void/start and a token to revoke (not the admin's own).
    job = client.post(
        "/api/labels", json={"barcodes": ["S26-000001-Y"], "printer": "ZEBRA-B1"}, headers=tech
    )
    assert job.status_code < 300, job.json
    token = client.post("/api/tokens", json={"username": "tech2"}, headers=auth("admin"))
    assert token.status_code == 201, token.json
    with new_session(app.extensions["lims"]["engine"]) as db:
        values = {
            "barcode": list(db.exec(select(Sample.barcode).limit(5))),
            "lot": list(db.exec(select(VectorLot.lot_number))),
            "code": list(db.exec(select(Location.code).limit(8))),
            "name": list(db.exec(select(Station.name))),
            "job_id": list(db.exec(select(PrintJob.id).limit(3))),
        }
    values["token_id"] = [token.json["id"]]
    assert all(values.values()), values
    return values


def _known_body_values(app, known: dict[str, list]) -> dict[str, list]:  # noqa: ANN001
    """Return real values for body fields that name records (same demo database)."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        users = list(db.exec(select(User.username).where(User.username != "system")))
        return {
            "sample_type": list(db.exec(select(SampleType.code))),
            "project": list(db.exec(select(Project.code))),
            "lot": known["lot"],
            "parent": known["barcode"],
            "station": known["name"],
            "printer": list(db.exec(select(Printer.name))),
            "username": users,
            "custodian": users,
            "location": known["code"],
            "action": sorted(set(custody.TRANSITIONS) | set(lots.LOT_TRANSITIONS)),
            "data": known["barcode"] + ["BADGE-0002", "CMD:RECEIVE", "CMD:STORE", "BOX-0002"],
            "barcodes": [[b] for b in known["barcode"]] + [known["barcode"][:2]],
        }


def _swap_in_real_values(case, known: dict, known_body: dict, data) -> None:  # noqa: ANN001
    """Replace some generated names with real ones, only where they were generated as valid."""
    meta = case._meta.components if case._meta else {}
    path_info = meta.get(ParameterLocation.PATH)
    # A case that is invalid because of its path (or body) must stay invalid.
    if path_info is not None and path_info.mode == GenerationMode.POSITIVE:
        for name in case.path_parameters or {}:
            if name in known and data.draw(st.booleans(), label=f"real {name}"):
                case.path_parameters[name] = data.draw(st.sampled_from(known[name]))
    body_info = meta.get(ParameterLocation.BODY)
    if body_info is not None and body_info.mode == GenerationMode.POSITIVE:
        if isinstance(case.body, dict):
            for name in list(case.body):
                if name in known_body and data.draw(st.booleans(), label=f"real {name}"):
                    case.body[name] = data.draw(st.sampled_from(known_body[name]))


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_never_fails_or_breaks_its_schema(app, auth, method: str, path: str) -> None:  # noqa: ANN001
    """Send valid and invalid generated requests; no 5xx, no response outside the schema."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operation = schema[path][method]
    known = _known_values(app, auth)
    known_body = _known_body_values(app, known)
    headers = auth("admin")
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases, data=st.data())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case, data) -> None:  # noqa: ANN001
        _swap_in_real_values(case, known, known_body, data)
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        statuses.append(response.status_code)

    statuses: list[int] = []
    run()
    print(method, path, sorted(Counter(statuses).items()))


def test_nul_characters_are_refused_before_the_database(client, auth) -> None:  # noqa: ANN001
    """A NUL in a JSON string, a query or a path is a 400 on both engines (was a 503 on PG)."""
    h = auth("tech1")
    before = audit_count_of(client.application)
    bad_body = client.post(
        "/api/samples", json={"sample_type": "PBMC\u0000", "project": "CART-001"}, headers=h
    )
    bad_query = client.get("/api/samples?state=avail%00able", headers=h)
    bad_path = client.get("/api/samples/S26-0%00001", headers=h)
    for r in (bad_body, bad_query, bad_path):
        assert r.status_code == 400, r.json
        assert r.json["error"] == "malformed"
        assert "NUL" in r.json["message"]
    assert audit_count_of(client.application) == before


def test_ids_and_cursors_beyond_the_integer_columns_are_client_errors(client, auth) -> None:  # noqa: ANN001
    """Huge ids are 404 and huge cursors 400, not a database overflow (was 500/503)."""
    h = auth("admin")
    assert client.get("/api/print-jobs/69894282338396812934643712", headers=h).status_code == 404
    assert client.delete("/api/tokens/3000000000", headers=h).status_code == 404
    for path in ("/api/samples", "/api/audit", "/api/print-jobs"):
        r = client.get(f"{path}?cursor=3562567499", headers=h)
        assert r.status_code == 400, (path, r.json)
    assert client.get("/api/samples?cursor=2147483647", headers=h).status_code == 200
