"""QA's audit-trail review of a lot (EU GMP Annex 11 §9): the lineage page, the signed review,
and release refused without a review that covers every lineage event."""

from __future__ import annotations

import re

import pytest
from helpers import (
    PASSWORD,
    audit_count,
    pdf_text,
    post_form,
    review_all,
    review_trail,
    sign_in,
    verify,
)
from printing_util import add_printer, queue

LOT = "AAV9-2611-001"  # demo: Helix Bio, quarantine, mycoplasma missing, six vials
RELEASED = "LV-2611-002"  # demo: NovaCell, released (reviewed before release), four vials
SIGN = {"password": PASSWORD, "meaning": "release"}
REVIEW = {"password": PASSWORD, "meaning": "review"}


def _myco(client, headers) -> None:
    body = {"test": "mycoplasma", "result": "not detected"}
    assert client.post(f"/api/lots/{LOT}/qc", json=body, headers=headers).status_code == 201


def _trail(client, headers, lot: str = LOT, **params) -> dict:
    r = client.get(f"/api/lots/{lot}/audit-trail", query_string=params, headers=headers)
    assert r.status_code == 200, r.json
    return r.json


def _review(client, headers, up_to_seq, lot: str = LOT, signature=REVIEW):
    return client.post(
        f"/api/lots/{lot}/audit-trail/review",
        json={"up_to_seq": up_to_seq, "signature": signature},
        headers=headers,
    )


def _release(client, headers, lot: str = LOT):
    return client.post(
        f"/api/lots/{lot}/transitions",
        json={"action": "release", "signature": SIGN},
        headers=headers,
    )


def _new_vial(client, headers, lot: str = LOT) -> str:
    r = client.post(
        "/api/samples", json={"sample_type": "VECTOR_VIAL", "lot": lot}, headers=headers
    )
    assert r.status_code == 201, r.json
    return r.json["barcode"]


def test_release_is_refused_without_a_review_and_with_a_stale_one(client, auth, app):
    qa, tech = auth("qa1"), auth("tech1")
    _myco(client, tech)
    review_all(client, LOT, qa, trail=False)  # every result reviewed: only the trail is left
    r = _release(client, qa)
    assert r.status_code == 422 and r.json["error"] == "audit_trail_not_reviewed"
    assert "not been reviewed" in r.json["message"]
    newest = _trail(client, qa)["review"]["newest_seq"]
    r = _review(client, qa, newest)
    assert r.status_code == 201, r.json
    assert r.json["review"]["current"] and r.json["reviewed_up_to_seq"] == newest
    # A vial registered after the review: the review no longer covers the lineage.
    _new_vial(client, tech)
    r = _release(client, qa)
    assert r.status_code == 422 and r.json["error"] == "audit_trail_changed"
    assert r.json["new_events"] == 1 and "1 event(s)" in r.json["message"]
    status = _trail(client, qa)["review"]
    assert (status["current"], status["new_events"]) == (False, 1)
    # Reviewed again (the first review's own event is no new event): released.
    r = _review(client, qa, status["newest_seq"])
    assert r.status_code == 201
    r = _release(client, qa)
    assert r.status_code == 200 and r.json["state"] == "released"
    assert verify(app).ok


def test_lifting_a_hold_needs_a_current_review(client, auth):
    qa = auth("qa1")
    url = f"/api/lots/{RELEASED}/transitions"
    r = client.post(url, json={"action": "hold", "reason": "deviation DV-7"}, headers=qa)
    assert r.status_code == 200
    lift = {"action": "lift_hold", "reason": "DV-7 closed", "signature": SIGN}
    r = client.post(url, json=lift, headers=qa)
    assert r.status_code == 422 and r.json["error"] == "audit_trail_changed"
    review_trail(client, RELEASED, qa)
    r = client.post(url, json=lift, headers=qa)
    assert r.status_code == 200 and r.json["state"] == "released"


def test_a_review_is_qa_s_and_carries_a_review_signature(client, auth, app):
    qa = auth("qa1")
    newest = _trail(client, qa)["review"]["newest_seq"]
    for who in ("tech1", "admin", "helix_viewer", "helix_tech"):
        r = _review(client, auth(who), newest)
        assert r.status_code == 403 and r.json["error"] == "role_required", who
    assert _review(client, auth("nova_viewer"), newest).status_code == 403
    r = client.post(f"/api/lots/{LOT}/audit-trail/review", json={"up_to_seq": newest}, headers=qa)
    assert r.status_code == 400
    r = _review(client, qa, newest, signature={**REVIEW, "meaning": "approval"})
    assert r.status_code == 400 and r.json["error"] == "signature_meaning"
    before = audit_count(app)
    r = _review(client, qa, newest, signature={**REVIEW, "password": "wrong!"})
    assert r.status_code == 422 and r.json["error"] == "signature_refused"
    assert audit_count(app) == before + 1  # the refused signature, nothing else
    assert not _trail(client, qa)["review"]["reviewed"]
    r = _review(client, qa, newest)
    assert r.status_code == 201
    assert audit_count(app) == before + 2  # one event for the review
    ev = _trail(client, qa, limit=1)["events"][0]
    assert (ev["action"], ev["actor"], ev["entity_id"]) == ("lot.trail_review", "qa1", LOT)
    assert ev["after"]["reviewed_up_to_seq"] == newest
    assert ev["after"]["signature"]["meaning"] == "review"
    assert ev["after"]["signature"]["printed_name"] == "Quinn Quality"
    status = _trail(client, qa)["review"]
    assert status["signature"]["username"] == "qa1" and status["signature"]["meaning"] == "review"
    # The review is not among the lot's disposition signatures.
    assert client.get(f"/api/lots/{LOT}", headers=qa).json["signatures"] == []
    r = _review(client, qa, newest)
    assert r.status_code == 409 and r.json["error"] == "already_reviewed"
    # The lot's custody report lists the review signature, checked against its event.
    text = pdf_text(client.get(f"/api/lots/{LOT}/report.pdf", headers=qa).data)
    assert f"lot_trail/{LOT}" in text and "intact" in text and "NOT VERIFIED" not in text
    assert verify(app).ok


def test_a_review_of_a_page_that_is_out_of_date_is_409(client, auth):
    qa, tech = auth("qa1"), auth("tech1")
    seen = _trail(client, qa)["review"]["newest_seq"]
    _myco(client, tech)  # recorded while QA reads the page
    r = _review(client, qa, seen)
    assert r.status_code == 409 and r.json["error"] == "trail_changed"
    assert r.json["new_events"] == 1 and "new events since you loaded the page" in r.json["message"]
    r = _review(client, qa, r.json["newest_seq"] + 1000)
    assert r.status_code == 422 and r.json["error"] == "unknown_seq"
    assert not _trail(client, qa)["review"]["reviewed"]
    assert _review(client, qa, _trail(client, qa)["review"]["newest_seq"]).status_code == 201


def test_the_page_holds_the_lineage_newest_first_and_pages_by_cursor(client, auth, runner, sim):
    qa, tech = auth("qa1"), auth("tech1")
    vial = _new_vial(client, tech)
    r = client.post(
        f"/api/samples/{vial}/transitions",
        json={"action": "receive", "condition": "ok"},
        headers=tech,
    )
    assert r.status_code == 200, r.json
    other = _new_vial(client, tech, RELEASED)  # another lot's vial
    add_printer(runner, "Z1", sim.port)
    # One job labelling tubes of two lots belongs to neither by its lot id; it is on both pages.
    job = queue(client, tech, [vial, other]).json["id"]
    events = _trail(client, qa, limit=1000)["events"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs, reverse=True)
    records = {(e["entity_type"], e["entity_id"]) for e in events}
    assert ("lot", LOT) in records and ("sample", vial) in records
    assert ("print_job", str(job)) in records
    assert ("sample", other) not in records
    assert ("print_job", str(job)) in {
        (e["entity_type"], e["entity_id"]) for e in _trail(client, qa, RELEASED)["events"]
    }
    first = _trail(client, qa, limit=3)
    assert [e["seq"] for e in first["events"]] == seqs[:3]
    nxt = _trail(client, qa, limit=3, cursor=first["next_cursor"])
    assert [e["seq"] for e in nxt["events"]] == seqs[3:6]
    # The lot's own client reads it; another organisation's is told no such lot.
    assert (
        client.get(f"/api/lots/{LOT}/audit-trail", headers=auth("helix_viewer")).status_code == 200
    )
    assert (
        client.get(f"/api/lots/{LOT}/audit-trail", headers=auth("nova_viewer")).status_code == 404
    )
    assert client.get(f"/api/lots/{LOT}/audit-trail", headers=tech).status_code == 403
    assert client.get(f"/api/lots/{LOT}/audit-trail?cursor=x", headers=qa).status_code == 400


@pytest.mark.parametrize("stale", [False, True])
def test_qa_signs_the_review_on_the_page(app, stale):
    web = app.test_client()
    assert sign_in(web, "qa1").status_code == 302
    page = web.get(f"/lots/{LOT}")
    assert "Not reviewed" in page.text and f"/lots/{LOT}/audit-trail" in page.text
    trail = web.get(f"/lots/{LOT}/audit-trail")
    assert trail.status_code == 200 and 'id="trail-review-form"' in trail.text
    seq = int(re.search(r'name="up_to_seq" value="(\d+)"', trail.text).group(1))
    if stale:
        tech = app.test_client()
        sign_in(tech, "tech1")
        post_form(
            tech, f"/lots/{LOT}/qc", test="appearance", spec="clear", result="clear", passed="yes"
        )
    r = post_form(
        web,
        f"/lots/{LOT}/audit-trail/review",
        up_to_seq=str(seq),
        meaning="review",
        password=PASSWORD,
    )
    if stale:
        assert r.status_code == 409 and "new events since you loaded the page" in r.text
        return
    assert r.status_code == 302
    page = web.get(f"/lots/{LOT}")
    assert f"Reviewed up to seq {seq}" in page.text and "Quinn Quality" in page.text
