"""Races: 16 threads fire the same transition at once on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from conftest import PgDatabases, _pg_url_for
from helpers import audit_count, register, verify

from lims import create_app
from lims.accounts import users
from lims.db import new_session

THREADS = 16


@pytest.fixture(params=["sqlite", "postgresql"])
def race_app(request, tmp_path):
    if request.param == "postgresql":
        dbs: PgDatabases = request.getfixturevalue("pg_databases")
        url = _pg_url_for(dbs.create())
    else:
        url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    app = create_app({"DATABASE_URL": url, "TESTING": True, "LOAD_DEMO": True, "SECRET_KEY": "t"})
    yield app
    app.extensions["lims"]["engine"].dispose()


def _token(app, username: str) -> dict[str, str]:
    with new_session(app.extensions["lims"]["engine"]) as db:
        secret, _ = users.create_token(db, username=username, actor=users.system_actor(db))
        db.commit()
    return {"Authorization": f"Bearer {secret}"}


def _race(app, fire) -> list:
    barrier = threading.Barrier(THREADS)
    results: list = [None] * THREADS

    def worker(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        results[i] = fire(client, i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a racing request hung"
    return results


def test_same_transition_sixteen_times_at_once_one_wins(race_app):
    tech = _token(race_app, "tech1")
    client = race_app.test_client()
    b = register(client, tech)["barcode"]
    before = audit_count(race_app)

    def fire(c, _i):
        r = c.post(
            f"/api/samples/{b}/transitions",
            json={"action": "receive", "condition": "ok", "version": 1},
            headers=tech,
        )
        return r.status_code

    codes = Counter(_race(race_app, fire))
    assert codes == {200: 1, 409: THREADS - 1}
    assert audit_count(race_app) == before + 1
    hist = client.get(f"/api/samples/{b}/history", headers=tech).json["events"]
    assert [e["action"] for e in hist] == ["sample.register", "sample.receive"]
    assert client.get(f"/api/samples/{b}", headers=tech).json["version"] == 2
    assert verify(race_app).ok


def test_sixteen_different_samples_at_once_keep_one_unforked_chain(race_app):
    tech = _token(race_app, "tech1")
    client = race_app.test_client()
    barcodes = [register(client, tech)["barcode"] for _ in range(THREADS)]
    before = audit_count(race_app)

    def fire(c, i):
        r = c.post(
            f"/api/samples/{barcodes[i]}/transitions",
            json={"action": "receive", "condition": "ok", "location": "BOX-0003"},
            headers=tech,
        )
        return r.status_code, r.json.get("position")

    results = _race(race_app, fire)
    assert [code for code, _ in results] == [200] * THREADS
    # Sixteen different box positions: the position rule held under the race.
    assert len({pos for _, pos in results}) == THREADS
    assert audit_count(race_app) == before + THREADS
    assert verify(race_app).ok


def test_same_idempotency_key_at_once_writes_one_event(race_app):
    tech = _token(race_app, "tech1")
    before = audit_count(race_app)

    def fire(c, _i):
        r = c.post(
            "/api/samples",
            json={"sample_type": "PBMC", "project": "CART-001"},
            headers={**tech, "Idempotency-Key": "rack-7-tube-1"},
        )
        return r.status_code, r.json.get("barcode")

    results = _race(race_app, fire)
    assert {code for code, _ in results} == {201}
    assert len({b for _, b in results}) == 1
    assert audit_count(race_app) == before + 1
