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


@bp.get("/audit", endpoint="search")
@page(*AUDIT_READERS)
def audit_search():  # noqa: ANN201
    """Search the audit trail with the API's filters, page by page, with export links."""
    db = get_db()
    raw = {k: (request.args.get(k) or "").strip()[:64] for k in _AUDIT_FILTERS}
    try:
        cursor = page_cursor()
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
            first_url=url_for("web.audit.search"),
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
            url_for("web.audit.search") + "?" + urlencode({**active, "cursor": events[-1]["seq"]})
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
        first_url=url_for("web.audit.search") + ("?" + urlencode(active) if active else ""),
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
