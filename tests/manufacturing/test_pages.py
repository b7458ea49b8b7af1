"""The materials pages and the lot page's genealogy, as a browser gets them."""

from __future__ import annotations

from helpers import audit_count, post_form, sign_in
from mfg_util import gs1, receive, released_material, set_up_kind

NEW_LOT = {"vector_type": "AAV", "vector": "AAV9-GFP", "project": "CART-001"}


def test_the_materials_page_lists_material_with_why_it_cannot_be_used(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    held = receive(client, auth, gs1("Q-1")).json["code"]
    ok = released_material(client, auth, lot="R-1")
    sign_in(client, "tech1")
    page = client.get("/materials")
    assert page.status_code == 200
    assert held in page.text and ok in page.text
    assert "in quarantine: QA has not released it" in page.text
    assert 'href="/materials"' in page.text  # in the navigation
    only = client.get("/materials?state=released").text
    assert ok in only and held not in only


def test_the_lot_page_records_an_input_shows_made_from_and_the_material_where_used(
    app,
    client,
    auth,  # noqa: ANN001
):
    set_up_kind(client, auth)
    code = released_material(client, auth)
    held = receive(client, auth, gs1("Q-2")).json["code"]
    r = client.post("/api/lots", json={**NEW_LOT, "lot_number": "PG-1"}, headers=auth("tech1"))
    assert r.status_code == 201
    sign_in(client, "tech1")
    before = audit_count(app)
    r = post_form(client, "/lots/PG-1/inputs", material=held)
    assert r.status_code == 302
    page = client.get("/lots/PG-1")
    assert "in quarantine: QA has not released it; it cannot go into lot PG-1" in page.text
    assert audit_count(app) == before
    r = post_form(client, "/lots/PG-1/inputs", material=code, quantity="2", unit="mL")
    assert r.status_code == 302
    page = client.get("/lots/PG-1").text
    assert 'id="made-from"' in page and code in page
    used = client.get(f"/materials/{code}").text
    assert "PG-1" in used and "Not used in any lot" not in used
    assert audit_count(app) == before + 1


def test_a_viewer_sees_the_genealogy_but_no_input_form(client, auth):  # noqa: ANN001
    sign_in(client, "qa1")
    page = client.get("/lots/AAV9-2611-001").text  # in quarantine: its inputs are closed
    assert 'id="made-from"' in page and 'id="add-input"' not in page
