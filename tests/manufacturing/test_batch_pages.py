"""Carrying out a batch record's steps from its page, as a browser posts the forms."""

from __future__ import annotations

from batch_util import approved_template, lot_with_record, past_its_expiry
from helpers import audit_count, post_form, sign_in
from mfg_util import PASSWORD, gs1, receive, released_material, set_up_kind


def test_the_page_shows_the_next_step_with_units_and_ranges_and_records_it(app, client, auth, qa2):  # noqa: ANN001
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "BP-1")
    set_up_kind(client, auth)
    good = released_material(client, auth, lot="PL-1")
    sign_in(client, "tech1")
    lot_page = client.get("/lots/BP-1").text
    assert "/lots/BP-1/batch" in lot_page and "Carry out step 1" in lot_page
    page = client.get("/lots/BP-1/batch").text
    assert "Step 1: Seed HEK293" in page and "cell density (e6/mL)" in page
    assert "range 0.8–1.2 e6/mL" in page and 'id="material-scan"' in page
    before = audit_count(app)
    r = post_form(
        client,
        "/lots/BP-1/batch/steps/1",
        **{"value:cell density": "1.0", "equipment": "BSC-03", "material": good},
    )
    assert r.status_code == 302, r.text
    assert audit_count(app) == before + 2  # the step, and the material going into the lot
    page = client.get("/lots/BP-1/batch").text
    assert "Step 2: Transfect" in page and "plasmid total (mg)" in page
    rec = client.get("/api/lots/BP-1/batch-record", headers=auth("tech1")).json
    assert (rec["steps"][0]["operator"], rec["steps"][0]["equipment"]) == ("tech1", "BSC-03")
    assert rec["next"] == 2
    made = client.get("/api/lots/BP-1/made-from", headers=auth("tech1")).json
    assert [m["material"] for m in made["materials"]] == [good]


def test_refusals_show_the_domains_reason_and_write_nothing(app, client, auth, qa2, engine):  # noqa: ANN001
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "BP-2")
    set_up_kind(client, auth)
    held = receive(client, auth, gs1("Q-1")).json["code"]
    old = released_material(client, auth, lot="OLD-1")
    past_its_expiry(engine, old)
    sign_in(client, "tech1")
    before = audit_count(app)
    step1 = "/lots/BP-2/batch/steps/1"
    r = post_form(client, step1, **{"value:cell density": "1.0", "material": held})
    assert r.status_code == 422 and "in quarantine: QA has not released it" in r.text
    assert held in r.text  # the scanned list is kept, to remove the refused one
    r = post_form(client, step1, **{"value:cell density": "1.0", "material": old})
    assert r.status_code == 422 and f"material {old} expired on" in r.text
    r = post_form(client, step1, **{"value:cell density": "lots"})
    assert r.status_code == 422 and "not a number" in r.text
    r = post_form(client, "/lots/BP-2/batch/steps/2", **{"value:plasmid total": "2"})
    assert r.status_code == 422 and "comes first" in r.text
    assert audit_count(app) == before
    # Out of range: recorded, flagged, and a deviation raised on the lot.
    r = post_form(client, step1, **{"value:cell density": "1.6"})
    assert r.status_code == 302
    page = client.get("/lots/BP-2/batch").text
    assert "Out of range, flagged on the record: cell density 1.6 e6/mL" in page
    assert "(out of range)" in page
    devs = client.get("/api/deviations?lot=BP-2", headers=auth("qa1")).json["deviations"]
    assert len(devs) == 1 and devs[0]["severity"] == "major"


def test_a_step_to_verify_is_signed_by_a_second_person(app, client, auth, qa2):  # noqa: ANN001
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "BP-3")
    sign_in(client, "tech1")
    post_form(client, "/lots/BP-3/batch/steps/1", **{"value:cell density": "1"})
    values = {"value:plasmid total": "2", "value:temperature": "37"}
    assert post_form(client, "/lots/BP-3/batch/steps/2", **values).status_code == 302
    page = client.get("/lots/BP-3/batch").text
    assert "Verify step 2: Transfect" in page and 'id="verify-form"' in page
    r = post_form(client, "/lots/BP-3/batch/steps/2/verify", password=PASSWORD)
    assert r.status_code == 422 and "another person verifies it" in r.text
    second = app.test_client()
    sign_in(second, "tech2")
    r = post_form(second, "/lots/BP-3/batch/steps/2/verify", password="wrong")
    assert r.status_code in (401, 422) and "Step 3" not in r.text
    r = post_form(second, "/lots/BP-3/batch/steps/2/verify", password=PASSWORD)
    assert r.status_code == 302
    page = second.get("/lots/BP-3/batch").text
    assert "Step 3: Harvest" in page and "tech2" in page


def test_a_viewer_sees_the_record_without_forms(client, auth, qa2):  # noqa: ANN001
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "BP-4")
    sign_in(client, "helix_viewer")
    assert client.get("/lots/BP-4/batch").status_code == 404  # another organisation's lot
