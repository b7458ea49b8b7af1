"""Idempotency-Key: a retry replays the first answer; the key reused with another body is 422."""

from __future__ import annotations

from helpers import audit_count, register


def test_same_key_same_body_replays_without_a_second_event(client, auth, app):
    tech = {**auth("tech1"), "Idempotency-Key": "k-1"}
    body = {"sample_type": "PBMC", "project": "CART-001", "volume": 2, "unit": "mL"}
    first = client.post("/api/samples", json=body, headers=tech)
    n = audit_count(app)
    again = client.post("/api/samples", json=body, headers=tech)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert audit_count(app) == n


def test_same_key_other_body_is_422(client, auth, app):
    tech = auth("tech1")
    b = register(client, tech)["barcode"]
    h = {**tech, "Idempotency-Key": "recv-1"}
    url = f"/api/samples/{b}/transitions"
    assert (
        client.post(url, json={"action": "receive", "condition": "ok"}, headers=h).status_code
        == 200
    )
    n = audit_count(app)
    r = client.post(url, json={"action": "receive", "condition": "warm"}, headers=h)
    assert r.status_code == 422 and r.json["error"] == "idempotency_key_reused"
    assert audit_count(app) == n


def test_keys_belong_to_their_user(client, auth):
    body = {"sample_type": "PBMC", "project": "CART-001"}
    a = client.post("/api/samples", json=body, headers={**auth("tech1"), "Idempotency-Key": "x"})
    b = client.post("/api/samples", json=body, headers={**auth("tech2"), "Idempotency-Key": "x"})
    assert a.json["barcode"] != b.json["barcode"]


def test_a_refused_request_is_not_stored_so_a_fixed_retry_can_succeed(client, auth):
    tech = auth("tech1")
    b = register(client, tech)["barcode"]
    h = {**tech, "Idempotency-Key": "try"}
    url = f"/api/samples/{b}/transitions"
    assert client.post(url, json={"action": "receive"}, headers=h).status_code == 422
    r = client.post(url, json={"action": "receive"}, headers=h)
    assert r.status_code == 422 and r.json["error"] == "missing_fields"


def test_overlong_key_is_400(client, auth):
    h = {**auth("tech1"), "Idempotency-Key": "k" * 201}
    r = client.post("/api/samples", json={"sample_type": "PBMC", "project": "CART-001"}, headers=h)
    assert r.status_code == 400
