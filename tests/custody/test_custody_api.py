"""Sample custody through the API: the table, its guards, errors that write nothing."""

from __future__ import annotations

import pytest
from helpers import audit_count, move, register, verify
from sqlmodel import select

from lims.accounts import admin as account_admin
from lims.accounts import users
from lims.db import new_session
from lims.models import User


@pytest.fixture
def qa(auth):
    return auth("qa1")


def test_a_sample_moves_through_its_states_and_history_reads_back(client, tech, qa, app):
    s = register(client, tech)
    assert s["state"] == "registered" and s["version"] == 1
    assert s["barcode"].startswith("S26-") or s["barcode"][0] == "S"
    b = s["barcode"]
    assert move(client, tech, b, "receive", condition="cold, intact", version=1).json["state"] == (
        "received"
    )
    assert move(client, tech, b, "quarantine").json["state"] == "quarantine"
    assert move(client, qa, b, "release").json["state"] == "available"
    r = move(client, tech, b, "store", location="BOX-0002", position="C4")
    assert (r.json["location"], r.json["position"]) == ("BOX-0002", "C4")
    r = move(client, tech, b, "check_out", custodian="tech1")
    assert r.json["state"] == "in_use" and r.json["custodian"] == "tech1"
    assert r.json["location"] is None and r.json["freeze_thaw_count"] == 1
    r = move(client, tech, b, "consume")
    assert r.json["state"] == "consumed" and r.json["allowed_actions"] == []

    hist = client.get(f"/api/samples/{b}/history", headers=tech).json["events"]
    assert [e["action"] for e in hist] == [
        "sample.register",
        "sample.receive",
        "sample.quarantine",
        "sample.release",
        "sample.store",
        "sample.check_out",
        "sample.consume",
    ]
    assert [e["seq"] for e in hist] == sorted(e["seq"] for e in hist)
    assert hist[1]["before"]["state"] == "registered" and hist[1]["after"]["state"] == "received"
    assert hist[3]["actor"] == "qa1"
    assert verify(app).ok


def test_illegal_move_is_422_with_the_allowed_moves_and_writes_nothing(client, tech, app):
    b = register(client, tech)["barcode"]
    before = audit_count(app)
    r = move(client, tech, b, "check_out", custodian="tech1")
    assert r.status_code == 422
    assert r.json["error"] == "illegal_transition"
    assert r.json["allowed"] == ["receive", "dispose", "reject"]
    assert audit_count(app) == before
    assert client.get(f"/api/samples/{b}", headers=tech).json["version"] == 1


@pytest.mark.parametrize(
    ("action", "missing"),
    [("receive", ["condition"]), ("dispose", ["reason"]), ("reject", ["reason"])],
)
def test_missing_required_field_is_422(client, tech, action, missing, app):
    b = register(client, tech)["barcode"]
    before = audit_count(app)
    r = move(client, tech, b, action)
    assert r.status_code == 422 and r.json["missing"] == missing
    assert audit_count(app) == before


def test_release_from_quarantine_needs_qa(client, tech, app):
    b = register(client, tech)["barcode"]
    move(client, tech, b, "receive", condition="ok")
    move(client, tech, b, "quarantine")
    r = move(client, tech, b, "release")
    assert r.status_code == 403 and r.json["error"] == "role_required"


def test_client_viewer_cannot_register_and_sees_only_its_organisation(client, auth, tech):
    viewer = auth("helix_viewer")
    r = client.post(
        "/api/samples", json={"sample_type": "PBMC", "project": "HX-AAV9"}, headers=viewer
    )
    assert r.status_code == 403
    centre_sample = register(client, tech)["barcode"]
    assert client.get(f"/api/samples/{centre_sample}", headers=viewer).status_code == 404
    listed = client.get("/api/samples", headers=viewer).json["samples"]
    assert listed and {s["organisation"] for s in listed} == {"helix-bio"}
    other = client.get("/api/samples?lot=LV-2611-002", headers=auth("admin")).json["samples"][0]
    r = client.get(f"/api/samples/{other['barcode']}", headers=viewer)
    assert r.status_code == 404 and r.json["error"] == "unknown_sample"
    assert client.get(f"/api/samples/{other['barcode']}/history", headers=viewer).status_code == 404


def test_client_technician_cannot_touch_another_organisations_sample(client, auth, tech):
    b = register(client, tech)["barcode"]
    helix = auth("helix_tech")
    r = move(client, helix, b, "receive", condition="ok")
    assert r.status_code == 404


def test_stale_version_is_409_and_writes_nothing(client, tech, app):
    b = register(client, tech)["barcode"]
    move(client, tech, b, "receive", condition="ok", version=1)
    before = audit_count(app)
    r = move(client, tech, b, "quarantine", version=1)
    assert r.status_code == 409 and r.json["current_version"] == 2
    assert audit_count(app) == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('{"action": "receive", ', 400),
        ("[1, 2]", 400),
        ('{"action": 7}', 400),
        ('{"action": "receive", "version": "two"}', 400),
        ('{"action": "receive", "colour": "red"}', 400),
        ("{}", 400),
    ],
)
def test_malformed_bodies_are_400_json(client, tech, app, body, status):
    b = register(client, tech)["barcode"]
    before = audit_count(app)
    r = client.post(
        f"/api/samples/{b}/transitions",
        data=body,
        headers={**tech, "Content-Type": "application/json"},
    )
    assert r.status_code == status
    assert r.is_json and r.json["error"] == "malformed" and r.json["message"]
    assert audit_count(app) == before


def test_oversized_payload_is_413_json(client, tech):
    r = client.post(
        "/api/samples",
        data='{"sample_type": "' + "x" * (2 * 1024 * 1024) + '"}',
        headers={**tech, "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json["error"] == "payload_too_large"


def test_unknown_things_are_404(client, tech):
    assert move(client, tech, "S26-999999-X", "receive", condition="ok").status_code == 404
    r = client.post(
        "/api/samples", json={"sample_type": "NOPE", "project": "CART-001"}, headers=tech
    )
    assert r.status_code == 404 and r.json["error"] == "unknown_sample_type"
    b = register(client, tech)["barcode"]
    move(client, tech, b, "receive", condition="ok")
    r = move(client, tech, b, "store", location="BOX-9999")
    assert r.status_code == 404 and r.json["error"] == "unknown_location"


def test_no_token_is_401_and_a_bad_token_is_401(client):
    assert client.get("/api/samples").status_code == 401
    r = client.get("/api/samples", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json["error"] == "unauthorized"


def test_storing_fills_the_next_free_position_and_refuses_an_occupied_one(client, tech):
    a = register(client, tech)["barcode"]
    b = register(client, tech)["barcode"]
    for x in (a, b):
        move(client, tech, x, "receive", condition="ok")
    r1 = move(client, tech, a, "store", location="BOX-0003")
    assert r1.json["position"] == "A1"
    r2 = move(client, tech, b, "store", location="BOX-0003", position="A1")
    assert r2.status_code == 422 and r2.json["error"] == "position_occupied"
    assert move(client, tech, b, "store", location="BOX-0003", position="J1").status_code == 422
    assert move(client, tech, b, "store", location="BOX-0003").json["position"] == "A2"
    grid = client.get("/api/locations/BOX-0003", headers=tech).json
    assert grid["positions"] == {"A1": a, "A2": b}


def test_aliquots_inherit_coi_lot_and_take_the_parents_volume(client, tech, qa, app):
    parent = register(client, tech, volume=10)
    b = parent["barcode"]
    move(client, tech, b, "receive", condition="ok")
    move(client, tech, b, "quarantine")
    move(client, qa, b, "release")
    move(client, tech, b, "store", location="BOX-0002")
    body = {"count": 4, "volume": 2, "unit": "mL"}
    r = client.post(f"/api/samples/{b}/aliquots", json=body, headers=tech)
    assert r.status_code == 422 and "check it out first" in r.json["message"]
    move(client, tech, b, "check_out", custodian="tech1")
    # Out of the -80 box into the hand: one thaw.
    assert client.get(f"/api/samples/{b}", headers=tech).json["freeze_thaw_count"] == 1
    r = client.post(f"/api/samples/{b}/aliquots", json=body, headers=tech)
    assert r.status_code == 201
    kids = r.json["aliquots"]
    assert len(kids) == 4
    # Made at the bench and not stored: in the operator's hands, not "available" nowhere.
    assert {(k["state"], k["custodian"], k["location"]) for k in kids} == {
        ("in_use", "tech1", None)
    }
    assert {k["coi"] for k in kids} == {parent["coi"]}
    assert {k["parent"] for k in kids} == {b} and {k["lineage"] for k in kids} == {"aliquot"}
    assert client.get(f"/api/samples/{b}", headers=tech).json["volume"] == pytest.approx(2)
    r = client.post(
        f"/api/samples/{b}/aliquots", json={"count": 2, "volume": 2, "unit": "mL"}, headers=tech
    )
    assert r.status_code == 422 and r.json["error"] == "insufficient_volume"
    r = client.post(
        f"/api/samples/{b}/aliquots",
        json={"count": 2, "volume": 0.5, "unit": "mL", "location": "BOX-0003"},
        headers=tech,
    )
    stored = r.json["aliquots"]
    assert [(k["state"], k["location"], k["position"], k["custodian"]) for k in stored] == [
        ("available", "BOX-0003", "A1", None),
        ("available", "BOX-0003", "A2", None),
    ]
    gen = client.get(f"/api/samples/{kids[0]['barcode']}/genealogy", headers=tech).json
    assert [a["barcode"] for a in gen["ancestors"]] == [b]
    tree = client.get(f"/api/samples/{b}/genealogy", headers=tech).json["tree"]
    assert sorted(c["barcode"] for c in tree["children"]) == sorted(
        k["barcode"] for k in kids + stored
    )
    # A derivative of an aliquot keeps the COI; claiming another COI is refused.
    d = register(client, tech, parent=kids[0]["barcode"], sample_type="TCELL")
    assert d["coi"] == parent["coi"] and d["lineage"] == "derivative"
    r = client.post(
        "/api/samples",
        json={"sample_type": "TCELL", "parent": kids[0]["barcode"], "coi": "COI-26-999999-X"},
        headers=tech,
    )
    assert r.status_code == 422 and r.json["error"] == "coi_mismatch"
    assert verify(app).ok


def test_hand_over_checks_the_chain_of_identity(client, tech, qa, app):
    s = register(client, tech)
    b = s["barcode"]
    move(client, tech, b, "receive", condition="ok")
    move(client, tech, b, "quarantine")
    move(client, qa, b, "release")
    move(client, tech, b, "check_out", custodian="tech1")
    before = audit_count(app)
    r = move(client, tech, b, "hand_over", custodian="tech2", coi="COI-26-000001-X")
    assert r.status_code == 422 and r.json["error"] == "coi_mismatch"
    assert audit_count(app) == before
    r = move(client, tech, b, "hand_over", custodian="tech2", coi=s["coi"])
    assert r.status_code == 200 and r.json["custodian"] == "tech2"


def test_a_vial_of_an_unreleased_lot_cannot_go_in_use(client, auth):
    admin = auth("admin")
    vial = client.get("/api/samples?lot=AAV9-2611-001", headers=admin).json["samples"][0]
    helix = auth("helix_tech")
    b = vial["barcode"]
    assert move(client, helix, b, "quarantine").status_code == 200
    assert move(client, auth("qa1"), b, "release").status_code == 200
    r = move(client, helix, b, "check_out", custodian="helix_tech")
    assert r.status_code == 422 and r.json["error"] == "lot_not_released"
    # A vial of the released LV lot can.
    lv = client.get("/api/samples?lot=LV-2611-002", headers=admin).json["samples"][0]["barcode"]
    move(client, admin, lv, "quarantine")
    move(client, auth("qa1"), lv, "release")
    r = move(client, admin, lv, "check_out", custodian="tech1")
    assert r.status_code == 200 and r.json["state"] == "in_use"


def test_a_rack_is_received_in_one_request_or_not_at_all(client, tech, app):
    barcodes = [register(client, tech)["barcode"] for _ in range(12)]
    before = audit_count(app)
    body = {
        "action": "receive",
        "condition": "rack on dry ice",
        "location": "BOX-0002",
        "samples": [{"barcode": b} for b in barcodes],
    }
    bad = {**body, "samples": body["samples"] + [{"barcode": "S26-999999-X"}]}
    assert client.post("/api/transitions", json=bad, headers=tech).status_code == 404
    assert audit_count(app) == before
    r = client.post("/api/transitions", json=body, headers=tech)
    assert r.status_code == 200
    assert [s["position"] for s in r.json["samples"]][:3] == ["A1", "A2", "A3"]
    assert audit_count(app) == before + 12
    dup = {
        **body,
        "action": "quarantine",
        "location": None,
        "condition": None,
        "samples": [{"barcode": barcodes[0]}, {"barcode": barcodes[0]}],
    }
    r = client.post("/api/transitions", json=dup, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "duplicate_barcode"


def test_openapi_lists_the_contract(client):
    spec = client.get("/openapi.json").json
    for path in (
        "/api/samples",
        "/api/samples/{barcode}/transitions",
        "/api/samples/{barcode}/aliquots",
        "/api/lots/{lot}/transitions",
        "/api/audit",
        "/api/audit/verify",
        "/api/audit/export.csv",
    ):
        assert path in spec["paths"], path


def _available(client, tech, qa, **fields) -> str:
    b = register(client, tech, **fields)["barcode"]
    move(client, tech, b, "receive", condition="ok")
    move(client, tech, b, "quarantine")
    move(client, qa, b, "release")
    return b


def test_check_in_needs_a_place_and_storing_ends_custody(client, tech, qa):
    b = _available(client, tech, qa)
    move(client, tech, b, "check_out", custodian="tech1")
    r = move(client, tech, b, "check_in")
    assert r.status_code == 422 and r.json["missing"] == ["location"]
    r = move(client, tech, b, "check_in", location="BOX-0002")
    assert (r.json["state"], r.json["location"], r.json["custodian"]) == (
        "available",
        "BOX-0002",
        None,
    )
    c = register(client, tech)["barcode"]
    move(client, tech, c, "receive", condition="ok")
    move(client, tech, c, "quarantine")
    r = move(client, tech, c, "store", location="BOX-0002")
    assert r.json["custodian"] is None


def test_hand_over_to_the_holder_and_to_the_system_account_are_refused(client, tech, qa):
    s = register(client, tech)
    b = s["barcode"]
    move(client, tech, s["barcode"], "receive", condition="ok")
    move(client, tech, b, "quarantine")
    move(client, qa, b, "release")
    assert move(client, tech, b, "check_out", custodian="system").status_code == 404
    move(client, tech, b, "check_out", custodian="tech1")
    r = move(client, tech, b, "hand_over", custodian="tech1", coi=s["coi"])
    assert r.status_code == 422 and r.json["error"] == "no_change"


def test_an_occupied_position_does_not_name_another_organisations_tube(client, auth):
    admin, helix = auth("admin"), auth("helix_tech")
    nova = client.get("/api/samples?lot=LV-2611-002", headers=admin).json["samples"][0]
    helix_vial = client.get("/api/samples?lot=AAV9-2611-001", headers=admin).json["samples"][0]
    move(client, helix, helix_vial["barcode"], "quarantine")
    r = move(
        client,
        helix,
        helix_vial["barcode"],
        "store",
        location=nova["location"],
        position=nova["position"],
    )
    assert r.status_code == 422 and r.json["error"] == "position_occupied"
    assert nova["barcode"] not in r.json["message"] and "holder" not in r.json
    r = move(
        client,
        admin,
        helix_vial["barcode"],
        "store",
        location=nova["location"],
        position=nova["position"],
    )
    assert r.json["holder"] == nova["barcode"]  # the centre sees whose tube it is


def test_a_viewer_is_refused_for_its_role_before_anything_about_the_sample(client, auth):
    vial = client.get("/api/samples?lot=AAV9-2611-001", headers=auth("admin")).json["samples"][0]
    r = move(client, auth("helix_viewer"), vial["barcode"], "consume")
    assert r.status_code == 403 and r.json["error"] == "role_required"


def test_a_given_coi_must_be_well_formed_and_not_another_organisations(client, auth, tech):
    helix = auth("helix_tech")
    nova = client.get("/api/samples?lot=LV-2611-002", headers=auth("admin")).json["samples"][0]
    body = {"sample_type": "PLASMID", "project": "HX-AAV9"}
    for coi, code in (
        ("COI-26-000001-A", "bad_coi"),
        ("hello world", "bad_coi"),
        (nova["coi"], "coi_refused"),
    ):
        r = client.post("/api/samples", json={**body, "coi": coi}, headers=helix)
        assert r.status_code == 422 and r.json["error"] == code, (coi, r.json)
    own = register(client, tech)["coi"]  # a second collection from the same patient is fine
    r = client.post(
        "/api/samples",
        json={"sample_type": "APHERESIS", "project": "CART-001", "coi": own},
        headers=tech,
    )
    assert r.status_code == 201 and r.json["coi"] == own
    r = client.post(
        "/api/samples",
        json={**body, "coi": "W1234ABC00123", "coi_scheme": "isbt128"},
        headers=helix,
    )
    assert r.status_code == 201


def _in_hand_of(client, tech, qa) -> str:  # noqa: ANN001
    """Return the barcode of a released sample checked out to tech1."""
    b = register(client, tech)["barcode"]
    move(client, tech, b, "receive", condition="ok")
    move(client, tech, b, "quarantine")
    move(client, qa, b, "release")
    assert move(client, tech, b, "check_out", custodian="tech1").status_code == 200
    return b


def test_only_an_active_person_who_may_hold_the_material_becomes_its_custodian(
    client, tech, qa, app
):
    b = _in_hand_of(client, tech, qa)
    with new_session(app.extensions["lims"]["engine"]) as db:
        account_admin.disable_user(
            db,
            username="tech2",
            reason="left the centre",
            actor=users.actor_for(db, db.exec(select(User).where(User.username == "admin")).one()),
        )
        db.commit()
    before = audit_count(app)
    for custodian, status, error in (
        ("nobody", 404, "unknown_user"),
        ("tech2", 404, "unknown_user"),  # disabled
        ("system", 404, "unknown_user"),
        ("nova_viewer", 422, "refused"),  # another organisation's person
        ("tech1", 422, "no_change"),  # holds it already
    ):
        r = move(client, tech, b, "hand_over", custodian=custodian, coi=_coi(client, tech, b))
        assert (r.status_code, r.json["error"]) == (status, error), (custodian, r.json)
    assert audit_count(app) == before
    # Unknown barcode with a real custodian: the sample is what is missing.
    r = move(client, tech, "S26-999999", "check_out", custodian="tech1")
    assert (r.status_code, r.json["error"]) == (404, "unknown_sample")
    r = move(client, tech, b, "hand_over", custodian="qa1", coi=_coi(client, tech, b))
    assert r.status_code == 200 and r.json["custodian"] == "qa1"
    assert audit_count(app) == before + 1 and verify(app).ok


def _coi(client, tech, b: str) -> str:  # noqa: ANN001
    return client.get(f"/api/samples/{b}", headers=tech).json["coi"]
