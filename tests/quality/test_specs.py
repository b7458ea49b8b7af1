"""Specifications as master data: drafts, four-eyes approval, versions in force, judging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers import audit_count, verify
from qc_util import APPROVE, LOT, new_lot, qc, release, result_of

from lims.errors import BadRequest, Refused
from lims.models import SpecLimit
from lims.quality import specs

PBMC = {
    "code": "PBMC-RELEASE",
    "product": "PBMC",
    "stage": "release",
    "title": "PBMC release",
    "limits": [
        {"test": "viability", "method": "trypan blue", "unit": "%", "lower": 70},
        {"test": "sterility", "text": "no growth"},
    ],
}


def _move(client, code, version, headers, action="approve", **body):  # noqa: ANN001, ANN003, ANN202
    return client.post(
        f"/api/specs/{code}/{version}/transitions", json={"action": action, **body}, headers=headers
    )


def test_a_draft_is_approved_by_another_qa_person_with_a_signature(client, auth, app, qa2):
    qa1 = auth("qa1")
    r = client.post("/api/specs", json=PBMC, headers=qa1)
    assert r.status_code == 201, r.json
    assert (r.json["state"], r.json["version"], r.json["created_by"]) == ("draft", 1, "qa1")
    assert [x["limit"] for x in r.json["limits"]] == [">= 70 %", "no growth"]
    before = audit_count(app)
    # Four eyes: the author may not approve their own draft.
    r = _move(client, "PBMC-RELEASE", 1, qa1, signature=APPROVE)
    assert r.status_code == 422 and r.json["error"] == "four_eyes_approval"
    r = _move(client, "PBMC-RELEASE", 1, qa2)
    assert r.status_code == 422 and r.json["error"] == "signature_required"
    r = _move(client, "PBMC-RELEASE", 1, qa2, signature={**APPROVE, "meaning": "review"})
    assert r.status_code == 400 and r.json["error"] == "signature_meaning"
    assert audit_count(app) == before
    r = _move(client, "PBMC-RELEASE", 1, qa2, signature=APPROVE)
    assert r.status_code == 200, r.json
    assert (r.json["state"], r.json["approved_by"]) == ("approved", "qa2")
    assert r.json["signature"]["meaning"] == "approval"
    events = client.get("/api/audit?action=spec.approve", headers=qa1).json["events"]
    assert events[-1]["entity_id"] == "PBMC-RELEASE v1" and events[-1]["signature_id"]
    assert verify(app).ok


def test_who_may_write_and_what_a_draft_must_hold(client, auth, qa2):
    qa1 = auth("qa1")
    r = client.post("/api/specs", json=PBMC, headers=auth("tech1"))
    assert r.status_code == 403 and r.json["error"] == "role_required"
    twice = {**PBMC, "limits": [PBMC["limits"][1], PBMC["limits"][1]]}
    r = client.post("/api/specs", json=twice, headers=qa1)
    assert r.status_code == 422 and r.json["error"] == "duplicate_test"
    r = client.post("/api/specs", json={**PBMC, "product": "PIZZA"}, headers=qa1)
    assert r.status_code == 422 and r.json["error"] == "unknown_product"
    both = {**PBMC, "limits": [{"test": "sterility", "text": "no growth", "upper": 1}]}
    assert client.post("/api/specs", json=both, headers=qa1).status_code == 400
    assert client.post("/api/specs", json=PBMC, headers=qa1).status_code == 201
    r = client.post("/api/specs", json=PBMC, headers=qa1)
    assert r.status_code == 409 and r.json["error"] == "draft_exists"
    r = client.post("/api/specs", json={**PBMC, "product": "TCELL"}, headers=qa1)
    assert r.status_code == 409  # the draft first; then a code keeps its product and stage
    assert _move(client, "PBMC-RELEASE", 1, qa2, signature=APPROVE).status_code == 200
    r = client.post("/api/specs", json={**PBMC, "product": "TCELL"}, headers=qa1)
    assert r.status_code == 422 and r.json["error"] == "spec_code_taken"


def test_a_draft_judges_nothing_and_a_new_version_supersedes_the_old(client, auth, qa2):
    tech, qa1 = auth("tech1"), auth("qa1")
    lot = new_lot(client, tech, "AAV-SPEC-1")
    v2 = {
        "code": "AAV-RELEASE",
        "product": "AAV",
        "stage": "release",
        "title": "AAV release, titer raised",
        "limits": [
            {"test": "titer", "method": "ddPCR", "unit": "vg/mL", "lower": 1e13},
            {"test": "sterility", "text": "no growth"},
        ],
    }
    r = client.post("/api/specs", json=v2, headers=qa1)
    assert r.status_code == 201 and r.json["version"] == 2
    # The draft is not in force: 5e12 is judged against v1 (>= 1e12) and passes.
    r = qc(client, lot, tech, "titer", "5e12 vg/mL")
    assert result_of(r.json, "titer")["passed"] is True
    assert result_of(r.json, "titer")["spec_version"] == 1
    sampled_before = datetime.now(UTC) - timedelta(seconds=1)
    assert _move(client, "AAV-RELEASE", 2, qa2, signature=APPROVE).status_code == 200
    v1 = client.get("/api/specs/AAV-RELEASE/1", headers=qa1).json
    assert v1["state"] == "superseded" and v1["ended_at"]
    # A result is judged against the version in force when its sample was taken.
    r = qc(
        client, lot, tech, "titer", "5e12 vg/mL", reason="re-read", sampled_at=_iso(sampled_before)
    )
    titer = result_of(r.json, "titer")
    assert (titer["passed"], titer["spec_version"], titer["spec"]) == (True, 1, ">= 1e12 vg/mL")
    r = qc(client, lot, tech, "endotoxin", "1 EU/mL")
    assert r.status_code == 422 and r.json["error"] == "spec_missing"
    assert "AAV-RELEASE v2" in r.json["message"] and "endotoxin" in r.json["message"]
    # The sampling plan is v2's now: titer and sterility.
    assert client.get(f"/api/lots/{lot}", headers=qa1).json["qc_missing"] == ["sterility"]
    listed = client.get("/api/specs?product=AAV", headers=qa1).json["specifications"]
    assert [(s["version"], s["state"]) for s in listed] == [(1, "superseded"), (2, "approved")]


def test_retiring_leaves_no_spec_in_force_and_release_is_refused(client, auth, qa2):
    qa1, tech = auth("qa1"), auth("tech1")
    r = _move(client, "AAV-RELEASE", 1, qa1, action="retire", signature=APPROVE)
    assert r.status_code == 422 and r.json["missing"] == ["reason"]
    r = _move(
        client, "AAV-RELEASE", 1, qa1, action="retire", reason="method withdrawn", signature=APPROVE
    )
    assert r.status_code == 200 and r.json["state"] == "retired"
    r = qc(client, LOT, tech, "mycoplasma", "not detected")
    assert r.status_code == 422 and r.json["error"] == "spec_missing"
    r = release(client, LOT, qa2)
    assert r.status_code == 422 and r.json["error"] == "spec_missing"
    r = _move(client, "AAV-RELEASE", 1, qa1, action="approve", signature=APPROVE)
    assert r.status_code == 422 and r.json["error"] == "illegal_transition"


def test_a_sample_taken_before_any_specification_cannot_be_judged(client, auth):
    r = qc(
        client, LOT, auth("tech1"), "mycoplasma", "not detected", sampled_at="2020-01-01T00:00:00Z"
    )
    assert r.status_code == 422 and r.json["error"] == "spec_missing"
    assert "2020-01-01" in r.json["message"]
    future = _iso(datetime.now(UTC) + timedelta(days=1))
    r = qc(client, LOT, auth("tech1"), "mycoplasma", "not detected", sampled_at=future)
    assert r.status_code == 422 and r.json["error"] == "bad_time"


def test_a_spec_sheet_line_is_read_as_a_person_writes_it():
    t = specs.parse_limit_line("viability | flow (7-AAD) | % | >= 70 and <= 100")
    assert (t.lower, t.upper, t.unit, t.required) == (70, 100, "%", True)
    t = specs.parse_limit_line("endotoxin | LAL | EU/mL | < 5")
    assert (t.upper, t.upper_inclusive, t.lower) == (5, False, None)
    t = specs.parse_limit_line("rcl | qPCR | | not detected | optional")
    assert (t.text, t.required, t.unit) == ("not detected", False, None)
    with pytest.raises(Refused):
        specs.parse_limit_line("titer >= 1e12")


def _limit(**kw) -> SpecLimit:  # noqa: ANN003
    return SpecLimit(spec_id=0, test="x", **kw)


@pytest.mark.parametrize(
    ("limit", "result", "passed", "flag"),
    [
        (_limit(lower=1e12, unit="vg/mL", alert_lower=2e12), "1e12 vg/mL", True, "alert"),
        (_limit(lower=1e12, unit="vg/mL", alert_lower=2e12), "9.9e11", False, None),
        (_limit(lower=1e12, lower_inclusive=False, unit="vg/mL"), "1e12", False, None),
        (_limit(upper=5, upper_inclusive=False, unit="EU/mL"), "5 EU/mL", False, None),
        (_limit(upper=5, unit="EU/mL", action_upper=4, alert_upper=2), "4.5 eu/ml", True, "action"),
        (_limit(upper=-60, unit="C"), "-72 C", True, None),  # below zero: a negative reading
        (_limit(text="no growth"), "No  growth", True, None),
        (_limit(text="no growth"), "growth", False, None),
    ],
)
def test_results_are_judged_against_the_limit(limit, result, passed, flag):  # noqa: ANN001
    verdict = specs.judge(limit, result)
    assert (verdict.passed, verdict.flag) == (passed, flag)


@pytest.mark.parametrize(
    ("result", "error"),
    [("-3 EU/mL", Refused), ("0.5 mg/L", Refused), ("lots", Refused), ("1e999", BadRequest)],
)
def test_a_result_that_cannot_be_read_against_its_limit_is_refused(result, error):  # noqa: ANN001
    with pytest.raises(error):
        specs.judge(_limit(upper=5, upper_inclusive=False, unit="EU/mL"), result)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_the_specification_pages_write_a_draft_and_approve_it(app, client, qa2):
    from helpers import PASSWORD, post_form, sign_in

    sign_in(client, "qa1")
    page = client.get("/quality/specs")
    assert page.status_code == 200 and "AAV-RELEASE v1" in page.text
    r = post_form(
        client,
        "/quality/specs",
        code="PBMC-RELEASE",
        product="PBMC",
        stage="release",
        title="PBMC release",
        limits="viability | trypan blue | % | >= 70\nsterility | Ph. Eur. | | no growth",
    )
    assert r.status_code == 302, r.text
    page = client.get("/quality/specs/PBMC-RELEASE/1")
    assert "&gt;= 70 %" in page.text and 'id="spec-approve"' in page.text
    r = post_form(
        client,
        "/quality/specs/PBMC-RELEASE/1/transition",
        action="approve",
        meaning="approval",
        password=PASSWORD,
    )
    assert r.status_code == 422 and "four-eyes" in r.text
    r = post_form(
        client,
        "/quality/specs",
        code="X",
        product="PBMC",
        stage="release",
        title="x",
        limits="titer >= 1",
    )
    assert r.status_code == 422 and "cannot read" in r.text
    other = app.test_client()  # another QA person, at another browser
    sign_in(other, "qa2")
    r = post_form(
        other,
        "/quality/specs/PBMC-RELEASE/1/transition",
        action="approve",
        meaning="approval",
        password=PASSWORD,
    )
    assert r.status_code == 302, r.text
    assert 'id="spec-state">approved' in other.get("/quality/specs/PBMC-RELEASE/1").text


def test_a_specification_is_loaded_from_a_file_as_a_draft(runner, client, auth, tmp_path):
    import json

    path = tmp_path / "pbmc.json"
    path.write_text(json.dumps(PBMC))
    r = runner.invoke(args=["setup", "spec", str(path)])
    assert r.exit_code == 0, r.output
    assert "draft PBMC-RELEASE v1 written" in r.output
    spec = client.get("/api/specs/PBMC-RELEASE/1", headers=auth("qa1")).json
    assert (spec["state"], spec["created_by"]) == ("draft", "system")
    # Loaded by the system, so any QA person may approve it.
    r = client.post(
        "/api/specs/PBMC-RELEASE/1/transitions",
        json={"action": "approve", "signature": APPROVE},
        headers=auth("qa1"),
    )
    assert r.status_code == 200
    path.write_text(json.dumps({**PBMC, "stage": "someday"}))
    r = runner.invoke(args=["setup", "spec", str(path)])
    assert r.exit_code == 1 and "stage" in r.output
