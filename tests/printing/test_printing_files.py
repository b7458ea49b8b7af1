"""Label files: PDF (office printers) and PNG previews decode back to the sample's barcode."""

from __future__ import annotations

import pypdfium2
import pytest
from helpers import register
from printer_sim_util import decode_image, decode_png
from sqlmodel import select

from lims.db import new_session
from lims.models import AuditEvent


def pdf_pages(pdf: bytes, scale: float = 8.0) -> list:
    doc = pypdfium2.PdfDocument(pdf)
    try:
        return [doc[i].render(scale=scale).to_pil() for i in range(len(doc))]
    finally:
        doc.close()


@pytest.mark.parametrize("template", ["cryovial", "tube-2ml-300", "box", "bag"])
def test_label_pdf_scans_as_the_sample_barcode(app, client, auth, template):
    tech = auth("tech1")
    barcode = register(client, tech)["barcode"]

    r = client.get(f"/api/samples/{barcode}/label.pdf?template={template}", headers=tech)

    assert r.status_code == 200 and r.mimetype == "application/pdf"
    (page,) = pdf_pages(r.data)
    assert {text for _fmt, text in decode_image(page)} == {barcode}
    with new_session(app.extensions["lims"]["engine"]) as db:
        ev = db.exec(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert (ev.action, ev.entity_id, ev.actor) == ("label.pdf", barcode, "tech1")


def test_label_png_preview_scans(client, auth):
    tech = auth("tech1")
    barcode = register(client, tech)["barcode"]
    r = client.get(f"/api/samples/{barcode}/label.png", headers=tech)
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert {text for _fmt, text in decode_png(r.data)} == {barcode}


def test_sheet_pdf_holds_every_label(app, client, auth):
    tech = auth("tech1")
    barcodes = [register(client, tech)["barcode"] for _ in range(4)]

    r = client.post(
        "/api/labels/sheet.pdf", json={"barcodes": barcodes, "template": "box"}, headers=tech
    )

    assert r.status_code == 200 and r.mimetype == "application/pdf"
    (page,) = pdf_pages(r.data, scale=4.0)
    assert sorted(text for _fmt, text in decode_image(page)) == sorted(barcodes)
    with new_session(app.extensions["lims"]["engine"]) as db:
        ev = db.exec(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert ev.action == "label.sheet_pdf" and all(b in ev.after for b in barcodes)


def test_label_files_access_and_errors(client, auth):
    tech = auth("tech1")
    barcode = register(client, tech)["barcode"]
    viewer = auth("helix_viewer")
    # Printing a label (PDF) is lab work; a client viewer cannot.
    assert client.get(f"/api/samples/{barcode}/label.pdf", headers=viewer).status_code == 403
    r = client.post("/api/labels/sheet.pdf", json={"barcodes": [barcode]}, headers=viewer)
    assert r.status_code == 403
    # Another organisation's sample does not exist for a client user.
    assert client.get(f"/api/samples/{barcode}/label.png", headers=viewer).status_code == 404
    assert (
        client.get(f"/api/samples/{barcode}/label.png", headers=auth("helix_tech")).status_code
        == 404
    )
    r = client.get(f"/api/samples/{barcode}/label.pdf?template=nope", headers=tech)
    assert r.status_code == 422 and r.json["error"] == "unknown_template"
    r = client.post("/api/labels/sheet.pdf", json={"barcodes": ["NOPE-1"]}, headers=tech)
    assert r.status_code == 404 and r.json["error"] == "unknown_barcode"
    assert client.get("/api/samples/NOPE/label.pdf").status_code == 401
