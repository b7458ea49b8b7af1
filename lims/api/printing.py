"""Label printing: queue jobs, follow them, reprint/resume/void, label files, worker claims."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apiflask import APIBlueprint
from apiflask.schemas import FileSchema
from flask import Response, current_app
from pydantic import ConfigDict, Field

from lims import printing
from lims.api import schemas
from lims.api.query import QueryModel
from lims.api.schemas import READ, WRITE, answers
from lims.boundary import current_actor, get_db, require, unit, write
from lims.models import PrintJob
from lims.printing import (
    ClaimIn,
    OutcomeIn,
    PrintRequest,
    ReprintIn,
    ResolveIn,
    ResumeIn,
    SheetIn,
    StartIn,
    StatusIn,
    VoidIn,
)
from lims.roles import LAB

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


def _job(job: PrintJob) -> dict:
    return printing.job_dict(get_db(), job)


def _on_job(action: Callable[..., PrintJob], **kwargs: Any) -> dict:
    """Run a print-job action as the lab user asking; answer the job it returns."""
    return _job(action(get_db(), actor=require(*LAB), **kwargs))


@bp.post("/labels")
@answers(bp, schemas.JobQueued, *WRITE, 404, 413, status=201)
@bp.input(PrintRequest, arg_name="data")
@write
def queue_labels(data: PrintRequest):
    """Queue labels for samples, lots or boxes on a printer; returns the print job."""
    actor = require(*LAB)
    job = _job(printing.queue_labels(get_db(), data=data, actor=actor))
    return {**job, "jobs": [job]}, 201


@bp.get("/print-jobs")
@answers(bp, schemas.JobsOut, *READ, 403, 404)
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
@answers(bp, schemas.JobOut, *READ, 403, 404)
def get_job(job_id: int):
    """Return a print job: state, every label and what became of it, the error if any."""
    actor = require(*LAB)
    return _job(printing.get_job(get_db(), job_id, actor))


@bp.post("/print-jobs/<int:job_id>/reprint")
@answers(bp, schemas.JobOut, *WRITE, 404, 413, status=201)
@bp.input(ReprintIn, arg_name="data")
@write
def reprint(job_id: int, data: ReprintIn):
    """Reprint a job's printed labels with a reason; each label says REPRINT."""
    return _on_job(printing.reprint, job_id=job_id, reason=data.reason, barcodes=data.barcodes), 201


@bp.post("/print-jobs/<int:job_id>/resume")
@answers(bp, schemas.JobOut, *WRITE, 404, 413, status=201)
@bp.input(ResumeIn, arg_name="data")
@write
def resume(job_id: int, data: ResumeIn):
    """Print, as a new job, the labels of a failed job that never printed (no REPRINT)."""
    return _on_job(printing.resume, job_id=job_id, reason=data.reason), 201


@bp.post("/print-jobs/<int:job_id>/resolve")
@answers(bp, schemas.JobOut, *WRITE, 404, 413)
@bp.input(ResolveIn, arg_name="data")
@write
def resolve(job_id: int, data: ResolveIn):
    """Say which labels of unknown outcome printed (scanned back, or a count); the rest resume.

    Labels found printed count as printed originals (another is a reprint with a reason); the
    others never printed, and resume prints them as originals.
    """
    return _on_job(
        printing.resolve_unknown,
        job_id=job_id,
        scanned=data.scanned,
        printed=data.printed,
        reason=data.reason,
    )


@bp.post("/print-jobs/<int:job_id>/void")
@answers(bp, schemas.JobOut, *WRITE, 404, 413)
@bp.input(VoidIn, arg_name="data")
@write
def void(job_id: int, data: VoidIn):
    """Void a queued job with a reason; it will never be sent."""
    return _on_job(printing.void, job_id=job_id, reason=data.reason)


# --- the station agent's worker protocol --------------------------------------------------


@bp.post("/print-jobs/claim")
@answers(bp, schemas.ClaimOut, *WRITE, 404, 413)
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
@answers(bp, schemas.JobOut, *WRITE, 404, 413)
@bp.input(StartIn, arg_name="data")
@write
def start(job_id: int, data: StartIn):
    """Mark a claimed job 'sending'; send its bytes only after this answered 200."""
    return _on_job(printing.start_sending, job_id=job_id, worker=data.worker)


@bp.post("/print-jobs/<int:job_id>/outcome")
@answers(bp, schemas.JobOut, *WRITE, 404, 413)
@bp.input(OutcomeIn, arg_name="data")
@write
def outcome(job_id: int, data: OutcomeIn):
    """Record what the printer did with a job (the driver's BatchOutcome)."""
    return _on_job(printing.record_outcome, job_id=job_id, data=data)


@bp.post("/printers/<name>/status")
@answers(bp, schemas.PrinterStatusReported, *WRITE, 404, 413)
@bp.input(StatusIn, arg_name="data")
@write
def printer_status(name: str, data: StatusIn):
    """Report what an idle printer said to ~HS, or that it said nothing (station agents only).

    Only with the token of the station the printer belongs to (403 otherwise).
    """
    actor = require(*LAB)
    db = get_db()
    local = current_app.extensions["lims"].get("print_worker")
    check = printing.report_status(
        db, name=name, data=data, actor=actor, local_worker=local["worker"] if local else None
    )
    every_s = float(current_app.config["PRINTER_STATUS_EVERY_S"])
    return {"printer": name, "status": printing.check_dict(check, every_s=every_s)}


# --- label files ----------------------------------------------------------------------------


@bp.get("/samples/<barcode>/label.png")
@answers(bp, None, *READ, 403, 404, 422)
@bp.output(
    FileSchema(type="string", format="binary"),
    content_type="image/png",
    description="a preview of the label",
)
@bp.input(LabelFileQuery, location="query", arg_name="q")
def label_preview(barcode: str, q: LabelFileQuery):
    """Return a PNG preview of a sample's label (same layout as the printer's bytes)."""
    png = printing.sample_label_png(
        get_db(), barcode=barcode, actor=current_actor(), template=q.template, scale=q.scale
    )
    return Response(png, mimetype="image/png", headers={"Cache-Control": "no-store"})


@bp.get("/samples/<barcode>/label.pdf")
@answers(bp, None, *READ, 403, 404, 409, 422)
@bp.output(
    FileSchema(type="string", format="binary"),
    content_type="application/pdf",
    description="the label as a PDF page",
)
@bp.input(LabelFileQuery, location="query", arg_name="q")
def label_file(barcode: str, q: LabelFileQuery):
    """Return a sample's label as a PDF page the size of the label (recorded in the audit)."""
    actor = require(*LAB)
    f = printing.sample_label_pdf(get_db(), barcode=barcode, actor=actor, template=q.template)
    # A GET reads in a deferred transaction; the audit event gets a writer of its own.
    unit.write_aside(lambda db: printing.record_label_file(db, f, actor))
    return Response(
        f.data,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="label-{barcode}.pdf"'},
    )


@bp.post("/labels/sheet.pdf")
@answers(bp, None, *WRITE, 404, 413)
@bp.output(
    FileSchema(type="string", format="binary"),
    content_type="application/pdf",
    description="an A4 sheet of labels",
)
@bp.input(SheetIn, arg_name="data")
def label_sheet(data: SheetIn):
    """Return a PDF sheet of labels (A4) for an office printer (recorded in the audit)."""
    actor = require(*LAB)
    # Not a writing view (a PDF is no answer an Idempotency-Key replays); still one commit.
    pdf = unit.run(lambda: printing.label_sheet_pdf(get_db(), data=data, actor=actor))
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": 'inline; filename="labels.pdf"'},
    )
