"""Receive material mode at the bench: a supplier's GS1 scan becomes a material lot."""

from __future__ import annotations

import itertools

from helpers import audit_count, register
from mfg_util import gs1, receive, released_material, set_up_kind

STATION = "BENCH-B1"


class Bench:
    """Scan at a station the way its agent does (the agent's token, the operator's badge)."""

    def __init__(self, client, headers) -> None:  # noqa: ANN001
        self.client, self.headers, self._ids = client, headers, itertools.count(1)

    def scan(self, data: str) -> dict:
        body = {"station": STATION, "data": data, "scan_id": f"m-{next(self._ids)}"}
        r = self.client.post("/api/scans", json=body, headers=self.headers)
        assert r.status_code == 200, r.json
        return r.json


def test_a_gs1_scan_in_receive_material_mode_receives_the_item(app, client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    bench = Bench(client, auth("admin", STATION))
    assert bench.scan("BADGE-0002")["outcome"] == "accepted"  # tech1 signs in
    out = bench.scan("CMD:RECEIVE-MATERIAL")
    assert out["outcome"] == "accepted", out
    assert "supplier GS1 barcodes" in out["station_state"]["prompt"]
    before = audit_count(app)
    out = bench.scan(gs1("AB-9", serial="77"))
    assert (out["outcome"], out["action"]) == ("accepted", "receive_material"), out
    code = out["material"]["code"]
    assert code in out["message"] and "quarantine" in out["message"]
    assert "2028-11-30" in out["message"]
    assert audit_count(app) == before + 1  # the receipt; an accepted scan is no audit event
    m = client.get(f"/api/materials/{code}", headers=auth("tech1")).json
    assert (m["received_by"], m["supplier_lot"], m["serial"]) == ("tech1", "AB-9", "77")


def test_the_mode_refuses_what_it_cannot_receive_saying_why(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    tube = register(client, auth("tech1"))["barcode"]
    bench = Bench(client, auth("admin", STATION))
    bench.scan("BADGE-0002")
    bench.scan("CMD:RECEIVE-MATERIAL")
    out = bench.scan(tube)
    assert (out["outcome"], out["code"]) == ("refused", "wrong_mode")
    out = bench.scan(gs1("OLD", expiry="200100"))
    assert (out["outcome"], out["code"]) == ("refused", "material_expired")
    out = bench.scan(gs1("L1", gtin="09506000134353"))
    assert (out["outcome"], out["code"]) == ("refused", "gs1_unreadable")
    assert bench.scan(gs1("L1"))["outcome"] == "accepted"
    bench.scan("CMD:DONE")  # a repeat of the same item later is refused, not a double read
    bench.scan("CMD:RECEIVE-MATERIAL")
    out = bench.scan(gs1("L1"))
    assert (out["outcome"], out["code"]) == ("refused", "already_received")


def test_outside_the_mode_a_supplier_code_is_still_not_a_lims_record(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    bench = Bench(client, auth("admin", STATION))
    bench.scan("BADGE-0002")
    bench.scan("CMD:RECEIVE")
    out = bench.scan(gs1("L1"))
    assert (out["outcome"], out["code"]) == ("refused", "not_ours")


def test_use_material_mode_records_scanned_materials_into_the_scanned_lot(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    released = released_material(client, auth, lot="PL-1")
    receive(client, auth, gs1("Q-1"))
    body = {"lot_number": "USE-1", "vector_type": "AAV", "vector": "AAV9-GFP"}
    r = client.post("/api/lots", json={**body, "project": "CART-001"}, headers=auth("tech1"))
    assert r.status_code == 201
    bench = Bench(client, auth("admin", STATION))
    bench.scan("BADGE-0002")
    assert bench.scan("CMD:USE-MATERIAL")["outcome"] == "accepted"
    out = bench.scan(gs1("PL-1"))
    assert (out["outcome"], out["code"]) == ("refused", "no_lot")
    assert bench.scan("USE-1")["outcome"] == "accepted"
    out = bench.scan(gs1("Q-1"))
    assert (out["outcome"], out["code"]) == ("refused", "material_unusable")
    assert "quarantine" in out["message"]
    out = bench.scan(gs1("PL-1"))
    assert (out["outcome"], out["action"]) == ("accepted", "use_material"), out
    assert released in out["message"] and "USE-1" in out["message"]
    out = bench.scan(released)  # our own label of it: recorded again (a second container)
    assert out["outcome"] == "accepted", out
    made = client.get("/api/lots/USE-1/inputs", headers=auth("tech1")).json["inputs"]
    assert [x["ref"] for x in made] == [released, released]
    bench.scan("CMD:DONE")
    out = bench.scan(released)  # no task: looked up
    assert (out["action"], out["outcome"]) == ("lookup", "accepted")
    assert "released" in out["message"] and "usable" in out["message"]
