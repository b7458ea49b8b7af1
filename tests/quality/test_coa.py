"""Certificate of analysis: a released lot's PDF for centre staff and the lot's own client."""

from __future__ import annotations

import hashlib

from helpers import PASSWORD, pdf_text, review_all, verify

LOT = "AAV9-2611-001"  # demo: Helix Bio, quarantine, mycoplasma missing
RELEASED = "LV-2611-002"  # demo: NovaCell, released by qa1 after the trail review


def _coa(client, headers, lot: str = RELEASED):
    return client.get(f"/api/lots/{lot}/coa.pdf", headers=headers)


def _release(client, auth) -> None:
    qa, tech = auth("qa1"), auth("tech1")
    body = {"test": "mycoplasma", "result": "not detected"}
    assert client.post(f"/api/lots/{LOT}/qc", json=body, headers=tech).status_code == 201
    review_all(client, LOT, qa)  # each result, then the trail
    r = client.post(
        f"/api/lots/{LOT}/transitions",
        json={"action": "release", "signature": {"password": PASSWORD, "meaning": "release"}},
        headers=qa,
    )
    assert r.status_code == 200, r.json


def test_only_a_released_lot_has_a_certificate(client, auth):
    r = _coa(client, auth("qa1"), LOT)
    assert r.status_code == 422 and r.json["error"] == "lot_not_released"
    assert "quarantine" in r.json["message"] and r.json["state"] == "quarantine"


def test_the_certificate_states_results_signatures_and_the_chain(client, auth, app):
    _release(client, auth)
    r = _coa(client, auth("helix_viewer"), LOT)
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    text = pdf_text(r.data)
    for expected in (
        "Certificate of analysis: lot AAV9-2611-001",
        "AAV9-CMV-hFIX",
        "Helix Bio Ltd",
        "2026-11-02",
        "2028-11-02",
        # Each result with its method, the specification and version it was judged against,
        # who recorded and who reviewed it.
        "titer ddPCR AAV-RELEASE: >= 1e12 vg/mL 1 2.1e13 vg/mL yes tech1 qa1",
        "2.1e13 vg/mL",
        "no growth",
        "0.8 EU/mL",
        "not detected",
        "Release: Quinn Quality (qa1), meaning 'release'",
        "Audit trail reviewed: Quinn Quality (qa1), meaning 'review'",
        "verification PASSED",
    ):
        assert expected in text, expected
    assert "Method" in text and "Spec version" in text and "Reviewed by" in text
    # A client's certificate does not state the centre-wide event count.
    assert "all " not in text.split("verification PASSED")[1][:40]
    assert verify(app).ok


def test_each_certificate_issued_is_recorded_with_its_hash(client, auth):
    qa = auth("qa1")
    before = client.get(f"/api/audit?lot={RELEASED}&action=lot.coa_issued", headers=qa).json
    assert before["events"] == []
    r = _coa(client, auth("nova_viewer"))
    assert r.status_code == 200
    digest = hashlib.sha256(r.data).hexdigest()
    assert r.headers["X-Content-SHA256"] == digest
    events = client.get(f"/api/audit?lot={RELEASED}&action=lot.coa_issued", headers=qa).json
    (ev,) = events["events"]
    assert ev["actor"] == "nova_viewer" and ev["entity_id"] == RELEASED
    after = ev["after"]
    assert after["sha256"] == digest and after["bytes"] == len(r.data)
    assert after["document"] == "certificate of analysis" and after["chain_ok"] is True
    assert {q["test"] for q in after["qc"]} == {"titer", "sterility", "endotoxin", "mycoplasma"}
    assert after["release_signature"] and after["review_signature"]


def test_issuing_a_certificate_does_not_make_the_review_stale(client, auth):
    qa = auth("qa1")
    _release(client, auth)
    assert _coa(client, qa, LOT).status_code == 200
    status = client.get(f"/api/lots/{LOT}/audit-trail", headers=qa).json["review"]
    assert status["current"] and status["new_events"] == 0


def test_another_organisation_is_told_there_is_no_such_lot(client, auth):
    for who in ("helix_viewer", "helix_tech"):
        r = _coa(client, auth(who))
        assert r.status_code == 404 and r.json["error"] == "unknown_lot", who
    assert _coa(client, auth("tech1")).status_code == 200  # centre staff
    assert _coa(client, auth("nova_viewer"), "NOPE-1").status_code == 404
