"""Patients and treatment episodes: who reads identifiers, the state table, one event per move,
the chain-of-identity timeline."""

from __future__ import annotations

import json
from datetime import date

from helpers import audit_count, move, race, verify
from sqlmodel import select
from therapy_util import DEMO_NAME, go, new_episode, new_patient, walk

from lims.db import new_session
from lims.identifiers import check_coi
from lims.models import AuditEvent


def _events(app, action: str) -> list[AuditEvent]:  # noqa: ANN001
    with new_session(app.extensions["lims"]["engine"]) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def test_qa_reads_identifiers_and_each_read_is_an_audit_event(app, client, auth) -> None:  # noqa: ANN001
    qa = auth("qa1")
    before = len(_events(app, "patient.identifiers_read"))
    r = client.get("/api/patients", headers=qa)
    assert r.status_code == 200, r.json
    names = {p["full_name"]: p for p in r.json["patients"]}
    assert names[DEMO_NAME]["hospital_id"] == "MRN-0042"
    reads = _events(app, "patient.identifiers_read")
    assert len(reads) == before + len(r.json["patients"])
    assert {e.entity_id for e in reads[before:]} == {p["coi"] for p in r.json["patients"]}
    assert all(e.actor == "qa1" for e in reads[before:])
    one = client.get(f"/api/patients/{names[DEMO_NAME]['coi']}", headers=auth("admin"))
    assert one.status_code == 200 and one.json["date_of_birth"] == "1971-03-14"
    assert _events(app, "patient.identifiers_read")[-1].actor == "admin"
    assert verify(app).ok


def test_others_see_only_the_coi(client, auth, tech) -> None:  # noqa: ANN001
    for who in ("tech1", "helix_viewer"):
        r = client.get("/api/patients", headers=auth(who))
        assert r.status_code == 403, r.json
    r = client.get("/api/episodes", headers=tech)
    assert r.status_code == 200
    ep = r.json["episodes"][0]
    assert check_coi(ep["coi"])
    text = json.dumps(r.json)
    assert DEMO_NAME not in text and "MRN-0042" not in text and "1971-03-14" not in text
    page = client.get(f"/api/episodes/{ep['number']}", headers=tech)
    assert page.status_code == 200
    assert DEMO_NAME not in json.dumps(page.json)


def test_the_trail_never_holds_a_patients_identifiers(app, client, auth) -> None:  # noqa: ANN001
    qa = auth("qa1")
    new_patient(client, qa, full_name="Robin Private", hospital_id="MRN-PRIV")
    client.get("/api/patients", headers=qa)
    with new_session(app.extensions["lims"]["engine"]) as db:
        for e in db.exec(select(AuditEvent)).all():
            blob = f"{e.before} {e.after} {e.reason}"
            assert "Robin Private" not in blob and "MRN-PRIV" not in blob
            assert DEMO_NAME not in blob


def test_registering_gives_a_coi_and_refuses_the_same_hospital_id_twice(client, auth) -> None:  # noqa: ANN001
    qa = auth("qa1")
    p = new_patient(client, qa, hospital_id="MRN-555")
    assert check_coi(p["coi"])
    again = client.post(
        "/api/patients",
        json={"full_name": "Pat Test", "date_of_birth": "1980-05-06", "hospital_id": "mrn-555"},
        headers=qa,
    )
    assert again.status_code == 409 and again.json["error"] == "patient_exists"
    assert again.json["coi"] == p["coi"]
    tech = client.post(
        "/api/patients",
        json={"full_name": "X", "date_of_birth": "1980-05-06", "hospital_id": "MRN-9"},
        headers=auth("tech1"),
    )
    assert tech.status_code == 403


def test_a_hospital_id_is_one_patient_per_organisation_even_when_two_register_at_once(
    app, client, auth
) -> None:  # noqa: ANN001
    qa = auth("qa1")
    body = {"full_name": "Sam Race", "date_of_birth": "1975-01-02", "hospital_id": "MRN-RACE"}

    def fire(c, i: int):  # noqa: ANN001, ANN202
        # The second in another case: the hospital id is one whatever its case.
        hid = body["hospital_id"] if i == 0 else body["hospital_id"].lower()
        return c.post("/api/patients", json={**body, "hospital_id": hid}, headers=qa)

    answers = race(app, fire, 2)
    assert sorted(r.status_code for r in answers) == [201, 409]
    made = next(r for r in answers if r.status_code == 201).json
    refused = next(r for r in answers if r.status_code == 409).json
    assert refused["error"] == "patient_exists" and refused["coi"] == made["coi"]
    assert made["coi"] in refused["message"]
    listed = client.get("/api/patients", headers=qa).json["patients"]
    assert [p["coi"] for p in listed if p["hospital_id"].upper() == "MRN-RACE"] == [made["coi"]]
    # Another hospital (organisation) may number its own patient the same.
    other = new_patient(client, qa, hospital_id="MRN-RACE", organisation="novacell")
    assert other["coi"] != made["coi"]


def test_the_database_refuses_a_second_registration_of_a_hospital_id(app, auth) -> None:  # noqa: ANN001
    from sqlalchemy.exc import IntegrityError

    from lims.therapy.models import Patient

    engine = app.extensions["lims"]["engine"]
    with new_session(engine) as db:
        org_id = db.exec(select(Patient.org_id)).first()
        for i, hid in enumerate(("MRN-DB1", "mrn-db1")):
            db.add(
                Patient(
                    coi=f"COI-DB-{i}",
                    org_id=org_id,
                    full_name="X",
                    date_of_birth=date(1970, 1, 1),
                    hospital_id=hid,
                )
            )
        try:
            db.commit()
            raise AssertionError("two patients with one hospital id were stored")
        except IntegrityError:
            db.rollback()


def test_whole_episode_each_move_one_audit_event(app, client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = new_episode(client, qa, tech)
    assert ep["state"] == "enrolled" and ep["allowed_actions"][0] == "schedule_collection"
    count = audit_count(app)
    out = walk(client, tech, qa, ep, until="infuse")
    assert out["state"] == "infused" and out["allowed_actions"] == []
    # Nine moves; the final product's registration, receipt, quarantine and its four results,
    # each reviewed, are eleven more; the bag's own custody moves with the episode (released
    # with it, shipped, received at the site, infused) are the last four.
    assert audit_count(app) == count + 9 + 11 + 4
    assert out["din_text"] == "G1234 98 654321 H"
    actions = [e.action for e in _events(app, "episode.infuse")]
    assert actions == ["episode.infuse"]
    assert verify(app).ok


def test_an_illegal_move_is_refused_with_the_allowed_ones(app, client, auth, tech) -> None:  # noqa: ANN001
    ep = new_episode(client, auth("qa1"), tech)
    count = audit_count(app)
    r = go(client, tech, ep["number"], "ship", bag=ep["bag"], coi=ep["coi"])
    assert r.status_code == 422 and r.json["error"] == "illegal_transition"
    assert r.json["allowed"] == ["schedule_collection", "cancel"]
    r = go(client, tech, ep["number"], "cancel")
    assert r.status_code == 422 and r.json["missing"] == ["reason"]
    r = go(client, tech, ep["number"], "teleport")
    assert r.status_code == 422 and r.json["error"] == "unknown_action"
    r = go(client, tech, ep["number"], "collect", bag=ep["bag"])
    assert r.status_code == 422
    assert audit_count(app) == count


def test_release_and_fail_need_qa(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = new_episode(client, qa, tech)
    walk(client, tech, qa, ep, until="submit_to_qc")
    r = go(client, tech, ep["number"], "release", din="G123498654321H", product_code="S0001")
    assert r.status_code == 403
    r = go(client, tech, ep["number"], "fail", reason="sterility failed")
    assert r.status_code == 403
    r = go(client, qa, ep["number"], "fail", reason="sterility failed")
    assert r.status_code == 200 and r.json["state"] == "failed"
    assert r.json["reason"] == "sterility failed"


def test_cancel_records_its_reason(app, client, auth, tech) -> None:  # noqa: ANN001
    ep = new_episode(client, auth("qa1"), tech)
    r = go(client, tech, ep["number"], "cancel", reason="patient withdrew consent")
    assert r.status_code == 200 and r.json["state"] == "cancelled"
    ev = _events(app, "episode.cancel")[-1]
    assert ev.reason == "patient withdrew consent" and ev.entity_id == ep["number"]
    assert go(client, tech, ep["number"], "collect").status_code == 422


def test_a_stale_version_is_a_conflict(client, auth, tech) -> None:  # noqa: ANN001
    ep = new_episode(client, auth("qa1"), tech)
    assert go(client, tech, ep["number"], "schedule_collection", version=1).status_code == 200
    r = go(client, tech, ep["number"], "collect", version=1)
    assert r.status_code == 409 and r.json["current_version"] == 2


def test_a_client_sees_no_other_organisations_episode(client, auth) -> None:  # noqa: ANN001
    viewer = auth("helix_viewer")
    r = client.get("/api/episodes", headers=viewer)
    assert r.status_code == 200 and r.json["episodes"] == []
    number = client.get("/api/episodes", headers=auth("qa1")).json["episodes"][0]["number"]
    r = client.get(f"/api/episodes/{number}", headers=viewer)
    assert r.status_code == 404 and r.json["error"] == "unknown_episode"


def test_enrolment_needs_a_registered_patient_and_their_organisations_project(
    client, auth, tech
) -> None:  # noqa: ANN001
    r = client.post(
        "/api/episodes", json={"coi": "COI-26-999999-Z", "project": "CART-001"}, headers=tech
    )
    assert r.status_code == 404 and r.json["error"] == "unknown_patient"
    p = new_patient(client, auth("qa1"), hospital_id="MRN-77")
    r = client.post("/api/episodes", json={"coi": p["coi"], "project": "HX-AAV9"}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "project_mismatch"
    r = client.post(
        "/api/episodes", json={"coi": p["coi"], "project": "HX-AAV9"}, headers=auth("helix_tech")
    )
    assert r.status_code == 403


def test_timeline_holds_the_episode_and_every_sample_of_its_coi(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = new_episode(client, qa, tech)
    walk(client, tech, qa, ep, until="receive")
    assert (
        move(client, tech, ep["bag"], "receive", condition="intact", coi=ep["coi"]).status_code
        == 200
    )
    r = client.get(f"/api/episodes/{ep['number']}", headers=tech)
    assert r.status_code == 200
    kinds = [(e["entity_type"], e["action"]) for e in r.json["timeline"]]
    assert kinds[0] == ("episode", "episode.enrol")
    assert ("sample", "sample.register") in kinds and ("sample", "sample.receive") in kinds
    assert ("episode", "episode.receive") in kinds
    seqs = [e["seq"] for e in r.json["timeline"]]
    assert seqs == sorted(seqs)
    assert [s["barcode"] for s in r.json["episode"]["samples"]] == [ep["bag"]]
