"""Pooled derivatives: several parents, one COI unless the product code is allogeneic."""

from __future__ import annotations

from helpers import audit_count, move, register, sign_in, verify
from therapy_util import new_episode


def _in_hand(client, tech, coi: str) -> str:  # noqa: ANN001
    b = register(client, tech, sample_type="PBMC", coi=coi)["barcode"]
    assert move(client, tech, b, "receive", condition="frozen", coi=coi).status_code == 200
    return b


def _pool(client, tech, parents, **fields):  # noqa: ANN001, ANN201
    body = {"parents": parents, "sample_type": "PBMC", "volume": 10, "unit": "mL", **fields}
    return client.post("/api/pools", json=body, headers=tech)


def test_a_pool_of_one_coi_keeps_it_and_lists_its_parents(app, client, auth, tech) -> None:  # noqa: ANN001
    ep = new_episode(client, auth("qa1"), tech)
    a, b = _in_hand(client, tech, ep["coi"]), _in_hand(client, tech, ep["coi"])
    count = audit_count(app)
    r = _pool(client, tech, [a, b], product_code="S0001")
    assert r.status_code == 201, r.json
    assert r.json["coi"] == ep["coi"] and r.json["lineage"] == "pool"
    assert [p["barcode"] for p in r.json["parents"]] == [a, b]
    assert audit_count(app) == count + 1
    got = client.get(f"/api/pools/{r.json['barcode']}", headers=tech).json
    assert {p["barcode"] for p in got["parents"]} == {a, b}
    # The pool belongs to the episode's chain: it shows on the timeline.
    tl = client.get(f"/api/episodes/{ep['number']}", headers=tech).json["timeline"]
    assert ("sample.pool", r.json["barcode"]) in {(e["action"], e["entity_id"]) for e in tl}
    assert verify(app).ok


def test_two_patients_material_is_not_pooled_for_an_autologous_product(
    app, client, auth, tech
) -> None:  # noqa: ANN001
    qa = auth("qa1")
    one = new_episode(client, qa, tech, hospital_id="MRN-1")
    two = new_episode(client, qa, tech, hospital_id="MRN-2")
    a, b = _in_hand(client, tech, one["coi"]), _in_hand(client, tech, two["coi"])
    count = audit_count(app)
    for fields in ({"product_code": "S0001"}, {}):
        r = _pool(client, tech, [a, b], **fields)
        assert r.status_code == 422 and r.json["error"] == "coi_mix_refused"
        assert sorted(r.json["cois"]) == sorted([one["coi"], two["coi"]])
    assert audit_count(app) == count


def test_an_allogeneic_pool_mixes_donors_under_a_coi_of_its_own(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    one = new_episode(client, qa, tech, hospital_id="DON-1")
    two = new_episode(client, qa, tech, hospital_id="DON-2")
    a, b = _in_hand(client, tech, one["coi"]), _in_hand(client, tech, two["coi"])
    r = _pool(client, tech, [a, b], product_code="S0002")
    assert r.status_code == 201, r.json
    assert r.json["coi"] not in (one["coi"], two["coi"])
    assert {p["coi"] for p in r.json["parents"]} == {one["coi"], two["coi"]}


def test_pool_refusals(client, auth, tech) -> None:  # noqa: ANN001
    ep = new_episode(client, auth("qa1"), tech)
    a = _in_hand(client, tech, ep["coi"])
    assert _pool(client, tech, [a]).status_code == 400
    r = _pool(client, tech, [a, a.lower()])
    assert r.status_code == 400 and r.json["error"] == "duplicate_barcode"
    fresh = register(client, tech, sample_type="PBMC", coi=ep["coi"])["barcode"]
    r = _pool(client, tech, [a, fresh])
    assert r.status_code == 422 and r.json["error"] == "parent_unusable"
    r = _pool(client, auth("helix_viewer"), [a, fresh])
    assert r.status_code in (403, 404)


def test_a_pools_parents_are_in_its_lineage_and_its_aliquots(client, auth, tech) -> None:  # noqa: ANN001
    ep = new_episode(client, auth("qa1"), tech)
    a, b = _in_hand(client, tech, ep["coi"]), _in_hand(client, tech, ep["coi"])
    pool = _pool(client, tech, [a, b]).json["barcode"]
    gen = client.get(f"/api/samples/{pool}/genealogy", headers=tech).json
    assert gen["parents"] == [a, b]
    assert {x["barcode"] for x in gen["ancestors"]} == {a, b}
    assert move(client, tech, pool, "receive", condition="ok", coi=ep["coi"]).status_code == 200
    kid = register(client, tech, parent=pool)["barcode"]  # a derivative of the pool
    gen = client.get(f"/api/samples/{kid}/genealogy", headers=tech).json
    assert gen["parents"] == [pool]
    # Root first: the pool's parents, then the pool, which lists them.
    assert [x["barcode"] for x in gen["ancestors"]][-1] == pool
    assert {x["barcode"] for x in gen["ancestors"][:2]} == {a, b}
    assert gen["ancestors"][-1]["parents"] == [a, b]
    # The sample page says what the pool was made from.
    sign_in(client, "tech1")
    page = client.get(f"/samples/{kid}").text
    assert 'id="pooled-from"' in page and a in page and b in page


def test_a_critical_deviation_on_one_parent_holds_the_pools_release(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = new_episode(client, qa, tech)
    a, b = _in_hand(client, tech, ep["coi"]), _in_hand(client, tech, ep["coi"])
    pool = _pool(client, tech, [a, b]).json["barcode"]
    assert move(client, tech, pool, "receive", condition="ok", coi=ep["coi"]).status_code == 200
    assert move(client, tech, pool, "quarantine").status_code == 200
    body = {
        "title": "Parent bag leaked",
        "description": "seen at thaw",
        "severity": "critical",
        "links": [{"kind": "sample", "ref": b}],
    }
    r = client.post("/api/deviations", json=body, headers=tech)
    assert r.status_code == 201, r.json
    n = r.json["number"]
    r = move(client, qa, pool, "release")
    assert r.status_code == 422 and r.json["error"] == "deviation_open"
    assert r.json["deviations"] == [n] and n in r.json["message"]
    assert client.get(f"/api/samples/{pool}", headers=tech).json["state"] == "quarantine"


def test_an_oos_on_one_parent_holds_the_pools_release_until_invalidated(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = new_episode(client, qa, tech, hospital_id="MRN-P9")
    parents = []
    for _ in range(2):
        b = register(client, tech, sample_type="TCELL", coi=ep["coi"])["barcode"]
        assert move(client, tech, b, "receive", condition="ok", coi=ep["coi"]).status_code == 200
        parents.append(b)
    r = client.post(
        f"/api/samples/{parents[1]}/qc", json={"test": "viability", "result": "40 %"}, headers=tech
    )
    assert r.status_code == 201, r.json
    oos_id = client.get(f"/api/samples/{parents[1]}/qc", headers=qa).json["qc"][0]["oos"]
    assert oos_id, "a failing viability opens an OOS on that parent"
    pool = _pool(client, tech, parents).json["barcode"]
    assert move(client, tech, pool, "receive", condition="ok", coi=ep["coi"]).status_code == 200
    assert move(client, tech, pool, "quarantine").status_code == 200
    r = move(client, qa, pool, "release")
    assert r.status_code == 422 and r.json["error"] == "oos_open", r.json
    assert r.json["oos"] == [oos_id]
    assert f"OOS-{oos_id} on {parents[1]}" in r.json["message"]
    assert client.get(f"/api/samples/{pool}", headers=tech).json["state"] == "quarantine"
    # The lab check finds an error: the retest counts, the OOS is invalidated, the pool is free.
    r = client.post(f"/api/oos/{oos_id}/retests", json={"result": "91 %"}, headers=tech)
    assert r.status_code == 201, r.json
    r = client.post(
        f"/api/oos/{oos_id}/transitions",
        json={
            "action": "invalidate",
            "reason": "pipetting error found in the lab check",
            "signature": {"password": "demo-only-lims", "meaning": "approval"},
        },
        headers=qa,
    )
    assert r.status_code == 200, r.json
    r = move(client, qa, pool, "release")
    assert r.status_code == 200, r.json
    assert r.json["state"] == "available"
