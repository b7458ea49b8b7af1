"""A lot is released only on a complete batch record whose flagged values have closed deviations."""

from __future__ import annotations

from batch_util import approved_template, lot_with_record
from helpers import sign_in
from mfg_util import PASSWORD

RELEASE = {"action": "release", "signature": {"password": PASSWORD, "meaning": "release"}}


def _step(client, headers, lot: str, n: int, values: dict):  # noqa: ANN001, ANN201
    r = client.post(
        f"/api/lots/{lot}/batch-record/steps/{n}", json={"values": values}, headers=headers
    )
    assert r.status_code == 201, r.json
    return r.json


def _to_quarantine(client, headers, lot: str) -> None:  # noqa: ANN001
    for action in ("start_production", "complete"):
        r = client.post(f"/api/lots/{lot}/transitions", json={"action": action}, headers=headers)
        assert r.status_code == 200, r.json


def _release(client, auth, lot: str):  # noqa: ANN001, ANN201
    return client.post(f"/api/lots/{lot}/transitions", json=RELEASE, headers=auth("qa1"))


def test_release_is_refused_while_steps_are_not_done_or_verified(client, auth, qa2):  # noqa: ANN001
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "RL-1")
    tech1 = auth("tech1")
    _step(client, tech1, "RL-1", 1, {"cell density": 1.0})
    _step(client, tech1, "RL-1", 2, {"plasmid total": 2.0, "temperature": 37})
    _to_quarantine(client, tech1, "RL-1")
    r = _release(client, auth, "RL-1")
    assert (r.status_code, r.json["error"]) == (422, "batch_record_incomplete")
    why = "step 2 (Transfect) not verified; step 3 (Harvest) not done"
    assert why in r.json["message"]
    assert client.get("/api/lots/RL-1", headers=tech1).json["state"] == "quarantine"
    sign_in(client, "qa1")
    page = client.get("/lots/RL-1").text
    assert 'id="release-blocker"' in page and why in page


def test_flagged_values_need_their_deviation_closed_before_release(client, auth, qa2):  # noqa: ANN001
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "RL-2")
    tech1, qa1 = auth("tech1"), auth("qa1")
    _step(client, tech1, "RL-2", 1, {"cell density": 1.6})  # out of range: flagged
    _step(client, tech1, "RL-2", 2, {"plasmid total": 2.0, "temperature": 37})
    r = client.post(
        "/api/lots/RL-2/batch-record/steps/2/verify",
        json={"signature": {"password": PASSWORD, "meaning": "review"}},
        headers=auth("tech2"),
    )
    assert r.status_code == 200, r.json
    assert _step(client, tech1, "RL-2", 3, {})["complete"] is True
    _to_quarantine(client, tech1, "RL-2")
    number = client.get("/api/deviations?lot=RL-2", headers=qa1).json["deviations"][0]["number"]
    r = _release(client, auth, "RL-2")
    assert (r.status_code, r.json["error"]) == (422, "batch_record_deviation")
    assert (
        f"step 1 has values out of range; deviation {number} (open) is not closed"
        in (r.json["message"])
    )
    sign_in(client, "qa1")
    assert number in client.get("/lots/RL-2").text
    url = f"/api/deviations/{number}/transitions"
    assert client.post(url, json={"action": "investigate"}, headers=qa1).status_code == 200
    r = client.post(
        url,
        json={
            "action": "close",
            "root_cause": "seeding from a denser vial; product impact assessed: none",
            "signature": {"password": PASSWORD, "meaning": "approval"},
        },
        headers=qa1,
    )
    assert r.status_code == 200, r.json
    r = _release(client, auth, "RL-2")
    assert (r.status_code, r.json["error"]) == (422, "batch_record_not_reviewed")
    r = client.post(
        "/api/lots/RL-2/batch-record/review",
        json={"signature": {"password": PASSWORD, "meaning": "review"}},
        headers=qa2,
    )
    assert r.status_code == 201, r.json
    r = _release(client, auth, "RL-2")
    # The batch record no longer stands in the way; the QC rules are next.
    assert r.status_code == 422 and not r.json["error"].startswith("batch_record"), r.json


def test_a_lot_without_a_batch_record_is_not_held_by_this_rule(client, auth):  # noqa: ANN001
    r = _release(client, auth, "AAV9-2611-001")  # demo lot, made before batch records
    assert r.status_code == 422 and not r.json["error"].startswith("batch_record"), r.json
