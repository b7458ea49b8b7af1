"""Two people at once, on both engines: one receipt of an item, distinct material codes."""

from __future__ import annotations

from helpers import audit_count, bearer, race, verify
from mfg_util import GTIN, gs1


def _kind(app) -> None:  # noqa: ANN001
    body = {"code": "DMEM-500", "name": "DMEM", "category": "medium", "gtin": GTIN}
    r = app.test_client().post("/api/material-kinds", json=body, headers=bearer(app, "admin"))
    assert r.status_code == 201, r.json


def test_the_same_item_scanned_at_two_benches_at_once_is_received_once(race_app) -> None:  # noqa: ANN001
    _kind(race_app)
    tech = bearer(race_app, "tech1")
    before = audit_count(race_app)

    def fire(c, _i):  # noqa: ANN001, ANN202
        r = c.post("/api/materials/receive", json={"data": gs1("L1", serial="1")}, headers=tech)
        return r.status_code

    codes = sorted(race(race_app, fire, 4))
    assert codes[0] == 201 and set(codes[1:]) == {409}, codes
    assert audit_count(race_app) == before + 1
    assert verify(race_app).ok


def test_different_items_at_once_each_get_their_own_code(race_app) -> None:  # noqa: ANN001
    _kind(race_app)
    tech = bearer(race_app, "tech1")

    def fire(c, i):  # noqa: ANN001, ANN202
        r = c.post("/api/materials/receive", json={"data": gs1("L2", serial=str(i))}, headers=tech)
        return r.status_code, (r.json or {}).get("code")

    results = race(race_app, fire, 6)
    assert [s for s, _ in results] == [201] * 6
    assert len({c for _, c in results}) == 6
