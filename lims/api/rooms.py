"""Cleanroom rental: rooms and their status, bookings, line clearance, environmental monitoring."""

from __future__ import annotations

from datetime import datetime

from apiflask import APIBlueprint
from apiflask.schemas import FileSchema
from flask import Response
from pydantic import Field

from lims.api import schemas
from lims.api.query import QueryModel
from lims.api.schemas import READ, WRITE, Out, answers
from lims.boundary import current_actor, get_db, write
from lims.rooms import bookings, clearance, em, status, usage
from lims.rooms.bookings import BookingIn, BookingTransitionIn
from lims.rooms.clearance import ChecklistIn, ClearanceIn, CountersignIn
from lims.rooms.em import EmResultIn, PointIn
from lims.rooms.status import RoomTransitionIn

bp = APIBlueprint("rooms", __name__, url_prefix="/api", tag="Rooms")


class BookingQuery(QueryModel):
    room: str | None = Field(default=None, max_length=64)
    organisation: str | None = Field(default=None, max_length=64)
    state: str | None = Field(default=None, max_length=16)
    start: datetime | None = Field(default=None, description="bookings ending after this time")
    end: datetime | None = Field(default=None, description="bookings starting before this time")


class RoomOut(Out):
    code: str
    name: str
    grade: str | None
    status: str = Field(description="available, booked, in_use, dirty, cleaning, cleared, on_hold")
    booking: str | None = Field(description="the booking the room is booked for or in use by")
    hold_reason: str | None
    version: int
    rented: bool = Field(description="the room has bookings: its rules apply at its benches")
    allowed_actions: list[str]
    open_deviations: list[str]


class RoomsOut(Out):
    rooms: list[RoomOut]


class BookingOut(Out):
    number: str = Field(description="e.g. BK-26-0001")
    room: str
    organisation: str
    starts_at: str
    ends_at: str
    changeover_minutes: int
    free_from: str = Field(description="the end plus the changeover")
    state: str = Field(description="requested, approved, rejected, cancelled")
    purpose: str | None
    requested_by: str | None
    decided_by: str | None
    version: int
    allowed_actions: list[str]


class BookingsOut(Out):
    bookings: list[BookingOut]


schemas.MODELS.extend([RoomOut, RoomsOut, BookingOut, BookingsOut])


@bp.get("/rooms")
@answers(bp, RoomsOut, *READ)
def list_rooms():
    """List the rooms with their grade and rental status."""
    current_actor()
    db = get_db()
    return {"rooms": [status.room_dict(db, r) for r in status.list_rooms(db)]}


@bp.get("/rooms/<code>")
@answers(bp, RoomOut, *READ, 404, 422)
def get_room(code: str):
    """Return one room's grade and rental status."""
    current_actor()
    db = get_db()
    return status.room_dict(db, status.get_room(db, code))


@bp.post("/rooms/<code>/transitions")
@answers(bp, RoomOut, *WRITE, 404)
@bp.input(RoomTransitionIn, arg_name="data")
@write
def room_transition(code: str, data: RoomTransitionIn):
    """Move a room: book, start, finish, clean, release, hold, lift_hold (QA)."""
    db = get_db()
    status.transition(db, code=code, data=data, actor=current_actor())
    return status.room_dict(db, status.get_room(db, code))


@bp.get("/bookings")
@answers(bp, BookingsOut, *READ, 404, 422)
@bp.input(BookingQuery, location="query", arg_name="q")
def list_bookings(q: BookingQuery):
    """List the bookings you may see (clients: their own), by start time."""
    db = get_db()
    room = status.get_room(db, q.room) if q.room else None
    rows = bookings.list_bookings(
        db,
        current_actor(),
        room=room,
        organisation=q.organisation,
        start=q.start,
        end=q.end,
        state=q.state or None,
    )
    return {"bookings": [bookings.booking_dict(db, b) for b in rows]}


@bp.post("/bookings")
@answers(bp, BookingOut, *WRITE, 404, status=201)
@bp.input(BookingIn, arg_name="data")
@write
def request_booking(data: BookingIn):
    """Request a slot in a room; 409 slot_taken when it meets another booking's held time."""
    db = get_db()
    b = bookings.request_booking(db, data=data, actor=current_actor())
    return bookings.booking_dict(db, b), 201


class UsageQuery(QueryModel):
    month: str = Field(min_length=7, max_length=7, pattern=r"^[0-9]{4}-[0-9]{2}$")
    organisation: str | None = Field(default=None, max_length=64)


@bp.get("/bookings/usage.csv")
@answers(bp, None, *READ, 404)
@bp.input(UsageQuery, location="query", arg_name="q")
@bp.output(
    FileSchema(type="string", format="binary"),
    content_type="text/csv",
    description="one line per approved booking of the month, then totals per organisation",
)
def usage_report(q: UsageQuery):
    """The month's usage per client: hours booked and used per booking, EM excursions."""
    text = usage.usage_csv(get_db(), current_actor(), month=q.month, organisation=q.organisation)
    return Response(
        text,
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="room-usage-{q.month}.csv"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/bookings/usage.pdf")
@answers(bp, None, *READ, 404)
@bp.input(UsageQuery, location="query", arg_name="q")
@bp.output(
    FileSchema(type="string", format="binary"),
    content_type="application/pdf",
    description="the usage report as a PDF table",
)
def usage_report_pdf(q: UsageQuery):
    """The month's usage per client as PDF (the same lines as usage.csv)."""
    data = usage.usage_pdf(get_db(), current_actor(), month=q.month, organisation=q.organisation)
    return Response(
        data,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="room-usage-{q.month}.pdf"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/bookings/<number>")
@answers(bp, BookingOut, *READ, 404)
def get_booking(number: str):
    """Return one booking (another organisation's is 404)."""
    db = get_db()
    return bookings.booking_dict(db, bookings.get_booking(db, number, current_actor()))


@bp.post("/bookings/<number>/transitions")
@answers(bp, BookingOut, *WRITE, 404)
@bp.input(BookingTransitionIn, arg_name="data")
@write
def booking_transition(number: str, data: BookingTransitionIn):
    """Approve or reject (the centre's admin or QA), or cancel, with a reason."""
    db = get_db()
    b = bookings.transition(db, number=number, data=data, actor=current_actor())
    return bookings.booking_dict(db, b)


class ClearanceOut(Out):
    id: int
    room: str
    state: str = Field(description="signed_once (waiting for the second person) or complete")
    checklist: list[str]
    note: str | None
    first_by: str
    second_by: str | None
    first_signature: schemas.SignatureOut
    second_signature: schemas.SignatureOut | None
    started_at: str
    completed_at: str | None


class ClearanceStateOut(Out):
    room: str
    checklist: list[str]
    open: ClearanceOut | None = Field(description="signed once, waiting for the second signature")
    latest: ClearanceOut | None = Field(description="the newest complete clearance")


schemas.MODELS.extend([ClearanceOut, ClearanceStateOut])


def _clearance_state(code: str) -> dict:
    db = get_db()
    room = status.get_room(db, code)
    c_open, c_last = clearance.open_clearance(db, room), clearance.latest_clearance(db, room)
    return {
        "room": room.code,
        "checklist": clearance.checklist(db, room),
        "open": clearance.clearance_dict(db, c_open) if c_open else None,
        "latest": clearance.clearance_dict(db, c_last) if c_last else None,
    }


@bp.get("/rooms/<code>/clearance")
@answers(bp, ClearanceStateOut, *READ, 404, 422)
def get_clearance(code: str):
    """Return the room's checklist, the clearance waiting for a second signature, the latest."""
    current_actor()
    return _clearance_state(code)


@bp.put("/rooms/<code>/checklist")
@answers(bp, ClearanceStateOut, *WRITE, 404)
@bp.input(ChecklistIn, arg_name="data")
@write
def put_checklist(code: str, data: ChecklistIn):
    """Write the room's line-clearance checklist (the centre's admin or QA)."""
    clearance.set_checklist(get_db(), code=code, data=data, actor=current_actor())
    return _clearance_state(code)


@bp.post("/rooms/<code>/clearances")
@answers(bp, ClearanceOut, *WRITE, 404, 429, status=201)
@bp.input(ClearanceIn, arg_name="data")
@write
def start_clearance(code: str, data: ClearanceIn):
    """Confirm every checklist line and sign (meaning responsibility): first of two people."""
    db = get_db()
    c = clearance.start(db, code=code, data=data, actor=current_actor())
    return clearance.clearance_dict(db, c), 201


@bp.post("/rooms/<code>/clearances/<int:clearance_id>/countersign")
@answers(bp, ClearanceOut, *WRITE, 404, 429)
@bp.input(CountersignIn, arg_name="data")
@write
def countersign(code: str, clearance_id: int, data: CountersignIn):
    """A second person signs (meaning review); the room is then cleared."""
    db = get_db()
    c = clearance.countersign(
        db, code=code, clearance_id=clearance_id, data=data, actor=current_actor()
    )
    return clearance.clearance_dict(db, c)


class EmLimitOut(Out):
    alert: float | None
    action: float | None


class EmPointOut(Out):
    code: str
    name: str
    room: str
    grade: str | None
    kind: str = Field(description="particles, air, settle, contact or glove")
    measures: list[str]
    limits: dict[str, EmLimitOut] = Field(description="by measure/occupancy: Annex 1 limits")
    interval_days: int | None = Field(description="the sampling plan's interval for the grade")
    last_taken_at: str | None
    next_due: str | None
    overdue: bool


class EmPointsOut(Out):
    points: list[EmPointOut]


class EmResultOut(Out):
    id: int
    point: str
    room: str
    taken_at: str
    occupancy: str
    measure: str
    unit: str
    value: float
    grade: str
    alert_limit: float | None
    action_limit: float | None
    level: str = Field(description="ok, alert or action")
    deviation: str | None = Field(description="the deviation an action result opened")
    recorded_by: str | None
    recorded_at: str


class EmResultsOut(Out):
    point: EmPointOut
    results: list[EmResultOut]


class TrendQuery(QueryModel):
    measure: str | None = Field(default=None, max_length=16)
    since: datetime | None = None
    until: datetime | None = None


schemas.MODELS.extend([EmLimitOut, EmPointOut, EmPointsOut, EmResultOut, EmResultsOut])


@bp.get("/rooms/<code>/em-points")
@answers(bp, EmPointsOut, *READ, 404, 422)
def list_points(code: str):
    """List a room's environmental monitoring points with their Annex 1 limits."""
    current_actor()
    db = get_db()
    room = status.get_room(db, code)
    return {"points": [em.point_dict(db, p) for p in em.points(db, room)]}


@bp.post("/em-points")
@answers(bp, EmPointOut, *WRITE, 404, status=201)
@bp.input(PointIn, arg_name="data")
@write
def add_point(data: PointIn):
    """Add a sampling point to a room (the centre's admin or QA)."""
    db = get_db()
    return em.point_dict(db, em.add_point(db, data=data, actor=current_actor())), 201


@bp.get("/em-points/<code>/results")
@answers(bp, EmResultsOut, *READ, 404)
@bp.input(TrendQuery, location="query", arg_name="q")
def point_results(code: str, q: TrendQuery):
    """A point's results of one measure over time (default: the last 90 days), oldest first."""
    current_actor()
    db = get_db()
    p = em.get_point(db, code)
    rows = em.trend(db, p, measure=q.measure or None, since=q.since, until=q.until)
    return {"point": em.point_dict(db, p), "results": em.result_dicts(db, rows, p)}


@bp.post("/em-results")
@answers(bp, EmResultOut, *WRITE, 404, status=201)
@bp.input(EmResultIn, arg_name="data")
@write
def record_result(data: EmResultIn):
    """Record a result; above the action limit the room goes on hold and a deviation opens."""
    db = get_db()
    return em.result_dict(db, em.record_result(db, data=data, actor=current_actor())), 201
