"""The monthly usage report per client: hours booked and used, EM excursions, as CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_demo_usage_report_counts_helix_hours_and_hides_other_clients(client, auth):
    month = datetime.now(UTC).strftime("%Y-%m")
    r = client.get(f"/api/bookings/usage.csv?month={month}", headers=auth("admin"))
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = _rows(r.text)
    helix = [x for x in rows if x["organisation"] == "helix-bio" and x["booking"].startswith("BK")]
    assert helix and float(helix[0]["hours_booked"]) > 0
    # The demo suite has been in use since its start: some hours used already.
    assert float(helix[0]["hours_used"]) >= 0
    assert any(x["booking"] == f"total {month}" for x in rows)
    r = client.get(f"/api/bookings/usage.csv?month={month}", headers=auth("nova_viewer"))
    assert r.status_code == 200
    assert {x["organisation"] for x in _rows(r.text)} <= {"novacell"}
    r = client.get(
        f"/api/bookings/usage.csv?month={month}&organisation=helix-bio", headers=auth("nova_viewer")
    )
    assert r.status_code == 404
    r = client.get("/api/bookings/usage.csv?month=2026-13", headers=auth("admin"))
    assert r.status_code == 400


def test_usage_report_as_pdf(client, auth):
    from tests.helpers import pdf_text

    month = datetime.now(UTC).strftime("%Y-%m")
    r = client.get(
        f"/api/bookings/usage.pdf?month={month}&organisation=helix-bio", headers=auth("qa1")
    )
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    text = pdf_text(r.data)
    assert f"Cleanroom usage, {month}: helix-bio" in text and "RM-C2" in text
