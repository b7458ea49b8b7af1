"""Releasing an episode: QA's e-signature and the quality rules of its cell product."""

from __future__ import annotations

from helpers import PASSWORD, audit_count, verify
from therapy_util import EXPIRY, RELEASE, final_product, go, new_episode, walk

DIN = {"din": "G123498654321H", "product_code": "S0001", "expires_on": EXPIRY}


def _at_qc(client, auth, tech) -> tuple[dict, dict]:  # noqa: ANN001
    qa = auth("qa1")
    ep = new_episode(client, qa, tech)
    walk(client, tech, qa, ep, until="submit_to_qc")
    return qa, ep


def test_release_needs_a_signature_and_a_cell_product(client, auth, tech) -> None:  # noqa: ANN001
    qa, ep = _at_qc(client, auth, tech)
    r = go(client, qa, ep["number"], "release", **DIN)
    assert r.status_code == 422 and r.json["error"] == "signature_required"
    r = go(client, qa, ep["number"], "release", **DIN, signature=RELEASE)
    assert r.status_code == 422 and r.json["error"] == "no_final_product"
    assert ep["coi"] in r.json["message"]
    # Another move takes no signature.
    r = go(client, qa, ep["number"], "fail", reason="x", signature=RELEASE)
    assert r.status_code == 422 and r.json["error"] == "unexpected_field"


def test_release_follows_the_quality_rules_of_its_product(client, auth, tech) -> None:  # noqa: ANN001
    qa, ep = _at_qc(client, auth, tech)
    product = final_product(client, tech, qa, ep, review=False)
    r = go(client, qa, ep["number"], "release", **DIN, signature=RELEASE)
    assert r.status_code == 422 and r.json["error"] == "qc_not_reviewed"
    for q in client.get(f"/api/samples/{product}/qc", headers=qa).json["qc"]:
        r = client.post(
            f"/api/samples/{product}/qc/{q['id']}/review",
            json={"signature": {"password": PASSWORD, "meaning": "review"}},
            headers=qa,
        )
        assert r.status_code == 200, r.json
    # A critical deviation on the product holds it.
    body = {"title": "Bag seal", "description": "check", "severity": "critical"}
    r = client.post(
        "/api/deviations",
        json={**body, "links": [{"kind": "sample", "ref": product}]},
        headers=tech,
    )
    n = r.json["number"]
    r = go(client, qa, ep["number"], "release", **DIN, signature=RELEASE)
    assert r.status_code == 422 and r.json["error"] == "deviation_open" and n in r.json["message"]
    assert client.get(f"/api/episodes/{ep['number']}", headers=qa).json["episode"]["state"] == "qc"


def test_who_recorded_the_products_results_does_not_release_the_episode(
    client, auth, tech, qa2
) -> None:  # noqa: ANN001
    qa, ep = _at_qc(client, auth, tech)
    final_product(client, qa, qa2, ep)  # qa1 recorded the results, qa2 reviewed them
    r = go(client, qa, ep["number"], "release", **DIN, signature=RELEASE)
    assert r.status_code == 422 and r.json["error"] == "four_eyes_release"
    assert "four-eyes" in r.json["message"]
    r = go(client, qa2, ep["number"], "release", **DIN, signature=RELEASE)
    assert r.status_code == 200, r.json


def test_a_signed_release_is_one_event_carrying_the_signature(app, client, auth, tech) -> None:  # noqa: ANN001
    qa, ep = _at_qc(client, auth, tech)
    product = final_product(client, tech, qa, ep)
    count = audit_count(app)
    r = go(client, qa, ep["number"], "release", **DIN, signature={**RELEASE, "password": "no"})
    assert r.status_code == 422 and r.json["error"] == "signature_refused"
    assert audit_count(app) == count + 1  # the refused signature, nothing else
    r = go(client, qa, ep["number"], "release", **DIN, signature=RELEASE)
    assert r.status_code == 200 and r.json["state"] == "released", r.json
    ev = client.get(f"/api/audit?entity={ep['number']}&action=episode.release", headers=qa).json[
        "events"
    ]
    assert len(ev) == 1 and ev[0]["signature_id"]
    assert ev[0]["after"]["signature"]["meaning"] == "release"
    assert ev[0]["after"]["products"] == [product]
    # The bag waiting in quarantine is released for use with it: its own signed custody event.
    (bag_ev,) = client.get(f"/api/audit?entity={product}&action=sample.release", headers=qa).json[
        "events"
    ]
    assert bag_ev["signature_id"] and bag_ev["after"]["signature"]["meaning"] == "release"
    assert client.get(f"/api/samples/{product}", headers=qa).json["state"] == "available"
    assert audit_count(app) == count + 3
    assert verify(app).ok
