"""Room pages: the rooms and their status, a room's week calendar, line clearance, bookings;
a client's week calendar."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import flash, redirect, request, url_for

from lims.boundary.unit import get_db
from lims.errors import BadRequest, NotFound
from lims.roles import LAB
from lims.rooms import bookings, calendar, clearance, em, status, usage
from lims.signatures import SignatureIn
from lims.web.common import actor, area, first_error, page, perform, render

bp = area("rooms", __name__)


def _text(name: str, limit: int) -> str | None:
    return (request.form.get(name) or "").strip()[:limit] or None


def _week() -> date:
    raw = (request.args.get("week") or "").strip()[:10]
    try:
        day = date.fromisoformat(raw) if raw else None
    except ValueError:
        raise BadRequest("week is a day like 2027-03-01", code="bad_filter") from None
    return calendar.week_start(day)


@bp.get("/rooms", endpoint="list")
@page()
def room_list():  # noqa: ANN201
    """List the rooms with grade and rental status."""
    db = get_db()
    rooms = [status.room_dict(db, r) for r in status.list_rooms(db)]
    return render("rooms/list.html", rooms=rooms)


def _context(code: str, **extra: Any) -> dict[str, Any]:
    db = get_db()
    who = actor()
    room = status.get_room(db, code)
    info = status.room_dict(db, room)
    monday = _week()
    c_open = clearance.open_clearance(db, room)
    c_last = clearance.latest_clearance(db, room)
    staff = who.sees_all and who.role in LAB
    return {
        "room": info,
        "week": calendar.week(db, who, monday=monday, room=room),
        "bookings": [
            bookings.booking_dict(db, b)
            for b in bookings.list_bookings(db, who, room=room, start=calendar.now(), limit=50)
        ],
        "actions": [status.TRANSITIONS[a] for a in info["allowed_actions"]] if staff else [],
        "checklist": clearance.checklist(db, room),
        "clearance_open": clearance.clearance_dict(db, c_open) if c_open else None,
        "clearance_last": clearance.clearance_dict(db, c_last) if c_last else None,
        "staff": staff,
        "decider": who.sees_all and who.role in bookings.DECIDERS,
        "can_book": who.role in LAB,
        "history": status.history(db, room, limit=30) if who.sees_all else [],
        "points": [em.point_dict(db, p) for p in em.points(db, room)],
        "username": who.username,
        "form": request.form if request.method == "POST" else {},
        **extra,
    }


@bp.get("/rooms/<code>", endpoint="show")
@page()
def room_page(code: str):  # noqa: ANN201
    """Show a room: status, its week of bookings, line clearance, what may be done next."""
    return render("rooms/room.html", **_context(code))


def _after(code: str, done: str, fn: Any, failed: str) -> Any:
    _, err = perform(fn)
    if err is not None:
        if isinstance(err, NotFound) and err.code in ("unknown_room",):
            raise err
        return render("rooms/room.html", err.status, error=err.message, **_context(code))
    flash(done, "ok")
    return redirect(url_for("web.rooms.show", code=code))


def _refused(code: str, exc: Exception) -> Any:
    msg = f"The form could not be read: {first_error(exc)}"
    return render("rooms/room.html", 400, error=msg, **_context(code))


@bp.post("/rooms/<code>/transition", endpoint="transition")
@page(*LAB)
def room_transition(code: str):  # noqa: ANN201
    """Move the room (book, start, finish, clean, release, hold, lift hold)."""
    try:
        data = status.RoomTransitionIn(
            action=_text("action", 32) or "",
            booking=_text("booking", 32),
            reason=_text("reason", 2000),
        )
    except ValueError as exc:
        return _refused(code, exc)
    return _after(
        code,
        f"{code}: {data.action.replace('_', ' ')} done.",
        lambda: status.transition(get_db(), code=code, data=data, actor=actor()),
        "transition",
    )


def _when(name: str) -> str:
    # The page's fields are UTC wall-clock times (a datetime-local input has no zone).
    value = _text(name, 32) or ""
    return value + "Z" if value and not value.endswith("Z") else value


@bp.post("/rooms/<code>/bookings", endpoint="book")
@page(*LAB)
def room_book(code: str):  # noqa: ANN201
    """Request a booking of the room from the form."""
    try:
        data = bookings.BookingIn(
            room=code,
            starts_at=_when("starts_at"),
            ends_at=_when("ends_at"),
            changeover_minutes=int(request.form.get("changeover_minutes") or 240),
            organisation=_text("organisation", 64),
            purpose=_text("purpose", 200),
        )
    except ValueError as exc:
        return _refused(code, exc)
    return _after(
        code,
        "Booking requested.",
        lambda: bookings.request_booking(get_db(), data=data, actor=actor()),
        "book",
    )


@bp.post("/bookings/<number>/transition", endpoint="booking_transition")
@page(*LAB)
def booking_transition(number: str):  # noqa: ANN201
    """Approve, reject or cancel a booking from its room's page."""
    db = get_db()
    b = bookings.get_booking(db, number, actor())
    code = status.room_code(db, b.room_id)
    try:
        data = bookings.BookingTransitionIn(
            action=_text("action", 32) or "", reason=_text("reason", 2000)
        )
    except ValueError as exc:
        return _refused(code, exc)
    return _after(
        code,
        f"{number}: {data.action} done.",
        lambda: bookings.transition(get_db(), number=number, data=data, actor=actor()),
        "booking",
    )


def _signature(meaning: str) -> SignatureIn:
    return SignatureIn(password=request.form.get("password") or "\0", meaning=meaning)


@bp.post("/rooms/<code>/clearance", endpoint="clearance")
@page(*LAB)
def clearance_start(code: str):  # noqa: ANN201
    """Confirm the checklist and sign the first signature."""
    try:
        data = clearance.ClearanceIn(
            confirmed=request.form.getlist("confirmed"),
            note=_text("note", 2000),
            signature=_signature(clearance.FIRST_MEANING),
        )
    except ValueError as exc:
        return _refused(code, exc)
    return _after(
        code,
        "Line clearance signed; a second person countersigns it.",
        lambda: clearance.start(get_db(), code=code, data=data, actor=actor()),
        "clearance",
    )


@bp.post("/rooms/<code>/clearance/<int:clearance_id>/countersign", endpoint="countersign")
@page(*LAB)
def clearance_countersign(code: str, clearance_id: int):  # noqa: ANN201
    """Give the second signature: the room is cleared."""
    data = clearance.CountersignIn(signature=_signature(clearance.SECOND_MEANING))
    return _after(
        code,
        f"Line clearance countersigned: {code} is cleared.",
        lambda: clearance.countersign(
            get_db(), code=code, clearance_id=clearance_id, data=data, actor=actor()
        ),
        "countersign",
    )


@bp.get("/bookings/calendar", endpoint="calendar")
@page()
def client_calendar():  # noqa: ANN201
    """A client organisation's week: its bookings in every room (clients: their own)."""
    db = get_db()
    who = actor()
    name = (request.args.get("org") or "").strip()[:64] or (None if who.sees_all else who.org.name)
    org = bookings.organisation(db, name, who) if name else None
    week = calendar.week(db, who, monday=_week(), organisation=org)
    return render(
        "rooms/calendar.html",
        week=week,
        org=org.name if org else None,
        organisations=bookings.visible_organisations(db, who),
    )


_W, _H, _PAD = 720, 240, 40


def _chart(results: list[dict[str, Any]], alert: float | None, action: float | None) -> dict:
    """Scale a point's results into an SVG line chart with its alert and action lines."""
    if not results:
        return {"points": [], "width": _W, "height": _H}
    times = [datetime.fromisoformat(r["taken_at"].replace("Z", "+00:00")) for r in results]
    t0, t1 = min(times), max(times)
    span = (t1 - t0).total_seconds() or 1.0
    top = max([r["value"] for r in results] + [x for x in (alert, action) if x]) * 1.1 or 1.0

    def y(v: float) -> float:
        return round(_H - _PAD - (v / top) * (_H - 2 * _PAD), 1)

    pts = [
        {
            "x": round(_PAD + (t - t0).total_seconds() / span * (_W - 2 * _PAD), 1),
            "y": y(r["value"]),
            "level": r["level"],
            "label": f"{r['taken_at']}: {r['value']:g}",
        }
        for t, r in zip(times, results, strict=True)
    ]
    return {
        "points": pts,
        "line": " ".join(f"{p['x']},{p['y']}" for p in pts),
        "alert_y": y(alert) if alert else None,
        "action_y": y(action) if action is not None else None,
        "width": _W,
        "height": _H,
        "top": top,
        "first": results[0]["taken_at"],
        "last": results[-1]["taken_at"],
    }


@bp.get("/em/<code>", endpoint="trend")
@page()
def em_trend(code: str):  # noqa: ANN201
    """A sampling point's trend: results over time against the alert and action levels."""
    db = get_db()
    point = em.get_point(db, code)
    info = em.point_dict(db, point)
    measure = (request.args.get("measure") or "").strip()[:16] or info["measures"][0]
    try:
        days = max(1, min(int(request.args.get("days") or 90), 3660))
    except ValueError:
        raise BadRequest("days is a whole number", code="bad_filter") from None
    until = calendar.now()
    rows = em.trend(db, point, measure=measure, since=until - timedelta(days=days), until=until)
    results = em.result_dicts(db, rows, point)
    occupancy = (request.args.get("occupancy") or "in_operation").strip()[:16]
    if occupancy not in em.OCCUPANCY:
        occupancy = "in_operation"
    lim = info["limits"].get(f"{measure}/{occupancy}", {"alert": None, "action": None})
    return render(
        "rooms/trend.html",
        point=info,
        measure=measure,
        occupancy=occupancy,
        days=days,
        results=results,
        limits=lim,
        chart=_chart(
            [r for r in results if r["occupancy"] == occupancy], lim["alert"], lim["action"]
        ),
    )


@bp.get("/bookings/usage", endpoint="usage")
@page()
def usage_report():  # noqa: ANN201
    """A month's room usage per client: hours booked and used, EM excursions (clients: own)."""
    db = get_db()
    who = actor()
    month = (request.args.get("month") or "").strip()[:7] or calendar.now().strftime("%Y-%m")
    name = (request.args.get("org") or "").strip()[:64] or (None if who.sees_all else who.org.name)
    rows = usage.usage_rows(db, who, month=month, organisation=name)
    return render(
        "rooms/usage.html",
        month=month,
        org=name,
        rows=rows,
        totals=usage.usage_totals(rows),
        organisations=bookings.visible_organisations(db, who),
    )


def _em_context(code: str, **extra: Any) -> dict[str, Any]:
    db = get_db()
    room = status.get_room(db, code)
    raw = (request.args.get("result") or "").strip()[:12]
    saved = em.get_result(db, room, int(raw)) if raw.isdigit() else None
    return {
        "room": status.room_dict(db, room),
        "choices": em.entry_choices(db, room),
        "occupancies": em.OCCUPANCY,
        "may_record": em.may_record(actor()),
        "saved": saved,
        "form": request.form if request.method == "POST" else {},
        "now": calendar.now().strftime("%Y-%m-%dT%H:%M"),
        **extra,
    }


@bp.get("/rooms/<code>/em", endpoint="em_entry")
@page()
def em_entry(code: str):  # noqa: ANN201
    """The form to enter a room's monitoring result; after saving, its judgement."""
    return render("rooms/em_entry.html", **_em_context(code))


@bp.post("/rooms/<code>/em", endpoint="em_record")
@page(*LAB)
def em_record(code: str):  # noqa: ANN201
    """Record a monitoring result from the form and show how it was judged."""
    point, _, measure = (_text("point", 100) or "").partition("/")
    try:
        value = float(_text("value", 40) or "")
    except ValueError:
        msg = "The value is a number, like 12 or 3520"
        return render("rooms/em_entry.html", 400, error=msg, **_em_context(code))
    try:
        data = em.EmResultIn(
            point=point,
            measure=measure or None,
            occupancy=_text("occupancy", 16) or "",
            taken_at=_when("taken_at"),
            value=value,
        )
    except ValueError as exc:
        msg = f"The form could not be read: {first_error(exc)}"
        return render("rooms/em_entry.html", 400, error=msg, **_em_context(code))
    r, err = perform(lambda: em.record_result(get_db(), data=data, actor=actor(), in_room=code))
    if err is not None:
        return render("rooms/em_entry.html", err.status, error=err.message, **_em_context(code))
    flash(f"Result saved for {data.point}.", "ok")
    return redirect(url_for("web.rooms.em_entry", code=code, result=r.id))
