"""Out of specification: opened by a failing result, retests inside it, its phases block release."""

from __future__ import annotations

from helpers import audit_count, verify
from qc_util import APPROVE, LOT, REVIEW, qc, release, result_of, review

CONCLUDE = {"password": "demo-only-lims", "meaning": "approval"}


def _fail_myco(client, tech) -> dict:  # noqa: ANN001
    r = qc(client, LOT, tech, "mycoplasma", "detected")
    assert r.status_code == 201, r.json
    return result_of(r.json, "mycoplasma")


def _move(client, oos_id, headers, action, reason="checked", meaning="approval", **extra):  # noqa: ANN001, ANN003, ANN202
    body = {"action": action, "reason": reason, **extra}
    if meaning:
        body["signature"] = {"password": "demo-only-lims", "meaning": meaning}
    return client.post(f"/api/oos/{oos_id}/transitions", json=body, headers=headers)


def _review_all(client, headers) -> None:  # noqa: ANN001
    for q in client.get(f"/api/lots/{LOT}", headers=headers).json["qc"]:
        if q["reviewed_by"] is None:
            assert review(client, LOT, q["id"], headers).status_code == 200


def test_a_failing_result_opens_an_oos_in_the_same_transaction(client, auth, app):
    tech, qa = auth("tech1"), auth("qa1")
    before = audit_count(app)
    myco = _fail_myco(client, tech)
    assert myco["passed"] is False and myco["oos_phase"] == "phase_1"
    assert audit_count(app) == before + 2  # the result's event and the OOS's own
    opened = client.get("/api/audit?action=oos.open", headers=qa).json["events"]
    assert opened[-1]["entity_id"] == f"OOS-{myco['oos']}" and opened[-1]["actor"] == "tech1"
    listed = client.get("/api/oos?open=true", headers=qa).json["oos"]
    assert [(o["id"], o["lot"], o["test"], o["phase"]) for o in listed] == [
        (myco["oos"], LOT, "mycoplasma", "phase_1")
    ]
    oos = client.get(f"/api/oos/{myco['oos']}", headers=qa).json
    assert oos["result"]["result"] == "detected" and oos["retests"] == []
    assert oos["allowed_actions"] == ["start_investigation", "confirm", "invalidate"]
    # Helix's own lot: its client sees the OOS; NovaCell's does not learn it exists.
    assert client.get(f"/api/oos/{myco['oos']}", headers=auth("helix_viewer")).status_code == 200
    assert client.get(f"/api/oos/{myco['oos']}", headers=auth("nova_viewer")).status_code == 404
    assert client.get("/api/oos", headers=auth("nova_viewer")).json["oos"] == []
    assert verify(app).ok


def test_an_oos_result_is_never_corrected_and_retests_stay_inside_the_oos(client, auth):
    tech, qa = auth("tech1"), auth("qa1")
    myco = _fail_myco(client, tech)
    r = qc(client, LOT, tech, "mycoplasma", "not detected", reason="typo")
    assert r.status_code == 422 and r.json["error"] == "oos_result"
    r = client.post(
        f"/api/oos/{myco['oos']}/retests", json={"result": "not detected"}, headers=tech
    )
    assert r.status_code == 201, r.json
    assert r.json["result"]["result"] == "detected"  # the original stays as it was
    assert [x["result"] for x in r.json["retests"]] == ["not detected"]
    lot = client.get(f"/api/lots/{LOT}", headers=qa).json
    assert result_of(lot, "mycoplasma")["passed"] is False
    assert result_of(lot, "mycoplasma", retest=True)["oos"] == myco["oos"]
    r = client.post(
        f"/api/oos/{myco['oos']}/retests", json={"result": "x"}, headers=auth("helix_viewer")
    )
    assert r.status_code == 403


def test_moves_need_qa_a_reason_and_a_signature(client, auth, app):
    tech, qa = auth("tech1"), auth("qa1")
    oos = _fail_myco(client, tech)["oos"]
    assert _move(client, oos, tech, "start_investigation").status_code == 403
    r = _move(client, oos, qa, "start_investigation", reason="  ", meaning="review")
    assert r.status_code == 422 and r.json["missing"] == ["reason"]
    r = _move(client, oos, qa, "start_investigation", meaning=None)
    assert r.status_code == 422 and r.json["error"] == "signature_required"
    r = _move(client, oos, qa, "start_investigation", meaning="approval")
    assert r.status_code == 400 and r.json["error"] == "signature_meaning"
    r = _move(client, oos, qa, "start_investigation", reason="no lab error found", meaning="review")
    assert r.status_code == 200 and r.json["phase"] == "phase_2"
    r = _move(client, oos, qa, "start_investigation", meaning="review")
    assert r.status_code == 422 and r.json["error"] == "illegal_transition"
    r = _move(client, oos, qa, "invalidate", reason="no lab error")
    assert r.status_code == 422 and r.json["error"] == "retest_required"
    r = _move(client, oos, qa, "confirm", reason="contamination confirmed", version=1)
    assert r.status_code == 409 and r.json["error"] == "version_conflict"
    r = _move(client, oos, qa, "confirm", reason="contamination confirmed")
    assert r.status_code == 200 and r.json["phase"] == "confirmed" and not r.json["open"]
    assert r.json["conclusion"] == "contamination confirmed"
    events = client.get(f"/api/audit?entity=OOS-{oos}", headers=qa).json["events"]
    assert [e["action"] for e in events] == ["oos.open", "oos.start_investigation", "oos.confirm"]
    assert all(e["signature_id"] for e in events[1:])
    assert verify(app).ok


def test_an_open_or_confirmed_oos_blocks_release(client, auth, qa2):
    tech, qa = auth("tech1"), auth("qa1")
    oos = _fail_myco(client, tech)["oos"]
    _review_all(client, qa)
    r = release(client, LOT, qa)
    assert r.status_code == 422 and r.json["error"] == "oos_open" and r.json["oos"] == [oos]
    assert f"OOS-{oos}" in r.json["message"]
    assert _move(client, oos, qa, "confirm", reason="it is contaminated").status_code == 200
    r = release(client, LOT, qa)
    assert r.status_code == 422 and r.json["error"] == "oos_confirmed"
    r = client.post(f"/api/oos/{oos}/retests", json={"result": "not detected"}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "oos_closed"
    # A confirmed OOS cannot be escaped by any later move either.
    assert _move(client, oos, qa, "invalidate").status_code == 422


def test_an_invalidated_oos_sets_the_result_aside_and_the_retest_counts(client, auth, qa2):
    tech, qa = auth("tech1"), auth("qa1")
    oos = _fail_myco(client, tech)["oos"]
    r = client.post(
        f"/api/oos/{oos}/retests",
        json={"result": "not detected", "reason": "plate 2, new sample"},
        headers=tech,
    )
    assert r.status_code == 201
    r = _move(client, oos, qa, "invalidate", reason="positive control contaminated")
    assert r.status_code == 200 and r.json["phase"] == "invalidated"
    r = release(client, LOT, qa)
    assert r.status_code == 422 and r.json["error"] == "qc_not_reviewed"
    _review_all(client, qa)
    r = release(client, LOT, qa)
    assert r.status_code == 200, r.json
    mycos = [q for q in r.json["qc"] if q["test"] == "mycoplasma"]
    assert [(q["result"], q["passed"], q["retest"]) for q in mycos] == [
        ("detected", False, False),
        ("not detected", True, True),
    ]


def test_a_failing_retest_after_invalidation_still_blocks_release(client, auth):
    tech, qa = auth("tech1"), auth("qa1")
    oos = _fail_myco(client, tech)["oos"]
    r = client.post(f"/api/oos/{oos}/retests", json={"result": "detected"}, headers=tech)
    assert r.status_code == 201
    assert client.get("/api/oos?open=true", headers=qa).json["oos"][0]["id"] == oos  # no 2nd OOS
    assert _move(client, oos, qa, "invalidate", reason="wrong").status_code == 200
    _review_all(client, qa)
    r = release(client, LOT, qa)
    assert r.status_code == 422 and r.json["error"] == "qc_failed"


def test_the_oos_pages_show_and_move_an_investigation(client, auth):
    from helpers import post_form, sign_in

    oos = _fail_myco(client, auth("tech1"))["oos"]
    sign_in(client, "qa1")
    page = client.get("/quality/oos")
    assert page.status_code == 200 and f"OOS-{oos}" in page.text
    page = client.get(f"/quality/oos/{oos}")
    assert "detected" in page.text and 'id="oos-start_investigation"' in page.text
    r = post_form(client, f"/quality/oos/{oos}/retest", result="not detected")
    assert r.status_code == 302
    r = post_form(
        client,
        f"/quality/oos/{oos}/transition",
        action="invalidate",
        reason="lab error",
        meaning="approval",
        password=REVIEW["password"],
        version="1",
    )
    assert r.status_code == 302, r.text
    assert "invalidated" in client.get(f"/quality/oos/{oos}").text
    assert APPROVE["meaning"] == "approval"


def test_the_oos_list_puts_open_investigations_before_newer_closed_ones(client, auth):
    from helpers import sign_in

    tech, qa = auth("tech1"), auth("qa1")
    older = _fail_myco(client, tech)["oos"]
    r = qc(client, LOT, tech, "sterility", "growth", reason="plate read again")
    assert r.status_code == 201, r.json
    newer = result_of(r.json, "sterility")["oos"]
    r = client.post(f"/api/oos/{newer}/retests", json={"result": "no growth"}, headers=tech)
    assert r.status_code == 201, r.json
    r = _move(client, newer, qa, "invalidate", reason="contaminated plate")
    assert r.status_code == 200, r.json
    listed = client.get("/api/oos", headers=qa).json["oos"]
    assert [o["id"] for o in listed] == [older, newer]
    sign_in(client, "qa1")
    page = client.get("/quality/oos").text
    assert page.index(f"OOS-{older}") < page.index(f"OOS-{newer}")
    assert "2 investigations" in page
