"""Helpers of the cell therapy tests: a patient, an episode, its bag, moves through the API."""

from __future__ import annotations

from helpers import PASSWORD, move, register

DEMO_NAME = "Alex Demo"  # the demo patient's name: it must never leak past QA and admin
RELEASE = {"password": PASSWORD, "meaning": "release"}
EXPIRY = "2099-01-31"  # the released product's expiry date
# The release results of the T-cell product (TCELL-RELEASE in the demo), all passing.
PRODUCT_QC = (
    ("viability", "92 %"),
    ("sterility", "no growth"),
    ("endotoxin", "0.5 EU/mL"),
    ("mycoplasma", "not detected"),
)


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


def final_product(client, tech, qa, ep: dict, *, review: bool = True) -> str:  # noqa: ANN001
    """Register the episode's T-cell product in quarantine with its QC recorded (and reviewed)."""
    b = register(client, tech, sample_type="TCELL", coi=ep["coi"], container="bag")["barcode"]
    assert move(client, tech, b, "receive", condition="intact", coi=ep["coi"]).status_code == 200
    assert move(client, tech, b, "quarantine").status_code == 200
    for test, result in PRODUCT_QC:
        r = client.post(f"/api/samples/{b}/qc", json={"test": test, "result": result}, headers=tech)
        assert r.status_code == 201, r.json
    if review:
        for q in client.get(f"/api/samples/{b}/qc", headers=qa).json["qc"]:
            r = client.post(
                f"/api/samples/{b}/qc/{q['id']}/review",
                json={"signature": {"password": PASSWORD, "meaning": "review"}},
                headers=qa,
            )
            assert r.status_code == 200, r.json
    return b


def walk(client, tech, qa, ep: dict, until: str) -> dict:  # noqa: ANN001
    """Move an episode along the happy path up to and including the action until.

    From the release on, ep["bag"] is the episode's final product (the bag that ships)."""
    bag, coi = ep["bag"], ep["coi"]
    steps = [
        ("schedule_collection", tech, {}),
        ("collect", tech, {}),
        ("receive", tech, {"bag": bag, "coi": coi}),
        ("start_manufacturing", tech, {}),
        ("submit_to_qc", tech, {}),
        ("release", qa, {"din": "G123498654321H", "product_code": "S0001", "expires_on": EXPIRY}),
        ("ship", tech, {"bag": bag, "coi": coi}),
        ("receive_at_site", tech, {"bag": bag, "coi": coi}),
        ("infuse", tech, {"bag": bag, "coi": coi, "wristband": coi}),
    ]
    out = ep
    for action, who, fields in steps:
        if action == "release":
            # From here on the bag scanned is the final product (released with the episode).
            bag = ep["bag"] = final_product(client, tech, qa, ep)
            fields = {**fields, "signature": RELEASE}
        elif "bag" in fields:
            fields = {**fields, "bag": bag}
        r = go(client, who, ep["number"], action, **fields)
        assert r.status_code == 200, (action, r.json)
        out = r.json
        if action == until:
            break
    return out
