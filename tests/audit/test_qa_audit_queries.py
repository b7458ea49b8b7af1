"""Audit queries: time ranges, bad parameters, index use, fast verify and CSV that stay exact."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from conftest import ENGINE
from helpers import tamper, verify
from sqlalchemy import event
from sqlmodel import select

from lims import audit, reports
from lims.db import new_session
from lims.models import AuditEvent


def _all_events(app) -> list[AuditEvent]:  # noqa: ANN001
    with new_session(app.extensions["lims"]["engine"]) as db:
        return list(db.exec(select(AuditEvent).order_by(AuditEvent.seq)).all())


@pytest.mark.parametrize(
    "query",
    [
        "since=yesterday",
        "until=2026-13-01T00:00:00Z",
        "since=0001-01-01T00:00:00%2B05:00",  # before the first representable UTC time
        "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
        "limit=0",
        "limit=1001",
        "cursor=-1",
        "cursor=99999999999999999999999",
        "colour=blue",
    ],
)
def test_bad_audit_parameters_are_a_clear_400(client, auth, query):
    for path in ("/api/audit", "/api/audit/export.csv"):
        r = client.get(f"{path}?{query}", headers=auth("qa1"))
        assert r.status_code == 400, (path, query, r.status_code)
        assert r.is_json and r.json["error"] in ("malformed", "bad_request", "bad_time")


def test_time_ranges_return_exactly_the_events_in_them(app, client, auth):
    qa = auth("qa1")  # its token is an event too: make it before reading the trail
    events = _all_events(app)
    times = sorted({e.ts for e in events})
    lo, hi = times[len(times) // 4], times[3 * len(times) // 4]
    expected = [e.seq for e in events if lo <= e.ts < hi]
    assert 5 < len(expected) < len(events)
    got, cursor = [], None
    while True:
        q = {"since": lo.isoformat(), "until": hi.isoformat(), "limit": 7}
        if cursor:
            q["cursor"] = cursor
        page = client.get("/api/audit", query_string=q, headers=qa).json
        got += [e["seq"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert got == expected
    # A time without an offset is UTC; a range after the last event is empty, not an error.
    naive = lo.replace(tzinfo=None).isoformat()
    r = client.get("/api/audit", query_string={"since": naive, "limit": 1000}, headers=qa)
    assert [e["seq"] for e in r.json["events"]] == [e.seq for e in events if e.ts >= lo]
    later = (times[-1] + timedelta(days=1)).isoformat()
    r = client.get("/api/audit", query_string={"since": later}, headers=qa)
    assert r.status_code == 200 and r.json["events"] == []
    # An absurd cursor (beyond any seq the column can hold) is a clear 400, not an empty page.
    r = client.get("/api/audit", query_string={"cursor": 2**40}, headers=qa)
    assert r.status_code == 400 and r.json["error"] == "malformed"
    # Combined with other filters, still exact.
    r = client.get(
        "/api/audit",
        query_string={"since": lo.isoformat(), "actor": "tech1", "limit": 1000},
        headers=qa,
    )
    assert [e["seq"] for e in r.json["events"]] == [
        e.seq for e in events if e.ts >= lo and e.actor == "tech1"
    ]


def test_times_never_decrease_along_the_chain(app):
    ts = [e.ts for e in _all_events(app)]
    assert ts == sorted(ts)


FILTER_CASES = {
    "sample": {"entity_type": "sample", "entity_ids": ["S26-000012-S"]},
    "lineage+cursor": {"entity_type": "sample", "entity_ids": ["A", "B", "C"], "after_seq": 3},
    "lot": {"lot_id": 1},
    "actor": {"actor": "tech1", "after_seq": 10},
    "action": {"action": "sample.receive"},
    "station": {"station": "BENCH-B1"},
    "location": {"location_id": 3},
    "org": {"org_id": 2, "after_seq": 5},
    "org+actor": {"org_id": 2, "actor": "tech1"},
    "since": {"since": datetime(2026, 1, 1, tzinfo=UTC)},
    "until": {"until": datetime(2099, 1, 1, tzinfo=UTC)},
    "until, early": {"until": datetime(2001, 1, 1, tzinfo=UTC)},
    "range+actor": {
        "since": datetime(2026, 1, 1, tzinfo=UTC),
        "until": datetime(2099, 1, 1, tzinfo=UTC),
        "actor": "qa1",
    },
    "range+org+action": {
        "since": datetime(2026, 1, 1, tzinfo=UTC),
        "org_id": 2,
        "action": "sample.receive",
    },
}


@pytest.mark.skipif(ENGINE != "sqlite", reason="SQLite plans; bench/audit.py EXPLAINs PostgreSQL")
@pytest.mark.parametrize("case", sorted(FILTER_CASES))
def test_audit_filters_use_an_index_not_a_table_scan(app, case):
    engine = app.extensions["lims"]["engine"]
    statements: list[tuple[str, tuple]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if "FROM audit_event" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with new_session(engine) as db:
            audit.query(db, limit=100, **FILTER_CASES[case])
            raw = db.connection().connection.driver_connection
            for sql, params in statements:
                plan = " | ".join(
                    r[3] for r in raw.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
                )
                if "WHERE" not in sql:
                    # No filter at all: the first page in seq order, which stops at the LIMIT.
                    assert plan == "SCAN audit_event" and "LIMIT" in sql
                    continue
                assert "SCAN audit_event" not in plan, (case, sql, plan)
                assert "SEARCH audit_event" in plan, (case, plan)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert statements


def _reference_verify(app) -> tuple[bool, int | None, str | None]:  # noqa: ANN001
    """Recompute the chain the plain way: event_hash over every stored field."""
    prev = audit.GENESIS_HASH
    for e in _all_events(app):
        fields = {name: getattr(e, name) for name in audit.HASHED_FIELDS}
        if e.prev_hash != prev:
            return False, e.seq, f"event {e.seq} does not follow event {e.seq - 1}"
        h = audit.event_hash(fields)
        if h != e.hash:
            return False, e.seq, f"event {e.seq} was altered (hash mismatch)"
        prev = h
    return True, None, None


def test_verify_accepts_any_text_and_finds_the_first_altered_event(app):
    # Text json escaping treats specially: quotes, backslashes, control characters, non-ASCII.
    # The API refuses control characters in a reason; records from device input or older
    # versions may hold any text, so the event is appended directly.
    reason = 'He said "ok"\\ \n\ttab \x01\x1f\x7f é ☃ \u2028 😀'
    with new_session(app.extensions["lims"]["engine"]) as db:
        seq = audit.record(
            db,
            actor="tech1",
            action="sample.correct",
            entity_type="sample",
            entity_id="S26-000001-Y",
            after={"note": reason},
            reason=reason,
        )["seq"]
        db.commit()
    result = verify(app)
    assert result.ok and _reference_verify(app) == (True, None, None)
    tamper(app, "UPDATE audit_event SET reason = :r WHERE seq = :s", r=reason + "!", s=seq)
    result = verify(app)
    assert not result.ok
    assert (result.ok, result.first_bad_seq, result.problem) == _reference_verify(app)
    assert result.first_bad_seq == seq and "altered" in result.problem
    assert result.events == seq - 1


def test_verify_names_a_relinked_event(app):
    tamper(app, "UPDATE audit_event SET prev_hash = :h WHERE seq = 7", h="f" * 64)
    result = verify(app)
    assert (result.ok, result.first_bad_seq) == (False, 7)
    assert result.problem == "event 7 does not follow event 6" == _reference_verify(app)[2]


def test_csv_export_matches_the_trail_and_the_csv_module(app, client, auth):
    qa = auth("qa1")
    tricky = [(1, "2026-01-01T00:00:00.000001Z", 'a"b', "c,d", "e\nf", "g\rh", None, 0, " x", "é")]
    buf = io.StringIO()
    csv.writer(buf).writerows(tricky)
    assert reports.csv_text(tricky) == buf.getvalue()
    body = client.get("/api/audit/export.csv", headers=qa).get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body)))
    assert tuple(rows[0]) == reports.EXPORT_COLUMNS
    events = _all_events(app)
    assert len(rows) - 1 == len(events)
    for row, e in zip(rows[1:], events, strict=True):
        d = dict(zip(reports.EXPORT_COLUMNS, row, strict=True))
        assert int(d["seq"]) == e.seq and d["ts"] == audit.ts_text(e.ts)
        assert (d["actor"], d["action"], d["entity_id"]) == (e.actor, e.action, e.entity_id)
        assert d["after"] == (e.after or "") and d["hash"] == e.hash
