"""Receiving a treatment episode's bag at the bench: its COI label is scanned first, as the
API's receive asks (lims.therapy.sample_custody), and a bag of another patient stops the bench."""

from __future__ import annotations

import itertools

from helpers import register, verify
from therapy_util import new_episode

STATION = "BENCH-B1"


def _scanner(client, headers):  # noqa: ANN001, ANN202
    ids = itertools.count(1)

    def scan(data: str) -> dict:
        body = {"station": STATION, "data": data, "scan_id": f"rc-{next(ids)}"}
        r = client.post("/api/scans", json=body, headers=headers)
        assert r.status_code == 200, r.json
        return r.json

    return scan


def _state(client, headers, barcode: str) -> str:  # noqa: ANN001
    return client.get(f"/api/samples/{barcode}", headers=headers).json["state"]


def test_a_patients_bag_is_received_at_the_bench_after_its_coi_label(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = new_episode(client, qa, tech, hospital_id="MRN-B1")
    plain = register(client, tech)["barcode"]
    scan = _scanner(client, auth("admin", STATION))
    assert scan("BADGE-0003")["outcome"] == "accepted"
    assert scan("CMD:RECEIVE")["outcome"] == "accepted"
    # Material of no episode is received as before, without a COI scan.
    assert scan(plain)["outcome"] == "accepted"
    out = scan(ep["bag"])
    assert (out["outcome"], out["code"]) == ("refused", "no_coi")
    assert "COI label" in out["message"]
    assert _state(client, tech, ep["bag"]) == "registered"
    out = scan(ep["coi"])
    assert out["outcome"] == "accepted" and "scan the tubes to receive" in out["message"]
    out = scan(ep["bag"])
    assert out["outcome"] == "accepted", out
    assert out["action"] == "receive" and out["sample"]["state"] == "received"


def test_a_bag_of_another_patient_stops_the_receipt_at_the_bench(app, client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    mine = new_episode(client, qa, tech, hospital_id="MRN-B2")
    other = new_episode(client, qa, tech, hospital_id="MRN-B3")
    scan = _scanner(client, auth("admin", STATION))
    scan("BADGE-0003")
    scan("CMD:RECEIVE")
    assert scan(other["coi"])["outcome"] == "accepted"
    out = scan(mine["bag"])
    assert (out["outcome"], out["code"]) == ("refused", "coi_mismatch")
    assert "COI MISMATCH - STOP" in out["message"] and out["station_stopped"] is True
    assert _state(client, tech, mine["bag"]) == "registered"
    # As through the API: a critical deviation is opened and holds the episode until QA
    # acknowledges it, and the bench's message names it.
    ep = client.get(f"/api/episodes/{mine['number']}", headers=tech).json["episode"]
    assert ep["held_by"] and ep["held_by"] in out["message"]
    dev = client.get(f"/api/deviations/{ep['held_by']}", headers=qa).json
    assert (dev["severity"], dev["source"]) == ("critical", "COI check")
    assert "tech2" in dev["description"] and mine["number"] in dev["title"]
    assert verify(app).ok
