"""The COI check on a treatment episode's samples when they change hands through the sample
moves (POST /api/samples/<barcode>/transitions): the episode's rule, deviation and hold."""

from __future__ import annotations

import pytest
from helpers import audit_count, move, register, verify
from sqlmodel import select
from therapy_util import new_episode

from lims.db import new_session
from lims.models import AuditEvent

# What brings a sample from registered to the state each change of custody starts from.
BEFORE = {
    "receive": [],
    "hand_over": [
        ("receive", {"condition": "ok"}),
        ("quarantine", {}),
        ("release", {}),
        ("check_out", {"custodian": "tech1"}),
    ],
    "ship": [("receive", {"condition": "ok"}), ("quarantine", {}), ("release", {})],
}
FIELDS = {
    "receive": {"condition": "intact"},
    "hand_over": {"custodian": "tech2"},
    "ship": {"destination": "Clinic A"},
}


def _bring(client, tech, qa, barcode: str, coi: str, action: str) -> None:  # noqa: ANN001
    for step, fields in BEFORE[action]:
        if step == "receive":
            fields = {**fields, "coi": coi}
        r = move(client, qa if step == "release" else tech, barcode, step, **fields)
        assert r.status_code == 200, (step, r.json)


@pytest.mark.parametrize("action", list(BEFORE))
def test_an_episode_sample_scanned_with_another_coi_stops_opens_a_deviation_and_holds(
    app, client, auth, tech, action
) -> None:  # noqa: ANN001
    qa = auth("qa1")
    mine = new_episode(client, qa, tech, hospital_id="MRN-S1")
    other = new_episode(client, qa, tech, hospital_id="MRN-S2")
    _bring(client, tech, qa, mine["bag"], mine["coi"], action)
    was = client.get(f"/api/samples/{mine['bag']}", headers=tech).json
    count = audit_count(app)
    r = move(client, tech, mine["bag"], action, coi=other["coi"], **FIELDS[action])
    assert r.status_code == 422, r.json
    assert r.json["error"] == "coi_mismatch" and r.json["expected"] == mine["coi"]
    assert "COI MISMATCH - STOP" in r.json["message"] and other["coi"] in r.json["message"]
    number = r.json["deviation"]
    assert number in r.json["message"]
    # Nothing of the move happened; the refusal and the deviation are in the trail.
    now = client.get(f"/api/samples/{mine['bag']}", headers=tech).json
    assert (now["state"], now["version"]) == (was["state"], was["version"])
    with new_session(app.extensions["lims"]["engine"]) as db:
        new = db.exec(select(AuditEvent).where(AuditEvent.seq > count)).all()
    assert [e.action for e in new] == ["deviation.raise", "episode.coi_mismatch"]
    dev = client.get(f"/api/deviations/{number}", headers=qa).json
    assert (dev["severity"], dev["state"], dev["source"]) == ("critical", "open", "COI check")
    assert [x["ref"] for x in dev["links"]] == [mine["bag"]]
    ep = client.get(f"/api/episodes/{mine['number']}", headers=tech).json["episode"]
    assert ep["held_by"] == number
    # Held: even the right COI waits for QA's acknowledgement.
    r = move(client, tech, mine["bag"], action, coi=mine["coi"], **FIELDS[action])
    assert r.status_code == 422 and r.json["error"] == "episode_held"
    assert r.json["deviation"] == number
    r = client.post(
        f"/api/episodes/{mine['number']}/acknowledge",
        json={"reason": "label misread; bag checked against the record"},
        headers=qa,
    )
    assert r.status_code == 200, r.json
    r = move(client, tech, mine["bag"], action, coi=mine["coi"], **FIELDS[action])
    assert r.status_code == 200, r.json
    assert verify(app).ok


def test_an_episode_sample_changes_hands_only_with_its_coi_scanned(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = new_episode(client, qa, tech, hospital_id="MRN-S3")
    r = move(client, tech, ep["bag"], "receive", condition="intact")
    assert r.status_code == 422 and r.json["error"] == "missing_fields"
    assert r.json["missing"] == ["coi"] and ep["number"] in r.json["message"]
    assert client.get(f"/api/samples/{ep['bag']}", headers=tech).json["state"] == "registered"
    # Moves that do not change hands need no scan.
    assert (
        move(client, tech, ep["bag"], "receive", condition="ok", coi=ep["coi"]).status_code == 200
    )
    assert move(client, tech, ep["bag"], "quarantine").status_code == 200


def test_a_sample_of_no_episode_is_checked_against_its_own_coi_without_a_deviation(
    app, client, tech
) -> None:  # noqa: ANN001
    s = register(client, tech)
    other = register(client, tech)
    count = audit_count(app)
    r = move(client, tech, s["barcode"], "receive", condition="ok", coi=other["coi"])
    assert r.status_code == 422 and r.json["error"] == "coi_mismatch"
    assert "deviation" not in r.json
    assert audit_count(app) == count
    # No COI scanned: a sample of no episode is received as before.
    assert move(client, tech, s["barcode"], "receive", condition="ok").status_code == 200
