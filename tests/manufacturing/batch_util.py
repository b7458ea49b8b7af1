"""Shared steps of the batch record tests: an approved template and a lot with its record open."""

from __future__ import annotations

from datetime import date, timedelta

from mfg_util import PASSWORD
from sqlalchemy import text

TEMPLATE = {
    "code": "AAV-TTX",
    "name": "AAV triple transfection, 2 L",
    "product": "AAV",
    "steps": [
        {
            "name": "Seed HEK293",
            "instructions": "Seed the 2 L bioreactor from the working cell bank.",
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


def approved_template(client, auth, qa2, body: dict = TEMPLATE) -> None:  # noqa: ANN001
    """Write a template as qa1 and approve it as qa2."""
    r = client.post("/api/process-templates", json=body, headers=auth("qa1"))
    assert r.status_code == 201, r.json
    r = client.post(
        f"/api/process-templates/{body['code']}/{r.json['version']}/approve",
        json={"signature": {"password": PASSWORD, "meaning": "approval"}},
        headers=qa2,
    )
    assert r.status_code == 200, r.json


def lot_with_record(client, auth, number: str, project: str = "CART-001", who: str = "tech1"):  # noqa: ANN001, ANN201
    """Plan a lot and open its batch record on AAV-TTX."""
    body = {"lot_number": number, "vector_type": "AAV", "vector": "AAV9-GFP", "project": project}
    r = client.post("/api/lots", json=body, headers=auth(who))
    assert r.status_code == 201, r.json
    r = client.post(
        f"/api/lots/{number}/batch-record", json={"template": "AAV-TTX"}, headers=auth(who)
    )
    assert r.status_code == 201, r.json
    return r.json


def past_its_expiry(engine, code: str) -> None:  # noqa: ANN001
    """Make a released material lot's expiry yesterday (time passing, not a state change)."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE material_lot SET expires_on = :d WHERE code = :c"),
            {"d": date.today() - timedelta(days=1), "c": code},
        )
