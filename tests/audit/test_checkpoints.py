"""Signed chain checkpoints: a cut or rewritten trail, or a forged checkpoint, fails verify."""

from __future__ import annotations

import hashlib
import json
import stat

import pytest
from helpers import pdf_text, register, verify
from sqlalchemy import text
from sqlmodel import select

from lims import audit
from lims.audit import checkpoint
from lims.db import new_session, read_only
from lims.models import AuditEvent


def _store(app) -> audit.CheckpointStore:  # noqa: ANN001
    return checkpoint.store_for(app.extensions["lims"]["engine"])


def _write(app) -> audit.Checkpoint:  # noqa: ANN001
    return _store(app).write(app.extensions["lims"]["engine"], "test")


def _head(app) -> tuple[int, str]:  # noqa: ANN001
    with app.extensions["lims"]["engine"].connect() as conn:
        return tuple(conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).one())


def _unguarded(app, *statements: tuple[str, dict]) -> None:  # noqa: ANN001
    """Run statements with the trail's guard triggers off, as the app's database account can."""
    engine = app.extensions["lims"]["engine"]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER USER")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_no_delete")
        for sql, params in statements:
            conn.execute(text(sql), params)


def _truncate(app, keep: int) -> None:  # noqa: ANN001
    """Delete the events after seq keep and rewind the head onto it: the chain alone is intact."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        kept = db.exec(select(AuditEvent).where(AuditEvent.seq == keep)).one()
    _unguarded(
        app,
        ("DELETE FROM audit_event WHERE seq > :keep", {"keep": keep}),
        (
            "UPDATE audit_head SET seq = :seq, hash = :hash, ts = :ts WHERE id = 1",
            {"seq": kept.seq, "hash": kept.hash, "ts": kept.ts},
        ),
    )


def _rewrite(app, seq: int, reason: str) -> None:  # noqa: ANN001
    """Change event seq's reason and recompute the chain from it on, head included."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        events = db.exec(
            select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq)
        ).all()
        prev = db.exec(select(AuditEvent.hash).where(AuditEvent.seq == seq - 1)).one()
    statements = []
    for e in events:
        fields = {name: getattr(e, name) for name in audit.HASHED_FIELDS}
        fields["prev_hash"] = prev
        if e.seq == seq:
            fields["reason"] = reason
        prev = audit.event_hash(fields)
        statements.append(
            (
                "UPDATE audit_event SET reason = :reason, prev_hash = :prev, hash = :hash "
                "WHERE seq = :seq",
                {
                    "reason": fields["reason"],
                    "prev": fields["prev_hash"],
                    "hash": prev,
                    "seq": e.seq,
                },
            )
        )
    statements.append(("UPDATE audit_head SET hash = :hash WHERE id = 1", {"hash": prev}))
    _unguarded(app, *statements)


def test_clean_chain_verifies_with_its_checkpoint(app, client, auth, runner):
    r = runner.invoke(args=["audit", "checkpoint"])
    assert r.exit_code == 0, r.output
    head_seq, head_hash = _head(app)
    assert f"seq {head_seq}" in r.output
    result = verify(app)
    assert result.ok and result.checkpoint["seq"] == head_seq
    assert result.checkpoint["hash"] == head_hash
    body = client.get("/api/audit/verify", headers=auth("qa1")).json
    assert body["ok"] is True and body["checkpoint"]["seq"] == head_seq
    r = runner.invoke(args=["audit", "verify"])
    assert r.exit_code == 0 and f"holds the checkpoint of seq {head_seq}" in r.output


def test_key_is_private_with_its_public_key_alongside(app):
    cp = _write(app)
    store = _store(app)
    assert stat.S_IMODE(store.key_path.stat().st_mode) == 0o600
    assert store.public_key_path.exists()
    assert (store.keys_dir / f"{cp.key}.pub").exists()
    # An unchanged head adds no line; a grown one does.
    assert _write(app) == cp
    assert len(store.path.read_bytes().splitlines()) == 1


def test_truncated_tail_fails_verify_with_the_seq(app, client, auth, tech, runner):
    qa = auth("qa1")  # its token is an event too: made before the cut
    register(client, tech)
    cp = _write(app)
    _truncate(app, cp.seq - 3)
    # What the issue measured: the chain alone verifies.
    with new_session(app.extensions["lims"]["engine"]) as db:
        assert audit.verify(db, checkpoints=False).ok
    result = verify(app)
    assert not result.ok and result.first_bad_seq == cp.seq - 2
    assert f"events {cp.seq - 2} to {cp.seq} were removed" in result.problem
    body = client.get("/api/audit/verify", headers=qa).json
    assert body["ok"] is False and body["first_bad_seq"] == cp.seq - 2
    r = runner.invoke(args=["audit", "verify"])
    assert r.exit_code == 1 and f"BROKEN at seq {cp.seq - 2}" in r.output
    # No checkpoint will vouch for the cut trail.
    r = runner.invoke(args=["audit", "checkpoint"])
    assert r.exit_code == 1 and "were removed" in r.output


def test_truncated_tail_written_over_fails_verify(app, client, tech):
    cp = _write(app)
    _truncate(app, cp.seq - 1)
    register(client, tech)  # the app goes on appending: the seq exists again, another event
    result = verify(app)
    assert not result.ok and result.first_bad_seq == cp.seq
    assert "rewritten" in result.problem


def test_rewritten_chain_fails_verify_naming_the_checkpoints_around_it(app, client, tech):
    first = _write(app)
    register(client, tech)
    second = _write(app)
    register(client, tech)
    third = _write(app)
    assert first.seq < second.seq < third.seq
    _rewrite(app, second.seq, "nothing happened")
    with new_session(app.extensions["lims"]["engine"]) as db:
        assert audit.verify(db, checkpoints=False).ok  # recomputed: the chain alone holds
    result = verify(app)
    assert not result.ok and result.first_bad_seq == second.seq
    assert f"after seq {first.seq}" in result.problem and "rewritten" in result.problem


def test_forged_checkpoint_fails_verify_and_is_never_appended_to(app, runner):
    cp = _write(app)
    store = _store(app)
    line = json.loads(store.path.read_bytes())
    line["seq"] = cp.seq - 5  # e.g. to excuse a cut tail
    store.path.write_text(json.dumps(line) + "\n")
    result = verify(app)
    assert not result.ok and result.first_bad_seq == cp.seq - 5
    assert "signature" in result.problem
    r = runner.invoke(args=["audit", "checkpoint"])
    assert r.exit_code == 1 and "refusing to append" in r.output
    r = runner.invoke(args=["audit", "verify"])
    assert r.exit_code == 1 and f"BROKEN at seq {cp.seq - 5}" in r.output


def test_removed_middle_checkpoint_fails_verify(app, client, tech):
    _write(app)
    register(client, tech)
    second = _write(app)
    register(client, tech)
    _write(app)
    store = _store(app)
    lines = store.path.read_bytes().splitlines(keepends=True)
    store.path.write_bytes(lines[0] + lines[2])
    fresh = checkpoint.CheckpointStore(store.directory, store.key_path)
    with pytest.raises(audit.CheckpointError, match="does not follow"):
        fresh.read()
    checkpoint.attach(app.extensions["lims"]["engine"], fresh)
    result = verify(app)
    assert not result.ok and second.seq < result.first_bad_seq


def test_older_checkpoint_changed_with_its_links_recomputed_fails_verify(app, client, tech):
    first = _write(app)
    register(client, tech)
    _write(app)
    store = _store(app)
    lines = [json.loads(raw) for raw in store.path.read_bytes().splitlines()]
    lines[0]["seq"] = first.seq - 10
    raws = [json.dumps(lines[0], sort_keys=True, separators=(",", ":")).encode()]
    lines[1]["prev"] = hashlib.sha256(raws[0]).hexdigest()
    raws.append(json.dumps(lines[1], sort_keys=True, separators=(",", ":")).encode())
    store.path.write_bytes(b"\n".join(raws) + b"\n")
    result = verify(app)
    assert not result.ok and "signature" in result.problem


def test_checkpoint_newer_than_the_verifying_snapshot_is_no_false_alarm(app, client, tech):
    engine = app.extensions["lims"]["engine"]
    with read_only(), new_session(engine) as db:
        audit.count_events(db)  # the snapshot starts here (SQLite) ...
        register(client, tech)
        cp = _write(app)  # ... and this checkpoint is newer than anything it sees
        result = audit.verify(db)
    assert result.ok and result.checkpoint["seq"] == cp.seq


def test_reports_write_and_print_their_checkpoint(app, client, auth, tech):
    qa = auth("qa1")
    barcode = register(client, tech)["barcode"]
    r = client.get(f"/api/samples/{barcode}/report.pdf", headers=qa)
    assert r.status_code == 200
    cp = _store(app).latest()
    assert cp is not None and cp.why == "report" and cp.seq == _head(app)[0]
    words = pdf_text(r.data)
    assert f"signed checkpoint of seq {cp.seq}" in words and cp.key[:16] in words
    r = client.get("/api/audit/export.csv", headers=qa)
    assert r.status_code == 200
    assert r.headers["X-Audit-Checkpoint"].startswith(f"seq={cp.seq}; hash={cp.hash[:16]}")
    # A report made after the trail was cut says so.
    _truncate(app, cp.seq - 1)
    r = client.get(f"/api/samples/{barcode}/report.pdf", headers=qa)
    words = pdf_text(r.data)
    assert f"verification FAILED at seq {cp.seq}" in words
    assert "Made against no signed checkpoint" in words


def test_cli_export_names_its_checkpoint(app, runner, tmp_path):
    r = runner.invoke(args=["audit", "export", "-o", str(tmp_path / "a.csv")])
    assert r.exit_code == 0, r.output
    cp = _store(app).latest()
    assert f"made against checkpoint seq={cp.seq}" in r.output


def test_rotated_key_keeps_old_checkpoints_verifiable(app, client, tech, runner):
    old = _write(app)
    register(client, tech)
    r = runner.invoke(args=["audit", "rotate-key"])
    assert r.exit_code == 0, r.output
    store = _store(app)
    new = store.latest()
    assert new.key != old.key and new.why == "rotate"
    assert {p.stem for p in store.keys_dir.glob("*.pub")} == {old.key, new.key}
    assert list(store.key_path.parent.glob(f"{store.key_path.name}.retired-*"))
    fresh = checkpoint.CheckpointStore(store.directory, store.key_path)
    assert [c.key for c in fresh.read()] == [old.key, new.key]
    assert verify(app).ok


def test_newest_checkpoint_by_another_key_fails_until_the_next_one(app, client, tech):
    _write(app)
    store = _store(app)
    store.key_path.unlink()  # a key swapped by hand, not rotated
    store.public_key_path.unlink()
    store._generate()
    result = verify(app)
    assert not result.ok and "not by the configured key" in result.problem
    register(client, tech)
    _write(app)  # the old key's public half is kept: the new key's line is appended
    assert verify(app).ok


def test_schedule_writes_a_checkpoint(app):
    engine = app.extensions["lims"]["engine"]
    stop = checkpoint.start_schedule(engine, _store(app), 3600)
    try:
        for _ in range(100):
            if _store(app).path.exists() and _store(app).path.read_bytes().endswith(b"\n"):
                break
            stop.wait(0.05)
    finally:
        stop.set()
    assert _store(app).latest().why == "schedule"
