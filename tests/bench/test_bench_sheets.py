"""Printable bench sheets (Code 128, decoded with zxing-cpp from the PDF rendered by pdfium) and
the badge unlock's guards."""

from __future__ import annotations

from datetime import timedelta

import pypdfium2 as pdfium
import pytest
import zxingcpp
from helpers import sign_in
from PIL import ImageOps
from sqlalchemy import update

from lims.bench import sheets
from lims.db import new_session
from lims.models import WebSession, utcnow


def _decoded(pdf: bytes) -> list[str]:
    """Return every barcode's text on every page, top to bottom."""
    assert pdf.startswith(b"%PDF-")
    doc = pdfium.PdfDocument(pdf)
    found: list[str] = []
    try:
        for page in doc:
            img = page.render(scale=4).to_pil().convert("L")
            img = ImageOps.expand(img, border=20, fill=255)
            hits = zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.Code128)
            found += [r.text for r in sorted(hits, key=lambda r: r.position.top_left.y)]
    finally:
        doc.close()
    return found


def test_the_command_sheet_scans_as_every_command_code(client):
    sign_in(client, "tech1")
    r = client.get("/bench/sheets/commands.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    expected = [c.data for _, codes in sheets.command_codes() for c in codes]
    assert {"CMD:STORE", "CMD:ACK", "CMD:RECEIVE", "CMD:REASON:EXPIRED"} <= set(expected)
    assert sorted(_decoded(r.data)) == sorted(expected)


def test_a_badge_sheet_is_for_its_holder_or_an_administrator(app, client):
    sign_in(client, "tech1")
    own = client.get("/bench/sheets/badge/tech1.pdf")
    assert own.status_code == 200
    assert set(_decoded(own.data)) == {"BADGE-0002"}
    # Someone else's badge is a key: not for another technician (not even whether it exists).
    assert client.get("/bench/sheets/badge/tech2.pdf").status_code == 404
    assert client.get("/bench/sheets/badge/nobody.pdf").status_code == 404
    admin = app.test_client()
    sign_in(admin, "admin")
    theirs = admin.get("/bench/sheets/badge/tech2.pdf")
    assert theirs.status_code == 200 and set(_decoded(theirs.data)) == {"BADGE-0003"}


def test_a_badge_unlock_needs_this_browsers_bench_pass(client):
    # No bench page was ever opened signed in here: no badge opens a session.
    r = client.post("/bench/BENCH-B1/resume", json={"badge": "BADGE-0002"})
    assert r.status_code == 403 and r.json["error"] == "no_bench_pass"
    sign_in(client, "tech1")
    assert client.get("/bench/BENCH-B1").status_code == 200
    # The pass is for this station only.
    r = client.post("/bench/BENCH-B2/resume", json={"badge": "BADGE-0002"})
    assert r.status_code == 403
    r = client.post("/bench/BENCH-B1/resume", data="BADGE-0002")
    assert r.status_code == 400 and r.json["error"] == "malformed"


@pytest.mark.parametrize("badge", ["BADGE-0002", "badge-0002"])
def test_a_badge_unlock_opens_a_session_for_the_holder(client, badge):
    sign_in(client, "tech1")
    assert client.get("/bench/BENCH-B1").status_code == 200
    client.post("/logout", data={"csrf_token": _csrf(client)})
    assert client.get("/home").status_code == 302
    # The bench page itself shows the lock, not a redirect to the sign-in form.
    locked = client.get("/bench/BENCH-B1")
    assert locked.status_code == 200 and "Session ended - scan your badge" in locked.text
    assert 'id="password"' not in locked.text
    r = client.post("/bench/BENCH-B1/resume", json={"badge": badge})
    assert r.status_code == 200 and r.json["user"] == "tech1", r.json
    assert client.get("/home").status_code == 200


def _csrf(client) -> str:  # noqa: ANN001
    from helpers import page_csrf

    return page_csrf(client)


def test_a_badge_never_renews_the_pass_it_unlocked_with(app, client):
    """The pass dates from the password sign-in: badge after badge cannot keep it alive."""
    from itsdangerous import URLSafeTimedSerializer

    def pass_people() -> dict:
        raw = client.get_cookie("lims_bench_pass", path="/bench/").value
        return URLSafeTimedSerializer(app.secret_key, salt="lims.bench-pass").loads(raw)["people"]

    sign_in(client, "tech1")
    with new_session(app.extensions["lims"]["engine"]) as db:
        # The password sign-in was an hour ago.
        db.execute(update(WebSession).values(created_at=utcnow() - timedelta(hours=1)))
        db.commit()
    client.get("/bench/BENCH-B1")
    first = pass_people()
    client.post("/logout", data={"csrf_token": _csrf(client)})
    assert client.post("/bench/BENCH-B1/resume", json={"badge": "BADGE-0002"}).status_code == 200
    assert client.get("/bench/BENCH-B1").status_code == 200  # a page load in the badge's session
    assert pass_people() == first
