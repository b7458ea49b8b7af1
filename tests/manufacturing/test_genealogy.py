"""Genealogy: materials into vector lots (released, in date only), where used, made from."""

from __future__ import annotations

from datetime import date

from helpers import audit_count, register, verify
from mfg_util import gs1, receive, released_material, set_up_kind
from sqlmodel import select

from lims.accounts import users
from lims.db import new_session
from lims.errors import Refused
from lims.manufacturing import genealogy
from lims.models import User


def new_lot(client, headers, number: str, project: str = "CART-001") -> dict:  # noqa: ANN001
    body = {
        "lot_number": number,
        "vector_type": "AAV",
        "vector": "AAV9-CMV-GFP",
        "project": project,
    }
    r = client.post("/api/lots", json=body, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


def use(client, headers, into: str, **body):  # noqa: ANN001, ANN003, ANN201
    return client.post(f"/api/lots/{into}/inputs", json=body, headers=headers)


def test_released_material_goes_into_a_lot_with_one_event_on_the_lots_trail(app, client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    tech = auth("tech1")
    code = released_material(client, auth)
    new_lot(client, tech, "UP-1")
    before = audit_count(app)
    r = use(client, tech, "UP-1", material=code, quantity=500, unit="mL")
    assert r.status_code == 201, r.json
    (got,) = r.json["inputs"]
    assert (got["kind"], got["ref"], got["quantity"], got["recorded_by"]) == (
        "material",
        code,
        500,
        "tech1",
    )
    assert audit_count(app) == before + 1
    trail = client.get("/api/audit?lot=UP-1", headers=auth("qa1"))
    assert trail.status_code == 200, trail.json
    assert "lot.input" in {e["action"] for e in trail.json["events"]}
    assert verify(app).ok


def test_material_in_quarantine_or_rejected_is_refused_saying_why(app, client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    tech = auth("tech1")
    new_lot(client, tech, "UP-2")
    code = receive(client, auth, gs1("Q1")).json["code"]
    before = audit_count(app)
    r = use(client, tech, "UP-2", material=code)
    assert (r.status_code, r.json["error"]) == (422, "material_unusable")
    assert "quarantine" in r.json["message"] and "UP-2" in r.json["message"]
    assert audit_count(app) == before
    assert client.get("/api/lots/UP-2/inputs", headers=tech).json["inputs"] == []


def test_expired_material_is_refused_at_use_with_its_date(app, client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    tech = auth("tech1")
    code = released_material(client, auth)
    new_lot(client, tech, "UP-3")
    with new_session(app.extensions["lims"]["engine"]) as db:
        actor = users.actor_for(db, db.exec(select(User).where(User.username == "tech1")).one())
        try:
            genealogy.consume(
                db,
                lot_number="UP-3",
                data=genealogy.ConsumeIn(material=code),
                actor=actor,
                today=date(2028, 12, 1),
            )
        except Refused as err:
            assert err.code == "material_unusable"
            assert "expired on 2028-11-30" in err.message
        else:
            raise AssertionError("expired material was accepted")


def test_a_closed_lot_takes_no_inputs(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    code = released_material(client, auth)
    r = use(client, auth("tech1"), "AAV9-2611-001", material=code)  # demo lot in quarantine
    assert (r.status_code, r.json["error"]) == (422, "illegal_state")


def test_where_used_finds_every_lot_and_vial_down_the_chain_and_made_from_goes_up(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    tech = auth("tech1")
    plasmid = released_material(client, auth, lot="PL-1")
    medium = released_material(client, auth, lot="MED-1")
    for n in ("HARV-1", "PUR-1", "FILL-1", "OTHER-1"):
        new_lot(client, tech, n)
    assert use(client, tech, "HARV-1", material=plasmid).status_code == 201
    assert use(client, tech, "HARV-1", material=medium).status_code == 201
    assert use(client, tech, "PUR-1", lot="HARV-1").status_code == 201
    assert use(client, tech, "FILL-1", lot="PUR-1").status_code == 201
    assert use(client, tech, "OTHER-1", material=medium).status_code == 201
    vials = [register(client, tech, lot="FILL-1")["barcode"] for _ in range(2)]
    got = client.get(f"/api/materials/{plasmid}/where-used", headers=tech).json
    assert [x["lot_number"] for x in got["lots"]] == ["FILL-1", "HARV-1", "PUR-1"]
    assert sorted(v["barcode"] for v in got["vials"]) == sorted(vials)
    got = client.get(f"/api/materials/{medium}/where-used", headers=tech).json
    assert [x["lot_number"] for x in got["lots"]] == ["FILL-1", "HARV-1", "OTHER-1", "PUR-1"]
    up = client.get("/api/lots/FILL-1/made-from", headers=tech).json
    assert sorted(m["material"] for m in up["materials"]) == sorted([plasmid, medium])
    assert [x["lot_number"] for x in up["lots"]] == ["HARV-1", "PUR-1"]
    down = client.get("/api/lots/HARV-1/where-used", headers=tech).json
    assert [x["lot_number"] for x in down["lots"]] == ["FILL-1", "PUR-1"]


def test_a_lot_cannot_be_made_from_itself(client, auth):  # noqa: ANN001
    tech = auth("tech1")
    new_lot(client, tech, "A-1")
    new_lot(client, tech, "B-1")
    assert use(client, tech, "B-1", lot="A-1").status_code == 201
    r = use(client, tech, "A-1", lot="B-1")
    assert (r.status_code, r.json["error"]) == (422, "genealogy_cycle")
    r = use(client, tech, "A-1", lot="A-1")
    assert (r.status_code, r.json["error"]) == (422, "genealogy_cycle")


def test_one_input_at_a_time(client, auth):  # noqa: ANN001
    tech = auth("tech1")
    new_lot(client, tech, "C-1")
    r = use(client, tech, "C-1")
    assert (r.status_code, r.json["error"]) == (422, "bad_input")


def test_a_client_sees_no_other_organisations_lot_in_where_used(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    tech = auth("tech1")
    code = released_material(client, auth)
    new_lot(client, tech, "CEN-1")
    new_lot(client, tech, "HX-1", project="HX-AAV9")
    use(client, tech, "CEN-1", material=code)
    use(client, tech, "HX-1", material=code)
    got = client.get(f"/api/materials/{code}/where-used", headers=tech).json
    assert [x["lot_number"] for x in got["lots"]] == ["CEN-1", "HX-1"]
    assert client.get("/api/lots/CEN-1/made-from", headers=auth("helix_viewer")).status_code == 404
    r = client.get("/api/lots/HX-1/made-from", headers=auth("helix_viewer"))
    assert r.status_code == 200 and r.json["lots"] == []


def test_material_is_used_by_scanning_its_supplier_barcode_and_refused_at_the_scan(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    tech = auth("tech1")
    good = released_material(client, auth, lot="GS-1", serial="9")
    receive(client, auth, gs1("GS-2"))
    new_lot(client, tech, "SCAN-1")
    r = use(client, tech, "SCAN-1", material=gs1("GS-2"))
    assert (r.status_code, r.json["error"]) == (422, "material_unusable")
    assert "quarantine" in r.json["message"]
    r = use(client, tech, "SCAN-1", material=gs1("GS-3"))
    assert (r.status_code, r.json["error"]) == (404, "unknown_material")
    r = use(client, tech, "SCAN-1", material=gs1("GS-1", serial="9"))
    assert r.status_code == 201, r.json
    assert r.json["inputs"][0]["ref"] == good
