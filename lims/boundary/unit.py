"""One unit of work per request: the request's session, its one commit, refusals recorded once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TypeVar

from flask import current_app, g, request
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from lims import audit
from lims.db import new_session, ping, read_only, set_read_only
from lims.errors import LimsError

log = logging.getLogger("lims")
T = TypeVar("T")
# A request with one of these methods reads: its transaction is read-only (lims.db).
READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_reader() -> bool:
    """Tell whether this request only reads (its own transaction cannot write)."""
    return request.method in READING_METHODS


def get_db() -> Session:
    """Return this request's session, opening it on first use."""
    if "db" not in g:
        g.db = new_session(current_app.extensions["lims"]["engine"])
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    """Close the request's session; whatever was not committed is rolled back."""
    db = g.pop("db", None)
    if db is not None:
        db.close()


def abandon() -> None:
    """Roll back what the request has not committed: an error ends it."""
    db = g.get("db")
    if db is not None:
        db.rollback()


def run(change: Callable[[], T]) -> T:
    """Run one change of a request and commit it; a refusal rolls back and is recorded.

    The domain only flushes; this is where an API write, a page's form and a sign-in commit.
    """
    db = get_db()
    try:
        out = change()
        db.commit()
        return out
    except LimsError as err:
        db.rollback()
        record_refusal(err)
        raise
    except IntegrityError:
        db.rollback()
        raise


def keep() -> None:
    """Commit what the request recorded before it is refused (e.g. why a session ended)."""
    get_db().commit()


def write_aside(change: Callable[[Session], T]) -> T:
    """Run a small write of a reading request (GET) in a transaction of its own."""
    # A reading request's own transaction is read-only (lims.db); this one may write.
    token = set_read_only(False)
    try:
        with new_session(current_app.extensions["lims"]["engine"]) as db:
            out = change(db)
            db.commit()
            return out
    finally:
        token.var.reset(token)


def record_now(change: Callable[[Session], T]) -> T:
    """Make a small write whatever the request's method (a session or token's last use).

    A writer's own transaction takes it and commits it with the view; a reader's cannot, so it
    goes in a transaction of its own (write_aside).
    """
    if is_reader():
        return write_aside(change)
    return change(get_db())


def streamed(chunks: Callable[[], Iterator[T]]) -> Iterator[T]:
    """Yield a streamed response's chunks as a reader (the stream outlives the view)."""
    with read_only():
        yield from chunks()


def database_answers() -> None:
    """Ask the request's database for one row: raises when it does not answer."""
    ping(get_db())


def record_refusal(err: LimsError) -> None:
    """Write the audit event a refusal asks for, in a transaction of its own."""
    if not err.audit and err.after_rollback is None:
        return
    db = get_db()
    try:
        actor = g.get("actor")
        if err.audit:
            audit.record(
                db,
                actor=actor.username if actor else "anonymous",
                station=actor.station if actor else None,
                org_id=actor.org.id if actor else None,
                **err.audit,
            )
        if err.after_rollback is not None:
            err.after_rollback(db, current_app.config)
        db.commit()
    except Exception:  # the refusal itself must still reach the user
        log.exception("could not record the audit event of a refusal")
        db.rollback()
