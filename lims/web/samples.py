"""Sample pages: the list, one sample (custody, lineage, labels) and its custody moves."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from lims import custody, printing, scanning, storage
from lims import labels as labels_mod
from lims import samples as samples_mod
from lims.boundary.unit import get_db
from lims.quality import release, results
from lims.roles import AUDIT_READERS, LAB, QA
from lims.signatures import SignatureIn
from lims.web.common import actor, area, first_error, page, perform, render
from lims.web.common import cursor as page_cursor
from lims.web.lists import Column, ListView, before_cursor, chosen_columns

bp = area("samples", __name__)


SAMPLE_COLUMNS = (
    Column("barcode", "Barcode", "barcode"),
    Column("coi", "COI", "coi"),
    Column("type", "Type", "type"),
    Column("project", "Project", "project"),
    Column("state", "State", "state"),
    Column("lot", "Lot", "lot"),
    Column("where", "Where", "location"),
    Column("holder", "Holder", "holder"),
    Column("volume", "Volume", None, shown=False),
    Column("created", "Created", "created"),
    Column("updated", "Updated", "updated", shown=False),
)
PAGE_SIZE = 50


@bp.get("/samples", endpoint="list")
@page()
def samples_list():  # noqa: ANN201
    """List samples (filter by state, project, lot, location), newest first, page by page."""
    db = get_db()
    args = {
        k: (request.args.get(k) or "").strip()[:64] or None
        for k in ("state", "project", "lot", "location")
    }
    sort = (request.args.get("sort") or "").strip()[:16] or samples_mod.SAMPLE_SORT_DEFAULT
    result = samples_mod.sample_page(
        db, actor(), sort=sort, after=page_cursor(), before=before_cursor(), limit=PAGE_SIZE, **args
    )
    shown = chosen_columns(SAMPLE_COLUMNS)
    view = ListView(
        url_for("web.samples.list"),
        filters=args,
        sort=result.sort,
        default_sort=samples_mod.SAMPLE_SORT_DEFAULT,
        columns=SAMPLE_COLUMNS,
        shown=shown,
    )
    # Say when a filter names nothing, so that "no samples match" is not taken for an answer.
    unknown = []
    state = (args["state"] or "").lower()
    if state and state not in custody.STATES:
        unknown.append(f"no state {args['state']!r} (states: {', '.join(custody.STATES)})")
    if args["location"] and storage.find_location(db, args["location"]) is None:
        unknown.append(f"no location {args['location']!r}")
    return render(
        "samples.html",
        error="; ".join(unknown) or None,
        printers=printing.active_printers(db) if actor().role in LAB else [],
        templates=printing.template_names(),
        rows=samples_mod.list_rows(db, result.rows),
        result=result,
        view=view,
        columns=SAMPLE_COLUMNS,
        shown=shown,
        filters={**args, "state": state or None},
        states=custody.STATES,
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
    loc = storage.location_by_id(db, s.location_id)
    box = loc if loc is not None and loc.kind == "box" else None
    events = samples_mod.history(db, s)
    lineage = samples_mod.genealogy(db, s)
    # Draw the line of single parents down to this sample, its descendants below it; a pool
    # (several parents) is listed with its parents above the tree.
    tree = lineage["tree"]
    by_barcode = {a["barcode"]: a for a in lineage["ancestors"]}
    up = lineage["parents"]
    while len(up) == 1:
        a = by_barcode[up[0]]
        tree = {**a, "children": [tree]}
        up = a["parents"]
    pools = [
        {"barcode": x["barcode"], "parents": x["parents"]}
        for x in [{"barcode": s.barcode, "parents": lineage["parents"]}, *lineage["ancestors"]]
        if len(x["parents"]) > 1
    ]
    actions = [
        {
            "action": a,
            "description": custody.TRANSITIONS[a].description,
            "fields": _field_specs(a),
            "danger": a in ("dispose", "reject"),
        }
        for a in custody.allowed_actions(s.state)
        if who.role in custody.TRANSITIONS[a].roles and custody.TRANSITIONS[a].direct
    ]
    labels = printing.sample_labels(db, s, who)
    # A cell product (its sample type has a release specification): QC, reviews, signed release.
    quality = release.sample_qc_dict(db, s, who) if release.needs_quality_release(db, s) else None
    return {
        "quality": quality,
        "can_review": quality is not None
        and who.role in QA
        and s.state in ("received", "quarantine"),
        "s": s,
        "info": info,
        "location": loc,
        "location_path": storage.path_text(db, loc) if loc else None,
        "box": box,
        "events": events,
        "track": _state_track(events, s.state),
        "lineage": lineage,
        "lineage_tree": tree,
        "pools": pools,
        "actions": actions,
        "labels": labels,
        "printers": printing.active_printers(db) if who.role in LAB else [],
        "templates": printing.template_names(),
        "default_template": labels_mod.default_template(s.container),
        "type_name": samples_mod.sample_type(db, s).name,
        "custodian": samples_mod.custodian(db, s),
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


@bp.get("/samples/<barcode>", endpoint="show")
@page()
def sample_page(barcode: str):  # noqa: ANN201
    """Show a sample: identity, COI, state, place, custody timeline, lineage, labels, actions."""
    return render("sample.html", **_sample_context(barcode))


@bp.post("/samples/<barcode>/transition", endpoint="transition")
@page(*LAB)
def sample_transition(barcode: str):  # noqa: ANN201
    """Apply one custody move from the sample page's forms."""
    form = request.form
    fields = {
        name: (form.get(name) or "").strip() or None
        for name in custody.FIELDS
        if form.get(name) is not None
    }
    password = form.get("password") or ""
    try:
        version = int(form.get("version") or 0) or None
        sig = None
        if password:
            meaning = (form.get("meaning") or "")[:32] or "\0"
            sig = SignatureIn(password=password[:500], meaning=meaning)
        data = samples_mod.TransitionIn(
            action=(form.get("action") or "")[:32], version=version, signature=sig, **fields
        )
    except ValueError as exc:
        flash(f"The form could not be read: {first_error(exc)}", "error")
        return redirect(url_for("web.samples.show", barcode=barcode))
    s, err = perform(
        lambda: samples_mod.transition(get_db(), barcode=barcode, data=data, actor=actor())
    )
    if err is not None:
        if err.code == "unknown_sample":
            raise err  # the page itself is gone; a mistyped place or person is shown inline
        ctx = _sample_context(barcode)
        return render("sample.html", err.status, error=err.message, failed=data.action, **ctx)
    flash(f"{s.barcode}: {data.action.replace('_', ' ')} done; now {s.state}.", "ok")
    return redirect(url_for("web.samples.show", barcode=s.barcode))


@bp.post("/samples/<barcode>/qc/<int:result_id>/review", endpoint="review")
@page(*QA)
def sample_qc_review(barcode: str, result_id: int):  # noqa: ANN201
    """Sign a cell product's QC result as reviewed (not by its recorder)."""
    form = request.form
    password = form.get("password") or ""
    if not password:
        ctx = _sample_context(barcode)
        return render("sample.html", 422, error="Enter your password to sign.", **ctx)
    data = results.ReviewIn(
        signature=SignatureIn(
            password=password[:500], meaning=(form.get("meaning") or "")[:32] or "\0"
        )
    )

    def review() -> None:
        db = get_db()
        s = samples_mod.get_sample(db, barcode, actor())
        results.review_of(db, result_id=result_id, sample=s, data=data, actor=actor())

    _, err = perform(review)
    if err is not None:
        if err.code == "unknown_sample":
            raise err
        return render("sample.html", err.status, error=err.message, **_sample_context(barcode))
    flash(f"QC result {result_id} reviewed.", "ok")
    return redirect(url_for("web.samples.show", barcode=barcode))
