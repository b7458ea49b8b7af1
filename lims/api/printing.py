"""Label printing: queue jobs, follow them, reprint/resume/void, label files, worker claims."""

from __future__ import annotations

from apiflask import APIBlueprint
from apiflask.schemas import FileSchema
from flask import Response, current_app
from pydantic import ConfigDict, Field
from sqlmodel import Session

from lims import audit, labels, printing, samples
from lims.accounts.users import Actor
from lims.api.query import QueryModel
from lims.db import _read_only, new_session, set_read_only
from lims.errors import Refused
from lims.http import current_actor, get_db, require, write
from lims.printing import (
    ClaimIn,
    OutcomeIn,
    PrintRequest,
    ReprintIn,
    ResumeIn,
    SheetIn,
    StartIn,
    VoidIn,
)
from lims.roles import LAB
from printers import LabelContent, LabelError, Template
from printers.pdf import label_pdf, sheet_pdf
from printers.preview import label_png

bp = APIBlueprint("printing", __name__, url_prefix="/api", tag="Label printing")


class JobQuery(QueryModel):
    model_config = ConfigDict(extra="forbid")
    printer: str | None = Field(default=None, max_length=64)
    state: str | None = Field(default=None, max_length=16)
    station: str | None = Field(default=None, max_length=64)
    cursor: int | None = Field(default=None, ge=0, le=2**31 - 1)  # INTEGER ids
    limit: int = Field(default=50, ge=1, le=500)


class LabelFileQuery(QueryModel):
    model_config = ConfigDict(extra="forbid")
    template: str | None = Field(default=None, min_length=1, max_length=32)
    scale: int = Field(default=2, ge=1, le=4)


def _job(job) -> dict:  # noqa: ANN001
    return printing.job_dict(get_db(), job)


@bp.post("/labels")
@bp.input(PrintRequest, arg_name="data")
@write
def queue_labels(data: PrintRequest):
    """Queue labels for samples, lots or boxes on a printer; returns the print job."""
    actor = require(*LAB)
    job = _job(printing.queue_labels(get_db(), data=data, actor=actor))
    return {**job, "jobs": [job]}, 201


@bp.get("/print-jobs")
@bp.input(JobQuery, location="query", arg_name="q")
def list_jobs(q: JobQuery):
    """List print jobs, newest first; filter by printer, state and station."""
    actor = require(*LAB)
    db = get_db()
    rows = printing.list_jobs(
        db,
        actor,
        printer=q.printer,
        state=q.state,
        station=q.station,
        before_id=q.cursor,
        limit=q.limit,
    )
    # One query for every listed job's labels, not one per job.
    labels = printing.labels_by_job(db, [j.id for j in rows])
    return {
        "jobs": [printing.job_dict(db, j, with_labels=False, rows=labels[j.id]) for j in rows],
        "next_cursor": rows[-1].id if len(rows) == q.limit else None,
    }


@bp.get("/print-jobs/<int:job_id>")
def get_job(job_id: int):
    """Return a print job: state, every label and what became of it, the error if any."""
    actor = require(*LAB)
    return _job(printing.get_job(get_db(), job_id, actor))


@bp.post("/print-jobs/<int:job_id>/reprint")
@bp.input(ReprintIn, arg_name="data")
@write
def reprint(job_id: int, data: ReprintIn):
    """Reprint a job's printed labels with a reason; each label says REPRINT."""
    actor = require(*LAB)
    job = printing.reprint(
        get_db(), job_id=job_id, reason=data.reason, actor=actor, barcodes=data.barcodes
    )
    return _job(job), 201


@bp.post("/print-jobs/<int:job_id>/resume")
@bp.input(ResumeIn, arg_name="data")
@write
def resume(job_id: int, data: ResumeIn):
    """Print, as a new job, the labels of a failed job that never printed (no REPRINT)."""
    actor = require(*LAB)
    return _job(printing.resume(get_db(), job_id=job_id, actor=actor, reason=data.reason)), 201


@bp.post("/print-jobs/<int:job_id>/void")
@bp.input(VoidIn, arg_name="data")
@write
def void(job_id: int, data: VoidIn):
    """Void a queued job with a reason; it will never be sent."""
    actor = require(*LAB)
    return _job(printing.void(get_db(), job_id=job_id, reason=data.reason, actor=actor))


# --- the station agent's worker protocol --------------------------------------------------


@bp.post("/print-jobs/claim")
@bp.input(ClaimIn, arg_name="data")
@write
def claim(data: ClaimIn):
    """Lease the next queued job of a station's printers: its bytes, the printer, the lease.

    Then: check the printer's status; POST .../start before the first byte; POST .../outcome.
    """
    actor = require(*LAB)
    db = get_db()
    local = current_app.extensions["lims"].get("print_worker")
    c = printing.claim_for_api(
        db, data=data, actor=actor, local_worker=local["worker"] if local else None
    )
    if c is None:
        return {"job": None}
    job = printing.get_job(db, c.job_id, actor)
    return {
        "job": {
            **c.to_json(),
            "lease_until": printing.json_ts(job.lease_until),
            "labels_total": job.labels_total,
            "template": job.template,
        }
    }


@bp.post("/print-jobs/<int:job_id>/start")
@bp.input(StartIn, arg_name="data")
@write
def start(job_id: int, data: StartIn):
    """Mark a claimed job 'sending'; send its bytes only after this answered 200."""
    actor = require(*LAB)
    return _job(printing.start_sending(get_db(), job_id=job_id, worker=data.worker, actor=actor))


@bp.post("/print-jobs/<int:job_id>/outcome")
@bp.input(OutcomeIn, arg_name="data")
@write
def outcome(job_id: int, data: OutcomeIn):
    """Record what the printer did with a job (the driver's BatchOutcome)."""
    actor = require(*LAB)
    return _job(printing.record_outcome(get_db(), job_id=job_id, data=data, actor=actor))


# --- label files ----------------------------------------------------------------------------


def _audit_file(
    db: Session, actor: Actor, action: str, barcodes: list[str], template: Template
) -> None:
    """Record a label file handed out for printing elsewhere, and commit."""
    audit.record(
        db,
        actor=actor.username,
        action=action,
        entity_type="label",
        entity_id=barcodes[0] if len(barcodes) == 1 else f"{len(barcodes)} labels",
        after={"barcodes": barcodes, "template": template.name},
        org_id=None if actor.sees_all else actor.org.id,
        station=actor.station,
    )
    db.commit()


def _sample_content(barcode: str, actor: Actor, name: str | None) -> tuple[LabelContent, Template]:
    db = get_db()
    s = samples.get_sample(db, barcode, actor)
    template = printing.template_for(None, name, s.container)
    content = labels.sample_label(db, s)
    printing.check_fit([content], template)
    return content, template


@bp.get("/samples/<barcode>/label.png")
@bp.output(
    FileSchema(type="string", format="binary"),
    content_type="image/png",
    description="a preview of the label",
)
@bp.input(LabelFileQuery, location="query", arg_name="q")
def label_preview(barcode: str, q: LabelFileQuery):
    """Return a PNG preview of a sample's label (same layout as the printer's bytes)."""
    actor = current_actor()
    content, template = _sample_content(barcode, actor, q.template)
    png = label_png(content, template, scale=q.scale)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "no-store"})


@bp.get("/samples/<barcode>/label.pdf")
@bp.output(
    FileSchema(type="string", format="binary"),
    content_type="application/pdf",
    description="the label as a PDF page",
)
@bp.input(LabelFileQuery, location="query", arg_name="q")
def label_file(barcode: str, q: LabelFileQuery):
    """Return a sample's label as a PDF page the size of the label (recorded in the audit)."""
    actor = require(*LAB)
    content, template = _sample_content(barcode, actor, q.template)
    pdf = label_pdf(content, template)
    # A GET reads in a deferred transaction; the audit event gets a writer of its own.
    token = set_read_only(False)
    try:
        with new_session(current_app.extensions["lims"]["engine"]) as db:
            _audit_file(db, actor, "label.pdf", [content.barcode], template)
    finally:
        _read_only.reset(token)
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="label-{barcode}.pdf"'},
    )


@bp.post("/labels/sheet.pdf")
@bp.output(
    FileSchema(type="string", format="binary"),
    content_type="application/pdf",
    description="an A4 sheet of labels",
)
@bp.input(SheetIn, arg_name="data")
def label_sheet(data: SheetIn):
    """Return a PDF sheet of labels (A4) for an office printer (recorded in the audit)."""
    actor = require(*LAB)
    db = get_db()
    if len(set(data.barcodes)) != len(data.barcodes):
        raise Refused(
            "a barcode is listed twice; a duplicate id label is a hazard", code="duplicate_barcode"
        )
    sources = [labels.resolve(db, b, actor) for b in data.barcodes]
    kinds = {src.kind for src in sources}
    template = printing.template_for(
        None, data.template or labels.default_stock(kinds), sources[0].container
    )
    contents = [s.content for s in sources]
    printing.check_fit(contents, template)
    try:
        pdf = sheet_pdf(contents, template)
    except LabelError as err:
        raise Refused(str(err), code="label_invalid") from err
    _audit_file(db, actor, "label.sheet_pdf", data.barcodes, template)
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": 'inline; filename="labels.pdf"'},
    )
