"""The bag follows its episode in custody: released with it, shipped with the shipment's number
as destination, received at the site, used up at the infusion; each move its own audit event,
next to the episode's in the same transaction."""

from __future__ import annotations

from helpers import audit_count, move, register, sign_in, verify
from test_shipments import dispatched, pack, released
from therapy_util import go


def _bag(client, headers, barcode: str) -> dict:  # noqa: ANN001
    r = client.get(f"/api/samples/{barcode}", headers=headers)
    assert r.status_code == 200, r.json
    return r.json


def _history(client, headers, barcode: str) -> list[dict]:  # noqa: ANN001
    r = client.get(f"/api/samples/{barcode}/history", headers=headers)
    assert r.status_code == 200, r.json
    return r.json["events"] if isinstance(r.json, dict) else r.json


def _trail(client, qa, entity: str, action: str) -> list[dict]:  # noqa: ANN001
    return client.get(f"/api/audit?entity={entity}&action={action}", headers=qa).json["events"]


def test_the_bag_follows_dispatch_receipt_and_infusion(app, client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = released(client, auth, tech)
    bag = ep["bag"]
    assert _bag(client, tech, bag)["state"] == "available"  # released with the episode
    sh = pack(client, tech, ep)
    count = audit_count(app)
    r = client.post(f"/api/shipments/{sh['number']}/dispatch", json={}, headers=tech)
    assert r.status_code == 200, r.json
    # The episode's move, the bag's and the shipment's: three records, three events.
    assert audit_count(app) == count + 3
    now = _bag(client, tech, bag)
    assert (now["state"], now["location"], now["custodian"]) == ("in_transit", None, None)
    (ship,) = _trail(client, qa, bag, "sample.ship")
    assert ship["after"]["destination"] == sh["number"] and ship["actor"] == "tech1"
    (ep_ship,) = _trail(client, qa, ep["number"], "episode.ship")
    assert ep_ship["seq"] + 1 == ship["seq"]  # the same transaction, the episode's first

    site = auth("site_nurse")  # (signing in is an event of its own)
    count = audit_count(app)
    r = client.post(
        f"/api/shipments/{sh['number']}/receive",
        json={"scans": [{"bag": bag, "coi": ep["coi"]}]},
        headers=site,
    )
    assert r.status_code == 200, r.json
    assert audit_count(app) == count + 3
    now = _bag(client, tech, bag)
    assert (now["state"], now["location"], now["custodian"]) == ("received", None, None)
    assert sh["number"] in now["condition"]
    got = max(_trail(client, qa, bag, "sample.receive"), key=lambda e: e["seq"])  # at the site
    assert got["actor"] == "site_nurse" and got["before"]["state"] == "in_transit"

    count = audit_count(app)
    r = go(client, tech, ep["number"], "infuse", bag=bag, coi=ep["coi"], wristband=ep["coi"])
    assert r.status_code == 200 and r.json["state"] == "infused", r.json
    assert audit_count(app) == count + 2
    now = _bag(client, tech, bag)
    assert now["state"] == "consumed" and now["allowed_actions"] == []
    moves = [e["action"] for e in _history(client, tech, bag)]
    assert moves[-4:] == ["sample.release", "sample.ship", "sample.receive", "sample.infuse"]
    assert verify(app).ok

    # The sample page's timeline shows the moves and where the bag was sent.
    sign_in(client, "tech1")
    page = client.get(f"/samples/{bag}").text
    assert "tl-infuse" in page and "tl-ship" in page and sh["number"] in page


def test_only_the_released_product_ships_and_a_refused_dispatch_moves_nothing(
    app, client, auth, tech
) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = released(client, auth, tech)
    starting = client.get(f"/api/episodes/{ep['number']}", headers=qa).json["episode"]["samples"][0]
    assert starting["barcode"] != ep["bag"]
    # The starting material is not the product: neither packed nor shipped by the episode.
    r = client.post(
        "/api/shipments",
        json={
            "site": "st-marys",
            "product_code": "S0001",
            "shipper": "c",
            "logger_id": "L",
            "containers": [{"bag": starting["barcode"], "coi": ep["coi"]}],
        },
        headers=tech,
    )
    assert r.status_code == 422 and r.json["error"] == "not_final_product", r.json
    r = go(client, tech, ep["number"], "ship", bag=starting["barcode"], coi=ep["coi"])
    assert r.status_code == 422 and r.json["error"] == "not_final_product", r.json
    # A product bag in someone's hands is not shipped: the dispatch is refused as a whole.
    sh = pack(client, tech, ep)
    assert move(client, tech, ep["bag"], "check_out", custodian="tech2").status_code == 200
    count = audit_count(app)
    r = client.post(f"/api/shipments/{sh['number']}/dispatch", json={}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "illegal_transition", r.json
    assert audit_count(app) == count
    assert client.get(f"/api/episodes/{ep['number']}", headers=qa).json["episode"]["state"] == (
        "released"
    )
    assert client.get(f"/api/shipments/{sh['number']}", headers=qa).json["state"] == "packed"
    assert _bag(client, tech, ep["bag"])["state"] == "in_use"


def test_shipping_by_the_episode_alone_names_the_episode_as_destination(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = released(client, auth, tech)
    r = go(client, tech, ep["number"], "ship", bag=ep["bag"], coi=ep["coi"])
    assert r.status_code == 200, r.json
    assert _bag(client, tech, ep["bag"])["state"] == "in_transit"
    (ship,) = _trail(client, qa, ep["bag"], "sample.ship")
    assert ep["number"] in ship["after"]["destination"]
    r = go(client, tech, ep["number"], "receive_at_site", bag=ep["bag"], coi=ep["coi"])
    assert r.status_code == 200, r.json
    assert _bag(client, tech, ep["bag"])["state"] == "received"


def test_a_bag_is_infused_only_by_its_episode(client, auth, tech) -> None:  # noqa: ANN001
    ep, sh = dispatched(client, auth, tech)
    r = client.post(
        f"/api/shipments/{sh['number']}/receive",
        json={"scans": [{"bag": ep["bag"], "coi": ep["coi"]}]},
        headers=auth("site_nurse"),
    )
    assert r.status_code == 200, r.json
    r = move(client, tech, ep["bag"], "infuse", coi=ep["coi"])
    assert r.status_code == 422 and r.json["error"] == "episode_move_required", r.json
    assert _bag(client, tech, ep["bag"])["state"] == "received"
    # Nor is material of no episode.
    plain = register(client, tech, sample_type="PBMC")["barcode"]
    assert move(client, tech, plain, "receive", condition="ok").status_code == 200
    r = move(client, tech, plain, "infuse")
    assert r.status_code == 422 and r.json["error"] == "episode_move_required", r.json


def test_a_rejected_shipment_returns_its_episode_for_qa_and_the_bag_comes_back(
    app, client, auth, tech
) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep, sh = dispatched(client, auth, tech)
    site = auth("site_nurse")
    count = audit_count(app)
    r = client.post(
        f"/api/shipments/{sh['number']}/transitions",
        json={"action": "reject", "reason": "box arrived warm"},
        headers=site,
    )
    assert r.status_code == 200 and r.json["state"] == "rejected", r.json
    # The shipment's event and the episode's own: it is not left 'shipped'.
    assert audit_count(app) == count + 2
    now = client.get(f"/api/episodes/{ep['number']}", headers=qa).json["episode"]
    assert now["state"] == "returned" and "box arrived warm" in now["reason"]
    assert now["allowed_actions"] == ["fail"]
    (ret,) = _trail(client, qa, ep["number"], "episode.return")
    assert ret["actor"] == "site_nurse"
    # Nobody at the centre holds the bag yet: it is still on its way, until scanned back in.
    assert _bag(client, tech, ep["bag"])["state"] == "in_transit"
    r = move(client, tech, ep["bag"], "receive", condition="returned, -180 C", coi=ep["coi"])
    assert r.status_code == 200 and r.json["state"] == "received", r.json
    assert move(client, tech, ep["bag"], "quarantine").status_code == 200
    # QA decides: the product is not given.
    r = go(client, qa, ep["number"], "fail", reason="returned warm; product discarded")
    assert r.status_code == 200 and r.json["state"] == "failed", r.json
    assert verify(app).ok
