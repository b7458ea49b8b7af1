"""Small helpers shared by tests: counting audit events, registering samples."""

from __future__ import annotations

from lims import audit
from lims.db import new_session


def audit_count(app) -> int:  # noqa: ANN001
    """Return how many audit events the app's database holds."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        return audit.count_events(db)


def verify(app) -> audit.VerifyResult:  # noqa: ANN001
    """Verify the app's audit chain."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        return audit.verify(db)


def register(client, headers, **fields) -> dict:  # noqa: ANN001
    """Register a sample through the API and return its JSON."""
    body = {"sample_type": "PBMC", "project": "CART-001", "volume": 5, "unit": "mL", **fields}
    r = client.post("/api/samples", json=body, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


def move(client, headers, barcode: str, action: str, **fields):  # noqa: ANN001, ANN201
    """Post a transition and return the response."""
    return client.post(
        f"/api/samples/{barcode}/transitions", json={"action": action, **fields}, headers=headers
    )
