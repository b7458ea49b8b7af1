"""Label pages: preview, print the ticked samples, the print queue (reprint, resume, void, and
resolving labels of unknown outcome after a printer fault)."""

from __future__ import annotations

from flask import Response, current_app, flash, jsonify, redirect, request, url_for
from pydantic import ValidationError

from lims import labels as labels_mod
from lims import printing
from lims import samples as samples_mod
from lims.boundary.unit import get_db
from lims.errors import NotFound
from lims.inputs import check_text
from lims.roles import LAB
from lims.web.common import actor, area, page, perform, render, safe_next
from lims.web.common import cursor as page_cursor
from lims.web.lists import Column, ListView, before_cursor, chosen_columns

bp = area("printing", __name__)


@bp.get("/labels/preview/<barcode>")
@page()
def label_preview(barcode: str):  # noqa: ANN201
    """Show the label of a sample as it will print."""
    db = get_db()
    s = samples_mod.get_sample(db, barcode, actor())
    template = request.args.get("template") or labels_mod.default_template(s.container)
    if template not in printing.template_names():
        raise NotFound(f"no label template {template[:64]!r}; choose one from the list")
    content = labels_mod.sample_label(db, s)
    lines = [text for _, text in content.text_lines()]
    # The stock the container calls for: the page warns, and asks a reason, before another.
    wanted = labels_mod.container_stock(s.container)
    return render(
        "label.html",
        s=s,
        template=template,
        lines=lines,
        templates=printing.template_names(),
        wanted=wanted,
        mismatch=wanted is not None and wanted != template,
        printers=printing.active_printers(db, every_s=_status_every())
        if actor().role in LAB
        else [],
    )


@bp.get("/labels/preview/<barcode>.png")
@page()
def label_preview_png(barcode: str) -> Response:
    """Return a PNG of the label as it will print (same layout as the printer's bytes)."""
    png = printing.label_preview_png(
        get_db(), barcode=barcode, actor=actor(), template=request.args.get("template")
    )
    return Response(png, mimetype="image/png", headers={"Cache-Control": "no-store"})


@bp.post("/labels/print")
@page(*LAB)
def print_labels():  # noqa: ANN201
    """Queue labels for the ticked samples on a printer (one job), then show the queue."""
    barcodes = [b.strip() for b in request.form.getlist("barcodes") if b.strip()]
    back = request.form.get("back") or url_for("web.samples.list")
    if not barcodes:
        flash("Tick the samples whose labels you want to print.", "error")
        return redirect(safe_next(back))
    try:
        data = printing.PrintRequest(
            barcodes=barcodes,
            printer=request.form.get("printer", ""),
            template=request.form.get("template") or None,
            copies=int(request.form.get("copies") or 1),
            stock_override=(request.form.get("stock_override") or "").strip() or None,
        )
    except (ValidationError, ValueError):
        flash("Choose a printer, a label stock and 1 to 10 copies.", "error")
        return redirect(safe_next(back))
    job, err = perform(lambda: printing.queue_labels(get_db(), data=data, actor=actor()))
    if err is not None:
        flash(f"Nothing was queued: {err.message}", "error")
        return redirect(safe_next(back))
    flash(f"Job #{job.id} queued: {job.labels_total} label(s) on {data.printer}.", "ok")
    return redirect(url_for("web.printing.queue") + f"#job-{job.id}")


# --- print queue -----------------------------------------------------------------------------


def _status_every() -> float:
    """Return how often idle printers are asked ~HS (PRINTER_STATUS_EVERY_S, seconds)."""
    return float(current_app.config.get("PRINTER_STATUS_EVERY_S", printing.STATUS_EVERY_S))


@bp.get("/print-queue", endpoint="queue")
@page(*LAB)
def print_queue():  # noqa: ANN201
    """Show print jobs per printer with their state, and what the operator can do with each."""
    printers = printing.queue_overview(get_db(), actor(), every_s=_status_every())
    return render(
        "print_queue.html",
        printers=printers,
        version=printing.queue_feed(get_db(), actor(), overview=printers)["version"],
        poll_ms=current_app.config.get("PRINT_QUEUE_POLL_MS", 3000),
    )


@bp.get("/print-queue.json", endpoint="queue_feed")
@page(*LAB)
def print_queue_feed() -> Response:
    """What the queue page polls: each printer's last ~HS status and its jobs' states."""
    resp = jsonify(printing.queue_feed(get_db(), actor(), every_s=_status_every()))
    resp.headers["Cache-Control"] = "no-store"
    return resp


JOB_COLUMNS = (
    Column("job", "Job", "created"),
    Column("printer", "Printer", "printer"),
    Column("state", "State", "state"),
    Column("labels", "Labels", "labels"),
    Column("barcodes", "Barcodes", None),
    Column("template", "Stock", "template"),
    Column("by", "By", None),
    Column("created", "Queued", "created"),
    Column("note", "Note", None),
)
JOB_PAGE_SIZE = 50


@bp.get("/print-jobs", endpoint="jobs")
@page(*LAB)
def print_jobs():  # noqa: ANN201
    """List print jobs, newest first, a page at a time, sortable, filtered by printer and state."""
    db = get_db()
    args = {k: (request.args.get(k) or "").strip()[:64] or None for k in ("printer", "state")}
    sort = (request.args.get("sort") or "").strip()[:16] or printing.JOB_SORT_DEFAULT
    result = printing.job_page(
        db,
        actor(),
        sort=sort,
        after=page_cursor(),
        before=before_cursor(),
        limit=JOB_PAGE_SIZE,
        **args,
    )
    shown = chosen_columns(JOB_COLUMNS)
    view = ListView(
        url_for("web.printing.jobs"),
        filters=args,
        sort=result.sort,
        default_sort=printing.JOB_SORT_DEFAULT,
        columns=JOB_COLUMNS,
        shown=shown,
    )
    return render(
        "print_jobs.html",
        rows=printing.job_rows(db, result.rows),
        result=result,
        view=view,
        columns=JOB_COLUMNS,
        shown=shown,
        filters={**args, "state": (args["state"] or "").lower() or None},
        states=("queued", "sending", "sent", "failed", "voided"),
        printers=printing.active_printers(db),
    )


def _job_action(job_id: int, verb: str, fn, needs_reason: bool) -> Response:  # noqa: ANN001
    reason = (request.form.get("reason") or "").strip()[:2000]
    if needs_reason and not reason:
        flash(f"To {verb} a job, give a reason.", "error")
        return redirect(url_for("web.printing.queue"))
    try:
        check_text(reason)  # as the API's models do: the reason goes into the audit trail
    except ValueError as exc:
        flash(f"The reason {exc}.", "error")
        return redirect(url_for("web.printing.queue"))
    job, err = perform(lambda: fn(get_db(), job_id=job_id, reason=reason or None, actor=actor()))
    if err is not None:
        flash(f"Job {job_id}: {err.message}", "error")
    elif verb == "void":
        flash(f"Job {job_id} voided; it will not print.", "ok")
    else:
        flash(f"{verb.capitalize()} of job {job_id} queued as job {job.id}.", "ok")
    return redirect(url_for("web.printing.queue"))


@bp.post("/print-queue/<int:job_id>/reprint")
@page(*LAB)
def reprint(job_id: int):  # noqa: ANN201
    """Queue a reprint of a job, with the operator's reason (the label says REPRINT)."""
    return _job_action(job_id, "reprint", printing.reprint, needs_reason=True)


@bp.post("/print-queue/<int:job_id>/resume")
@page(*LAB)
def resume(job_id: int):  # noqa: ANN201
    """Queue the labels of a failed job that never printed (no REPRINT: they never printed)."""
    return _job_action(job_id, "resume", printing.resume, needs_reason=False)


@bp.post("/print-queue/<int:job_id>/void")
@page(*LAB)
def void(job_id: int):  # noqa: ANN201
    """Void a queued job, with a reason."""
    return _job_action(job_id, "void", printing.void, needs_reason=True)


@bp.post("/print-queue/<int:job_id>/resolve")
@page(*LAB)
def resolve(job_id: int):  # noqa: ANN201
    """Record which labels of unknown outcome came out of the printer (scanned back or counted)."""
    back = redirect(url_for("web.printing.queue") + f"#job-{job_id}")
    how = request.form.get("how")
    scanned: list[str] | None = None
    printed: int | None = None
    if how == "scan":
        # One scan per line (a scanner ends each with Enter); blank lines are not labels.
        scanned = [line.strip() for line in request.form.get("scanned", "").splitlines()]
        scanned = [code for code in scanned if code]
    elif how == "count":
        try:
            printed = int(request.form.get("printed", ""))
        except ValueError:
            flash(f"Job {job_id}: give how many of the labels came out (a number).", "error")
            return back
    else:
        flash(f"Job {job_id}: scan the labels that came out, or count them.", "error")
        return back
    job, err = perform(
        lambda: printing.resolve_unknown(
            get_db(), job_id=job_id, scanned=scanned, printed=printed, actor=actor()
        )
    )
    if err is not None:
        flash(f"Job {job_id}: {err.message}", "error")
    else:
        flash(f"Job {job_id}: {job.error.split('. Before:')[0]}.", "ok")
    return back
