"""QA records: chain-of-custody PDF reports and corrections of recorded sample data."""

from __future__ import annotations

from apiflask import APIBlueprint
from apiflask.schemas import FileSchema
from flask import Response

from lims import reports, samples
from lims.api import schemas
from lims.api.schemas import READ, WRITE, answers
from lims.boundary import get_db, require, unit, write
from lims.roles import AUDIT_READERS as READERS
from lims.roles import LAB
from lims.samples import CorrectionIn

bp = APIBlueprint("reports", __name__, url_prefix="/api", tag="QA records")
# Both report routes answer the same PDF body in the OpenAPI document.
_pdf_output = bp.output(
    FileSchema(type="string", format="binary"),
    content_type="application/pdf",
    description="the chain-of-custody report",
)


def _pdf(data: bytes, name: str) -> Response:
    """Return a PDF response shown inline and kept out of caches."""
    return Response(
        data,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"},
    )


@bp.get("/samples/<barcode>/report.pdf")
@answers(bp, None, *READ, 403, 404)
@_pdf_output
def sample_report(barcode: str):
    """Return the chain-of-custody PDF of a sample and its lineage (QA, admin, client viewer)."""
    actor = require(*READERS)
    return _pdf(reports.sample_report(get_db(), barcode, actor), f"custody-{barcode}.pdf")


@bp.get("/lots/<lot>/report.pdf")
@answers(bp, None, *READ, 403, 404)
@_pdf_output
def lot_report(lot: str):
    """Return the chain-of-custody PDF of a lot and its vials (QA, admin, client viewer)."""
    actor = require(*READERS)
    return _pdf(reports.lot_report(get_db(), lot, actor), f"custody-{lot}.pdf")


@bp.get("/lots/<lot>/coa.pdf")
@answers(bp, None, *READ, 404, 422)
@bp.output(
    FileSchema(type="string", format="binary"),
    content_type="application/pdf",
    description="the certificate of analysis",
)
def lot_coa(lot: str):
    """Return the certificate of analysis of a released lot (centre staff, the lot's client).

    Each one issued is recorded in the audit trail with its SHA-256 (also in X-Content-SHA256).
    """
    actor = require()
    cert = reports.certificate(get_db(), lot_number=lot, actor=actor)
    unit.write_aside(lambda db: reports.record_issue(db, cert=cert, actor=actor))
    resp = _pdf(cert.pdf, f"coa-{cert.lot_number}.pdf")
    resp.headers["X-Content-SHA256"] = cert.sha256
    return resp


@bp.post("/samples/<barcode>/corrections")
@answers(bp, schemas.CorrectionOut, *WRITE, 404, 413, status=201)
@bp.input(CorrectionIn, arg_name="data")
@write
def correct(barcode: str, data: CorrectionIn):
    """Correct recorded data of a sample with a reason (a new event linked to the corrected one)."""
    actor = require(*sorted(LAB))
    db = get_db()
    s, event = samples.correct_sample(db, barcode=barcode, data=data, actor=actor)
    return {
        "sample": samples.sample_dict(db, s),
        "event": {k: event[k] for k in ("seq", "action", "corrects_seq", "reason")},
    }, 201
