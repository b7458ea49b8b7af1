"""Cell products: a sample whose sample type has a release specification is released like a lot."""

from __future__ import annotations

from helpers import audit_count, move, register, verify
from qc_util import RELEASE, REVIEW

TESTS = (
    ("viability", "92 %"),
    ("sterility", "no growth"),
    ("endotoxin", "0.5 EU/mL"),
    ("mycoplasma", "not detected"),
)


def _tcell(client, tech) -> str:  # noqa: ANN001
    b = register(client, tech, sample_type="TCELL")["barcode"]
    assert move(client, tech, b, "receive", condition="intact").status_code == 200
    assert move(client, tech, b, "quarantine").status_code == 200
    return b


def _record(client, barcode, headers, test, result, **extra):  # noqa: ANN001, ANN003, ANN202
    return client.post(
        f"/api/samples/{barcode}/qc",
        json={"test": test, "result": result, **extra},
        headers=headers,
    )


def _review_all(client, barcode, headers) -> None:  # noqa: ANN001
    for q in client.get(f"/api/samples/{barcode}/qc", headers=headers).json["qc"]:
        if q["reviewed_by"] is None:
            r = client.post(
                f"/api/samples/{barcode}/qc/{q['id']}/review",
                json={"signature": REVIEW},
                headers=headers,
            )
            assert r.status_code == 200, r.json


def test_a_cell_product_release_needs_results_reviews_and_a_signature(client, auth, app):
    tech, qa = auth("tech1"), auth("qa1")
    b = _tcell(client, tech)
    r = move(client, qa, b, "release")
    assert r.status_code == 422 and r.json["error"] == "signature_required"
    assert "release needs an e-signature on the sample page" in r.json["message"]
    r = move(client, qa, b, "release", signature=RELEASE)
    assert r.status_code == 422 and r.json["error"] == "qc_incomplete"
    assert r.json["missing"] == ["viability", "sterility", "endotoxin", "mycoplasma"]
    for test, result in TESTS:
        assert _record(client, b, tech, test, result).status_code == 201
    info = client.get(f"/api/samples/{b}/qc", headers=qa).json
    assert info["product"] == "TCELL" and info["qc_missing"] == []
    assert "not reviewed" in info["release_refusal"]
    viability = info["qc"][0]
    assert (viability["spec"], viability["spec_code"]) == (">= 70 and <= 100 %", "TCELL-RELEASE")
    r = move(client, qa, b, "release", signature=RELEASE)
    assert r.status_code == 422 and r.json["error"] == "qc_not_reviewed"
    _review_all(client, b, qa)
    before = audit_count(app)
    r = move(client, qa, b, "release", signature={**RELEASE, "password": "wrong"})
    assert r.status_code == 422 and r.json["error"] == "signature_refused"
    assert audit_count(app) == before + 1  # the refused signature, nothing else
    r = move(client, qa, b, "release", signature=RELEASE)
    assert r.status_code == 200 and r.json["state"] == "available", r.json
    ev = client.get(f"/api/audit?entity={b}&action=sample.release", headers=qa).json["events"]
    assert ev[-1]["signature_id"] and ev[-1]["after"]["signature"]["meaning"] == "release"
    assert verify(app).ok


def test_who_recorded_a_cell_products_result_may_not_release_it(client, auth, qa2):
    tech, qa1 = auth("tech1"), auth("qa1")
    b = _tcell(client, tech)
    for test, result in TESTS[:3]:
        _record(client, b, tech, test, result)
    _record(client, b, qa1, *TESTS[3])
    r = client.post(
        f"/api/samples/{b}/qc/{_last_id(client, b, qa1)}/review",
        json={"signature": REVIEW},
        headers=qa1,
    )
    assert r.status_code == 422 and r.json["error"] == "four_eyes_review"
    _review_all(client, b, qa2)
    r = move(client, qa1, b, "release", signature=RELEASE)
    assert r.status_code == 422 and r.json["error"] == "four_eyes_release"
    assert move(client, qa2, b, "release", signature=RELEASE).status_code == 200


def test_a_failing_cell_product_result_opens_an_oos_that_blocks_release(client, auth):
    tech, qa = auth("tech1"), auth("qa1")
    b = _tcell(client, tech)
    for test, result in TESTS:
        _record(client, b, tech, test, "55 %" if test == "viability" else result)
    info = client.get(f"/api/samples/{b}/qc", headers=qa).json
    assert info["qc"][0]["passed"] is False and info["qc"][0]["oos"]
    _review_all(client, b, qa)
    r = move(client, qa, b, "release", signature=RELEASE)
    assert r.status_code == 422 and r.json["error"] == "oos_open"
    assert client.get(f"/api/oos/{info['qc'][0]['oos']}", headers=qa).json["sample"] == b


def test_material_without_a_release_specification_is_released_as_before(client, auth):
    tech, qa = auth("tech1"), auth("qa1")
    b = register(client, tech)["barcode"]  # PBMC: no specification
    move(client, tech, b, "receive", condition="intact")
    move(client, tech, b, "quarantine")
    r = _record(client, b, tech, "sterility", "no growth")
    assert r.status_code == 422 and r.json["error"] == "spec_missing"
    r = move(client, qa, b, "release", signature=RELEASE)
    assert r.status_code == 422 and r.json["error"] == "unexpected_field"
    assert move(client, qa, b, "release").json["state"] == "available"


def test_a_bulk_or_bench_release_of_a_cell_product_says_where_to_sign(client, auth):
    tech, qa = auth("tech1"), auth("qa1")
    b = _tcell(client, tech)
    r = client.post(
        "/api/transitions", json={"action": "release", "samples": [{"barcode": b}]}, headers=qa
    )
    assert r.status_code == 422 and r.json["error"] == "signature_required"
    assert "on the sample page" in r.json["message"]


def test_the_sample_page_releases_a_cell_product_with_a_signature(client, auth, qa2):
    from helpers import PASSWORD, post_form, sign_in

    tech = auth("tech1")
    b = _tcell(client, tech)
    for test, result in TESTS:
        _record(client, b, tech, test, result)
    first = _last_id(client, b, tech) - 3
    _review_all_but(client, b, qa2, first)
    sign_in(client, "qa1")
    page = client.get(f"/samples/{b}")
    assert f'id="review-{first}"' in page.text and "not reviewed" in page.text
    r = post_form(client, f"/samples/{b}/qc/{first}/review", password=PASSWORD, meaning="review")
    assert r.status_code == 302, r.text
    page = client.get(f"/samples/{b}")
    assert "TCELL-RELEASE" in page.text and 'id="release-password"' in page.text
    assert 'id="release-blocker"' not in page.text
    r = post_form(client, f"/samples/{b}/transition", action="release")
    assert r.status_code == 422 and "e-signature" in r.text
    r = post_form(
        client, f"/samples/{b}/transition", action="release", password=PASSWORD, meaning="release"
    )
    assert r.status_code == 302, r.text
    assert client.get(f"/api/samples/{b}", headers=tech).json["state"] == "available"


def _last_id(client, barcode, headers) -> int:  # noqa: ANN001
    return client.get(f"/api/samples/{barcode}/qc", headers=headers).json["qc"][-1]["id"]


def _review_all_but(client, barcode, headers, skip: int) -> None:  # noqa: ANN001
    for q in client.get(f"/api/samples/{barcode}/qc", headers=headers).json["qc"]:
        if q["id"] != skip:
            r = client.post(
                f"/api/samples/{barcode}/qc/{q['id']}/review",
                json={"signature": REVIEW},
                headers=headers,
            )
            assert r.status_code == 200, r.json
