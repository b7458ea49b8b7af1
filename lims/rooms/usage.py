"""The monthly usage report per client: hours booked and used per booking, EM excursions."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from typing import Any
from xml.sax.saxutils import escape

from sqlmodel import Session, select

from lims import audit
from lims.accounts.users import Actor
from lims.errors import BadRequest
from lims.models import Location, utcnow
from lims.rooms import bookings, status
from lims.rooms.models import Booking, EmResult

COLUMNS = (
    "organisation",
    "room",
    "booking",
    "state",
    "starts_at",
    "ends_at",
    "hours_booked",
    "hours_used",
    "em_excursions",
)
# A cell a spreadsheet would run as a formula is shown as text (a leading apostrophe).
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "'")


def month_range(month: str) -> tuple[datetime, datetime]:
    """Return [first instant, first instant of the next month) of a month like 2026-12."""
    try:
        first = date.fromisoformat(f"{month.strip()}-01")
    except ValueError:
        raise BadRequest("month is written like 2026-12", code="bad_month") from None
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return (
        datetime(first.year, first.month, 1, tzinfo=UTC),
        datetime(nxt.year, nxt.month, 1, tzinfo=UTC),
    )


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _hours(a: datetime, b: datetime, lo: datetime, hi: datetime) -> float:
    start, end = max(_aware(a), lo), min(_aware(b), hi)
    return max((end - start).total_seconds(), 0) / 3600


def _used_spans(session: Session, room: Location, lo: datetime, hi: datetime) -> dict:
    """Return booking number -> [(started, finished)] from the room's start/finish events."""
    spans: dict[str, list[list[datetime | None]]] = {}
    events = audit.query(
        session, entity_type="room", entity_ids=[room.code], until=hi, limit=100_000
    )
    for e in events:
        if e.action == "room.start":
            after = json.loads(e.after) if isinstance(e.after, str) else e.after
            spans.setdefault(after.get("booking") or "", []).append([_aware(e.ts), None])
        elif e.action in ("room.finish", "room.hold"):
            before = json.loads(e.before) if isinstance(e.before, str) else e.before
            open_ = spans.get((before or {}).get("booking") or "", [])
            if open_ and open_[-1][1] is None:
                open_[-1][1] = _aware(e.ts)
    return spans


def usage_rows(
    session: Session, actor: Actor, *, month: str, organisation: str | None = None
) -> list[dict[str, Any]]:
    """Return the month's approved bookings the actor may see, with hours booked and used."""
    lo, hi = month_range(month)
    org = bookings.organisation(session, organisation, actor) if organisation else None
    if org is None and not actor.sees_all:
        org = actor.org
    stmt = (
        select(Booking)
        .where(
            Booking.state == "approved",
            Booking.starts_at < hi,
            Booking.ends_at > lo,
            Booking.starts_at > lo - bookings.REACH,
        )
        .order_by(Booking.starts_at, Booking.id)
    )
    if org is not None:
        stmt = stmt.where(Booking.org_id == org.id)
    rows, spans_by_room = [], {}
    now = utcnow()
    for b in session.exec(stmt).all():
        room = session.get(Location, b.room_id)
        if room.id not in spans_by_room:
            spans_by_room[room.id] = _used_spans(session, room, lo, hi)
        used = sum(
            _hours(s, f or min(now, hi), lo, hi)
            for s, f in spans_by_room[room.id].get(b.number, [])
        )
        window_lo, window_hi = max(_aware(b.starts_at), lo), min(_aware(b.ends_at), hi)
        excursions = len(
            session.exec(
                select(EmResult.id).where(
                    EmResult.room_id == room.id,
                    EmResult.level == "action",
                    EmResult.taken_at >= window_lo,
                    EmResult.taken_at < window_hi,
                )
            ).all()
        )
        rows.append(
            {
                "organisation": status.org_name(session, b.org_id),
                "room": room.code,
                "booking": b.number,
                "state": b.state,
                "starts_at": bookings.booking_dict(session, b)["starts_at"],
                "ends_at": bookings.booking_dict(session, b)["ends_at"],
                "hours_booked": round(_hours(b.starts_at, b.ends_at, lo, hi), 2),
                "hours_used": round(used, 2),
                "em_excursions": excursions,
            }
        )
    return rows


def usage_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one line per organisation: its hours booked and used and excursions, by name."""
    totals: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = totals.setdefault(
            r["organisation"],
            {"organisation": r["organisation"], "hours_booked": 0.0, "hours_used": 0.0},
        )
        t["hours_booked"] += r["hours_booked"]
        t["hours_used"] += r["hours_used"]
        t["em_excursions"] = t.get("em_excursions", 0) + r["em_excursions"]
        t["bookings"] = t.get("bookings", 0) + 1
    for t in totals.values():
        t["hours_booked"], t["hours_used"] = round(t["hours_booked"], 2), round(t["hours_used"], 2)
    return [totals[name] for name in sorted(totals)]


def usage_csv(session: Session, actor: Actor, *, month: str, organisation: str | None) -> str:
    """Return the usage report as CSV, with a totals line per organisation."""
    rows = usage_rows(session, actor, month=month, organisation=organisation)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_cell(r[c]) for c in COLUMNS])
    for t in usage_totals(rows):
        w.writerow(
            [
                _cell(t["organisation"]),
                "",
                f"total {month}",
                "",
                "",
                "",
                t["hours_booked"],
                t["hours_used"],
                t["em_excursions"],
            ]
        )
    return out.getvalue()


def _cell(v: Any) -> Any:
    return "'" + v if isinstance(v, str) and v.startswith(_FORMULA) else v


def usage_pdf(session: Session, actor: Actor, *, month: str, organisation: str | None) -> bytes:
    """Return the usage report as a PDF table (the same lines as the CSV)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    rows = list(
        csv.reader(io.StringIO(usage_csv(session, actor, month=month, organisation=organisation)))
    )
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=landscape(A4), title=f"Room usage {month}")
    styles = getSampleStyleSheet()
    # Paragraph reads markup: names are escaped so they print as written.
    who = escape(organisation or ("all clients" if actor.sees_all else actor.org.name))
    table = Table([[c.replace("_", " ") for c in rows[0]], *rows[1:]], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef1f5")),
            ]
        )
    )
    made = utcnow().strftime("%Y-%m-%d %H:%M UTC")
    doc.build(
        [
            Paragraph(f"Cleanroom usage, {month}: {who}", styles["Title"]),
            Paragraph(
                f"Hours booked and used (room started to finished) per approved booking, and "
                f"EM action-level results during it. Made {made} by {escape(actor.username)}.",
                styles["Normal"],
            ),
            Spacer(1, 12),
            table,
        ]
    )
    return buf.getvalue()
