"""Process templates (QA-approved, versioned) and a lot's batch record executed from one."""

from __future__ import annotations

from helpers import audit_count, pdf_text, sign_in, verify
from mfg_util import PASSWORD, gs1, receive, released_material, set_up_kind

TEMPLATE = {
    "code": "AAV-TTX",
    "name": "AAV triple transfection, 2 L",
    "product": "AAV",
    "steps": [
        {
            "name": "Seed HEK293",
            "parameters": [{"name": "cell density", "unit": "e6/mL", "low": 0.8, "high": 1.2}],
        },
        {
            "name": "Transfect",
            "verify": True,
            "parameters": [
                {"name": "plasmid total", "unit": "mg", "low": 1.9, "high": 2.1},
                {"name": "temperature", "unit": "C", "low": 36.5, "high": 37.5},
            ],
        },
        {"name": "Harvest"},
    ],
}
SIG = {"password": PASSWORD, "meaning": "approval"}
REVIEW = {"password": PASSWORD, "meaning": "review"}


def approved_template(client, auth, qa2) -> dict:  # noqa: ANN001
    r = client.post("/api/process-templates", json=TEMPLATE, headers=auth("qa1"))
    assert r.status_code == 201, r.json
    assert (r.json["version"], r.json["state"]) == (1, "draft")
    r = client.post(
        "/api/process-templates/AAV-TTX/1/approve", json={"signature": SIG}, headers=qa2
    )
    assert r.status_code == 200, r.json
    return r.json


def lot_with_record(client, auth, number: str = "BR-1") -> None:  # noqa: ANN001
    body = {"lot_number": number, "vector_type": "AAV", "vector": "AAV9-GFP", "project": "CART-001"}
    assert client.post("/api/lots", json=body, headers=auth("tech1")).status_code == 201
    r = client.post(
        f"/api/lots/{number}/batch-record", json={"template": "AAV-TTX"}, headers=auth("tech1")
    )
    assert r.status_code == 201, r.json


def step(client, headers, n: int, lot: str = "BR-1", **body):  # noqa: ANN001, ANN003, ANN201
    return client.post(f"/api/lots/{lot}/batch-record/steps/{n}", json=body, headers=headers)


def test_a_template_is_approved_by_another_qa_person_with_a_signature(client, auth, qa2):  # noqa: ANN001
    r = client.post("/api/process-templates", json=TEMPLATE, headers=auth("qa1"))
    assert r.status_code == 201
    url = "/api/process-templates/AAV-TTX/1/approve"
    r = client.post(url, json={"signature": SIG}, headers=auth("qa1"))
    assert (r.status_code, r.json["error"]) == (422, "four_eyes")
    r = client.post(url, json={"signature": SIG}, headers=qa2)
    assert (r.status_code, r.json["state"], r.json["approved_by"]) == (200, "approved", "qa2")
    r = client.post("/api/process-templates", json=TEMPLATE, headers=auth("qa1"))
    assert (r.status_code, r.json["version"]) == (201, 2)
    assert (
        client.post(
            "/api/process-templates/AAV-TTX/2/approve", json={"signature": SIG}, headers=qa2
        ).status_code
        == 200
    )
    old = client.get("/api/process-templates/AAV-TTX/1", headers=auth("tech1")).json
    assert old["state"] == "retired"


def test_a_batch_needs_an_approved_template(client, auth):  # noqa: ANN001
    client.post("/api/process-templates", json=TEMPLATE, headers=auth("qa1"))
    body = {"lot_number": "BR-0", "vector_type": "AAV", "vector": "AAV9-GFP", "project": "CART-001"}
    client.post("/api/lots", json=body, headers=auth("tech1"))
    r = client.post(
        "/api/lots/BR-0/batch-record", json={"template": "AAV-TTX"}, headers=auth("tech1")
    )
    assert (r.status_code, r.json["error"]) == (404, "unknown_template")


def test_steps_in_order_values_checked_verified_by_a_second_person(app, client, auth, qa2):  # noqa: ANN001
    approved_template(client, auth, qa2)
    lot_with_record(client, auth)
    tech1, tech2 = auth("tech1"), auth("tech2")
    r = step(client, tech1, 2, values={"plasmid total": 2.0, "temperature": 37})
    assert (r.status_code, r.json["error"]) == (422, "step_order")
    r = step(client, tech1, 1, values={})
    assert (r.status_code, r.json["error"]) == (422, "bad_values")
    assert r.json["missing"] == ["cell density"]
    before = audit_count(app)
    r = step(client, tech1, 1, values={"cell density": 1.0}, equipment="BSC-03", room="RM-B1")
    assert r.status_code == 201, r.json
    s1 = r.json["steps"][0]
    assert (s1["state"], s1["operator"], s1["equipment"], s1["room"]) == (
        "done",
        "tech1",
        "BSC-03",
        "RM-B1",
    )
    assert s1["parameters"][0]["in_range"] is True
    assert audit_count(app) == before + 1
    r = step(client, tech1, 1, values={"cell density": 1.0})
    assert (r.status_code, r.json["error"]) == (409, "step_done")
    r = step(client, tech1, 2, values={"plasmid total": 2.0, "temperature": 37})
    assert r.status_code == 201 and r.json["steps"][1]["state"] == "awaiting verifier"
    r = step(client, tech1, 3)
    assert (r.status_code, r.json["error"]) == (422, "step_order")
    url = "/api/lots/BR-1/batch-record/steps/2/verify"
    r = client.post(url, json={"signature": REVIEW}, headers=tech1)
    assert (r.status_code, r.json["error"]) == (422, "four_eyes")
    r = client.post(url, json={"signature": REVIEW}, headers=tech2)
    assert r.status_code == 200 and r.json["steps"][1]["verifier"] == "tech2"
    r = step(client, tech1, 3)
    assert r.status_code == 201 and r.json["complete"] is True
    assert verify(app).ok


def test_an_out_of_range_value_is_recorded_flagged_and_raises_a_deviation(client, auth, qa2):  # noqa: ANN001
    approved_template(client, auth, qa2)
    lot_with_record(client, auth)
    r = step(client, auth("tech1"), 1, values={"cell density": 1.6})
    assert r.status_code == 201, r.json
    assert r.json["steps"][0]["parameters"][0] | {"value": 1.6} == {
        "name": "cell density",
        "unit": "e6/mL",
        "low": 0.8,
        "high": 1.2,
        "value": 1.6,
        "in_range": False,
    }
    devs = client.get("/api/deviations?lot=BR-1", headers=auth("qa1")).json["deviations"]
    assert len(devs) == 1 and "out of range" in devs[0]["title"]
    assert devs[0]["severity"] == "major"


def test_materials_scanned_at_a_step_become_the_lots_inputs_or_refuse_the_step(
    app,
    client,
    auth,
    qa2,  # noqa: ANN001
):
    approved_template(client, auth, qa2)
    lot_with_record(client, auth)
    set_up_kind(client, auth)
    good = released_material(client, auth, lot="PL-1")
    receive(client, auth, gs1("Q-1"))
    before = audit_count(app)
    r = step(client, auth("tech1"), 1, values={"cell density": 1.0}, materials=[gs1("Q-1")])
    assert (r.status_code, r.json["error"]) == (422, "material_unusable")
    assert audit_count(app) == before  # nothing of the step was written
    r = step(client, auth("tech1"), 1, values={"cell density": 1.0}, materials=[gs1("PL-1")])
    assert r.status_code == 201, r.json
    made = client.get("/api/lots/BR-1/made-from", headers=auth("tech1")).json
    assert [m["material"] for m in made["materials"]] == [good]

    pdf = client.get("/api/lots/BR-1/batch-record.pdf", headers=auth("tech1"))
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = pdf_text(pdf.data)
    assert "Batch record: lot BR-1" in text and "AAV-TTX version 1" in text
    assert good in text and "PL-1" in text and "2028-11-30" in text
    assert "cell density 1 e6/mL (0.8-1.2)" in text and "NOT complete" in text
    sign_in(client, "tech1")
    page = client.get("/lots/BR-1").text
    assert 'id="batch-steps"' in page and "Seed HEK293" in page and "batch-record.pdf" in page
