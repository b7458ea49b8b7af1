"""A write transaction of its own, for printing work outside a request's one commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlmodel import Session

from lims.db import new_session, set_read_only


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One write transaction: commit on success, roll back on any error.

    A writer even inside a GET (whose own session reads in a deferred transaction).
    """
    token = set_read_only(False)
    db = new_session(engine)
    try:
        yield db
        db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()
        token.var.reset(token)
