"""Vector lot disposition: QC, release/reject with e-signature, hold, expiry."""

from __future__ import annotations

from datetime import date

import pytest
from helpers import audit_count, review_all, review_trail, verify
from sqlmodel import select

from lims import lots, signatures
from lims.accounts.users import actor_for
from lims.db import new_session
from lims.models import Signature, VectorLot

LOT = "AAV9-2611-001"  # demo: quarantine, mycoplasma QC missing
SIGN = {"password": "demo-only-lims", "meaning": "release"}


def _myco(client, headers, result="not detected", **extra):
    return client.post(
        f"/api/lots/{LOT}/qc",
        json={"test": "mycoplasma", "result": result, **extra},
        headers=headers,
    )


def test_release_needs_every_qc_result_qa_and_a_signature(client, auth, app):
    qa, tech = auth("qa1"), auth("tech1")
    url = f"/api/lots/{LOT}/transitions"
    r = client.post(url, json={"action": "release", "signature": SIGN}, headers=qa)
    assert r.status_code == 422 and r.json["error"] == "qc_incomplete"
    assert r.json["missing"] == ["mycoplasma"]
    assert _myco(client, tech).status_code == 201
    r = client.post(url, json={"action": "release", "signature": SIGN}, headers=qa)
    assert r.status_code == 422 and r.json["error"] == "qc_not_reviewed"
    review_all(client, LOT, qa, trail=False)
    r = client.post(url, json={"action": "release", "signature": SIGN}, headers=tech)
    assert r.status_code == 403
    r = client.post(url, json={"action": "release", "signature": SIGN}, headers=qa)
    assert r.status_code == 422 and r.json["error"] == "audit_trail_not_reviewed"
    review_trail(client, LOT, qa)
    r = client.post(url, json={"action": "release"}, headers=qa)
    assert r.status_code == 422 and r.json["error"] == "signature_required"
    r = client.post(url, json={"action": "release", "signature": SIGN}, headers=qa)
    assert r.status_code == 200, r.json
    lot = r.json
    assert lot["state"] == "released"
    sig = lot["signatures"][0]
    assert (sig["printed_name"], sig["meaning"]) == ("Quinn Quality", "release")
    events = client.get(f"/api/audit?lot={LOT}&action=lot.release", headers=qa).json["events"]
    assert len(events) == 1 and events[0]["signature_id"] == sig["id"]
    assert verify(app).ok


def test_wrong_password_at_signing_is_audited_and_changes_nothing(client, auth, app):
    qa = auth("qa1")
    _myco(client, auth("tech1"))
    review_all(client, LOT, qa)
    before = audit_count(app)
    r = client.post(
        f"/api/lots/{LOT}/transitions",
        json={"action": "release", "signature": {**SIGN, "password": "wrong!"}},
        headers=qa,
    )
    assert r.status_code == 422 and r.json["error"] == "signature_refused"
    assert client.get(f"/api/lots/{LOT}", headers=qa).json["state"] == "quarantine"
    assert audit_count(app) == before + 1
    ev = client.get("/api/audit?action=signature.refused", headers=qa).json["events"]
    assert ev[-1]["actor"] == "qa1" and ev[-1]["entity_id"] == LOT
    with new_session(app.extensions["lims"]["engine"]) as db:
        on_lot = (Signature.record_type == "lot", Signature.record_id == LOT)
        assert db.exec(select(Signature).where(*on_lot)).all() == []


def test_failed_qc_blocks_release_and_a_correction_needs_a_reason(client, auth):
    tech, qa = auth("tech1"), auth("qa1")
    r = _myco(client, tech, result="detected")
    assert r.status_code == 201
    myco = [q for q in r.json["qc"] if q["test"] == "mycoplasma"][0]
    assert myco["passed"] is False and myco["oos"] is not None
    review_all(client, LOT, qa)
    r = client.post(
        f"/api/lots/{LOT}/transitions", json={"action": "release", "signature": SIGN}, headers=qa
    )
    assert r.status_code == 422 and r.json["error"] == "oos_open"
    assert r.json["oos"] == [myco["oos"]]
    # A passing result is corrected only with a reason.
    body = {"test": "endotoxin", "result": "0.9 EU/mL"}
    r = client.post(f"/api/lots/{LOT}/qc", json=body, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "reason_required"
    r = client.post(
        f"/api/lots/{LOT}/qc", json={**body, "reason": "transcription error"}, headers=tech
    )
    assert r.status_code == 201
    endotoxin = [q for q in r.json["qc"] if q["test"] == "endotoxin"][0]
    assert endotoxin["supersedes"] is not None and endotoxin["reviewed_by"] is None


def test_a_typed_spec_or_verdict_is_refused(client, auth):
    tech = auth("tech1")
    for extra in ({"spec": ">= 1e7 vg/mL"}, {"passed": True}, {"spec": "x", "passed": False}):
        r = client.post(
            f"/api/lots/{LOT}/qc",
            json={"test": "titer", "result": "2e7 vg/mL", "reason": "typo", **extra},
            headers=tech,
        )
        assert r.status_code == 422 and r.json["error"] == "spec_not_accepted", r.json
        assert "specification" in r.json["message"]
    lot = client.get(f"/api/lots/{LOT}", headers=tech).json
    assert [q["result"] for q in lot["qc"] if q["test"] == "titer"] == ["2.1e13 vg/mL"]


def test_reject_needs_a_reason_and_a_rejection_signature(client, auth):
    qa = auth("qa1")
    url = f"/api/lots/{LOT}/transitions"
    r = client.post(
        url, json={"action": "reject", "signature": {**SIGN, "meaning": "rejection"}}, headers=qa
    )
    assert r.status_code == 422 and r.json["missing"] == ["reason"]
    r = client.post(
        url,
        json={"action": "reject", "reason": "titer out of trend", "signature": SIGN},
        headers=qa,
    )
    assert r.status_code == 400 and r.json["error"] == "signature_meaning"
    r = client.post(
        url,
        json={
            "action": "reject",
            "reason": "titer out of trend",
            "signature": {**SIGN, "meaning": "rejection"},
        },
        headers=qa,
    )
    assert r.status_code == 200 and r.json["state"] == "rejected"
    r = client.post(
        "/api/samples", json={"sample_type": "VECTOR_VIAL", "lot": LOT}, headers=auth("helix_tech")
    )
    assert r.status_code == 422 and r.json["error"] == "lot_closed"


def test_hold_lift_and_expire(client, auth, app):
    qa = auth("qa1")
    url = "/api/lots/LV-2611-002/transitions"
    assert client.post(url, json={"action": "hold"}, headers=qa).status_code == 422
    r = client.post(url, json={"action": "hold", "reason": "deviation DV-12"}, headers=qa)
    assert r.json["state"] == "on_hold"
    review_trail(client, "LV-2611-002", qa)
    r = client.post(
        url, json={"action": "lift_hold", "reason": "DV-12 closed", "signature": SIGN}, headers=qa
    )
    assert r.json["state"] == "released"
    r = client.post(url, json={"action": "expire"}, headers=qa)
    assert r.status_code == 422 and r.json["error"] == "not_expired"
    with new_session(app.extensions["lims"]["engine"]) as db:
        actor = actor_for(db, lot_user(db))
        done = lots.expire_due(db, actor=actor, today=date(2027, 10, 20))
        db.commit()
    assert done == ["LV-2611-002"]
    assert client.get("/api/lots/LV-2611-002", headers=qa).json["state"] == "expired"


def lot_user(db):
    from lims.models import User

    return db.exec(select(User).where(User.username == "qa1")).one()


def test_signature_is_bound_to_its_record(client, auth, app):
    _myco(client, auth("tech1"))
    review_all(client, LOT, auth("qa1"))
    r = client.post(
        f"/api/lots/{LOT}/transitions",
        json={"action": "release", "signature": SIGN},
        headers=auth("qa1"),
    )
    lot_json = r.json
    with new_session(app.extensions["lims"]["engine"]) as db:
        sig = db.get(Signature, lot_json["signatures"][0]["id"])
        lot = db.exec(select(VectorLot).where(VectorLot.lot_number == LOT)).one()
        content = lots.snapshot(db, lot)
        assert signatures.verify_signature(sig, record_type="lot", record_id=LOT, content=content)
        other = db.exec(select(VectorLot).where(VectorLot.lot_number == "LV-2611-002")).one()
        assert not signatures.verify_signature(
            sig, record_type="lot", record_id="LV-2611-002", content=lots.snapshot(db, other)
        )
        sig.meaning = "review"
        assert not signatures.verify_signature(
            sig, record_type="lot", record_id=LOT, content=content
        )


@pytest.mark.parametrize("action", ["start_production", "fly"])
def test_illegal_lot_moves_are_422(client, auth, action):
    r = client.post(f"/api/lots/{LOT}/transitions", json={"action": action}, headers=auth("qa1"))
    assert r.status_code == 422 and r.json["allowed"] == ["release", "reject"]


def test_create_lot_and_bad_input(client, auth):
    tech = auth("tech1")
    body = {
        "lot_number": "AAV2-2612-009",
        "vector_type": "AAV",
        "vector": "AAV2-CAG-GFP",
        "project": "CART-001",
        "manufactured_on": "2026-12-01",
        "expires_on": "2027-12-01",
    }
    r = client.post("/api/lots", json=body, headers=tech)
    assert r.status_code == 201 and r.json["state"] == "planned"
    assert client.post("/api/lots", json=body, headers=tech).status_code == 409
    bad = {**body, "lot_number": "X1", "vector_type": "adenovirus"}
    assert client.post("/api/lots", json=bad, headers=tech).status_code == 400
    bad = {**body, "lot_number": "X2", "expires_on": "2026-01-01"}
    assert client.post("/api/lots", json=bad, headers=tech).status_code == 400
    assert client.get("/api/lots/NOPE", headers=tech).status_code == 404
    assert client.get("/api/lots/LV-2611-002", headers=auth("helix_viewer")).status_code == 404


def _qc_complete_lot(client, tech, lot_number: str, expires_on: str) -> None:
    body = {
        "lot_number": lot_number,
        "vector_type": "AAV",
        "vector": "AAV2-CAG-GFP",
        "project": "CART-001",
        "manufactured_on": "2020-01-01",
        "expires_on": expires_on,
    }
    assert client.post("/api/lots", json=body, headers=tech).status_code == 201
    url = f"/api/lots/{lot_number}"
    client.post(f"{url}/transitions", json={"action": "start_production"}, headers=tech)
    for test, result in (
        ("titer", "2e13"),
        ("endotoxin", "1"),
        ("sterility", "no growth"),
        ("mycoplasma", "not detected"),
    ):
        r = client.post(f"{url}/qc", json={"test": test, "result": result}, headers=tech)
        assert r.status_code == 201, r.json
    client.post(f"{url}/transitions", json={"action": "complete"}, headers=tech)


def test_a_lot_past_its_expiry_date_cannot_be_released(client, auth):
    tech, qa = auth("tech1"), auth("qa1")
    _qc_complete_lot(client, tech, "OLD-2001", "2021-01-01")
    review_all(client, "OLD-2001", qa)
    r = client.post(
        "/api/lots/OLD-2001/transitions", json={"action": "release", "signature": SIGN}, headers=qa
    )
    assert r.status_code == 422 and r.json["error"] == "lot_expired"
    assert client.get("/api/lots/OLD-2001", headers=qa).json["state"] == "quarantine"


def test_a_vial_cannot_be_checked_out_once_its_lot_expired_even_before_the_batch_job(
    client, auth, app
):
    tech, qa = auth("tech1"), auth("qa1")
    _qc_complete_lot(client, tech, "SOON-2601", "2099-01-01")
    review_all(client, "SOON-2601", qa)
    r = client.post(
        "/api/lots/SOON-2601/transitions", json={"action": "release", "signature": SIGN}, headers=qa
    )
    assert r.status_code == 200
    vial = client.post(
        "/api/samples", json={"sample_type": "VECTOR_VIAL", "lot": "SOON-2601"}, headers=tech
    ).json["barcode"]
    for action, who, extra in (
        ("receive", tech, {"condition": "ok"}),
        ("quarantine", tech, {}),
        ("release", qa, {}),
    ):
        client.post(
            f"/api/samples/{vial}/transitions", json={"action": action, **extra}, headers=who
        )
    # The expiry date comes (set directly: time does not pass in a test).
    with new_session(app.extensions["lims"]["engine"]) as db:
        lot = db.exec(select(VectorLot).where(VectorLot.lot_number == "SOON-2601")).one()
        lot.expires_on = date(2021, 1, 1)
        db.add(lot)
        db.commit()
    r = client.post(
        f"/api/samples/{vial}/transitions",
        json={"action": "check_out", "custodian": "tech1"},
        headers=tech,
    )
    assert r.status_code == 422 and r.json["error"] == "lot_expired"


def test_an_overflowing_number_is_not_a_pass(client, auth):
    r = client.post(
        f"/api/lots/{LOT}/qc",
        json={"test": "titer", "result": "1e999", "reason": "re-measured"},
        headers=auth("tech1"),
    )
    assert r.status_code == 400 and r.json["error"] == "bad_number"


def test_another_organisations_lot_number_is_not_confirmed(client, auth):
    body = {"lot_number": "LV-2611-002", "vector_type": "AAV", "vector": "x", "project": "HX-AAV9"}
    r = client.post("/api/lots", json=body, headers=auth("helix_tech"))
    assert r.status_code == 409 and "exists" not in r.json["message"]
    r = client.post("/api/lots", json={**body, "project": "CART-001"}, headers=auth("tech1"))
    assert r.status_code == 409 and "exists already" in r.json["message"]


def test_wrong_signature_passwords_lock_the_account_like_sign_in(client, auth, app):
    qa = auth("qa1")
    _myco(client, auth("tech1"))
    review_all(client, LOT, qa)
    url = f"/api/lots/{LOT}/transitions"
    limit = app.config["LOGIN_MAX_FAILURES"]
    for i in range(limit):
        r = client.post(
            url,
            json={"action": "release", "signature": {**SIGN, "password": f"guess-{i}"}},
            headers=qa,
        )
        assert r.status_code == 422 and r.json["error"] == "signature_refused"
    # The account now waits: its token is refused too (401), not only its signatures.
    r = client.post(url, json={"action": "release", "signature": SIGN}, headers=qa)
    assert r.status_code == 401 and r.json["error"] == "account_locked"
    assert client.get(f"/api/lots/{LOT}", headers=auth("tech1")).json["state"] == "quarantine"
    locked = client.get("/api/audit?action=auth.locked", headers=auth("admin")).json["events"]
    assert [e["entity_id"] for e in locked] == ["qa1"]


def test_a_run_out_signature_lock_counts_afresh_and_locks_again(client, auth, app):
    from datetime import timedelta

    from lims.models import User, utcnow

    qa = auth("qa1")
    _myco(client, auth("tech1"))
    review_all(client, LOT, qa)
    url = f"/api/lots/{LOT}/transitions"
    wrong = {"action": "release", "signature": {**SIGN, "password": "guess"}}
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post(url, json=wrong, headers=qa)
    with new_session(app.extensions["lims"]["engine"]) as db:
        user = db.exec(select(User).where(User.username == "qa1")).one()
        user.locked_until = utcnow() - timedelta(seconds=1)  # the lockout has run out
        db.add(user)
        db.commit()
    # Counting starts again from zero, and a new run of wrong passwords locks again.
    for _ in range(app.config["LOGIN_MAX_FAILURES"] - 1):
        assert client.post(url, json=wrong, headers=qa).json["error"] == "signature_refused"
    assert client.post(url, json=wrong, headers=qa).json["error"] == "signature_refused"
    r = client.post(url, json={"action": "release", "signature": SIGN}, headers=qa)
    assert r.status_code == 401 and r.json["error"] == "account_locked"


def test_a_qc_correction_names_the_event_that_recorded_the_result_it_replaces(client, auth):
    tech, qa = auth("tech1"), auth("qa1")

    def qc_events() -> list[dict]:
        return client.get(f"/api/audit?lot={LOT}&action=lot.qc", headers=qa).json["events"]

    assert _myco(client, tech).status_code == 201
    first = qc_events()[-1]
    assert first["corrects_seq"] is None  # a first result corrects nothing
    look = {"test": "appearance", "result": "clear, colourless"}
    assert client.post(f"/api/lots/{LOT}/qc", json=look, headers=tech).status_code == 201
    # A repeat may give the same result again: each correction is still a record of its own.
    reasons = ("wrong plate read", "transcription error", "checked again")
    for reason in reasons:
        body = {"test": "mycoplasma", "result": "not detected"}
        r = client.post(f"/api/lots/{LOT}/qc", json={**body, "reason": reason}, headers=tech)
        assert r.status_code == 201, r.json
    fixes = qc_events()[-3:]
    assert [f["reason"] for f in fixes] == list(reasons)
    # Each correction points at the event that recorded the value it replaced, not at a later
    # event of another test (appearance) that only carried it along.
    assert [f["corrects_seq"] for f in fixes] == [first["seq"], fixes[0]["seq"], fixes[1]["seq"]]
