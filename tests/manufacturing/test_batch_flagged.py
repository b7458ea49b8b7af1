"""A flagged value always opens a deviation on the lot, whoever recorded it (issue #18)."""

from __future__ import annotations

from batch_util import approved_template, lot_with_record
from helpers import audit_count, verify


def _step(client, headers, lot: str, values: dict):  # noqa: ANN001, ANN201
    r = client.post(
        f"/api/lots/{lot}/batch-record/steps/1", json={"values": values}, headers=headers
    )
    assert r.status_code == 201, r.json
    return r.json


def _deviations(client, headers, lot: str) -> list[dict]:  # noqa: ANN001
    r = client.get(f"/api/deviations?lot={lot}", headers=headers)
    assert r.status_code == 200, r.json
    return r.json["deviations"]


def test_a_clients_flagged_value_opens_a_deviation_raised_by_the_system_for_them(
    app,  # noqa: ANN001
    client,  # noqa: ANN001
    auth,  # noqa: ANN001
    qa2,  # noqa: ANN001
):
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "HX-F1", project="HX-AAV9", who="helix_tech")
    lot_with_record(client, auth, "CT-F1")  # the centre's own lot, flagged by its own staff
    _step(client, auth("tech1"), "CT-F1", {"cell density": 0.5})
    assert _deviations(client, auth("helix_tech"), "CT-F1") == []
    helix = auth("helix_tech")
    before = audit_count(app)
    record = _step(client, helix, "HX-F1", {"cell density": 1.6})
    assert record["steps"][0]["parameters"][0]["in_range"] is False
    # Two changes, one event each: the step (by its operator) and the deviation (by the system).
    assert audit_count(app) == before + 2
    assert verify(app).ok

    devs = _deviations(client, auth("qa1"), "HX-F1")
    assert len(devs) == 1 and devs[0]["organisation"] == "helix-bio"
    assert devs[0]["links"] == [{"kind": "lot", "ref": "HX-F1"}]
    dev = client.get(f"/api/deviations/{devs[0]['number']}", headers=auth("qa1")).json
    assert dev["raised_by"] == "system" and dev["severity"] == "major"
    assert dev["source"] == "batch record of lot HX-F1, step 1"
    assert "cell density 1.6 e6/mL (range 0.8-1.2 e6/mL)" in dev["description"]
    assert "Recorded by helix_tech (helix-bio); raised by the system" in dev["description"]
    events = client.get(f"/api/audit?entity={dev['number']}", headers=auth("qa1")).json["events"]
    assert [(e["action"], e["actor"]) for e in events] == [("deviation.raise", "system")]

    # The client sees its own deviation, not the centre's; another client sees neither.
    for who in ("helix_tech", "helix_viewer"):
        mine = client.get("/api/deviations", headers=auth(who)).json["deviations"]
        assert dev["number"] in [d["number"] for d in mine]
        assert {d["organisation"] for d in mine} == {"helix-bio"}
    r = client.get(f"/api/deviations/{dev['number']}", headers=auth("nova_viewer"))
    assert r.status_code == 404
    assert _deviations(client, auth("nova_viewer"), "HX-F1") == []

    # The centre's staff raise theirs as themselves.
    ours = _deviations(client, auth("qa1"), "CT-F1")
    theirs = client.get(f"/api/deviations/{ours[0]['number']}", headers=auth("qa1")).json
    assert theirs["raised_by"] == "tech1" and theirs["organisation"] == "centre"
    assert "Recorded by tech1 (centre)." in theirs["description"]
