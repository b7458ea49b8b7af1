"""Audit exports: filters for a sample's lineage or a lot, streamed CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from sqlmodel import Session, select

from lims import audit, samples
from lims.errors import BadRequest
from lims.models import Location, Sample, VectorLot
from lims.users import Actor, system_actor

CSV_COLUMNS = (
    "seq",
    "ts",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "before",
    "after",
    "reason",
    "station",
    "device",
    "signature_id",
    "corrects_seq",
    "prev_hash",
    "hash",
)


def lineage_barcodes(db: Session, s: Sample) -> list[str]:
    """Return the barcodes of a sample, its ancestors and its descendants."""
    chain = [s, *samples.descendants(db, s)]
    cur = s
    while cur.parent_id is not None:
        cur = db.get(Sample, cur.parent_id)
        chain.append(cur)
    return sorted({x.barcode for x in chain})


def filters_for(
    db: Session,
    actor: Actor,
    *,
    sample: str | None = None,
    lot: str | None = None,
    entity_type: str | None = None,
    entity: str | None = None,
    by: str | None = None,
    action: str | None = None,
    station: str | None = None,
    location: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Turn user-facing filters into audit.query arguments, limited to what actor may see."""
    f: dict[str, Any] = {}
    if since and until and until <= since:
        raise BadRequest("until must be after since")
    if entity_type:
        f["entity_type"] = entity_type
    if entity:
        f["entity_ids"] = [entity]
    if sample:
        f["entity_type"] = "sample"
        f["entity_ids"] = lineage_barcodes(db, samples.get_sample(db, sample, actor))
    if lot:
        row = db.exec(select(VectorLot).where(VectorLot.lot_number == lot)).first()
        if row is None or not actor.can_see(row.org_id):
            from lims.errors import NotFound

            raise NotFound(f"no lot {lot!r}", code="unknown_lot")
        f["lot_id"] = row.id
    if location:
        loc = db.exec(select(Location).where(Location.code == location)).first()
        f["location_id"] = loc.id if loc else -1
    for name, value in (
        ("actor", by),
        ("action", action),
        ("station", station),
        ("since", since),
        ("until", until),
    ):
        if value is not None:
            f[name] = value
    if not actor.sees_all:
        f["org_id"] = actor.org.id
    return f


def csv_chunks(db: Session, filters: dict[str, Any]) -> Iterator[str]:
    """Yield CSV text of matching events, one row at a time (constant memory)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    for ev in audit.iter_events(db, **filters):
        buf.seek(0)
        buf.truncate()
        w.writerow(
            [
                ev.seq,
                audit.ts_text(ev.ts),
                ev.actor,
                ev.action,
                ev.entity_type,
                ev.entity_id,
                ev.before or "",
                ev.after or "",
                ev.reason or "",
                ev.station or "",
                ev.device or "",
                ev.signature_id or "",
                ev.corrects_seq or "",
                ev.prev_hash,
                ev.hash,
            ]
        )
        yield buf.getvalue()


def export_csv(
    db: Session,
    fh: IO[str],
    *,
    sample: str | None = None,
    lot: str | None = None,
    actor: Actor | None = None,
) -> int:
    """Write matching events as CSV to fh; return how many events were written."""
    actor = actor or system_actor(db)
    rows = -1  # the first chunk is the header
    for chunk in csv_chunks(db, filters_for(db, actor, sample=sample, lot=lot)):
        fh.write(chunk)
        rows += 1
    return rows
