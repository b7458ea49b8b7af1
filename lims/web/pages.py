"""Bench, sample, lot, storage, audit, label and print-queue pages (views stay thin)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Response, flash, redirect, request, url_for
from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import Session, select

from lims import audit, custody, lots, printing, reports, scanning, storage
from lims import bench as bench_mod
from lims import labels as labels_mod
from lims import samples as samples_mod
from lims.boundary import get_db
from lims.errors import BadRequest, LimsError, NotFound
from lims.inputs import check_text
from lims.models import (
    Location,
    Organisation,
    Printer,
    PrintJob,
    PrintJobLabel,
    Project,
    Sample,
    SampleType,
    Station,
    User,
)
from lims.roles import AUDIT_READERS, LAB
from lims.web.common import actor, bp, page, perform, render, safe_next

# --- bench -----------------------------------------------------------------------------------


@bp.get("/bench")
@page(*LAB)
def benches():  # noqa: ANN201
    """List the bench stations to open one."""
    db = get_db()
    rows = db.exec(select(Station).order_by(Station.name)).all()
    rooms = {loc.id: loc for loc in db.exec(select(Location).where(Location.kind == "room"))}
    # A client's staff see another organisation's task only as "in use".
    views = {st.name: bench_mod.station_view(db, st, actor()) for st in rows}
    return render("benches.html", stations=rows, rooms=rooms, views=views)


@bp.get("/bench/<station>")
@page(*LAB)
def bench(station: str):  # noqa: ANN201
    """Show a bench: mode banner, operator, target, the scan field and the last scans."""
    db = get_db()
    st = bench_mod.get_station(db, station)
    state = bench_mod.station_view(db, st, actor())
    scans = bench_mod.recent_scans(db, station=st.name, actor=actor(), limit=15)
    return render("bench.html", station=st, state=state, scans=scans)


# --- samples ---------------------------------------------------------------------------------


@bp.get("/samples", endpoint="samples")
@page()
def samples_list():  # noqa: ANN201
    """List samples (filter by state, project, lot, location), newest first page by page."""
    db = get_db()
    args = {
        k: (request.args.get(k) or "").strip()[:64] or None for k in ("state", "project", "lot")
    }
    location = (request.args.get("location") or "").strip()[:64] or None
    cursor = _cursor()
    rows = samples_mod.list_samples(
        db, actor(), location=location, after_id=cursor, limit=50, **args
    )
    types = {t.id: t.code for t in db.exec(select(SampleType))}
    projects = {p.id: p.code for p in db.exec(select(Project))}
    places = {loc.id: loc.code for loc in db.exec(select(Location))}
    next_args = None
    if len(rows) == 50:
        next_args = urlencode(
            {**{k: v for k, v in args.items() if v}, "cursor": rows[-1].id}
            | ({"location": location} if location else {})
        )
    # Say when a filter names nothing, so that "no samples match" is not taken for an answer.
    unknown = []
    if args["state"] and args["state"] not in custody.STATES:
        unknown.append(f"no state {args['state']!r} (states: {', '.join(custody.STATES)})")
    if location and location not in places.values():
        unknown.append(f"no location {location!r}")
    return render(
        "samples.html",
        error="; ".join(unknown) or None,
        printers=_printers(db) if actor().role in LAB else [],
        templates=printing.template_names(),
        rows=rows,
        types=types,
        projects=projects,
        places=places,
        filters={**args, "location": location},
        states=custody.STATES,
        next_args=next_args,
    )


def _field_specs(action: str) -> list[dict[str, Any]]:
    t = custody.TRANSITIONS[action]
    out = []
    for name in custody.FIELDS:
        if name in t.requires or name in t.optional:
            out.append({"name": name, "required": name in t.requires})
    return out


def _sample_context(barcode: str) -> dict[str, Any]:
    db = get_db()
    who = actor()
    s = samples_mod.get_sample(db, barcode, who)
    info = samples_mod.sample_dict(db, s)
    loc = db.get(Location, s.location_id) if s.location_id else None
    box = loc if loc is not None and loc.kind == "box" else None
    events = samples_mod.history(db, s)
    lineage = samples_mod.genealogy(db, s)
    # Draw the ancestors as the path down to this sample, its descendants below it.
    tree = lineage["tree"]
    for a in reversed(lineage["ancestors"]):
        tree = {**a, "children": [tree]}
    actions = [
        {
            "action": a,
            "description": custody.TRANSITIONS[a].description,
            "fields": _field_specs(a),
            "danger": a in ("dispose", "reject"),
        }
        for a in custody.allowed_actions(s.state)
        if who.role in custody.TRANSITIONS[a].roles
    ]
    labels = db.exec(
        select(PrintJobLabel, PrintJob, Printer)
        .join(PrintJob, PrintJob.id == PrintJobLabel.job_id)
        .join(Printer, Printer.id == PrintJob.printer_id)
        .where(PrintJobLabel.sample_id == s.id)
        .order_by(PrintJob.id.desc())
    ).all()
    return {
        "s": s,
        "info": info,
        "location": loc,
        "location_path": storage.path_text(db, loc) if loc else None,
        "box": box,
        "events": events,
        "track": _state_track(events, s.state),
        "lineage": lineage,
        "lineage_tree": tree,
        "actions": actions,
        "labels": labels,
        # A client user's tube may sit in a job they cannot open (it holds others' tubes too).
        "openable_jobs": {
            job.id for _, job, _ in labels if who.role in LAB and printing.job_visible(db, job, who)
        },
        "printers": _printers(db) if who.role in LAB else [],
        "templates": printing.template_names(),
        "default_template": labels_mod.default_template(s.container),
        "type_name": db.get(SampleType, s.sample_type_id).name,
        "custodian": db.get(User, s.custodian_id) if s.custodian_id else None,
        "conditions": sorted(set(scanning.CONDITIONS.values())),
        "reasons": sorted(set(scanning.REASONS.values())),
        "username": who.username,
        "can_report": who.role in AUDIT_READERS,
    }


def _state_track(events: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """Return the states the sample went through, in order, for the drawn track."""
    track: list[dict[str, Any]] = []
    for ev in events:
        after = ev.get("after") or {}
        state = after.get("state")
        if state and (not track or track[-1]["state"] != state):
            track.append({"state": state, "ts": ev["ts"], "action": ev["action"]})
    if not track or track[-1]["state"] != now:
        track.append({"state": now, "ts": None, "action": None})
    for i, step in enumerate(track):
        step["x"] = 10 + i * 150
    return track


@bp.get("/samples/<barcode>")
@page()
def sample_page(barcode: str):  # noqa: ANN201
    """Show a sample: identity, COI, state, place, custody timeline, lineage, labels, actions."""
    return render("sample.html", **_sample_context(barcode))


@bp.post("/samples/<barcode>/transition")
@page(*LAB)
def sample_transition(barcode: str):  # noqa: ANN201
    """Apply one custody move from the sample page's forms."""
    form = request.form
    fields = {
        name: (form.get(name) or "").strip() or None
        for name in custody.FIELDS
        if form.get(name) is not None
    }
    try:
        version = int(form.get("version") or 0) or None
        data = samples_mod.TransitionIn(
            action=(form.get("action") or "")[:32], version=version, **fields
        )
    except ValueError as exc:
        flash(f"The form could not be read: {_first_error(exc)}", "error")
        return redirect(url_for("web.sample_page", barcode=barcode))
    s, err = perform(
        lambda: samples_mod.transition(get_db(), barcode=barcode, data=data, actor=actor())
    )
    if err is not None:
        if err.code == "unknown_sample":
            raise err  # the page itself is gone; a mistyped place or person is shown inline
        ctx = _sample_context(barcode)
        return render("sample.html", err.status, error=err.message, failed=data.action, **ctx)
    flash(f"{s.barcode}: {data.action.replace('_', ' ')} done; now {s.state}.", "ok")
    return redirect(url_for("web.sample_page", barcode=s.barcode))


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc)


# --- lots ------------------------------------------------------------------------------------


@bp.get("/lots", endpoint="lots")
@page()
def lots_list():  # noqa: ANN201
    """List the vector lots you may see, with their disposition."""
    return render("lots.html", rows=lots.list_lots(get_db(), actor()))


def _lot_context(lot_number: str) -> dict[str, Any]:
    db = get_db()
    who = actor()
    lot = lots.get_lot(db, lot_number, who)
    info = lots.lot_dict(db, lot)
    rows = db.exec(select(Sample).where(Sample.lot_id == lot.id).order_by(Sample.id)).all()
    places = _by_id(db, Location, {v.location_id for v in rows})
    holders = _by_id(db, User, {v.custodian_id for v in rows})
    vials = [
        {"s": v, "loc": places.get(v.location_id), "holder": holders.get(v.custodian_id)}
        for v in rows
    ]
    actions = []
    for name in info["allowed_actions"]:
        t = lots.LOT_TRANSITIONS[name]
        if who.role in t.roles:
            actions.append(t)
    return {
        "lot": lot,
        "steps": _lot_steps(lot.state),
        "info": info,
        "vials": vials,
        "actions": actions,
        "required_qc": lots.REQUIRED_QC,
        "can_qc": who.role in LAB and lot.state in ("in_production", "quarantine"),
        "can_report": who.role in AUDIT_READERS,
        "project": db.get(Project, lot.project_id),
        "org": db.get(Organisation, lot.org_id),
    }


_LOT_PATH = ("planned", "in_production", "quarantine", "released")
# Where a state off the main path branches from it.
_LOT_BRANCH = {"rejected": 2, "on_hold": 3, "expired": 3}


def _lot_steps(state: str) -> list[tuple[str, str]]:
    """Return (state, done|now|todo) along the disposition path, for the drawn steps."""
    if state in _LOT_PATH:
        i = _LOT_PATH.index(state)
        return [
            (s, "done" if k < i else "now" if k == i else "todo") for k, s in enumerate(_LOT_PATH)
        ]
    branch = _LOT_BRANCH.get(state, 3)
    return [(s, "done") for s in _LOT_PATH[: branch + 1]] + [(state, "now")]


@bp.get("/lots/<lot>")
@page()
def lot_page(lot: str):  # noqa: ANN201
    """Show a lot: QC against specs, disposition, signatures, vials and where they are."""
    return render("lot.html", **_lot_context(lot))


@bp.post("/lots/<lot>/transition")
@page(*LAB)
def lot_transition(lot: str):  # noqa: ANN201
    """Move a lot along its disposition; release and reject carry an e-signature."""
    form = request.form
    action = (form.get("action") or "")[:32]
    t = lots.LOT_TRANSITIONS.get(action)
    try:
        sig = None
        if t is not None and t.signature:
            sig = lots.SignatureIn(
                password=form.get("password") or "\0",
                meaning=(form.get("meaning") or "")[:32] or "\0",
            )
        data = lots.LotTransitionIn(
            action=action,
            version=int(form.get("version") or 0) or None,
            reason=(form.get("reason") or "").strip() or None,
            signature=sig,
        )
    except ValueError as exc:
        flash(f"The form could not be read: {_first_error(exc)}", "error")
        return redirect(url_for("web.lot_page", lot=lot))
    if sig is not None and sig.password == "\0":
        ctx = _lot_context(lot)
        return render("lot.html", 422, error="Enter your password to sign.", failed=action, **ctx)
    x, err = perform(
        lambda: lots.transition_lot(get_db(), lot_number=lot, data=data, actor=actor())
    )
    if err is not None:
        if err.code == "unknown_lot":
            raise err
        ctx = _lot_context(lot)
        return render("lot.html", err.status, error=err.message, failed=action, **ctx)
    flash(f"Lot {x.lot_number}: {action.replace('_', ' ')} done; now {x.state}.", "ok")
    return redirect(url_for("web.lot_page", lot=x.lot_number))


@bp.post("/lots/<lot>/qc")
@page(*LAB)
def lot_qc(lot: str):  # noqa: ANN201
    """Record a QC result for a lot (a repeat supersedes the last one, with a reason)."""
    form = request.form
    passed_raw = form.get("passed") or ""
    try:
        data = lots.QcIn(
            test=(form.get("test") or "").strip(),
            spec=(form.get("spec") or "").strip(),
            result=(form.get("result") or "").strip(),
            passed={"yes": True, "no": False}.get(passed_raw),
            reason=(form.get("reason") or "").strip() or None,
        )
    except ValueError as exc:
        ctx = _lot_context(lot)
        return render(
            "lot.html", 400, error=f"The QC form is incomplete: {_first_error(exc)}", **ctx
        )
    _, err = perform(lambda: lots.record_qc(get_db(), lot_number=lot, data=data, actor=actor()))
    if err is not None:
        if err.code == "unknown_lot":
            raise err
        ctx = _lot_context(lot)
        return render("lot.html", err.status, error=err.message, **ctx)
    flash(f"QC result for {data.test} recorded.", "ok")
    return redirect(url_for("web.lot_page", lot=lot))


# --- storage ---------------------------------------------------------------------------------


@bp.get("/storage", endpoint="storage")
@page()
def storage_page():  # noqa: ANN201
    """Show the location tree: site, rooms with their grade, equipment, racks and boxes."""
    db = get_db()
    return render("storage.html", tree=storage.tree(db), counts=_count_by_location(db))


def _by_id(db: Session, model: type, ids: set[int | None]) -> dict[int, Any]:
    """Load the rows of model with these ids in one query (None ids are skipped)."""
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return {row.id: row for row in db.exec(select(model).where(model.id.in_(ids)))}


def _count_by_location(db: Session) -> dict[str, int]:
    rows = db.exec(
        select(Location.code, func.count(Sample.id))
        .join(Sample, Sample.location_id == Location.id)
        .group_by(Location.code)
    ).all()
    return {code: n for code, n in rows}


@bp.get("/storage/<code>")
@page()
def location_page(code: str):  # noqa: ANN201
    """Show a location; a box is drawn as its grid with what each position holds."""
    db = get_db()
    who = actor()
    loc = storage.get_location(db, code)
    chain = list(reversed(storage.ancestors(db, loc)))
    children = db.exec(
        select(Location).where(Location.parent_id == loc.id).order_by(Location.id)
    ).all()
    held = db.exec(select(Sample).where(Sample.location_id == loc.id).order_by(Sample.id)).all()
    # Box order (A2 before A10), tubes without a position last.
    held = sorted(
        held,
        key=lambda s: storage.position_index(s.position or "") or (len(storage.ROW_LETTERS), 0),
    )
    grid = None
    if loc.kind == "box":
        by_pos = {s.position: s for s in held if s.position}
        grid = []
        for r in range(loc.rows or 0):
            row = []
            for c in range(loc.cols or 0):
                label = storage.position_label(r, c)
                s = by_pos.get(label)
                row.append(
                    {
                        "pos": label,
                        "sample": s if s is not None and who.can_see(s.org_id) else None,
                        "occupied": s is not None,
                    }
                )
            grid.append(row)
    visible = [s for s in held if who.can_see(s.org_id)]
    return render(
        "location.html",
        loc=loc,
        chain=chain,
        children=children,
        held=visible,
        hidden=len(held) - len(visible),
        grid=grid,
        cols=list(range(1, (loc.cols or 0) + 1)),
        free=sum(1 for row in grid or [] for cell in row if not cell["occupied"]),
    )


# --- audit -----------------------------------------------------------------------------------

_AUDIT_FILTERS = ("sample", "lot", "actor", "action", "station", "location", "since", "until")


def _when(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be a date and time like 2026-11-02T14:30") from None
    return reports.as_utc(value, name)


def _cursor() -> int | None:
    """Read the page cursor: a whole number within the ids' range, else a clear 400."""
    raw = request.args.get("cursor") or "0"
    if not raw.isdigit() or int(raw) > 2**31 - 1:
        raise BadRequest("cursor must be a page number this list gave you")
    return int(raw) or None


@bp.get("/audit")
@page(*AUDIT_READERS)
def audit_search():  # noqa: ANN201
    """Search the audit trail with the API's filters, page by page, with export links."""
    db = get_db()
    raw = {k: (request.args.get(k) or "").strip()[:64] for k in _AUDIT_FILTERS}
    try:
        cursor = _cursor()
        since, until = _when(raw["since"], "since"), _when(raw["until"], "until")
        filters = reports.filters_for(
            db,
            actor(),
            sample=raw["sample"] or None,
            lot=raw["lot"] or None,
            by=raw["actor"] or None,
            action=raw["action"] or None,
            station=raw["station"] or None,
            location=raw["location"] or None,
            since=since,
            until=until,
        )
    except LimsError as err:
        # A mistyped filter: keep the form as typed, with the message, instead of an error page.
        return render(
            "audit.html",
            err.status,
            error=err.message,
            events=[],
            filters=raw,
            searched=False,
            csv_url=None,
            pdf_url=None,
            next_url=None,
            first_url=url_for("web.audit_search"),
            paged=False,
        )
    limit = 50
    events = [
        audit.event_dict(e) for e in audit.query(db, after_seq=cursor, limit=limit, **filters)
    ]
    active = {k: v for k, v in raw.items() if v}
    api_args = dict(active)
    if since:
        api_args["since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    if until:
        api_args["until"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
    next_url = None
    if len(events) == limit:
        next_url = (
            url_for("web.audit_search") + "?" + urlencode({**active, "cursor": events[-1]["seq"]})
        )
    pdf = None
    if raw["sample"]:
        pdf = f"/api/samples/{raw['sample']}/report.pdf"
    elif raw["lot"]:
        pdf = f"/api/lots/{raw['lot']}/report.pdf"
    return render(
        "audit.html",
        events=events,
        filters=raw,
        searched=bool(active) or cursor is not None,
        csv_url="/api/audit/export.csv" + ("?" + urlencode(api_args) if api_args else ""),
        pdf_url=pdf,
        next_url=next_url,
        first_url=url_for("web.audit_search") + ("?" + urlencode(active) if active else ""),
        paged=cursor is not None,
    )


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_pretty(v)}" for k, v in value.items() if v not in (None, ""))
    if isinstance(value, list):
        return "; ".join(_pretty(v) for v in value)
    return str(value)


@bp.app_template_filter("changes")
def _changes(ev: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Return (field, before, after) for every field an event changed."""
    before, after = ev.get("before") or {}, ev.get("after") or {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        return [("", _pretty(before), _pretty(after))]
    out = []
    for key in list(dict.fromkeys([*before, *after])):
        b, a = before.get(key), after.get(key)
        if b == a or key == "version":
            continue
        if isinstance(b, list) and isinstance(a, list):
            # A list (a lot's QC results): show what left it and what joined it.
            b, a = [x for x in b if x not in a], [x for x in a if x not in b]
        out.append((key, _pretty(b), _pretty(a)))
    return out


@bp.app_template_filter("tojson_pretty")
def _tojson_pretty(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)


# --- labels ----------------------------------------------------------------------------------


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
    return render(
        "label.html", s=s, template=template, lines=lines, templates=printing.template_names()
    )


@bp.get("/labels/preview/<barcode>.png")
@page()
def label_preview_png(barcode: str) -> Response:
    """Return a PNG of the label as it will print (same layout as the printer's bytes)."""
    png = printing.label_preview_png(
        get_db(), barcode=barcode, actor=actor(), template=request.args.get("template")
    )
    return Response(png, mimetype="image/png", headers={"Cache-Control": "no-store"})


def _printers(db: Session) -> list[dict[str, Any]]:
    rows = db.exec(select(Printer).where(Printer.active).order_by(Printer.name)).all()
    benches = _by_id(db, Station, {p.station_id for p in rows})
    return [
        {"name": p.name, "station": benches[p.station_id].name if p.station_id else None}
        for p in rows
    ]


@bp.post("/labels/print")
@page(*LAB)
def print_labels():  # noqa: ANN201
    """Queue labels for the ticked samples on a printer (one job), then show the queue."""
    barcodes = [b.strip() for b in request.form.getlist("barcodes") if b.strip()]
    back = request.form.get("back") or url_for("web.samples")
    if not barcodes:
        flash("Tick the samples whose labels you want to print.", "error")
        return redirect(safe_next(back))
    try:
        data = printing.PrintRequest(
            barcodes=barcodes,
            printer=request.form.get("printer", ""),
            template=request.form.get("template") or None,
            copies=int(request.form.get("copies") or 1),
        )
    except (ValidationError, ValueError):
        flash("Choose a printer, a label stock and 1 to 10 copies.", "error")
        return redirect(safe_next(back))
    job, err = perform(lambda: printing.queue_labels(get_db(), data=data, actor=actor()))
    if err is not None:
        flash(f"Nothing was queued: {err.message}", "error")
        return redirect(safe_next(back))
    flash(f"Job #{job.id} queued: {job.labels_total} label(s) on {data.printer}.", "ok")
    return redirect(url_for("web.print_queue") + f"#job-{job.id}")


# --- print queue -----------------------------------------------------------------------------


@bp.get("/print-queue")
@page(*LAB)
def print_queue():  # noqa: ANN201
    """Show print jobs per printer with their state, and what the operator can do with each."""
    db = get_db()
    who = actor()
    printers = db.exec(select(Printer).order_by(Printer.name)).all()
    jobs_of = {
        p.id: db.exec(
            select(PrintJob)
            .where(PrintJob.printer_id == p.id)
            .order_by(PrintJob.id.desc())
            .limit(30)
        ).all()
        for p in printers
    }
    # The labels, their samples' organisations and the job authors in one query each, not
    # one query per job and per label.
    job_ids = [j.id for js in jobs_of.values() for j in js]
    labels_of = printing.labels_by_job(db, job_ids)
    # (only needed for users who do not see every organisation)
    label_orgs = printing.label_orgs_by_job(db, job_ids) if not who.sees_all else {}
    authors = _by_id(db, User, {j.created_by_id for js in jobs_of.values() for j in js})
    per_printer = []
    for p in printers:
        rows = []
        for j in jobs_of[p.id]:
            job_labels = labels_of[j.id]
            author = authors.get(j.created_by_id)
            if not who.sees_all and not printing.job_visible_to(
                who,
                creator_org=author.org_id if author is not None else None,
                label_orgs=label_orgs[j.id],
            ):
                continue
            rows.append(
                {
                    "job": j,
                    "labels": job_labels,
                    "by": author,
                    # The same rules as lims.printing: reprint what printed (or may have),
                    # resume what never printed, void what has not been sent.
                    "reprintable": j.state in ("sent", "failed")
                    and j.labels_printed + j.labels_unconfirmed > 0,
                    "resumable": j.state == "failed"
                    and j.labels_total > j.labels_printed + j.labels_unconfirmed,
                    "voidable": j.state == "queued",
                }
            )
        station = db.get(Station, p.station_id) if p.station_id else None
        per_printer.append({"printer": p, "station": station, "jobs": rows})
    return render("print_queue.html", printers=per_printer)


def _job_action(job_id: int, verb: str, fn, needs_reason: bool) -> Response:  # noqa: ANN001
    reason = (request.form.get("reason") or "").strip()[:2000]
    if needs_reason and not reason:
        flash(f"To {verb} a job, give a reason.", "error")
        return redirect(url_for("web.print_queue"))
    try:
        check_text(reason)  # as the API's models do: the reason goes into the audit trail
    except ValueError as exc:
        flash(f"The reason {exc}.", "error")
        return redirect(url_for("web.print_queue"))
    job, err = perform(lambda: fn(get_db(), job_id=job_id, reason=reason or None, actor=actor()))
    if err is not None:
        flash(f"Job {job_id}: {err.message}", "error")
    elif verb == "void":
        flash(f"Job {job_id} voided; it will not print.", "ok")
    else:
        flash(f"{verb.capitalize()} of job {job_id} queued as job {job.id}.", "ok")
    return redirect(url_for("web.print_queue"))


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
