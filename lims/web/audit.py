"""The QA audit search page, page by page, with export links; how events are shown."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import request, url_for

from lims import audit, reports
from lims.boundary.unit import get_db
from lims.errors import BadRequest, LimsError
from lims.roles import AUDIT_READERS
from lims.web.common import actor, area, page, render
from lims.web.common import cursor as page_cursor
from lims.web.lists import before_cursor

bp = area("audit", __name__)

_AUDIT_FILTERS = ("sample", "lot", "actor", "action", "station", "location", "since", "until")


def _when(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be a date and time like 2026-11-02T14:30") from None
    return reports.as_utc(value, name)


PAGE_SIZE = 50
COUNT_CAP = 10_000  # a page counts no further: a trail of millions is not read for a number


def _action_label(action: str) -> str:
    area, _, what = action.partition(".")
    return f"{area}: {what.replace('_', ' ')}" if what else action


@bp.get("/audit", endpoint="search")
@page(*AUDIT_READERS)
def audit_search():  # noqa: ANN201
    """Search the audit trail (newest first), page by page, with export links."""
    db = get_db()
    who = actor()
    raw = {k: (request.args.get(k) or "").strip()[:64] for k in _AUDIT_FILTERS}
    oldest_first = request.args.get("order") == "oldest"
    # Besides time: who, action, record or where, "-" first for Z to A.
    sort_raw = (request.args.get("sort") or "").strip()[:16]
    sort_desc = sort_raw.startswith("-")
    sort = sort_raw.lstrip("-") or None
    if sort is not None and sort not in audit.AUDIT_SORTS:
        sort = None
    actions = [(a, _action_label(a)) for a in audit.actions_in_trail(db)]
    base = {"filters": raw, "actions": actions, "oldest_first": oldest_first}
    try:
        cursor, before = page_cursor(), before_cursor()
        since, until = _when(raw["since"], "since"), _when(raw["until"], "until")
        filters = reports.filters_for(
            db,
            who,
            sample=raw["sample"] or None,
            lot=raw["lot"] or None,
            by_name=raw["actor"] or None,
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
            searched=False,
            csv_url=None,
            pdf_url=None,
            next_url=None,
            prev_url=None,
            total=None,
            people=[],
            order_url=None,
            sort_urls=None,
            sorted_by=None,
            **base,
        )
    people = reports.people_named(db, who, raw["actor"]) if raw["actor"] else []
    total = audit.count_events(db, cap=COUNT_CAP, **dict(filters))
    # Walking back (before=) reads the other way round, then turns the page over.
    backwards = before is not None
    newest = oldest_first == backwards
    edge = before if backwards else cursor
    if sort is not None:
        rows = audit.query_sorted(
            db,
            sort=sort,
            down=sort_desc != backwards,
            edge_seq=edge,
            limit=PAGE_SIZE + 1,
            **dict(filters),
        )
    else:
        rows = audit.query(
            db,
            after_seq=edge if not newest else None,
            before_seq=edge if newest else None,
            newest_first=newest,
            limit=PAGE_SIZE + 1,
            **dict(filters),
        )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if backwards:
        rows.reverse()
    events = [audit.event_dict(e) for e in rows]
    names = audit.full_names(db)
    for ev in events:
        ev["actor_name"] = names.get(ev["actor"], "")
    has_next = True if backwards else more
    has_prev = more if backwards else cursor is not None
    active = {k: v for k, v in raw.items() if v}
    if oldest_first:
        active["order"] = "oldest"
    if sort is not None:
        active["sort"] = f"-{sort}" if sort_desc else sort
    api_args = {k: v for k, v in active.items() if k not in ("actor", "order")}
    if raw["actor"]:
        api_args["actor_name"] = raw["actor"]
    if since:
        api_args["since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    if until:
        api_args["until"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
    here = url_for("web.audit.search")
    next_url = prev_url = None
    if events and has_next:
        next_url = here + "?" + urlencode({**active, "cursor": events[-1]["seq"]})
    if events and has_prev:
        prev_url = here + "?" + urlencode({**active, "before": events[0]["seq"]})
    flipped = {k: v for k, v in active.items() if k not in ("order", "sort")}
    if not oldest_first and sort is None:
        flipped["order"] = "oldest"
    # A header link: sort by that column (A to Z), or turn the order round when it is the sort.
    plain = {k: v for k, v in active.items() if k not in ("order", "sort")}
    sort_urls = {
        key: here
        + "?"
        + urlencode({**plain, "sort": f"-{key}" if sort == key and not sort_desc else key})
        for key in audit.AUDIT_SORTS
    }
    pdf = None
    if raw["sample"]:
        pdf = f"/api/samples/{raw['sample']}/report.pdf"
    elif raw["lot"]:
        pdf = f"/api/lots/{raw['lot']}/report.pdf"
    return render(
        "audit.html",
        events=events,
        searched=bool(active) or cursor is not None or before is not None,
        csv_url="/api/audit/export.csv" + ("?" + urlencode(api_args) if api_args else ""),
        pdf_url=pdf,
        next_url=next_url,
        prev_url=prev_url,
        total=total,
        count_cap=COUNT_CAP,
        people=people,
        order_url=here + ("?" + urlencode(flipped) if flipped else ""),
        sort_urls=sort_urls,
        sorted_by=(sort, "descending" if sort_desc else "ascending") if sort else None,
        **base,
    )


@bp.app_template_filter("changes")
def _changes(ev: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Return (field, before, after) for every field an event changed."""
    return audit.changes(ev.get("before"), ev.get("after"))


@bp.app_template_filter("tojson_pretty")
def _tojson_pretty(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
