"""Four eyes: who recorded a result may not review it or release the lot; release needs review."""

from __future__ import annotations

from helpers import audit_count, verify
from qc_util import LOT, REVIEW, qc, release, result_of, review


def _lot(client, headers):  # noqa: ANN001, ANN202
    return client.get(f"/api/lots/{LOT}", headers=headers).json


def test_a_result_shows_its_specification_recorder_and_reviewer(client, auth):
    r = qc(client, LOT, auth("tech1"), "mycoplasma", "not detected", method="qPCR (Ph. Eur. 2.6.7)")
    assert r.status_code == 201, r.json
    myco = result_of(r.json, "mycoplasma")
    assert myco["spec"] == "not detected" and myco["spec_code"] == "AAV-RELEASE"
    assert (myco["spec_version"], myco["recorded_by"], myco["reviewed_by"]) == (1, "tech1", None)
    assert myco["oos"] is None and myco["method"] == "qPCR (Ph. Eur. 2.6.7)"
    titer = result_of(r.json, "titer")
    assert (titer["spec"], titer["unit"]) == (">= 1e12 vg/mL", "vg/mL")
    r = qc(client, LOT, auth("tech1"), "appearance", "clear, colourless", method="ELISA")
    assert r.status_code == 422 and r.json["error"] == "method_mismatch"


def test_the_recorder_may_not_review_and_a_review_is_signed_once(client, auth, app, qa2):
    qa1, tech = auth("qa1"), auth("tech1")
    r = qc(client, LOT, qa1, "mycoplasma", "not detected")
    myco = result_of(r.json, "mycoplasma")["id"]
    before = audit_count(app)
    r = review(client, LOT, myco, qa1)
    assert r.status_code == 422 and r.json["error"] == "four_eyes_review"
    r = review(client, LOT, myco, tech)
    assert r.status_code == 403 and r.json["error"] == "role_required"
    r = client.post(f"/api/lots/{LOT}/qc/{myco}/review", json={}, headers=qa2)
    assert r.status_code == 422 and r.json["error"] == "signature_required"
    assert audit_count(app) == before
    r = review(client, LOT, myco, qa2)
    assert r.status_code == 200, r.json
    reviewed = result_of(r.json, "mycoplasma")
    assert reviewed["reviewed_by"] == "qa2" and reviewed["reviewed_at"]
    assert audit_count(app) == before + 1
    ev = client.get(f"/api/audit?lot={LOT}&action=qc.review", headers=qa1).json["events"]
    assert ev[-1]["actor"] == "qa2" and ev[-1]["signature_id"]
    r = review(client, LOT, myco, auth("qa1"))
    assert r.status_code == 409 and r.json["error"] == "already_reviewed"
    assert review(client, LOT, 99999, qa2).status_code == 404
    assert review(client, "LV-2611-002", myco, qa2).status_code == 404  # not that lot's
    assert verify(app).ok


def test_a_corrected_result_is_reviewed_as_its_correction(client, auth, qa2):
    tech = auth("tech1")
    old = result_of(_lot(client, tech), "endotoxin")["id"]
    r = qc(client, LOT, tech, "endotoxin", "0.9 EU/mL", reason="transcription error")
    new = result_of(r.json, "endotoxin")
    assert new["supersedes"] == old and new["reason"] == "transcription error"
    r = review(client, LOT, old, qa2)
    assert r.status_code == 422 and r.json["error"] == "superseded"
    assert review(client, LOT, new["id"], qa2).status_code == 200


def test_release_needs_every_result_reviewed_and_not_by_its_recorder(client, auth, app, qa2):
    qa1 = auth("qa1")
    # qa1 records a result themself (as in the incident of issue 15) and then tries to release.
    assert qc(client, LOT, qa1, "mycoplasma", "not detected").status_code == 201
    r = release(client, LOT, qa1)
    assert r.status_code == 422 and r.json["error"] == "qc_not_reviewed"
    assert sorted(r.json["unreviewed"]) == ["endotoxin", "mycoplasma", "sterility", "titer"]
    for q in _lot(client, qa1)["qc"]:
        assert review(client, LOT, q["id"], qa2).status_code == 200
    r = release(client, LOT, qa1)
    assert r.status_code == 422 and r.json["error"] == "four_eyes_release"
    assert "you recorded" in r.json["message"]
    r = release(client, LOT, qa2)
    assert r.status_code == 200 and r.json["state"] == "released", r.json
    assert verify(app).ok


def test_the_optional_tests_of_the_plan_do_not_hold_a_release(client, auth, qa2):
    tech = auth("tech1")
    qc(client, LOT, tech, "mycoplasma", "not detected")
    for q in _lot(client, tech)["qc"]:
        review(client, LOT, q["id"], qa2)
    # appearance is in AAV-RELEASE but not required for disposition.
    assert "appearance" not in _lot(client, tech)["qc_missing"]
    assert release(client, LOT, auth("qa1")).status_code == 200


def test_the_lot_page_shows_limits_reviewers_and_why_release_is_disabled(client, auth):
    from helpers import post_form, sign_in

    sign_in(client, "qa1")
    page = client.get(f"/lots/{LOT}")
    assert page.status_code == 200
    assert "AAV-RELEASE v1" in page.text and "&gt;= 1e12 vg/mL" in page.text
    assert 'id="release-blocker"' in page.text and "QC results missing: mycoplasma" in page.text
    assert "disabled" in page.text.split('id="lot-release"')[1].split("</form>")[0]
    myco = qc(client, LOT, auth("tech1"), "mycoplasma", "not detected").json
    result_id = result_of(myco, "mycoplasma")["id"]
    r = post_form(client, f"/lots/{LOT}/qc/{result_id}/review", password="wrong", meaning="review")
    assert r.status_code == 422 and "signature refused" in r.text
    r = post_form(
        client, f"/lots/{LOT}/qc/{result_id}/review", password=REVIEW["password"], meaning="review"
    )
    assert r.status_code == 302
    page = client.get(f"/lots/{LOT}")
    assert "QC results not reviewed: titer, sterility, endotoxin" in page.text
