"""Races on print jobs, on SQLite and on PostgreSQL: one resume, one original label."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from flask.testing import FlaskClient
from helpers import bearer, race
from sqlmodel import select
from werkzeug.test import TestResponse

from lims import printing
from lims.accounts import users
from lims.accounts.users import Actor
from lims.db import new_session
from lims.errors import Conflict
from lims.models import PrintJob, User

THREADS = 8


def _engine(app):  # noqa: ANN001, ANN202
    return app.extensions["lims"]["engine"]


def _actor(db, username: str) -> Actor:  # noqa: ANN001
    return users.actor_for(db, db.exec(select(User).where(User.username == username)).one())


def _failed_job(app, barcodes: list[str]) -> int:  # noqa: ANN001
    """Queue barcodes on ZEBRA-B1 and fail the job at once: paper out before any label."""
    with new_session(_engine(app)) as db:
        tech = _actor(db, "tech1")
        job = printing.queue_labels(
            db, data=printing.PrintRequest(barcodes=barcodes, printer="ZEBRA-B1"), actor=tech
        )
        db.commit()
        job_id = job.id
    with new_session(_engine(app)) as db:
        tech = _actor(db, "tech1")
        printer = printing.printers_for(db, names=["ZEBRA-B1"])
        assert printing.claim_next(db, worker="w1", printers=printer, actor=tech).id == job_id
        printing.start_sending(db, job_id=job_id, worker="w1", actor=tech)
        out = printing.OutcomeIn(worker="w1", sent=0, printed=0, error="paper out", code="fault")
        assert printing.record_outcome(db, job_id=job_id, data=out, actor=tech).state == "failed"
        db.commit()
    return job_id


def _resumes_of(app, job_id: int) -> list[int]:  # noqa: ANN001
    with new_session(_engine(app)) as db:
        return list(db.exec(select(PrintJob.id).where(PrintJob.resume_of_id == job_id)).all())


def _tubes(app, n: int) -> list[str]:  # noqa: ANN001
    client = app.test_client()
    tech = bearer(app, "tech1")
    out = []
    for _ in range(n):
        r = client.post(
            "/api/samples", json={"sample_type": "PBMC", "project": "CART-001"}, headers=tech
        )
        assert r.status_code == 201, r.json
        out.append(r.json["barcode"])
    return out


def _at_once(app, post: Callable[[FlaskClient], TestResponse]) -> list:  # noqa: ANN001
    """Run post from THREADS clients released together; return each (status, error code)."""

    def fire(client: FlaskClient, _i: int) -> tuple[int, str | None]:
        r = post(client)
        return r.status_code, r.json.get("error")

    return race(app, fire, THREADS)


def test_second_resume_waits_for_the_first_and_is_refused(race_app):
    job_id = _failed_job(race_app, _tubes(race_app, 2))
    first = new_session(_engine(race_app))
    resumed = printing.resume(first, job_id=job_id, actor=_actor(first, "tech1"), reason="A")
    second: dict = {}

    def resume_again() -> None:
        with new_session(_engine(race_app)) as db:
            try:
                job = printing.resume(db, job_id=job_id, actor=_actor(db, "tech2"), reason="B")
                db.commit()
                second["job"] = job.id
            except Conflict as err:
                second["error"] = err.code

    thread = threading.Thread(target=resume_again)
    thread.start()
    # The first resume is not committed yet: the second must wait for it, not overtake it.
    time.sleep(0.5)
    first.commit()
    resumed_id = resumed.id
    first.close()
    thread.join(timeout=60)

    assert not thread.is_alive(), "the second resume hung"
    assert second == {"error": "already_resumed"}
    assert _resumes_of(race_app, job_id) == [resumed_id]


def test_resume_eight_times_at_once_makes_one_job(race_app):
    job_id = _failed_job(race_app, _tubes(race_app, 3))
    tech = bearer(race_app, "tech1")

    codes = _at_once(
        race_app,
        lambda client: client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech),
    )

    assert Counter(codes) == {(201, None): 1, (409, "already_resumed"): THREADS - 1}
    assert len(_resumes_of(race_app, job_id)) == 1


def test_same_sample_queued_eight_times_at_once_prints_once(race_app):
    (tube,) = _tubes(race_app, 1)
    tech = bearer(race_app, "tech1")

    codes = _at_once(
        race_app,
        lambda client: client.post(
            "/api/labels", json={"barcodes": [tube], "printer": "ZEBRA-B1"}, headers=tech
        ),
    )

    assert Counter(codes) == {(201, None): 1, (409, "already_printed"): THREADS - 1}
    with new_session(_engine(race_app)) as db:
        assert len(db.exec(select(PrintJob.id)).all()) == 1
