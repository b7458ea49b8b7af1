"""Audit trail: filtered queries with a cursor, streamed CSV export, chain verification."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from apiflask import APIBlueprint
from apiflask.schemas import FileSchema
from flask import Response, stream_with_context
from pydantic import ConfigDict, Field

from lims import audit, reports
from lims.accounts.users import Actor
from lims.api import schemas
from lims.api.query import QueryModel
from lims.api.schemas import READ, answers
from lims.boundary import get_db, require, unit
from lims.roles import AUDIT_READERS as READERS

bp = APIBlueprint("audit", __name__, url_prefix="/api/audit", tag="Audit")


class AuditQuery(QueryModel):
    model_config = ConfigDict(extra="forbid")
    entity_type: str | None = Field(default=None, max_length=32)
    entity: str | None = Field(default=None, max_length=64, description="id, e.g. a barcode")
    sample: str | None = Field(
        default=None, max_length=64, description="a sample barcode: its events and its lineage's"
    )
    lot: str | None = Field(default=None, max_length=64, description="lot number: lot and vials")
    actor: str | None = Field(default=None, max_length=64, description="a username, exactly")
    actor_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="part of a person's name or username, any case: everyone it matches",
    )
    action: str | None = Field(default=None, max_length=64)
    station: str | None = Field(default=None, max_length=64)
    location: str | None = Field(default=None, max_length=64)
    since: datetime | None = None
    until: datetime | None = None
    cursor: int | None = Field(default=None, ge=0, le=2**31 - 1)  # INTEGER ids
    order: Literal["oldest", "newest"] = Field(
        default="oldest", description="oldest first (default) or newest first"
    )
    limit: int = Field(default=100, ge=1, le=1000)


def _filters(q: AuditQuery, actor: Actor) -> dict:
    return reports.filters_for(
        get_db(),
        actor,
        sample=q.sample,
        lot=q.lot,
        entity_type=q.entity_type,
        entity=q.entity,
        by=q.actor,
        by_name=q.actor_name,
        action=q.action,
        station=q.station,
        location=q.location,
        since=q.since,
        until=q.until,
    )


@bp.get("")
@answers(bp, schemas.EventsOut, *READ, 403, 404)
@bp.input(AuditQuery, location="query", arg_name="q")
def list_events(q: AuditQuery):
    """Query the audit trail, oldest first; pass next_cursor back as cursor for the next page.

    order=newest: newest first, and the next page holds the events older than the cursor.
    """
    actor = require(*READERS)
    if q.order == "newest":
        events = audit.query(
            get_db(), before_seq=q.cursor, newest_first=True, limit=q.limit, **_filters(q, actor)
        )
    else:
        events = audit.query(get_db(), after_seq=q.cursor, limit=q.limit, **_filters(q, actor))
    return {
        "events": [audit.event_dict(e) for e in events],
        "next_cursor": events[-1].seq if len(events) == q.limit else None,
    }


@bp.get("/export.csv")
@answers(bp, None, *READ, 403, 404)
@bp.output(
    FileSchema(type="string", format="binary"),
    content_type="text/csv",
    description="the matching events as CSV",
)
@bp.input(AuditQuery, location="query", arg_name="q")
def export_csv(q: AuditQuery):
    """Stream matching events as CSV (constant memory, any size)."""
    actor = require(*READERS)
    filters = _filters(q, actor)
    db = get_db()
    made_against = reports.checkpoint_for_export(db)
    return Response(
        stream_with_context(unit.streamed(lambda: reports.csv_chunks(db, filters))),
        mimetype="text/csv",
        headers={
            "Content-Disposition": "attachment; filename=audit.csv",
            "X-Audit-Checkpoint": made_against,
        },
    )


@bp.get("/verify")
@answers(bp, schemas.VerifyOut, *READ, 403)
def verify():
    """Recompute the hash chain and check it against the newest signed checkpoint.

    A broken chain, a tail cut below the checkpoint's seq or a chain rewritten under it, or a
    checkpoint that does not verify, answer ok false with the seq named.
    """
    reports.check_may_verify(require("qa", "admin", "technician"))
    return audit.verify(get_db()).to_dict()
