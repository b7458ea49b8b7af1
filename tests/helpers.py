"""Small helpers shared by tests: counting audit events, registering samples, racing requests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from lims import audit, users
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


def bearer(app, username: str) -> dict[str, str]:  # noqa: ANN001
    """Return the headers of a fresh bearer token of username."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        secret, _ = users.create_token(db, username=username, actor=users.system_actor(db))
        db.commit()
    return {"Authorization": f"Bearer {secret}"}


def race(app, fire: Callable[[Any, int], Any], threads: int) -> list:  # noqa: ANN001
    """Run fire(client, i) from `threads` test clients released together; return each result."""
    barrier = threading.Barrier(threads)
    results: list = [None] * threads

    def worker(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        results[i] = fire(client, i)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in pool), "a racing request hung"
    return results
