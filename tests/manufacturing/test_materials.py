"""Material lots: received by the supplier's GS1 barcode into quarantine, released by QA."""

from __future__ import annotations

import pytest
from helpers import audit_count, verify
from mfg_util import GS, GTIN, PASSWORD, gs1, receive, release, set_up_kind


def test_a_gs1_scan_receives_a_material_lot_into_quarantine(app, client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    auth("tech1")  # its token's event comes before the count
    before = audit_count(app)
    r = receive(client, auth, gs1("AB-123", serial="SN0001"))
    assert r.status_code == 201, r.json
    m = r.json
    assert m["code"].startswith("MAT-")
    assert (m["kind"], m["gtin"], m["supplier_lot"], m["serial"]) == (
        "DMEM-500",
        GTIN,
        "AB-123",
        "SN0001",
    )
    assert (m["expires_on"], m["state"], m["received_by"]) == ("2028-11-30", "quarantine", "tech1")
    assert "quarantine" in m["unusable_because"]
    assert audit_count(app) == before + 1
    assert client.get(f"/api/materials/{m['code'].lower()}", headers=auth("tech1")).json == m


def test_an_expiry_with_day_00_is_the_last_day_of_that_month(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    r = receive(client, auth, gs1("L-FEB", expiry="280200"))
    assert r.status_code == 201, r.json
    assert r.json["expires_on"] == "2028-02-29"  # 2028 is a leap year


def test_a_gtin_with_a_wrong_check_digit_is_refused_as_a_misread(app, client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    auth("tech1")  # its token's event comes before the count
    before = audit_count(app)
    r = receive(client, auth, gs1("L1", gtin="09506000134353"))
    assert (r.status_code, r.json["error"]) == (422, "gs1_unreadable")
    assert "check digit" in r.json["message"]
    assert audit_count(app) == before


def test_a_variable_length_lot_ends_at_the_gs_separator(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    # Lot first, ended by GS, then the expiry: the lot is exactly what precedes the GS.
    data = f"]d201{GTIN}10LOT7{GS}17281130{GS}21S-9"
    r = receive(client, auth, data)
    assert r.status_code == 201, r.json
    assert (r.json["supplier_lot"], r.json["expires_on"], r.json["serial"]) == (
        "LOT7",
        "2028-11-30",
        "S-9",
    )


def test_without_the_gs_the_lot_swallows_the_expiry_and_receipt_says_what_is_missing(
    app,
    client,
    auth,  # noqa: ANN001
):
    set_up_kind(client, auth)
    auth("tech1")  # its token's event comes before the count
    before = audit_count(app)
    r = receive(client, auth, f"]d201{GTIN}10LOT717281130")
    assert (r.status_code, r.json["error"]) == (422, "gs1_incomplete")
    assert r.json["missing"] == ["expiry"] and "(AI 17)" in r.json["message"]
    assert audit_count(app) == before


def test_an_unknown_gtin_names_how_to_set_it_up(client, auth):  # noqa: ANN001
    r = receive(client, auth, gs1("L1"))
    assert (r.status_code, r.json["error"]) == (422, "unknown_gtin")
    assert GTIN in r.json["message"] and "material-kind" in r.json["message"]


def test_the_same_item_is_received_once(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    first = receive(client, auth, gs1("L1", serial="1"))
    assert first.status_code == 201
    again = receive(client, auth, gs1("L1", serial="1"))
    assert (again.status_code, again.json["error"]) == (409, "already_received")
    assert first.json["code"] in again.json["message"]
    other = receive(client, auth, gs1("L1", serial="2"))
    assert other.status_code == 201


def test_expired_material_is_not_received(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    r = receive(client, auth, gs1("OLD", expiry="200100"))
    assert (r.status_code, r.json["error"]) == (422, "material_expired")
    assert "2020-01-31" in r.json["message"]


def test_qa_releases_with_a_signature_and_not_what_they_received_themselves(app, client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    code = receive(client, auth, gs1("L1")).json["code"]
    r = release(client, auth, code, who="tech1")
    assert (r.status_code, r.json["error"]) == (403, "role_required")
    r = client.post(
        f"/api/materials/{code}/transitions", json={"action": "release"}, headers=auth("qa1")
    )
    assert (r.status_code, r.json["error"]) == (422, "signature_required")
    r = release(client, auth, code)
    assert r.status_code == 200, r.json
    assert (r.json["state"], r.json["released_by"]) == ("released", "qa1")
    assert r.json["signature"]["meaning"] == "release"
    assert r.json["unusable_because"] is None
    mine = receive(client, auth, gs1("L2"), who="qa1").json["code"]
    r = release(client, auth, mine)
    assert (r.status_code, r.json["error"]) == (422, "four_eyes")
    assert verify(app).ok


def test_reject_needs_a_reason_and_is_final(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    code = receive(client, auth, gs1("L1")).json["code"]
    sig = {"password": PASSWORD, "meaning": "rejection"}
    url = f"/api/materials/{code}/transitions"
    r = client.post(url, json={"action": "reject", "signature": sig}, headers=auth("qa1"))
    assert (r.status_code, r.json["error"]) == (422, "missing_fields")
    body = {"action": "reject", "signature": sig, "reason": "CoA missing"}
    r = client.post(url, json=body, headers=auth("qa1"))
    assert r.status_code == 200 and r.json["state"] == "rejected"
    r = release(client, auth, code)
    assert (r.status_code, r.json["error"]) == (422, "illegal_transition")
    assert r.json["allowed"] == []


def test_material_is_not_expired_before_its_date(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    code = receive(client, auth, gs1("L1")).json["code"]
    r = client.post(
        f"/api/materials/{code}/transitions", json={"action": "expire"}, headers=auth("tech1")
    )
    assert (r.status_code, r.json["error"]) == (422, "not_expired")


def test_an_item_without_gs1_is_received_by_hand(client, auth):  # noqa: ANN001
    set_up_kind(client, auth, code="PEI-MAX", gtin=None, name="PEI MAX", category="reagent")
    body = {"kind": "pei-max", "supplier_lot": "P-77", "expires_on": "2029-01-31"}
    r = client.post("/api/materials", json=body, headers=auth("tech1"))
    assert r.status_code == 201, r.json
    assert (r.json["kind"], r.json["gtin"], r.json["state"]) == ("PEI-MAX", None, "quarantine")


@pytest.mark.parametrize("who", ["helix_tech", "helix_viewer"])
def test_clients_neither_receive_nor_see_the_centres_materials(client, auth, who):  # noqa: ANN001
    set_up_kind(client, auth)
    code = receive(client, auth, gs1("L1")).json["code"]
    assert client.get(f"/api/materials/{code}", headers=auth(who)).status_code == 404
    assert client.get("/api/materials", headers=auth(who)).json["materials"] == []
    assert receive(client, auth, gs1("L2"), who=who).status_code == 403


def test_the_list_filters_by_state_and_kind(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    a = receive(client, auth, gs1("A")).json["code"]
    b = receive(client, auth, gs1("B")).json["code"]
    release(client, auth, b)
    h = auth("tech1")
    listed = [m["code"] for m in client.get("/api/materials", headers=h).json["materials"]]
    assert listed[:2] == [b, a]  # newest first, before the demo's
    got = client.get("/api/materials?state=quarantine&kind=dmem-500", headers=h).json
    assert [m["code"] for m in got["materials"]] == [a]
    assert client.get("/api/materials?kind=NOPE", headers=h).json["materials"] == []


def test_a_material_kind_needs_a_valid_gtin_and_a_known_category(client, auth):  # noqa: ANN001
    body = {"code": "X", "name": "X", "category": "medium", "gtin": "09506000134353"}
    r = client.post("/api/material-kinds", json=body, headers=auth("admin"))
    assert (r.status_code, r.json["error"]) == (400, "bad_gtin")
    body = {**body, "gtin": "9506000134352", "category": "potion"}
    r = client.post("/api/material-kinds", json=body, headers=auth("admin"))
    assert (r.status_code, r.json["error"]) == (400, "bad_category")
    r = client.post(
        "/api/material-kinds", json={**body, "category": "medium"}, headers=auth("tech1")
    )
    assert r.status_code == 403
    r = client.post(
        "/api/material-kinds", json={**body, "category": "medium"}, headers=auth("admin")
    )
    assert r.status_code == 201 and r.json["gtin"] == GTIN  # GTIN-13 kept as 14 digits


def test_a_material_kind_is_set_up_from_the_command_line(runner, client, auth):  # noqa: ANN001
    args = ["setup", "material-kind", "FBS-500", "Fetal bovine serum 500 mL"]
    r = runner.invoke(args=[*args, "--category", "medium", "--gtin", "04006381333931"])
    assert r.exit_code == 0, r.output
    kinds = client.get("/api/material-kinds", headers=auth("tech1")).json["kinds"]
    assert ("FBS-500", "04006381333931") in [(k["code"], k["gtin"]) for k in kinds]
    r = runner.invoke(args=[*args, "--category", "medium", "--gtin", "04006381333932"])
    assert r.exit_code != 0 and "check digit" in r.output


def test_an_item_without_gs1_gets_a_label_of_ours(client, auth):  # noqa: ANN001
    set_up_kind(client, auth, code="PEI-MAX", gtin=None, name="PEI MAX", category="reagent")
    body = {"kind": "PEI-MAX", "supplier_lot": "P-77", "expires_on": "2029-01-31"}
    code = client.post("/api/materials", json=body, headers=auth("tech1")).json["code"]
    r = client.post(
        "/api/labels", json={"barcodes": [code], "printer": "ZEBRA-B1"}, headers=auth("tech1")
    )
    assert r.status_code == 201, r.json
    got = client.get(f"/api/print-jobs/{r.json['id']}", headers=auth("tech1")).json
    assert [x["barcode"] for x in got["labels"]] == [code]
    r = client.post(
        "/api/labels", json={"barcodes": [code], "printer": "ZEBRA-B1"}, headers=auth("helix_tech")
    )
    assert r.status_code == 404  # a client does not learn the centre's materials
