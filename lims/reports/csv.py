"""Audit events as CSV, streamed in batches (constant memory, any size)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import IO, Any

from sqlmodel import Session

from lims import audit
from lims.audit import checkpoint
from lims.models import AuditEvent

# The chain's fields in its order, less the internal ids (organisation, lot, location) that mean
# nothing outside this database, then the hash.
CSV_COLUMNS = (
    *(f for f in audit.HASHED_FIELDS if f not in ("org_id", "lot_id", "location_id")),
    "hash",
)
# Beside the raw columns, what a reader needs without a JSON viewer or a user list.
HUMAN_COLUMNS = ("actor_name", "record", "change")
EXPORT_COLUMNS = (*CSV_COLUMNS, *HUMAN_COLUMNS)
_AT = {name: i for i, name in enumerate(CSV_COLUMNS)}


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP's CSV injection
# rule: = + - @ TAB CR). Such a cell is written with a leading apostrophe, which spreadsheets
# show as text; a cell that itself starts with an apostrophe gets one more, so that taking
# one leading apostrophe off any cell that has one gives back exactly what the trail holds.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def neutral(value: str) -> str:
    """Return a text cell as a spreadsheet will show it, never run it (see FORMULA_STARTS)."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def checkpoint_for_export(db: Session) -> str:
    """Write the signed checkpoint an export is made against; return the line that names it."""
    cp, problem = checkpoint.on_report(db)
    if cp is None:
        return f"no checkpoint: {problem}"
    return f"seq={cp.seq}; hash={cp.hash[:16]}; written={cp.at}; key={cp.key[:16]}"


def csv_text(rows: Any) -> str:
    """Format rows as csv.writer does by default (minimal quoting, CRLF), faster; text cells
    that a spreadsheet would run as a formula are neutralised (neutral).

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
                if v.startswith(FORMULA_STARTS):
                    v = "'" + v
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
    db: Session, filters: audit.Filters, *, batch: int = 5000
) -> Iterator[tuple[str, int]]:
    """Yield (CSV text, events in it): the header first, then a batch of rows per chunk.

    Each row holds the raw columns (CSV_COLUMNS, as the chain holds them) and then the human
    ones (HUMAN_COLUMNS): the actor's full name, the record in words, the change in a line.
    """
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(EXPORT_COLUMNS)
    yield buf.getvalue(), 0
    columns = [getattr(AuditEvent, c) for c in CSV_COLUMNS[1:]]
    ts_sql = audit.ts_text_column(db.connection().dialect.name)
    if ts_sql is not None:
        columns[0] = ts_sql  # the database formats the time: no datetime per row
    names = audit.full_names(db)
    actor_at, type_at, id_at = _AT["actor"], _AT["entity_type"], _AT["entity_id"]
    before_at, after_at = _AT["before"], _AT["after"]
    record_text, change_text = audit.record_text, audit.change_text
    for rows in audit.iter_rows(db, columns=tuple(columns), batch=batch, **filters):
        if ts_sql is None:
            rows = [(r[0], audit.ts_text(r[1]), *r[2:]) for r in rows]
        rows = [
            (
                *r,
                names.get(r[actor_at], ""),
                record_text(r[type_at], r[id_at]),
                change_text(r[before_at], r[after_at]),
            )
            for r in rows
        ]
        yield csv_text(rows), len(rows)


def csv_chunks(db: Session, filters: audit.Filters, *, batch: int = 5000) -> Iterator[str]:
    """Yield CSV text of matching events, a batch of rows per chunk (constant memory)."""
    for text, _n in csv_batches(db, filters, batch=batch):
        yield text


def export_csv(
    db: Session,
    fh: IO[str],
    filters: audit.Filters,
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
