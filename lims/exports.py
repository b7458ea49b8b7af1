"""Audit exports: filters for a sample's lineage or a lot, streamed CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

from sqlmodel import Session

from lims import audit, lots, samples, storage
from lims.accounts.users import Actor, system_actor
from lims.errors import BadRequest
from lims.models import AuditEvent, Sample

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


def lineage(db: Session, s: Sample) -> list[Sample]:
    """Return a sample, its ancestors and its descendants."""
    chain = [s, *samples.descendants(db, s)]
    cur = s
    while cur.parent_id is not None:
        cur = db.get(Sample, cur.parent_id)
        chain.append(cur)
    return chain


def as_utc(t: datetime | None, name: str) -> datetime | None:
    """Read a time without an offset as UTC (the trail's clock); refuse unrepresentable ones."""
    if t is None:
        return None
    try:
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    except (OverflowError, ValueError) as err:
        raise BadRequest(f"{name} is out of range: {err}", code="bad_time") from err


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
    since, until = as_utc(since, "since"), as_utc(until, "until")
    if since and until and until <= since:
        raise BadRequest("until must be after since")
    if entity_type:
        f["entity_type"] = entity_type
    if entity:
        f["entity_ids"] = [entity]
    if sample:
        # The lineage's custody events and the print jobs that labelled any of its tubes.
        chain = lineage(db, samples.get_sample(db, sample, actor))
        f["entities"] = [
            ("sample", sorted({x.barcode for x in chain})),
            ("print_job", samples.label_jobs(db, [x.id for x in chain])),
        ]
    if lot:
        f["lot_id"] = lots.get_lot(db, lot, actor).id
    if location:
        loc = storage.find_location(db, location)
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


def csv_text(rows: Any) -> str:
    """Format rows exactly as csv.writer does by default (minimal quoting, CRLF), faster.

    The csv module scans every character of every field in C but per field object; the audit
    before/after JSON always needs quoting, and str.replace does that in one pass.
    """
    out = []
    for r in rows:
        fields = []
        for v in r:
            if v is None:
                fields.append("")
            elif type(v) is str:
                if '"' in v or "," in v or "\n" in v or "\r" in v:
                    fields.append('"' + v.replace('"', '""') + '"')
                else:
                    fields.append(v)
            else:
                fields.append(str(v))
        out.append(",".join(fields))
    out.append("")
    return "\r\n".join(out)


def csv_batches(
    db: Session, filters: dict[str, Any], *, batch: int = 5000
) -> Iterator[tuple[str, int]]:
    """Yield (CSV text, events in it): the header first, then a batch of rows per chunk."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    yield buf.getvalue(), 0
    columns = [getattr(AuditEvent, c) for c in CSV_COLUMNS[1:]]
    ts_sql = audit.ts_text_column(db.connection().dialect.name)
    if ts_sql is not None:
        columns[0] = ts_sql  # the database formats the time: no datetime per row
    for rows in audit.iter_rows(db, columns=tuple(columns), batch=batch, **filters):
        if ts_sql is None:
            rows = [(r[0], audit.ts_text(r[1]), *r[2:]) for r in rows]
        yield csv_text(rows), len(rows)


def csv_chunks(db: Session, filters: dict[str, Any], *, batch: int = 5000) -> Iterator[str]:
    """Yield CSV text of matching events, a batch of rows per chunk (constant memory)."""
    for text, _n in csv_batches(db, filters, batch=batch):
        yield text


def export_csv(
    db: Session,
    fh: IO[str],
    filters: dict[str, Any],
    *,
    progress: Callable[[int], Any] | None = None,
) -> int:
    """Write the events matching filters (filters_for) as CSV to fh; return how many.

    progress(n) is told each batch's number of events (a click progress bar's update).
    """
    total = 0
    for text, n in csv_batches(db, filters):
        fh.write(text)
        total += n
        if progress and n:
            progress(n)
    return total


def export_pdf(
    db: Session,
    fh: IO[bytes],
    *,
    sample: str | None = None,
    lot: str | None = None,
    actor: Actor | None = None,
) -> int:
    """Write the chain-of-custody PDF of one sample or one lot to fh; return its size in bytes."""
    from lims import reports

    if (sample is None) == (lot is None):
        raise BadRequest(
            "a chain-of-custody report covers exactly one sample or one lot: "
            "give --sample BARCODE or --lot LOT (one of them)",
            code="report_subject",
        )
    actor = actor or system_actor(db)
    pdf = reports.sample_report(db, sample, actor) if sample else reports.lot_report(db, lot, actor)
    fh.write(pdf)
    return len(pdf)
