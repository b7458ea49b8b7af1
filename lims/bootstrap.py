"""The rows every database needs: the centre's organisation and the system user."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import select

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
            audit.record(
                db,
                actor="system",
                action="organisation.create",
                entity_type="organisation",
                entity_id="centre",
                after={"name": "centre", "kind": "centre"},
                org_id=centre.id,
            )
        # The system user acts for the CLI and scheduled jobs; it has no password.
        db.add(User(username="system", full_name="System", org_id=centre.id, role="admin"))
        db.flush()
        audit.record(
            db,
            actor="system",
            action="user.create",
            entity_type="user",
            entity_id="system",
            after={"username": "system", "role": "admin"},
            org_id=centre.id,
        )
        db.commit()
