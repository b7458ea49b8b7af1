"""QA's signed review of a whole batch record: after every step, by someone who did none of them,
and before the lot's release (issue #18)."""

from __future__ import annotations

from batch_util import approved_template, lot_with_record
from helpers import audit_count, pdf_text, post_form, sign_in, verify
from mfg_util import PASSWORD

REVIEW = {"signature": {"password": PASSWORD, "meaning": "review"}}
RELEASE = {"action": "release", "signature": {"password": PASSWORD, "meaning": "release"}}


def _step(client, headers, lot: str, n: int, values: dict) -> None:  # noqa: ANN001
    r = client.post(
        f"/api/lots/{lot}/batch-record/steps/{n}", json={"values": values}, headers=headers
    )
    assert r.status_code == 201, r.json


def _verify(client, headers, lot: str, n: int) -> None:  # noqa: ANN001
    r = client.post(
        f"/api/lots/{lot}/batch-record/steps/{n}/verify",
        json={"signature": {"password": PASSWORD, "meaning": "review"}},
        headers=headers,
    )
    assert r.status_code == 200, r.json


def _review(client, headers, lot: str, body: dict = REVIEW):  # noqa: ANN001, ANN201
    return client.post(f"/api/lots/{lot}/batch-record/review", json=body, headers=headers)


def _to_quarantine(client, headers, lot: str) -> None:  # noqa: ANN001
    for action in ("start_production", "complete"):
        r = client.post(f"/api/lots/{lot}/transitions", json={"action": action}, headers=headers)
        assert r.status_code == 200, r.json


def test_qa_signs_the_review_of_a_complete_record_before_release_not_a_step_signer(
    app,  # noqa: ANN001
    client,  # noqa: ANN001
    auth,  # noqa: ANN001
    qa2,  # noqa: ANN001
):
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "RV-1")
    tech1, qa1 = auth("tech1"), auth("qa1")
    _step(client, tech1, "RV-1", 1, {"cell density": 1.0})
    _step(client, tech1, "RV-1", 2, {"plasmid total": 2.0, "temperature": 37})
    _verify(client, qa1, "RV-1", 2)  # qa1 verifies step 2: qa1 may not review the record

    r = _review(client, qa2, "RV-1")
    assert (r.status_code, r.json["error"]) == (422, "batch_record_incomplete")
    assert "next: step 3" in r.json["message"]
    _step(client, tech1, "RV-1", 3, {})
    _to_quarantine(client, tech1, "RV-1")

    before = audit_count(app)
    r = _review(client, qa1, "RV-1")
    assert (r.status_code, r.json["error"]) == (422, "four_eyes_review")
    assert _review(client, tech1, "RV-1").status_code == 403
    r = _review(client, qa2, "RV-1", {"signature": {"password": PASSWORD, "meaning": "approval"}})
    assert (r.status_code, r.json["error"]) == (400, "signature_meaning")
    r = _review(client, qa2, "RV-1", {"signature": {"password": "wrong", "meaning": "review"}})
    assert (r.status_code, r.json["error"]) == (422, "signature_refused")
    assert audit_count(app) == before + 1  # only the refused signature is on the trail

    # Until QA reviews it, the lot is not released; the page says why.
    r = client.post("/api/lots/RV-1/transitions", json=RELEASE, headers=qa1)
    assert (r.status_code, r.json["error"]) == (422, "batch_record_not_reviewed")
    sign_in(client, "qa1")
    page = client.get("/lots/RV-1").text
    assert 'id="release-blocker"' in page and "batch record of lot RV-1 has not been" in page
    assert 'id="batch-review-blocker"' in page and "four-eyes rule" in page
    page = client.get("/lots/RV-1/batch").text
    assert 'id="batch-review-submit" disabled' in page and "you recorded or verified" in page

    before = audit_count(app)
    r = _review(client, qa2, "RV-1")
    assert r.status_code == 201, r.json
    sig = r.json["review"]["signature"]
    assert r.json["review"]["reviewed_by"] == "qa2" and r.json["review_blocker"] is not None
    assert (sig["printed_name"], sig["meaning"], sig["record"]) == (
        "Quentin Quality",
        "review",
        "batch_record/RV-1",
    )
    assert audit_count(app) == before + 1
    events = client.get("/api/audit?entity=RV-1&action=batch.review", headers=qa1).json["events"]
    assert [(e["actor"], e["after"]["review"]) for e in events] == [("qa2", "batch record")]
    assert events[0]["after"]["steps"][1]["verifier"] == "qa1"
    assert verify(app).ok
    r = _review(client, qa2, "RV-1")
    assert (r.status_code, r.json["error"]) == (409, "already_reviewed")

    # The batch record no longer stands in the way; the QC rules are next.
    r = client.post("/api/lots/RV-1/transitions", json=RELEASE, headers=qa1)
    assert r.status_code == 422 and not r.json["error"].startswith("batch_record"), r.json
    page = client.get("/lots/RV-1").text
    assert "QA review signed by <strong>Quentin Quality</strong>" in page
    assert "has not been reviewed" not in page.split('id="release-blocker"')[-1][:400]
    text = pdf_text(client.get("/api/lots/RV-1/batch-record.pdf", headers=qa1).data)
    assert "Reviewed by Quentin Quality (qa2)" in text and "meaning review" in text


def test_the_review_is_signed_on_the_batch_record_page(app, client, auth, qa2):  # noqa: ANN001
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "RV-2")
    tech1 = auth("tech1")
    _step(client, tech1, "RV-2", 1, {"cell density": 1.0})
    _step(client, tech1, "RV-2", 2, {"plasmid total": 2.0, "temperature": 37})
    _verify(client, auth("tech2"), "RV-2", 2)
    sign_in(client, "qa1")
    page = client.get("/lots/RV-2/batch").text
    assert 'id="batch-review-submit" disabled' in page and "not complete" in page
    _step(client, tech1, "RV-2", 3, {})
    page = client.get("/lots/RV-2/batch").text
    assert 'id="batch-review-form"' in page and 'id="batch-review-blocker"' not in page
    r = post_form(client, "/lots/RV-2/batch/review", password="")
    assert r.status_code == 422 and "Enter your password" in r.text
    r = post_form(client, "/lots/RV-2/batch/review", password=PASSWORD)
    assert r.status_code == 302, r.text
    page = client.get("/lots/RV-2/batch").text
    assert 'id="batch-review-status"' in page and "Reviewed by <strong>" in page
    assert 'id="batch-review-form"' not in page
    # A technician sees the review, not a form to sign it.
    other = app.test_client()
    sign_in(other, "tech1")
    page = other.get("/lots/RV-2").text
    assert "QA review signed by" in page and 'id="batch-review-link"' not in page
