"""What a QA reader asks of the trail (a sample with its lineage, a lot, a place, a time range)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import Session, select

from lims import audit, lots, samples, storage
from lims.accounts.users import Actor
from lims.errors import BadRequest, Forbidden
from lims.models import Organisation, Sample, User


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
    by_name: str | None = None,
    action: str | None = None,
    station: str | None = None,
    location: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> audit.Filters:
    """Turn user-facing filters into audit.query arguments, limited to what actor may see."""
    f: audit.Filters = {}
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
    if by_name:
        f["actors"] = [name for name, _ in people_named(db, actor, by_name)]
    if by:
        # Usernames are one to a person whatever the case: TECH1 is tech1.
        same = db.exec(select(User.username).where(func.lower(User.username) == by.lower())).all()
        by = same[0] if len(same) == 1 else by
    if action:
        action = action.strip().lower()  # actions are written in lower case
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


def people_named(db: Session, actor: Actor, name: str) -> list[tuple[str, str]]:
    """Return (username, full name) of the people whose name or username holds name (any case).

    A client's reader finds its own organisation's people and the centre's, no one else's.
    """
    org_ids = None
    if not actor.sees_all:
        centre = db.exec(select(Organisation.id).where(Organisation.kind == "centre")).all()
        org_ids = [actor.org.id, *centre]
    return audit.actors_named(db, name.strip(), org_ids=org_ids)


def check_may_verify(actor: Actor) -> None:
    """Refuse (403) a client organisation's user the verification of the whole chain.

    The chain is the centre's, one for every organisation: its count, head and first broken seq
    speak of other organisations' events too.
    """
    if not actor.sees_all:
        raise Forbidden(
            "verifying the audit trail checks every organisation's events: the centre's QA "
            "does it; your sample and lot reports state the result",
            code="centre_only",
        )
