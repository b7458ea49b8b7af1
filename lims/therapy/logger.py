"""A shipment's data logger record: the CSV of readings, the product's limits and gaps.

Readings outside the shipment's limits mark it with an excursion; a span with no reading longer
than the allowed gap leaves the temperature unknown. Either opens one deviation per import,
linked to the shipment. Readings are insert-only.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert
from sqlmodel import Session, select

from lims.accounts.users import Actor, system_actor
from lims.errors import Forbidden, Refused
from lims.quality import deviations
from lims.roles import LAB, SITE
from lims.therapy.models import LoggerReading
from lims.therapy.shipments import READABLE, _record, _save, _ts, get_shipment, snapshot

MAX_LINES = 200_000
MAX_GAP = timedelta(minutes=60)  # the default of LOGGER_MAX_GAP_MINUTES


def _parse_time(text: str) -> datetime:
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    ts = datetime.fromisoformat(value)
    if ts.tzinfo is None:
        # Loggers set up for shipping record UTC; a time without an offset is taken as UTC.
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def parse_readings(text: str) -> list[tuple[datetime, float]]:
    """Parse a logger's CSV (time, temperature in degrees C): a header line and a BOM are
    tolerated; any bad line refuses the whole file, naming the lines (422)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise Refused(
            f"the file has {len(lines)} lines; at most {MAX_LINES} are read at once",
            code="bad_csv",
        )
    out: list[tuple[datetime, float]] = []
    problems: list[dict[str, Any]] = []
    first_data = True
    for n, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        parts = [p.strip().strip('"') for p in line.split(",")]
        if first_data and len(parts) >= 2 and not any(ch.isdigit() for ch in parts[1]):
            first_data = False  # a header: "time,temperature_c"
            continue
        first_data = False
        if len(parts) != 2:
            problems.append({"line": n, "problem": f"{len(parts)} fields; a reading is time,°C"})
            continue
        try:
            ts = _parse_time(parts[0])
        except ValueError:
            problems.append({"line": n, "problem": f"{parts[0][:40]!r} is not an ISO 8601 time"})
            continue
        try:
            temp = float(parts[1])
        except ValueError:
            temp = math.nan
        if not math.isfinite(temp) or not -273.15 <= temp <= 200:
            problems.append({"line": n, "problem": f"{parts[1][:40]!r} is not a temperature"})
            continue
        out.append((ts, temp))
    if problems:
        shown = "; ".join(f"line {p['line']}: {p['problem']}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise Refused(
            f"the logger file was not imported: {shown}{more}",
            code="bad_csv",
            problems=problems[:100],
        )
    if not out:
        raise Refused("the logger file has no readings", code="bad_csv", problems=[])
    return out


def max_gap(config: Any) -> timedelta:
    """Return the longest logger gap the settings allow (LOGGER_MAX_GAP_MINUTES)."""
    return timedelta(minutes=float(config.get("LOGGER_MAX_GAP_MINUTES", 60)))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def record_gaps(
    times: list[datetime], new: list[datetime], max_gap: timedelta
) -> list[tuple[datetime, datetime]]:
    """Return the spans longer than max_gap with no reading that a new reading bounds. Pure.

    times are all the shipment's readings (this import's included); a gap between two earlier
    readings was reported by the import that showed it.
    """
    fresh = {_utc(t) for t in new}
    ordered = sorted({_utc(t) for t in times})
    return [
        (a, b)
        for a, b in zip(ordered, ordered[1:], strict=False)
        if b - a > max_gap and (a in fresh or b in fresh)
    ]


def _span(gap: tuple[datetime, datetime]) -> str:
    a, b = gap
    minutes = int((b - a).total_seconds() // 60)
    return f"{_ts(a)} to {_ts(b)} ({minutes // 60} h {minutes % 60:02d} min)"


def import_readings(
    session: Session,
    *,
    number: str,
    text: str,
    actor: Actor,
    max_gap: timedelta = MAX_GAP,
) -> dict[str, Any]:
    """Import a logger's readings; any outside the product's limits mark the shipment with an
    excursion, and those or a gap in the record longer than max_gap open one deviation for
    this import, linked to the shipment."""
    if actor.role not in LAB + SITE or (actor.role in LAB and not actor.sees_all):
        raise Forbidden(
            "logger readings are imported by the centre's staff or the site", code="role_required"
        )
    s = get_shipment(session, number, actor)
    if s.state not in READABLE:
        raise Refused(
            f"shipment {s.number} is {s.state.replace('_', ' ')}: readings come once dispatched",
            code="illegal_transition",
            state=s.state,
        )
    rows = parse_readings(text)
    import_no = (
        session.exec(
            select(func.max(LoggerReading.import_no)).where(LoggerReading.shipment_id == s.id)
        ).one()
        or 0
    ) + 1
    session.connection().execute(
        insert(LoggerReading),
        [{"shipment_id": s.id, "ts": ts, "temp_c": t, "import_no": import_no} for ts, t in rows],
    )
    lo, hi = s.min_temp_c, s.max_temp_c
    outside = [(ts, t) for ts, t in rows if t < lo or t > hi]
    every = session.exec(select(LoggerReading.ts).where(LoggerReading.shipment_id == s.id)).all()
    gaps = record_gaps(list(every), [ts for ts, _t in rows], max_gap)
    # What the temperature was in a gap is not known: QA judges it as it judges an excursion.
    gap_text = (
        f" The record has {len(gaps)} gap{'s' if len(gaps) > 1 else ''} longer than "
        f"{int(max_gap.total_seconds() // 60)} min without a reading: "
        + "; ".join(_span(g) for g in gaps[:5])
        + (f" (and {len(gaps) - 5} more)" if len(gaps) > 5 else "")
        + "."
        if gaps
        else ""
    )
    temps = [t for _ts, t in rows]
    changes: dict[str, Any] = {
        "readings": s.readings + len(rows),
        "min_seen_c": min([*temps, *([s.min_seen_c] if s.min_seen_c is not None else [])]),
        "max_seen_c": max([*temps, *([s.max_seen_c] if s.max_seen_c is not None else [])]),
    }
    dev_number = None
    if outside:
        first = min(ts for ts, _t in outside)
        last = max(ts for ts, _t in outside)
        changes["excursion"] = True
        changes["excursion_first"] = min(first, s.excursion_first or first)
        changes["excursion_last"] = max(last, s.excursion_last or last)
        raiser = actor if actor.sees_all and actor.role in LAB else system_actor(session)
        coldest = min(t for _ts, t in outside)
        warmest = max(t for _ts, t in outside)
        dev = deviations.raise_deviation(
            session,
            actor=raiser,
            title=f"Temperature excursion in shipment {s.number}",
            severity="major",
            description=(
                f"Logger {s.logger_id}: {len(outside)} of {len(rows)} readings outside "
                f"{lo:g} to {hi:g} C, from {_ts(first)} to {_ts(last)} "
                f"(coldest {coldest:g} C, warmest {warmest:g} C).{gap_text} "
                f"Imported by {actor.username}."
            ),
            links=[("shipment", s.number)],
            source="cold chain",
        )
        dev_number = dev.number
    elif gaps:
        raiser = actor if actor.sees_all and actor.role in LAB else system_actor(session)
        dev = deviations.raise_deviation(
            session,
            actor=raiser,
            title=f"Gap in the temperature record of shipment {s.number}",
            severity="major",
            description=(
                f"Logger {s.logger_id}: all {len(rows)} readings within {lo:g} to {hi:g} C."
                f"{gap_text} Imported by {actor.username}."
            ),
            links=[("shipment", s.number)],
            source="cold chain",
        )
        dev_number = dev.number
    before = snapshot(session, s)
    _save(session, s, changes)
    summary = {
        "import": import_no,
        "readings": len(rows),
        "outside_limits": len(outside),
        "gaps": [{"from": _ts(a), "to": _ts(b)} for a, b in gaps[:100]],
        "min_seen_c": changes["min_seen_c"],
        "max_seen_c": changes["max_seen_c"],
        "deviation": dev_number,
    }
    _record(
        session, actor, "shipment.import_readings", s, before, {**snapshot(session, s), **summary}
    )
    return summary
