"""Shared steps of the manufacturing tests: set up a material kind, receive and release material."""

from __future__ import annotations

GS = "\x1d"
GTIN = "09506000134352"  # a valid GTIN-14 (check digit 2)
PASSWORD = "demo-only-lims"


def gs1(lot: str, expiry: str = "281130", serial: str | None = None, gtin: str = GTIN) -> str:
    """Return a GS1 DataMatrix scan as a scanner sends it (AIM ]d2, variable fields end in GS)."""
    data = f"]d201{gtin}17{expiry}10{lot}"
    if serial is not None:
        data += f"{GS}21{serial}"
    return data


def set_up_kind(client, auth, code: str = "DMEM-500", gtin: str = GTIN, **kw):  # noqa: ANN001, ANN003, ANN201
    body = {"code": code, "name": "DMEM high glucose 500 mL", "category": "medium", "gtin": gtin}
    r = client.post("/api/material-kinds", json={**body, **kw}, headers=auth("admin"))
    assert r.status_code == 201, r.json
    return r.json


def receive(client, auth, data: str, who: str = "tech1"):  # noqa: ANN001, ANN201
    return client.post("/api/materials/receive", json={"data": data}, headers=auth(who))


def release(client, auth, code: str, who: str = "qa1"):  # noqa: ANN001, ANN201
    return client.post(
        f"/api/materials/{code}/transitions",
        json={"action": "release", "signature": {"password": PASSWORD, "meaning": "release"}},
        headers=auth(who),
    )


def released_material(client, auth, lot: str = "L1", **kw) -> str:  # noqa: ANN001, ANN003
    """Receive (tech1) and release (qa1) one material lot; return its code."""
    r = receive(client, auth, gs1(lot, **kw))
    assert r.status_code == 201, r.json
    r = release(client, auth, r.json["code"])
    assert r.status_code == 200, r.json
    return r.json["code"]
