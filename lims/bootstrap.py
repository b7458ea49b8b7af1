"""The rows every database needs: the centre's organisation and the system user."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from lims import audit
from lims.db import new_session
from lims.models import Organisation, User


def ensure_base(engine: Engine) -> None:
    """Create the centre organisation and the system user if they are missing."""
    with new_session(engine) as db:
        if engine.dialect.name == "postgresql":
            # Several workers may start at once; one creates, the others then find the rows.
            db.connection().exec_driver_sql("SELECT pg_advisory_xact_lock(1279872340)")
        if db.exec(select(User.id).where(User.username == "system")).first() is not None:
            return
        centre = db.exec(select(Organisation).where(Organisation.name == "centre")).first()
        if centre is None:
            centre = Organisation(name="centre", display_name="The centre", kind="centre")
            db.add(centre)
            db.flush()
            _created(db, "organisation", "centre", {"name": "centre", "kind": "centre"}, centre.id)
        # The system user acts for the CLI and scheduled jobs; it has no password.
        db.add(User(username="system", full_name="System", org_id=centre.id, role="admin"))
        db.flush()
        _created(db, "user", "system", {"username": "system", "role": "admin"}, centre.id)
        db.commit()


def _created(db: Session, kind: str, name: str, after: dict, org_id: int) -> None:
    """Record that the system created a base row (before any person can act)."""
    audit.record(
        db,
        actor="system",
        action=f"{kind}.create",
        entity_type=kind,
        entity_id=name,
        after=after,
        org_id=org_id,
    )
