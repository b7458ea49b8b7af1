"""The demo's materials, the scheduled expiry of material lots, and the paged materials list."""

from __future__ import annotations

import re
from datetime import date, timedelta

from helpers import audit_count, sign_in, verify
from mfg_util import gs1, receive, released_material, set_up_kind
from sqlalchemy import text


def test_the_demo_has_materials_of_every_kind_some_released_one_held_one_expired(client, auth):  # noqa: ANN001
    mats = client.get("/api/materials", headers=auth("tech1")).json["materials"]
    cats = {m["category"] for m in mats}
    assert {"cell_bank", "plasmid", "medium", "reagent"} <= cats
    states = [m["state"] for m in mats]
    assert states.count("quarantine") == 1 and states.count("expired") == 1
    assert states.count("released") >= 3
    sign_in(client, "tech1")
    page = client.get("/materials").text
    assert "HEK293 working cell bank" in page and "in quarantine: QA has not released it" in page


def test_expire_due_moves_past_expiry_material_to_expired_one_event_each(app, runner, client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    old = [released_material(client, auth, lot=f"OLD-{i}") for i in range(3)]
    fresh = released_material(client, auth, lot="NEW-1")
    with app.extensions["lims"]["engine"].begin() as conn:
        for code in old:
            conn.execute(
                text("UPDATE material_lot SET expires_on = :d WHERE code = :c"),
                {"d": date.today() - timedelta(days=2), "c": code},
            )
    before = audit_count(app)
    r = runner.invoke(args=["materials", "expire-due"])
    assert r.exit_code == 0, r.output
    assert all(code in r.output for code in old) and fresh not in r.output
    assert audit_count(app) == before + 3
    h = auth("tech1")
    for code in old:
        m = client.get(f"/api/materials/{code}", headers=h).json
        assert m["state"] == "expired"
    assert client.get(f"/api/materials/{fresh}", headers=h).json["state"] == "released"
    r = runner.invoke(args=["materials", "expire-due"])
    assert r.exit_code == 0 and "expired: none" in r.output
    assert audit_count(app) == before + 3
    assert verify(app).ok


def test_the_materials_list_pages_sorts_and_counts(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    for i in range(55):
        assert receive(client, auth, gs1(f"PG-{i:02d}")).status_code == 201
    total = len(client.get("/api/materials", headers=auth("tech1")).json["materials"])
    sign_in(client, "tech1")
    first = client.get("/materials").text
    assert f"{total} material lots, 50 on this page" in first
    nxt = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(nxt).text
    assert f"{total} material lots, {total - 50} on this page" in second
    assert 'rel="prev"' in second and 'rel="next"' not in second
    codes = re.findall(r'class="mono rowlink" href="/materials/([^"]+)"', first + second)
    assert len(codes) == total == len(set(codes))
    by_expiry = client.get("/materials?sort=expires").text
    assert 'aria-sort="ascending"' in by_expiry
    r = client.get("/materials?sort=nonsense")
    assert r.status_code == 400
    only = client.get("/materials?state=quarantine&kind=DMEM-500").text
    assert "55 material lots" in only
