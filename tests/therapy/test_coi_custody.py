"""The COI check at every change of custody: a mismatch stops the move, says why, is recorded
and opens a critical deviation; nothing of the move is written."""

from __future__ import annotations

import pytest
from helpers import audit_count, move, register, verify
from sqlmodel import select
from therapy_util import go, new_episode, walk

from lims.db import new_session
from lims.models import AuditEvent

# The state an episode waits in for each custody move.
WAITING = {
    "receive": "collected",
    "ship": "released",
    "receive_at_site": "shipped",
    "infuse": "received_at_site",
}
STOPS = {
    "receive": "collect",
    "ship": "release",
    "receive_at_site": "ship",
    "infuse": "receive_at_site",
}


def _two(client, auth, tech) -> tuple[dict, dict]:  # noqa: ANN001
    qa = auth("qa1")
    return new_episode(client, qa, tech, hospital_id="MRN-A"), new_episode(
        client, qa, tech, hospital_id="MRN-B"
    )


@pytest.mark.parametrize("action", list(STOPS))
def test_another_patients_bag_is_refused_and_opens_a_deviation(
    app, client, auth, tech, action
) -> None:  # noqa: ANN001
    qa = auth("qa1")
    mine, other = _two(client, auth, tech)
    walk(client, tech, qa, mine, until=STOPS[action])
    fields = {"bag": other["bag"], "coi": mine["coi"]}
    if action == "infuse":
        fields["wristband"] = mine["coi"]
    count = audit_count(app)
    r = go(client, tech, mine["number"], action, **fields)
    assert r.status_code == 422, r.json
    assert r.json["error"] == "coi_mismatch"
    assert "COI MISMATCH - STOP" in r.json["message"] and other["bag"] in r.json["message"]
    assert r.json["expected"] == mine["coi"]
    number = r.json["deviation"]
    assert number in r.json["message"]
    # The move did not happen; the refusal and the deviation are recorded.
    now = client.get(f"/api/episodes/{mine['number']}", headers=tech).json["episode"]
    assert now["state"] == WAITING[action]
    dev = client.get(f"/api/deviations/{number}", headers=qa).json
    assert dev["severity"] == "critical" and dev["state"] == "open"
    assert dev["source"] == "COI check"
    assert [x["ref"] for x in dev["links"]] == [other["bag"]]
    with new_session(app.extensions["lims"]["engine"]) as db:
        new = db.exec(select(AuditEvent).where(AuditEvent.seq > count)).all()
    assert [e.action for e in new] == ["deviation.raise", "episode.coi_mismatch"]
    assert new[1].entity_id == mine["number"] and new[1].actor == "tech1"
    # Held until QA acknowledges: even the right bag does not move it on.
    held = client.get(f"/api/episodes/{mine['number']}", headers=tech).json["episode"]
    assert held["held_by"] == number
    fields["bag"] = mine["bag"]
    r = go(client, tech, mine["number"], action, **fields)
    assert r.status_code == 422 and r.json["error"] == "episode_held"
    assert r.json["deviation"] == number
    assert verify(app).ok


def test_a_label_coi_that_is_not_the_episodes_is_refused(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    mine, other = _two(client, auth, tech)
    walk(client, tech, qa, mine, until="collect")
    r = go(client, tech, mine["number"], "receive", bag=mine["bag"], coi=other["coi"])
    assert r.status_code == 422 and r.json["error"] == "coi_mismatch"
    assert "scanned from the label" in r.json["message"]
    assert (
        client.get(f"/api/episodes/{mine['number']}", headers=tech).json["episode"]["state"]
        == "collected"
    )


def test_the_wrong_wristband_stops_the_infusion(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    mine, other = _two(client, auth, tech)
    walk(client, tech, qa, mine, until="receive_at_site")
    r = go(
        client,
        tech,
        mine["number"],
        "infuse",
        bag=mine["bag"],
        coi=mine["coi"],
        wristband=other["coi"],
    )
    assert r.status_code == 422 and r.json["error"] == "coi_mismatch"
    assert "wristband" in r.json["message"]
    assert r.json["deviation"].startswith("DEV-")
    # Without the wristband the bedside move is not even tried.
    r = go(client, tech, mine["number"], "infuse", bag=mine["bag"], coi=mine["coi"])
    assert r.status_code == 422 and r.json["missing"] == ["wristband"]
    ack = {"reason": "wristband of the next bed scanned; patient identified again"}
    r = client.post(f"/api/episodes/{mine['number']}/acknowledge", json=ack, headers=qa)
    assert r.status_code == 200
    ok = go(
        client,
        tech,
        mine["number"],
        "infuse",
        bag=mine["bag"],
        coi=mine["coi"],
        wristband=mine["coi"],
    )
    assert ok.status_code == 200 and ok.json["state"] == "infused"


def test_an_unknown_or_hidden_bag_is_not_found_and_opens_nothing(app, client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    mine, _ = _two(client, auth, tech)
    walk(client, tech, qa, mine, until="collect")
    count = audit_count(app)
    r = go(client, tech, mine["number"], "receive", bag="S26-999999-X", coi=mine["coi"])
    assert r.status_code == 404 and r.json["error"] == "unknown_sample"
    assert audit_count(app) == count


def test_another_organisations_bag_is_refused_without_naming_its_patient(
    client, auth, tech
) -> None:  # noqa: ANN001
    qa = auth("qa1")
    mine, _ = _two(client, auth, tech)
    walk(client, tech, qa, mine, until="collect")
    helix = register(client, auth("helix_tech"), sample_type="PLASMID", project="HX-AAV9")
    r = go(client, tech, mine["number"], "receive", bag=helix["barcode"], coi=mine["coi"])
    assert r.status_code == 422 and r.json["error"] == "coi_mismatch"
    assert "another organisation's material" in r.json["message"]
    assert helix["coi"] not in r.json["message"]
    dev = client.get(f"/api/deviations/{r.json['deviation']}", headers=qa).json
    assert dev["links"] == [] and dev["organisation"] == "centre"
    assert helix["coi"] not in dev["description"]


def test_a_disposed_bag_cannot_change_hands(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    mine, _ = _two(client, auth, tech)
    walk(client, tech, qa, mine, until="collect")
    assert move(client, tech, mine["bag"], "dispose", reason="bag leaked").status_code == 200
    r = go(client, tech, mine["number"], "receive", bag=mine["bag"], coi=mine["coi"])
    assert r.status_code == 422 and r.json["error"] == "bag_unusable"


def test_qa_acknowledges_the_mismatch_and_the_episode_moves_on(app, client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    mine, other = _two(client, auth, tech)
    walk(client, tech, qa, mine, until="collect")
    r = go(client, tech, mine["number"], "receive", bag=other["bag"], coi=mine["coi"])
    number = r.json["deviation"]
    url = f"/api/episodes/{mine['number']}/acknowledge"
    assert client.post(url, json={"reason": "checked"}, headers=tech).status_code == 403
    r = client.post(url, json={"reason": " "}, headers=qa)
    assert r.status_code in (400, 422)
    count = audit_count(app)
    r = client.post(
        url, json={"reason": "wrong bag picked from the rack; right one found"}, headers=qa
    )
    assert r.status_code == 200 and r.json["held_by"] is None
    assert audit_count(app) == count + 1
    assert client.post(url, json={"reason": "again"}, headers=qa).json["error"] == "not_held"
    r = go(client, tech, mine["number"], "receive", bag=mine["bag"], coi=mine["coi"])
    assert r.status_code == 200 and r.json["state"] == "received"
    # The deviation stays open for its investigation.
    assert client.get(f"/api/deviations/{number}", headers=qa).json["state"] == "open"


def test_a_held_episode_can_still_be_cancelled(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    mine, other = _two(client, auth, tech)
    walk(client, tech, qa, mine, until="collect")
    go(client, tech, mine["number"], "receive", bag=other["bag"], coi=mine["coi"])
    r = go(client, tech, mine["number"], "cancel", reason="identity not restorable")
    assert r.status_code == 200 and r.json["state"] == "cancelled"
