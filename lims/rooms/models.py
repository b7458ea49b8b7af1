"""Tables of the cleanroom rental area (rooms themselves are Location rows of kind room)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from lims.models import utcnow


class RoomState(SQLModel, table=True):
    """The rental status of a room. A room without a row is not rented out (no rules apply)."""

    __tablename__ = "room_state"
    room_id: int = Field(primary_key=True, foreign_key="location.id")
    status: str = Field(default="available", max_length=16)
    # The booking the room is booked for or in use by (None when available or being cleaned).
    booking_id: int | None = Field(default=None, foreign_key="room_booking.id")
    hold_reason: str | None = Field(default=None, sa_column=Column(Text))
    version: int = 1
    updated_at: datetime = Field(default_factory=utcnow)


class Booking(SQLModel, table=True):
    """A client organisation's time slot in a room, followed by the changeover it needs."""

    __tablename__ = "room_booking"
    __table_args__ = (Index("ix_room_booking_room_starts", "room_id", "starts_at"),)
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, max_length=32)  # BK-26-0001
    room_id: int = Field(foreign_key="location.id")
    org_id: int = Field(foreign_key="organisation.id", index=True)
    starts_at: datetime
    ends_at: datetime
    changeover_minutes: int = 0
    state: str = Field(default="requested", max_length=16)
    purpose: str | None = Field(default=None, max_length=200)
    requested_by_id: int = Field(foreign_key="app_user.id")
    requested_at: datetime = Field(default_factory=utcnow)
    decided_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    decided_at: datetime | None = None
    version: int = 1


class ChecklistItem(SQLModel, table=True):
    """One line of a room's line-clearance checklist (retired lines stay for old records)."""

    __tablename__ = "room_checklist_item"
    id: int | None = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="location.id", index=True)
    position: int
    text: str = Field(max_length=300)
    active: bool = True


class LineClearance(SQLModel, table=True):
    """A room's line clearance: the checklist as confirmed and signed by the first person.

    Written once; the second person's countersignature is a row of its own
    (ClearanceCountersign), so both are insert-only records.
    """

    __tablename__ = "line_clearance"
    id: int | None = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="location.id", index=True)
    checklist: str = Field(sa_column=Column(Text, nullable=False))  # JSON: the lines confirmed
    note: str | None = Field(default=None, sa_column=Column(Text))
    first_by_id: int = Field(foreign_key="app_user.id")
    first_signature_id: int = Field(foreign_key="signature.id")
    started_at: datetime = Field(default_factory=utcnow)


class ClearanceCountersign(SQLModel, table=True):
    """The second, different person's signature that completes a line clearance."""

    __tablename__ = "line_clearance_countersign"
    id: int | None = Field(default=None, primary_key=True)
    clearance_id: int = Field(foreign_key="line_clearance.id", unique=True)
    by_id: int = Field(foreign_key="app_user.id")
    signature_id: int = Field(foreign_key="signature.id")
    signed_at: datetime = Field(default_factory=utcnow)


class SamplingPoint(SQLModel, table=True):
    """A place in a room where environmental monitoring samples are taken."""

    __tablename__ = "em_point"
    id: int | None = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="location.id", index=True)
    code: str = Field(unique=True, max_length=64)  # EM-C1-01
    name: str = Field(max_length=200)
    kind: str = Field(max_length=16)  # particles | air | settle | contact | glove
    active: bool = True


class EmResult(SQLModel, table=True):
    """One monitoring result, judged against the Annex 1 limit of the room's grade and state."""

    __tablename__ = "em_result"
    __table_args__ = (Index("ix_em_result_point_taken", "point_id", "taken_at"),)
    id: int | None = Field(default=None, primary_key=True)
    point_id: int = Field(foreign_key="em_point.id")
    room_id: int = Field(foreign_key="location.id", index=True)
    taken_at: datetime
    occupancy: str = Field(max_length=16)  # at_rest | in_operation
    measure: str = Field(max_length=16)  # particles_0_5 | particles_5_0 | cfu
    value: float
    grade: str = Field(max_length=8)  # the room's grade when judged
    alert_limit: float | None = None
    action_limit: float | None = None
    level: str = Field(max_length=8)  # ok | alert | action
    deviation_id: int | None = Field(default=None, foreign_key="deviation.id")
    recorded_by_id: int = Field(foreign_key="app_user.id")
    recorded_at: datetime = Field(default_factory=utcnow)
