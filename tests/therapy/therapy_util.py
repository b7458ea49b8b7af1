"""Helpers of the cell therapy tests: a patient, an episode, its bag, moves through the API."""

from __future__ import annotations

from helpers import register

DEMO_NAME = "Alex Demo"  # the demo patient's name: it must never leak past QA and admin


def new_patient(client, qa, **fields) -> dict:  # noqa: ANN001
    body = {"full_name": "Pat Test", "date_of_birth": "1980-05-06", "hospital_id": "MRN-T1"}
    r = client.post("/api/patients", json={**body, **fields}, headers=qa)
    assert r.status_code == 201, r.json
    return r.json


def new_episode(client, qa, tech, hospital_id: str = "MRN-T1", **fields) -> dict:  # noqa: ANN001
    """Register a patient, enrol them and register an apheresis bag under their COI."""
    p = new_patient(client, qa, hospital_id=hospital_id)
    r = client.post(
        "/api/episodes",
        json={"coi": p["coi"], "project": "CART-001", "product_code": "S0001", **fields},
        headers=tech,
    )
    assert r.status_code == 201, r.json
    bag = register(client, tech, sample_type="APHERESIS", coi=p["coi"], container="bag")
    return {**r.json, "bag": bag["barcode"]}


def go(client, headers, number: str, action: str, **fields):  # noqa: ANN001, ANN201
    return client.post(
        f"/api/episodes/{number}/transitions", json={"action": action, **fields}, headers=headers
    )


def walk(client, tech, qa, ep: dict, until: str) -> dict:  # noqa: ANN001
    """Move an episode along the happy path up to and including the action until."""
    bag, coi = ep["bag"], ep["coi"]
    steps = [
        ("schedule_collection", tech, {}),
        ("collect", tech, {}),
        ("receive", tech, {"bag": bag, "coi": coi}),
        ("start_manufacturing", tech, {}),
        ("submit_to_qc", tech, {}),
        ("release", qa, {"din": "G123498654321H", "product_code": "S0001"}),
        ("ship", tech, {"bag": bag, "coi": coi}),
        ("receive_at_site", tech, {"bag": bag, "coi": coi}),
        ("infuse", tech, {"bag": bag, "coi": coi, "wristband": coi}),
    ]
    out = ep
    for action, who, fields in steps:
        r = go(client, who, ep["number"], action, **fields)
        assert r.status_code == 200, (action, r.json)
        out = r.json
        if action == until:
            break
    return out
