"""Helpers of the quality loop's tests: post results, reviews and releases as the API is used."""

from __future__ import annotations

from helpers import PASSWORD, review_trail

REVIEW = {"password": PASSWORD, "meaning": "review"}
RELEASE = {"password": PASSWORD, "meaning": "release"}
APPROVE = {"password": PASSWORD, "meaning": "approval"}
LOT = "AAV9-2611-001"  # demo: quarantine; titer, sterility, endotoxin recorded by tech1


def qc(client, lot: str, headers: dict[str, str], test: str, result: str, **extra):  # noqa: ANN001, ANN201
    """Post a QC result of a lot and return the response."""
    return client.post(
        f"/api/lots/{lot}/qc", json={"test": test, "result": result, **extra}, headers=headers
    )


def result_of(lot_json: dict, test: str, *, retest: bool = False) -> dict:
    """Return the current result (or the latest retest) of test in a lot's JSON."""
    rows = [q for q in lot_json["qc"] if q["test"] == test and q["retest"] == retest]
    return rows[-1]


def review(client, lot: str, result_id: int, headers: dict[str, str]):  # noqa: ANN001, ANN201
    """Review a lot's result (signed) and return the response."""
    return client.post(
        f"/api/lots/{lot}/qc/{result_id}/review", json={"signature": REVIEW}, headers=headers
    )


def release(client, lot: str, headers: dict[str, str], *, trail: bool = True):  # noqa: ANN001, ANN201
    """Try to release a lot (signed) and return the response.

    With trail: QA first signs the review of the lot's audit trail when it is not current (the
    rule of tests/quality/test_trail_review.py), so that only the results' rules can refuse.
    """
    if trail:
        status = client.get(f"/api/lots/{lot}/audit-trail?limit=1", headers=headers)
        if status.status_code == 200 and not status.json["review"]["current"]:
            review_trail(client, lot, headers)
    return client.post(
        f"/api/lots/{lot}/transitions",
        json={"action": "release", "signature": RELEASE},
        headers=headers,
    )


def new_lot(client, tech: dict[str, str], number: str, vector_type: str = "AAV") -> str:  # noqa: ANN001
    """Plan a lot and start its production (QC may then be recorded); return its number."""
    body = {
        "lot_number": number,
        "vector_type": vector_type,
        "vector": f"{vector_type}-TEST",
        "project": "CART-001",
        "manufactured_on": "2026-11-01",
        "expires_on": "2099-01-01",
    }
    r = client.post("/api/lots", json=body, headers=tech)
    assert r.status_code == 201, r.json
    r = client.post(
        f"/api/lots/{number}/transitions", json={"action": "start_production"}, headers=tech
    )
    assert r.status_code == 200, r.json
    return number
