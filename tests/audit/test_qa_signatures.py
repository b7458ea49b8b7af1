"""Electronic signatures stay bound to their record (21 CFR 11.70); a refused signing is audited."""

from __future__ import annotations

import json

from helpers import audit_count, pdf_text, verify
from sqlalchemy import text
from sqlmodel import select

from lims import lots, signatures
from lims.accounts.users import system_actor
from lims.db import new_session
from lims.models import AuditEvent, Signature

NOVA_LOT, HELIX_LOT = "LV-2611-002", "AAV9-2611-001"


def _release_signature(db):  # noqa: ANN001, ANN202
    sig = db.exec(
        select(Signature).where(Signature.record_type == "lot", Signature.record_id == NOVA_LOT)
    ).one()
    ev = db.exec(select(AuditEvent).where(AuditEvent.signature_id == sig.id)).one()
    # The event holds the signed lot content and, chained with it, the signature itself.
    return sig, signatures.signed_content(json.loads(ev.after))


def _copy(sig: Signature, **changes) -> Signature:  # noqa: ANN003
    fields = sig.model_dump()
    fields.update(changes)
    return Signature(**fields)


def test_signature_verifies_only_on_the_record_it_was_made_for(app):
    with new_session(app.extensions["lims"]["engine"]) as db:
        sig, signed = _release_signature(db)
        assert sig.meaning == "release" and sig.printed_name == "Quinn Quality"
        assert signatures.verify_signature(
            sig, record_type="lot", record_id=NOVA_LOT, content=signed
        )
        # Copied onto another lot: neither the other record nor its content matches.
        other = lots.snapshot(db, lots.get_lot(db, HELIX_LOT, system_actor(db)))
        assert not signatures.verify_signature(
            sig, record_type="lot", record_id=HELIX_LOT, content=other
        )
        # Same record, changed content (e.g. a QC result edited after release).
        edited = {**signed, "titer_vg_per_ml": 9.9e9}
        assert not signatures.verify_signature(
            sig, record_type="lot", record_id=NOVA_LOT, content=edited
        )
        # A copy re-pointed at the other lot, content hash recomputed: the signature hash breaks.
        moved = _copy(sig, record_id=HELIX_LOT, content_hash=signatures.content_hash(other))
        assert not signatures.verify_signature(
            moved, record_type="lot", record_id=HELIX_LOT, content=other
        )


def test_tampered_manifestation_fails(app):
    with new_session(app.extensions["lims"]["engine"]) as db:
        sig, signed = _release_signature(db)
        for change in (
            {"printed_name": "Alex Admin"},
            {"meaning": "review"},
            {"username": "admin"},
            {"signed_at": sig.signed_at.replace(year=2020)},
        ):
            forged = _copy(sig, **change)
            assert not signatures.verify_signature(
                forged, record_type="lot", record_id=NOVA_LOT, content=signed
            ), change
        assert signatures.verify_signature(
            _copy(sig), record_type="lot", record_id=NOVA_LOT, content=signed
        )


def test_wrong_password_at_signing_is_audited_and_changes_nothing(app, client, auth):
    qa = auth("qa1")
    before_lot = client.get(f"/api/lots/{HELIX_LOT}", headers=qa).json
    before_count = audit_count(app)
    r = client.post(
        f"/api/lots/{HELIX_LOT}/transitions",
        json={
            "action": "reject",
            "reason": "endotoxin trend",
            "signature": {"password": "not-my-password", "meaning": "rejection"},
        },
        headers=qa,
    )
    assert r.status_code == 422 and r.json["error"] == "signature_refused"
    after_lot = client.get(f"/api/lots/{HELIX_LOT}", headers=qa).json
    assert after_lot == before_lot  # state, version, signatures: all unchanged
    assert audit_count(app) == before_count + 1
    ev = client.get(f"/api/audit?entity={HELIX_LOT}&action=signature.refused", headers=qa).json[
        "events"
    ]
    assert len(ev) == 1
    assert ev[0]["actor"] == "qa1" and ev[0]["entity_type"] == "lot"
    assert "wrong password" in ev[0]["reason"] and ev[0]["signature_id"] is None
    with new_session(app.extensions["lims"]["engine"]) as db:
        assert db.exec(select(Signature).where(Signature.record_id == HELIX_LOT)).all() == []
    assert verify(app).ok


def test_the_signed_event_holds_the_signature_itself(app):
    with new_session(app.extensions["lims"]["engine"]) as db:
        sig = db.exec(
            select(Signature).where(Signature.record_type == "lot", Signature.record_id == NOVA_LOT)
        ).one()
        ev = db.exec(select(AuditEvent).where(AuditEvent.signature_id == sig.id)).one()
        chained = json.loads(ev.after)["signature"]
    assert chained == signatures.manifestation(sig)
    assert chained["printed_name"] == "Quinn Quality" and chained["meaning"] == "release"


def test_a_signature_rewritten_with_a_recomputed_hash_is_reported_altered(app, client, auth):
    # Someone with database access renames the signer and back-dates the signature, and
    # recomputes the row's own hash: the row is self-consistent, the chained event is not.
    engine = app.extensions["lims"]["engine"]
    with new_session(engine) as db:
        sig, _ = _release_signature(db)
        forged = _copy(sig, printed_name="Dr. Helen Senior QP")
        forged_hash = signatures._signature_hash(forged)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE signature SET printed_name = :n, hash = :h WHERE id = :i"),
            {"n": "Dr. Helen Senior QP", "h": forged_hash, "i": sig.id},
        )
    assert verify(app).ok  # the chain itself is untouched
    r = client.get(f"/api/lots/{NOVA_LOT}/report.pdf", headers=auth("qa1"))
    txt = pdf_text(r.data)
    assert "Dr. Helen Senior QP" in txt and "ALTERED: differs from the audit trail" in txt
