"""The audit trail: append-only in the database, hash-chained, tamper names the broken seq."""

from __future__ import annotations

import pytest
from helpers import move, register, verify
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError


def _exec(engine, sql: str, **params) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def _drop_guards(engine) -> None:
    """Drop the append-only triggers, as a database owner bent on tampering could."""
    if engine.dialect.name == "postgresql":
        _exec(engine, "DROP TRIGGER audit_no_change ON audit_event")
    else:
        _exec(engine, "DROP TRIGGER audit_no_update")
        _exec(engine, "DROP TRIGGER audit_no_delete")


def test_database_refuses_update_and_delete_of_audit_rows(engine):
    with pytest.raises(DBAPIError, match="append-only"):
        _exec(engine, "UPDATE audit_event SET actor = 'mallory' WHERE seq = 3")
    with pytest.raises(DBAPIError, match="append-only"):
        _exec(engine, "DELETE FROM audit_event WHERE seq = 3")
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            _exec(engine, "TRUNCATE audit_event")


def test_intact_chain_verifies_by_api_and_cli(client, auth, runner, app):
    r = client.get("/api/audit/verify", headers=auth("qa1"))
    assert r.status_code == 200 and r.json["ok"] is True and r.json["events"] > 50
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and "OK:" in result.output


def test_edited_row_breaks_the_chain_at_that_seq(engine, app, runner, client, auth):
    _drop_guards(engine)
    _exec(engine, "UPDATE audit_event SET actor = 'mallory' WHERE seq = 20")
    res = verify(app)
    assert (res.ok, res.first_bad_seq) == (False, 20)
    assert "altered" in res.problem
    cli = runner.invoke(args=["audit", "verify"])
    assert cli.exit_code == 1 and "BROKEN at seq 20" in cli.output
    api = client.get("/api/audit/verify", headers=auth("qa1")).json
    assert api["ok"] is False and api["first_bad_seq"] == 20


def test_edited_before_value_breaks_the_chain(engine, app):
    _drop_guards(engine)
    _exec(
        engine,
        "UPDATE audit_event SET after = REPLACE(after, 'intact', 'damaged') "
        "WHERE seq = (SELECT MIN(seq) FROM audit_event WHERE after LIKE '%intact%')",
    )
    res = verify(app)
    assert not res.ok and res.first_bad_seq is not None


def test_deleted_row_breaks_the_chain_at_that_seq(engine, app):
    _drop_guards(engine)
    _exec(engine, "DELETE FROM audit_event WHERE seq = 33")
    res = verify(app)
    assert (res.ok, res.first_bad_seq) == (False, 33)


def test_deleted_last_row_is_caught_by_the_head(engine, app):
    _drop_guards(engine)
    _exec(engine, "DELETE FROM audit_event WHERE seq = (SELECT MAX(seq) FROM audit_event)")
    res = verify(app)
    assert not res.ok and "recorded" in res.problem


def test_reordered_rows_break_the_chain_at_the_first_of_them(engine, app):
    _drop_guards(engine)
    _exec(engine, "UPDATE audit_event SET seq = -1 WHERE seq = 40")
    _exec(engine, "UPDATE audit_event SET seq = 40 WHERE seq = 41")
    _exec(engine, "UPDATE audit_event SET seq = 41 WHERE seq = -1")
    res = verify(app)
    assert (res.ok, res.first_bad_seq) == (False, 40)


def test_rehashed_forgery_of_one_row_is_still_caught_by_the_next(engine, app):
    """A forger who recomputes the edited row's hash still breaks the link to the next row."""
    from lims import audit
    from lims.db import new_session
    from lims.models import AuditEvent

    _drop_guards(engine)
    with new_session(engine) as db:
        ev = db.get(AuditEvent, 25)
        fields = {k: getattr(ev, k) for k in audit.HASHED_FIELDS}
        fields["actor"] = "mallory"
        forged = audit.event_hash(fields)
    _exec(engine, "UPDATE audit_event SET actor = 'mallory', hash = :h WHERE seq = 25", h=forged)
    res = verify(app)
    assert (res.ok, res.first_bad_seq) == (False, 26)


def test_every_change_is_one_event_with_its_before_and_after(client, auth, app):
    tech = auth("tech1")
    s = register(client, tech)
    move(client, tech, s["barcode"], "receive", condition="intact")
    ev = client.get(f"/api/audit?entity={s['barcode']}", headers=auth("qa1")).json["events"]
    assert [e["action"] for e in ev] == ["sample.register", "sample.receive"]
    assert ev[1]["prev_hash"] == ev[0]["hash"]  # nothing else happened in between
    assert ev[1]["before"]["state"] == "registered" and ev[1]["after"]["condition"] == "intact"
    assert verify(app).ok


def test_audit_queries_page_with_a_cursor_and_clients_see_their_own(client, auth):
    qa = auth("qa1")
    first = client.get("/api/audit?limit=10", headers=qa).json
    assert len(first["events"]) == 10 and first["next_cursor"] == 10
    second = client.get(f"/api/audit?limit=10&cursor={first['next_cursor']}", headers=qa).json
    assert second["events"][0]["seq"] == 11
    viewer = client.get("/api/audit?limit=1000", headers=auth("helix_viewer")).json["events"]
    assert viewer and all("LV-" not in (e["entity_id"] or "") for e in viewer)
    assert client.get("/api/audit", headers=auth("tech1")).status_code == 403
    assert client.get("/api/audit?limit=0", headers=qa).status_code == 400
    assert client.get("/api/audit?since=yesterday", headers=qa).status_code == 400
