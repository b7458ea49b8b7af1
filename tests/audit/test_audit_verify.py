"""verify() in batches, and on PostgreSQL split over two connections, names what a plain walk names.

Every case is compared with a reference walk in plain Python (event_hash over the stored fields,
then the head row), for batch sizes that put the tampered event first, inside and last in a batch,
and on either side of the point where PostgreSQL splits the chain in two.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import ENGINE
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import select

from lims import audit
from lims.audit import verification
from lims.db import new_session, read_only, spare_connections
from lims.models import AuditEvent, AuditHead

# 1: every event its own batch; 4: the demo chain in many batches, split at its middle on
# PostgreSQL; 10000: one batch, one connection.
BATCHES = (1, 4, 10000)

# Text JSON escaping treats specially: quotes, backslashes, non-ASCII (µ, line and paragraph
# separators, an emoji) and DEL, but no control character; then with every control character.
TRICKY = 'say "µ" \\ \\" \\\\ \u2028 \u2029 😀 \x7f'
ODD = TRICKY + "".join(chr(c) for c in range(1, 32))


def _reference(engine: Engine) -> audit.VerifyResult:
    """Verify the plain way: event_hash over every stored field in seq order, then the head."""
    with new_session(engine) as db:
        events = db.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()
        head = db.get(AuditHead, 1)
    count, last, prev = 0, 0, audit.GENESIS_HASH
    for e in events:
        if e.seq != last + 1:
            return audit.VerifyResult(
                False, count, last, prev, last + 1, f"event {last + 1} is missing"
            )
        if e.prev_hash != prev:
            problem = f"event {e.seq} does not follow event {e.seq - 1}"
            return audit.VerifyResult(False, count, last, prev, e.seq, problem)
        h = audit.event_hash({name: getattr(e, name) for name in audit.HASHED_FIELDS})
        if h != e.hash:
            problem = f"event {e.seq} was altered (hash mismatch)"
            return audit.VerifyResult(False, count, last, prev, e.seq, problem)
        count, last, prev = count + 1, e.seq, h
    if (head.seq, head.hash) != (last, prev):
        problem = f"the chain ends at event {last} but {head.seq} events were recorded"
        return audit.VerifyResult(False, count, last, prev, last + 1, problem)
    return audit.VerifyResult(True, count, last, prev)


def _verify(engine: Engine, batch: int) -> tuple[audit.VerifyResult, int]:
    """Return verify's result with this batch size and the events its progress reported."""
    reported: list[int] = []
    with new_session(engine) as db:
        result = audit.verify(db, batch=batch, progress=reported.append)
    return result, sum(reported)


def _assert_same_as_reference(engine: Engine) -> audit.VerifyResult:
    expected = _reference(engine)
    for batch in BATCHES:
        result, reported = _verify(engine, batch)
        assert result.to_dict() == expected.to_dict(), batch
        if result.ok:
            assert reported == result.events, batch
    return expected


def _drop_guards(engine: Engine) -> None:
    """Drop the append-only triggers, as a database owner bent on tampering could."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP TRIGGER audit_no_change ON audit_event")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_no_delete")


def _rows(engine: Engine, seqs: tuple[int, ...]) -> list[dict[str, Any]]:
    """Return the stored rows of these seqs, typed as the table's columns read them."""
    table = AuditEvent.__table__
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).where(table.c.seq.in_(seqs)))]


def _restore(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Put the saved rows back exactly as they were."""
    with engine.begin() as conn:
        for r in rows:
            conn.execute(text("DELETE FROM audit_event WHERE seq = :s"), {"s": r["seq"]})
        conn.execute(AuditEvent.__table__.insert(), rows)


def _forged_hash(engine: Engine, seq: int) -> str:
    with new_session(engine) as db:
        ev = db.get(AuditEvent, seq)
        fields = {k: getattr(ev, k) for k in audit.HASHED_FIELDS}
    fields["actor"] = "mallory"
    return audit.event_hash(fields)


TAMPERING = {
    "edit": ["UPDATE audit_event SET actor = 'mallory' WHERE seq = :s"],
    "relink": ["UPDATE audit_event SET prev_hash = :f WHERE seq = :s"],
    "delete": ["DELETE FROM audit_event WHERE seq = :s"],
    "swap": [
        "UPDATE audit_event SET seq = -1 WHERE seq = :s",
        "UPDATE audit_event SET seq = :s WHERE seq = :s + 1",
        "UPDATE audit_event SET seq = :s + 1 WHERE seq = -1",
    ],
    # A forger who recomputes the edited event's hash still breaks the link to the next one.
    "rehash": ["UPDATE audit_event SET actor = 'mallory', hash = :h WHERE seq = :s"],
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_each_tampering_is_named_at_its_seq_whatever_the_batches(app, engine, kind):
    last = _assert_same_as_reference(engine).head_seq
    assert last > 16  # the positions below need a demo chain of some length
    mid = last // 2
    _drop_guards(engine)
    # First event; first and last of a batch of 4; both sides of PostgreSQL's split in the
    # middle; the last events (a deleted last event is caught by the head).
    for seq in (1, 5, 8, mid, mid + 1, mid + 2, last - 1, last):
        if kind == "swap" and seq == last:
            continue
        saved = _rows(engine, (seq, seq + 1))
        params = {"s": seq, "f": "f" * 64}
        if kind == "rehash":
            params["h"] = _forged_hash(engine, seq)
        with engine.begin() as conn:
            for sql in TAMPERING[kind]:
                conn.execute(text(sql), params)
        expected = _assert_same_as_reference(engine)
        assert not expected.ok
        bad = seq + 1 if kind == "rehash" else seq
        assert expected.first_bad_seq == bad, (kind, seq, expected)
        _restore(engine, saved)
        assert _verify(engine, 4)[0].ok


def test_the_first_of_several_breaks_is_named(app, engine):
    _drop_guards(engine)
    with engine.begin() as conn:
        # One break in each half of the split chain, and one at a batch boundary after both.
        conn.execute(text("UPDATE audit_event SET reason = 'x' WHERE seq IN (21, 70, 89)"))
    assert _assert_same_as_reference(engine).first_bad_seq == 21


def _record(engine: Engine, events: list[dict[str, Any]]) -> list[int]:
    """Append events (record() keyword arguments) in one transaction; return their seqs."""
    with new_session(engine) as db:
        seqs = [
            audit.record(db, **{"actor": "qa1", "entity_type": "test", **kw})["seq"]
            for kw in events
        ]
        db.commit()
    return seqs


def _rendered_as_python(engine: Engine, seq: int) -> bool:
    """Tell whether PostgreSQL renders this event's payload exactly as event_hash does."""
    with new_session(engine) as db:
        payload = verification._payload_sql("postgresql")
        sql = text(f"SELECT {payload} FROM audit_event WHERE seq = :s")
        rendered = db.connection().execute(sql, {"s": seq}).scalar_one()
        ev = db.get(AuditEvent, seq)
    values = [getattr(ev, k) for k in audit.HASHED_FIELDS]
    values[1] = audit.ts_text(values[1])
    return rendered == json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def test_events_with_any_text_verify_ok_and_an_edit_of_one_is_named(app, engine):
    every = {
        "action": "test.tricky",
        "entity_id": TRICKY,
        "actor": TRICKY,
        "before": {TRICKY: [TRICKY, 1.5, None]},
        "after": {"k": TRICKY, "n": {"µ": "\\"}},
        "reason": TRICKY,
        "station": TRICKY,
        "device": TRICKY,
    }
    odd = [{"action": "test.odd", "entity_id": f"odd-{f}", f: ODD + f} for f in ("reason", "actor")]
    odd += [{"action": "test.odd", "entity_id": "odd", "before": {ODD: [ODD]}, "after": {"k": ODD}}]
    odd += [
        {"action": "test.odd", "entity_id": f"odd-{f}", f: ODD + f} for f in ("station", "device")
    ]
    demo = _assert_same_as_reference(engine).head_seq
    seqs = _record(engine, [every, *odd])
    # Plain events after them: on PostgreSQL (batch 4) the odd ones lie in the batch of the
    # first half that its exact re-walk would read past the split, just after them.
    _record(engine, [{"action": "test.plain", "entity_id": str(i)} for i in range(100)])
    assert seqs == list(range(demo + 1, demo + 7))
    if ENGINE == "postgresql":
        # The premises: PostgreSQL renders text without control characters exactly as
        # json.dumps (the fast path), and control characters outside reason differently, so
        # verify must judge those events by event_hash itself.
        assert _rendered_as_python(engine, seqs[0])
        assert not _rendered_as_python(engine, seqs[-1])
    assert _assert_same_as_reference(engine).ok
    _drop_guards(engine)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_event SET reason = reason || '!' WHERE seq = :s"), {"s": seqs[1]}
        )
    expected = _assert_same_as_reference(engine)
    assert (expected.first_bad_seq, expected.events) == (seqs[1], seqs[1] - 1)
    assert "altered" in expected.problem


def test_a_deleted_event_is_missing_even_when_its_successors_are_rehashed(app, engine):
    _drop_guards(engine)
    table = AuditEvent.__table__
    last = _assert_same_as_reference(engine).head_seq
    mid = last // 2
    saved = _rows(engine, tuple(range(1, last + 1)))
    for seq in (1, 5, mid, mid + 1, mid + 2):
        with new_session(engine) as db:
            db.delete(db.get(AuditEvent, seq))
            db.flush()
            # The forger re-links and re-hashes everything after the gap, and the head: only
            # the gap in seq is left to see.
            prev = db.get(AuditEvent, seq - 1).hash if seq > 1 else audit.GENESIS_HASH
            for ev in db.exec(
                select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)
            ):
                ev.prev_hash = prev
                ev.hash = prev = audit.event_hash({k: getattr(ev, k) for k in audit.HASHED_FIELDS})
            old_head = db.get(AuditHead, 1).hash
            db.get(AuditHead, 1).hash = prev
            db.commit()
        expected = _assert_same_as_reference(engine)
        assert (expected.first_bad_seq, expected.problem) == (seq, f"event {seq} is missing")
        with engine.begin() as conn:
            conn.execute(table.delete())
            conn.execute(table.insert(), saved)
            conn.execute(AuditHead.__table__.update().values(hash=old_head))
        assert _verify(engine, 4)[0].ok


def test_verify_sees_its_own_transaction_uncommitted_events(app, engine):
    before = _reference(engine).events
    with new_session(engine) as db:
        for i in range(5):
            audit.record(db, actor="qa1", action="test.own", entity_type="test", entity_id=str(i))
        # Another connection could not see these: verify must walk this transaction's view.
        result = audit.verify(db, batch=4)
        db.rollback()
    assert result.ok and result.events == before + 5


def test_verify_inside_a_savepoint(app, engine):
    with new_session(engine) as db, db.begin_nested():
        result = audit.verify(db, batch=4)
        assert audit.count_events(db) == result.events  # the transaction is still usable
    assert result.to_dict() == _reference(engine).to_dict()


@pytest.mark.skipif(ENGINE != "postgresql", reason="the split over two connections is PostgreSQL's")
def test_events_appended_during_verify_do_not_break_it(app, engine):
    before = _reference(engine).events
    appended: list[int] = []

    def progress(_n: int) -> None:
        if not appended:
            with new_session(engine) as other:
                for i in range(20):
                    ev = audit.record(
                        other, actor="qa1", action="test.late", entity_type="test", entity_id=str(i)
                    )
                    appended.append(ev["seq"])
                other.commit()

    with new_session(engine) as db:
        result = audit.verify(db, batch=4, progress=progress)
    # Both halves and the head are read in one snapshot: the chain as it was when verify began.
    assert appended and result.ok and result.events == before
    assert _verify(engine, 4)[0].events == before + 20


def test_verify_walks_the_chain_its_transaction_sees(app, engine):
    before = _reference(engine).events
    with new_session(engine) as db:
        if ENGINE == "postgresql":
            db.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            assert audit.count_events(db) == before  # this transaction's snapshot is taken here
        else:
            with read_only():  # a reader's deferred BEGIN: its snapshot is taken by this read
                assert audit.count_events(db) == before
        _record(engine, [{"action": "test.late", "entity_id": str(i)} for i in range(20)])
        result = audit.verify(db, batch=4)
    assert result.ok and result.events == before
    assert _verify(engine, 4)[0].events == before + 20


def _append_committed(engine: Engine, n: int, action: str = "test.bench") -> None:
    """Append n events from another session and commit them (a bench working meanwhile)."""
    with new_session(engine) as other:
        for i in range(n):
            audit.record(other, actor="tech1", action=action, entity_type="test", entity_id=str(i))
        other.commit()


def test_appends_committed_after_the_walk_are_no_lost_tail(app, engine):
    """A bench that commits between verify's last batch and its head read is no tampering."""
    before = _reference(engine).events
    fired: list[str] = []

    def commit_between(conn, cursor, statement, *_args):  # noqa: ANN001
        # The first statement after the walk that reads the head: another bench commits now.
        if not fired and "audit_head" in statement and "FROM audit_event" not in statement[:60]:
            fired.append(statement)
            _append_committed(engine, 3)

    # As GET /api/audit/verify runs it: a reader (on SQLite a deferred BEGIN, no write lock).
    with read_only(), new_session(engine) as db:
        conn = db.connection()
        event.listen(conn, "before_cursor_execute", commit_between)
        # One batch holds the whole chain: one connection, whatever the engine.
        result = audit.verify(db, batch=10000)
        event.remove(conn, "before_cursor_execute", commit_between)
    assert fired
    assert result.ok, result.to_dict()
    # A transaction with its own snapshot (SQLite's reader, PostgreSQL after the catch-up walk)
    # reports the chain it walked: either the events before or all of them, never a break.
    assert result.events in (before, before + 3)
    assert _verify(engine, 10000)[0].events == before + 3


def test_a_lost_tail_is_still_named_while_benches_append(app, engine):
    _drop_guards(engine)
    before = _reference(engine).events
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq = :s"), {"s": before})
    result, _ = _verify(engine, 10000)
    assert not result.ok and result.first_bad_seq == before
    assert (
        result.problem == f"the chain ends at event {before - 1} but {before} events were recorded"
    )


@pytest.mark.skipif(ENGINE != "postgresql", reason="the split over two connections is PostgreSQL's")
def test_verify_takes_no_helper_connections_from_a_nearly_full_pool(app, engine):
    checkouts: list[int] = []

    def count(*_args) -> None:  # noqa: ANN002
        checkouts.append(1)

    event.listen(engine, "checkout", count)
    held = []
    try:
        while spare_connections(engine) > 4:
            held.append(engine.connect())
            held[-1].exec_driver_sql("SELECT 1")
        checkouts.clear()
        result, _ = _verify(engine, 4)  # a chain of 2 x 4 events or more would be split
    finally:
        for conn in held:
            conn.close()
        event.remove(engine, "checkout", count)
    assert result.to_dict() == _reference(engine).to_dict()
    assert len(checkouts) == 1  # its own session's connection only; it never waited for more
