"""Corrections of recorded data (Annex 11 §9): a reason, a new event linked to the corrected one."""

from __future__ import annotations

from helpers import audit_count, move, register, verify


def _events(client, headers, barcode: str) -> list[dict]:  # noqa: ANN001
    return client.get(f"/api/samples/{barcode}/history", headers=headers).json["events"]


def test_correction_needs_a_reason_and_changes_nothing_without_one(app, client, auth):
    tech = auth("tech1")
    s = register(client, tech, volume=5)
    count = audit_count(app)
    url = f"/api/samples/{s['barcode']}/corrections"
    for body in ({"volume": 4.5}, {"volume": 4.5, "reason": "   "}):
        r = client.post(url, json=body, headers=tech)
        assert r.status_code == 422 and r.json["error"] == "reason_required", r.json
    after = client.get(f"/api/samples/{s['barcode']}", headers=tech).json
    assert (after["volume"], after["version"]) == (5, s["version"])
    assert audit_count(app) == count
    # State moves only by transitions; unknown fields are malformed.
    r = client.post(url, json={"state": "available", "reason": "x"}, headers=tech)
    assert r.status_code == 400 and "transitions" in str(r.json["detail"])
    r = client.post(url, json={"reason": "nothing named"}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "missing_fields"
    r = client.post(url, json={"volume": 5, "reason": "same value"}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "no_change"
    r = client.post(url, json={"volume": 4, "reason": "r", "version": 99}, headers=tech)
    assert r.status_code == 409 and r.json["error"] == "version_conflict"
    assert audit_count(app) == count


def test_correction_is_one_event_linked_to_the_event_that_recorded_the_value(app, client, auth):
    tech, qa = auth("tech1", "BENCH-B1"), auth("qa1")
    s = register(client, tech, volume=5, container="tube")
    b = s["barcode"]
    assert move(client, tech, b, "receive", condition="frozen").status_code == 200
    assert move(client, tech, b, "quarantine").status_code == 200
    reg, rec, _quar = _events(client, tech, b)
    count = audit_count(app)

    r = client.post(
        f"/api/samples/{b}/corrections",
        json={"volume": 4.5, "reason": "volume misread at registration", "version": 3},
        headers=tech,
    )
    assert r.status_code == 201, r.json
    assert r.json["sample"]["volume"] == 4.5 and r.json["sample"]["version"] == 4
    assert r.json["sample"]["state"] == "quarantine"  # a correction never moves custody
    assert audit_count(app) == count + 1
    fix1 = _events(client, tech, b)[-1]
    assert fix1["action"] == "sample.correct" and fix1["actor"] == "tech1"
    assert fix1["corrects_seq"] == reg["seq"]  # the registration recorded the volume
    assert fix1["reason"] == "volume misread at registration"
    assert (fix1["before"]["volume"], fix1["after"]["volume"]) == (5, 4.5)
    assert fix1["station"] == "BENCH-B1"

    # The condition was recorded at receipt: that is the event a condition correction links to.
    r = client.post(
        f"/api/samples/{b}/corrections",
        json={"condition": "frozen, dry ice", "container": "cryovial", "reason": "typo"},
        headers=qa,
    )
    assert r.status_code == 201, r.json
    fix2 = _events(client, qa, b)[-1]
    assert fix2["after"]["corrects"] == {"condition": rec["seq"], "container": reg["seq"]}
    assert fix2["corrects_seq"] == rec["seq"]
    assert fix2["before"]["container"] == "tube" and fix2["after"]["container"] == "cryovial"

    # Correcting a corrected value links to the correction, not to the original.
    r = client.post(
        f"/api/samples/{b}/corrections", json={"volume": 4.4, "reason": "re-weighed"}, headers=qa
    )
    assert r.status_code == 201
    assert _events(client, qa, b)[-1]["corrects_seq"] == fix1["seq"]
    # The originals are untouched: the trail keeps every value with who changed it and why.
    history = _events(client, qa, b)
    assert history[0] == reg and history[1] == rec
    assert verify(app).ok


def test_corrections_respect_roles_and_organisations(client, auth):
    nova_vial = client.get("/api/lots/LV-2611-002", headers=auth("qa1")).json["vials"][0]
    body = {"volume": 0.9, "reason": "r"}
    url = f"/api/samples/{nova_vial['barcode']}/corrections"
    assert client.post(url, json=body, headers=auth("helix_tech")).status_code == 404
    assert client.post(url, json=body, headers=auth("nova_viewer")).status_code == 403
    assert client.post(url, json=body, headers=auth("tech2")).status_code == 201
