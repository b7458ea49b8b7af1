"""Environmental monitoring: sampling points in rooms, results judged against the EU GMP
Annex 1 (2022) limits of the room's grade and occupancy state, alert and action levels.

An action-level result puts the room on hold and opens a deviation linked to the room, in the
same transaction as the result itself.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field
from sqlmodel import Session, col, select

from lims import audit
from lims.accounts.users import Actor
from lims.errors import BadRequest, Conflict, Forbidden, NotFound, Refused
from lims.inputs import Input, Line
from lims.models import Deviation, Location, User, utcnow
from lims.quality import deviations
from lims.roles import LAB
from lims.rooms import status
from lims.rooms.bookings import Instant
from lims.rooms.models import EmResult, SamplingPoint

OCCUPANCY = ("at_rest", "in_operation")
# What a kind of sampling point measures, and in what unit.
KINDS: dict[str, tuple[str, ...]] = {
    "particles": ("particles_0_5", "particles_5_0"),  # non-viable, per m3
    "air": ("cfu",),  # active air sample, cfu/m3
    "settle": ("cfu",),  # settle plate, cfu/4 hours
    "contact": ("cfu",),  # contact plate (55 mm), cfu/plate
    "glove": ("cfu",),  # glove print (5 fingers), cfu/glove
}
UNITS = {
    ("particles", "particles_0_5"): "particles ≥0.5 µm/m³",
    ("particles", "particles_5_0"): "particles ≥5.0 µm/m³",
    ("air", "cfu"): "cfu/m³",
    ("settle", "cfu"): "cfu/4 h",
    ("contact", "cfu"): "cfu/plate",
    ("glove", "cfu"): "cfu/glove",
}

# Annex 1 (2022) Table 1: maximum total particle concentration per m3, by grade, state and
# size. None: the annex sets no limit (5.0 µm at rest in A and B; grade D in operation).
PARTICLE_LIMITS: dict[tuple[str, str, str], float | None] = {
    ("A", "at_rest", "particles_0_5"): 3_520,
    ("A", "at_rest", "particles_5_0"): None,
    ("A", "in_operation", "particles_0_5"): 3_520,
    ("A", "in_operation", "particles_5_0"): None,
    ("B", "at_rest", "particles_0_5"): 3_520,
    ("B", "at_rest", "particles_5_0"): None,
    ("B", "in_operation", "particles_0_5"): 352_000,
    ("B", "in_operation", "particles_5_0"): 2_930,
    ("C", "at_rest", "particles_0_5"): 352_000,
    ("C", "at_rest", "particles_5_0"): 2_930,
    ("C", "in_operation", "particles_0_5"): 3_520_000,
    ("C", "in_operation", "particles_5_0"): 29_300,
    ("D", "at_rest", "particles_0_5"): 3_520_000,
    ("D", "at_rest", "particles_5_0"): 29_300,
}
# Annex 1 (2022) Table 6: maximum viable contamination by grade and sample kind. Grade A:
# no growth (any colony is an action result). None: no limit set (gloves in C and D).
VIABLE_LIMITS: dict[tuple[str, str], float | None] = {
    ("A", "air"): 0,
    ("A", "settle"): 0,
    ("A", "contact"): 0,
    ("A", "glove"): 0,
    ("B", "air"): 10,
    ("B", "settle"): 5,
    ("B", "contact"): 5,
    ("B", "glove"): 5,
    ("C", "air"): 100,
    ("C", "settle"): 50,
    ("C", "contact"): 25,
    ("D", "air"): 200,
    ("D", "settle"): 100,
    ("D", "contact"): 50,
}
# Alert levels are the centre's own (Annex 1 9.26: set from qualification and trend data).
# Until a room has that history, an alert is raised at half the action limit.
ALERT_FRACTION = 0.5


# The centre's sampling plan: how often each kind of point is sampled in a room of each grade
# (Annex 1 leaves frequencies to the contamination control strategy; this is the starting plan).
# None: that kind is not part of the grade's routine plan.
PLAN_DAYS: dict[str, dict[str, int | None]] = {
    "A": {"particles": 1, "air": 1, "settle": 1, "contact": 1, "glove": 1},
    "B": {"particles": 1, "air": 1, "settle": 1, "contact": 7, "glove": 1},
    "C": {"particles": 7, "air": 7, "settle": 7, "contact": 30, "glove": None},
    "D": {"particles": 30, "air": 30, "settle": 30, "contact": 30, "glove": None},
}


class PointIn(Input):
    room: Line = Field(min_length=1, max_length=64)
    code: Line = Field(min_length=1, max_length=64, pattern=r"^[A-Z0-9][A-Z0-9-]*$")
    name: Line = Field(min_length=1, max_length=200)
    kind: Line = Field(min_length=1, max_length=16, description=", ".join(KINDS))


class EmResultIn(Input):
    point: Line = Field(min_length=1, max_length=64, description="sampling point code")
    taken_at: Instant
    occupancy: Line = Field(min_length=1, max_length=16, description="at_rest or in_operation")
    measure: Line | None = Field(
        default=None, max_length=16, description="particles_0_5, particles_5_0 or cfu"
    )
    value: float = Field(ge=0, le=1e12)


def limits(grade: str | None, kind: str, occupancy: str, measure: str) -> tuple[float | None, ...]:
    """Return (alert, action) limits for a result; (None, None) where Annex 1 sets none."""
    if kind == "particles":
        action = PARTICLE_LIMITS.get((grade or "", occupancy, measure))
    else:
        action = VIABLE_LIMITS.get((grade or "", kind))
    if action is None:
        return None, None
    alert = None if action == 0 else math.floor(action * ALERT_FRACTION)
    return alert, action


def judge(value: float, alert: float | None, action: float | None) -> str:
    """Return ok, alert or action for a value against its limits (above a limit exceeds it)."""
    if action is not None and value > action:
        return "action"
    if alert is not None and value > alert:
        return "alert"
    return "ok"


def may_record(actor: Actor) -> bool:
    """Tell whether the actor records monitoring results (the centre's lab staff)."""
    return actor.sees_all and actor.role in LAB


def _require_staff(actor: Actor, what: str) -> None:
    if not may_record(actor):
        raise Forbidden(f"{what} is for the centre's staff", code="role_required")


def get_point(session: Session, code: str) -> SamplingPoint:
    """Return the sampling point with this code (404 if none)."""
    p = session.exec(
        select(SamplingPoint).where(SamplingPoint.code == code.strip().upper())
    ).first()
    if p is None:
        raise NotFound(f"no sampling point {code!r}", code="unknown_point")
    return p


def points(session: Session, room: Location) -> list[SamplingPoint]:
    """Return a room's active sampling points, by code."""
    return list(
        session.exec(
            select(SamplingPoint)
            .where(SamplingPoint.room_id == room.id, SamplingPoint.active)
            .order_by(SamplingPoint.code)
        ).all()
    )


def schedule(session: Session, p: SamplingPoint, grade: str | None) -> dict[str, Any]:
    """Return the plan's interval for a point, its last sample and when the next one is due."""
    days = PLAN_DAYS.get(grade or "", {}).get(p.kind)
    last = session.exec(
        select(EmResult.taken_at)
        .where(EmResult.point_id == p.id)
        .order_by(EmResult.taken_at.desc())
        .limit(1)
    ).first()
    due = None
    if days is not None:
        due = (last.replace(tzinfo=last.tzinfo or UTC) + timedelta(days=days)) if last else utcnow()
    return {
        "interval_days": days,
        "last_taken_at": _text(last),
        "next_due": _text(due),
        "overdue": due is not None and due <= utcnow(),
    }


def point_dict(session: Session, p: SamplingPoint) -> dict[str, Any]:
    """Return a sampling point's public JSON with what it measures, the room's limits and when
    the plan wants its next sample."""
    room = session.get(Location, p.room_id)
    return {
        **schedule(session, p, room.grade),
        "code": p.code,
        "name": p.name,
        "room": room.code,
        "grade": room.grade,
        "kind": p.kind,
        "measures": list(KINDS[p.kind]),
        "limits": {
            f"{m}/{occ}": dict(
                zip(("alert", "action"), limits(room.grade, p.kind, occ, m), strict=True)
            )
            for m in KINDS[p.kind]
            for occ in OCCUPANCY
        },
    }


def _limit_pair(grade: str | None, kind: str, occupancy: str, measure: str) -> dict:
    alert, action = limits(grade, kind, occupancy, measure)
    return {"alert": alert, "action": action}


def add_point(session: Session, *, data: PointIn, actor: Actor) -> SamplingPoint:
    """Add a sampling point to a room (the centre's admin or QA); one audited event."""
    if not (actor.sees_all and (actor.role in ("admin", "qa") or actor.username == "system")):
        raise Forbidden(
            "sampling points are set up by the centre's admin or QA", code="role_required"
        )
    room = status.get_room(session, data.room)
    if data.kind not in KINDS:
        raise BadRequest(f"kind is one of {', '.join(KINDS)}", code="bad_kind")
    if session.exec(select(SamplingPoint).where(SamplingPoint.code == data.code)).first():
        raise Conflict(f"sampling point {data.code} exists already", code="point_exists")
    p = SamplingPoint(room_id=room.id, code=data.code, name=data.name.strip(), kind=data.kind)
    session.add(p)
    session.flush()
    audit.record_by(
        session,
        actor,
        action="em.point_add",
        entity_type="em_point",
        entity_id=p.code,
        after={"code": p.code, "name": p.name, "room": room.code, "kind": p.kind},
    )
    return p


JUDGEMENT = {"ok": "within limits", "alert": "alert level", "action": "action level"}


def entry_choices(session: Session, room: Location) -> list[dict[str, str]]:
    """Return what a result in the room is entered for: each point and measure, with its unit."""
    return [
        {
            "value": f"{p.code}/{m}",
            "label": f"{p.code} {p.name}: {UNITS[(p.kind, m)]}",
        }
        for p in points(session, room)
        for m in KINDS[p.kind]
    ]


def get_result(session: Session, room: Location, result_id: int) -> dict[str, Any]:
    """Return a result of the room as JSON with its judgement in words (404 if not the room's)."""
    r = session.get(EmResult, result_id)
    if r is None or r.room_id != room.id:
        raise NotFound(f"no monitoring result {result_id} in {room.code}", code="unknown_result")
    out = result_dict(session, r)
    out["judgement"] = JUDGEMENT[r.level]
    return out


def result_dicts(session: Session, rows: list[EmResult], point: SamplingPoint) -> list[dict]:
    """Return the public JSON of a point's results, their people and deviations read at once."""
    user_ids = {r.recorded_by_id for r in rows}
    dev_ids = {r.deviation_id for r in rows if r.deviation_id}
    users: dict[int, str] = {}
    devs: dict[int, str] = {}
    if user_ids:
        stmt = select(User.id, User.username).where(col(User.id).in_(user_ids))
        users = dict(session.exec(stmt).all())
    if dev_ids:
        stmt = select(Deviation.id, Deviation.number).where(col(Deviation.id).in_(dev_ids))
        devs = dict(session.exec(stmt).all())
    room = status.room_code(session, point.room_id)
    return [_result(r, point, room, users, devs) for r in rows]


def result_dict(session: Session, r: EmResult, point: SamplingPoint | None = None) -> dict:
    """Return one result's public JSON."""
    point = point or session.get(SamplingPoint, r.point_id)
    return result_dicts(session, [r], point)[0]


def _result(
    r: EmResult, point: SamplingPoint, room: str, users: dict[int, str], devs: dict[int, str]
) -> dict[str, Any]:
    return {
        "id": r.id,
        "point": point.code,
        "room": room,
        "taken_at": _text(r.taken_at),
        "occupancy": r.occupancy,
        "measure": r.measure,
        "unit": UNITS[(point.kind, r.measure)],
        "value": r.value,
        "grade": r.grade,
        "alert_limit": r.alert_limit,
        "action_limit": r.action_limit,
        "level": r.level,
        "deviation": devs.get(r.deviation_id) if r.deviation_id else None,
        "recorded_by": users.get(r.recorded_by_id),
        "recorded_at": _text(r.recorded_at),
    }


def record_result(
    session: Session, *, data: EmResultIn, actor: Actor, in_room: str | None = None
) -> EmResult:
    """Record a monitoring result; at action level hold the room and open a deviation.

    in_room: the room the result is entered for (a room's page), whose point it must be.
    """
    _require_staff(actor, "recording monitoring results")
    point = get_point(session, data.point)
    room = session.get(Location, point.room_id)
    if in_room is not None and room.code != in_room:
        raise Refused(
            f"sampling point {point.code} is in {room.code}, not {in_room}", code="wrong_room"
        )
    if data.occupancy not in OCCUPANCY:
        raise BadRequest(f"occupancy is one of {', '.join(OCCUPANCY)}", code="bad_occupancy")
    measures = KINDS[point.kind]
    measure = data.measure or (measures[0] if len(measures) == 1 else None)
    if measure not in measures:
        raise BadRequest(
            f"a {point.kind} point measures {' or '.join(measures)}", code="bad_measure"
        )
    if not math.isfinite(data.value):
        raise BadRequest("the value is a number", code="bad_value")
    taken = data.taken_at.astimezone(UTC)
    if taken > utcnow() + timedelta(minutes=5):
        raise Refused("a result is not taken in the future", code="taken_in_future")
    alert, action = limits(room.grade, point.kind, data.occupancy, measure)
    level = judge(data.value, alert, action)
    # An action-level result's deviation is raised first, so the result row is written once
    # with it (results are insert-only for the app's PostgreSQL role).
    what = (
        f"{point.code} ({point.name}) {data.value:g} {UNITS[(point.kind, measure)]} "
        f"{data.occupancy.replace('_', ' ')}, grade {room.grade} action limit {action:g}"
        if level == "action"
        else ""
    )
    dev = _deviation(session, actor, room, point, what, taken) if level == "action" else None
    r = EmResult(
        point_id=point.id,
        room_id=room.id,
        taken_at=taken,
        occupancy=data.occupancy,
        measure=measure,
        value=data.value,
        grade=room.grade or "",
        alert_limit=alert,
        action_limit=action,
        level=level,
        deviation_id=dev.id if dev else None,
        recorded_by_id=actor.user.id,
    )
    session.add(r)
    session.flush()
    audit.record_by(
        session,
        actor,
        action="em.result",
        entity_type="em_point",
        entity_id=point.code,
        after=result_dict(session, r, point),
        location_id=room.id,
    )
    if dev is not None:
        _hold(session, actor, room, f"EM action level: {what} ({dev.number})")
    return r


def _deviation(
    session: Session,
    actor: Actor,
    room: Location,
    point: SamplingPoint,
    what: str,
    taken: datetime,
) -> Deviation:
    return deviations.raise_deviation(
        session,
        actor=actor,
        title=f"EM action level exceeded in {room.code}",
        severity="critical" if room.grade == "A" else "major",
        description=f"Environmental monitoring result above the action limit: {what}; "
        f"sample taken {_text(taken)}.",
        links=[("room", room.code)],
        source=f"em:{point.code}",
    )


def _hold(session: Session, actor: Actor, room: Location, reason: str) -> None:
    state = status.lock_room(session, room)
    if state.status != "on_hold":
        status.move(session, room=room, action="hold", actor=actor, reason=reason, internal=True)
    session.flush()


def trend(
    session: Session,
    point: SamplingPoint,
    *,
    measure: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 2000,
) -> list[EmResult]:
    """Return a point's results of one measure over a time range, oldest first."""
    measure = measure or KINDS[point.kind][0]
    if measure not in KINDS[point.kind]:
        raise BadRequest(
            f"a {point.kind} point measures {' or '.join(KINDS[point.kind])}", code="bad_measure"
        )
    until = until or utcnow()
    since = since or until - timedelta(days=90)
    rows = session.exec(
        select(EmResult)
        .where(
            EmResult.point_id == point.id,
            EmResult.measure == measure,
            EmResult.taken_at >= since,
            EmResult.taken_at < until,
        )
        .order_by(EmResult.taken_at.desc())
        .limit(limit)
    ).all()
    return list(reversed(rows))


def _text(t: datetime | None) -> str | None:
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
