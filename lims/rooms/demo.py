"""The demo centre's rented suite: RM-C2 in use by helix-bio under an approved booking (its
bench BENCH-C2 is in the fixture file), novacell's request for the next slot, a checklist, and
two weeks of monitoring results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from lims.accounts import users
from lims.models import User
from lims.rooms import bookings, clearance, em, status

POINTS = (
    ("RM-B1", "EM-B1-P1", "Particle counter at the filling station", "particles"),
    ("RM-B1", "EM-B1-A1", "Active air sampler at the isolator", "air"),
    ("RM-B1", "EM-B1-S1", "Settle plate by the pass-through", "settle"),
    ("RM-C2", "EM-C2-P1", "Particle counter at the bench", "particles"),
    ("RM-C2", "EM-C2-C1", "Contact plate on the bench top", "contact"),
)
# A plausible day's value per point and measure (most days well below the alert level).
_TYPICAL = {"particles_0_5": 1800, "particles_5_0": 40, "cfu": 1}


def load(db: Session) -> None:
    """Add the rented-suite demo (run inside the demo loader's transaction)."""
    system = users.system_actor(db)
    admin, qa = users.actor_for(db, _user(db, "admin")), users.actor_for(db, _user(db, "qa1"))
    tech = users.actor_for(db, _user(db, "tech1"))
    clearance.set_checklist(
        db,
        code="RM-C2",
        data=clearance.ChecklistIn(
            items=[
                "Previous client's product, samples and materials removed",
                "Previous client's labels, forms and batch records removed",
                "Waste and sharps bins emptied",
                "Bench, biosafety cabinet and pass-through cleaned and disinfected",
                "Incubator and centrifuge labelled clean for the next client",
            ]
        ),
        actor=system,
    )
    for room, code, name, kind in POINTS:
        em.add_point(db, data=em.PointIn(room=room, code=code, name=name, kind=kind), actor=system)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    running = bookings.request_booking(
        db,
        data=bookings.BookingIn(
            room="RM-C2",
            starts_at=now - timedelta(hours=2),
            ends_at=now + timedelta(days=14),
            changeover_minutes=480,
            organisation="helix-bio",
            purpose="AAV9 process development run",
        ),
        actor=admin,
    )
    bookings.transition(
        db, number=running.number, data=bookings.BookingTransitionIn(action="approve"), actor=qa
    )
    status.move(db, room=status.get_room(db, "RM-C2"), action="book", actor=tech, booking=running)
    status.move(db, room=status.get_room(db, "RM-C2"), action="start", actor=tech)
    bookings.request_booking(
        db,
        data=bookings.BookingIn(
            room="RM-C2",
            starts_at=now + timedelta(days=15),
            ends_at=now + timedelta(days=18),
            changeover_minutes=480,
            organisation="novacell",
            purpose="LV CAR-T engineering run",
        ),
        actor=admin,
    )
    for day in range(14, 0, -1):
        for _room, code, _name, kind in POINTS:
            for measure in em.KINDS[kind]:
                value = _TYPICAL[measure] * (1 + ((day * 7 + len(code)) % 5) / 4)
                if measure == "cfu" and day == 3 and code == "EM-B1-A1":
                    value = 7  # one alert-level result, to see on the trend
                em.record_result(
                    db,
                    data=em.EmResultIn(
                        point=code,
                        taken_at=now - timedelta(days=day, hours=-9),
                        occupancy="in_operation",
                        measure=measure,
                        value=value,
                    ),
                    actor=tech,
                )


def _user(db: Session, username: str) -> User:
    return db.exec(select(User).where(User.username == username)).one()
