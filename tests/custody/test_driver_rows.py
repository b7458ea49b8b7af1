"""Rows read through the driver (lims.db.adopt) are the objects the ORM itself would load."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import ENGINE
from sqlalchemy import inspect
from sqlalchemy.exc import DBAPIError, IntegrityError

from lims import samples, storage
from lims.accounts import users
from lims.db import adopt, column_list, driver_execute, new_session, row_shape
from lims.models import Location, Organisation, Sample, User, VectorLot
from tests.helpers import move, register


def _orm_and_driver(engine, model, pk):  # noqa: ANN001, ANN202
    """Load one row twice: with the ORM in one session, through the driver in another."""
    with new_session(engine) as a:
        orm = a.get(model, pk)
        expected = {name: getattr(orm, name) for name in row_shape(model)[0]}
    with new_session(engine) as b:
        cols = column_list(model)
        row = driver_execute(
            b, f"SELECT {cols} FROM {model.__tablename__} WHERE id = ?", (pk,)
        ).fetchone()
        obj = adopt(b, model, row)
        got = {name: getattr(obj, name) for name in row_shape(model)[0]}
        state = inspect(obj)
        return expected, got, state.persistent, b.dirty, b.new


def test_adopted_rows_equal_orm_loads_with_the_same_types(app, client, auth, engine):
    tech = auth("tech1")
    s = register(client, tech)
    assert move(client, tech, s["barcode"], "receive", condition="ok").status_code == 200
    with new_session(engine) as db:
        sample_id = db.exec(samples.select(Sample.id).where(Sample.barcode == s["barcode"])).one()
        user_id = db.exec(users.select(User.id).where(User.username == "tech1")).one()
        # A lot has date columns (expiry) beside times.
        lot_id = db.exec(
            users.select(VectorLot.id).where(VectorLot.expires_on.is_not(None)).limit(1)
        ).one()
    for model, pk in (
        (Sample, sample_id),
        (User, user_id),
        (Organisation, 1),
        (VectorLot, lot_id),
    ):
        expected, got, persistent, dirty, new = _orm_and_driver(engine, model, pk)
        assert got == expected, model
        # Same Python types as the ORM gives: aware UTC times, real booleans.
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in expected.items()}
        assert persistent and not dirty and not new
    _, got, *_ = _orm_and_driver(engine, Sample, sample_id)
    assert got["created_at"].tzinfo is not None
    assert got["created_at"].astimezone(UTC) <= datetime.now(UTC)


def test_an_instance_already_in_the_session_is_the_one_returned(engine):
    with new_session(engine) as db:
        orm_user = db.exec(users.select(User).where(User.username == "tech1")).one()
        tech = users.actor_for(db, orm_user)
        s = samples.register_sample(
            db, actor=tech, data=samples.SampleCreate(sample_type="PBMC", project="CART-001")
        )
        db.commit()
        loaded = db.get(Sample, s.id)
        assert samples.get_sample(db, s.barcode, tech) is loaded


def test_a_move_through_the_driver_is_stored_and_audited(app, client, auth, engine):
    tech = auth("tech1")
    s = register(client, tech)
    r = move(client, tech, s["barcode"], "receive", condition="ok", location="BOX-0001")
    assert r.status_code == 200, r.json
    assert r.json["version"] == 2 and r.json["location"] == "BOX-0001"
    with new_session(engine) as db:
        row = db.exec(Sample.__table__.select().where(Sample.barcode == s["barcode"])).one()
        assert row.state == "received" and row.version == 2
        assert row.position == r.json["position"] is not None
        assert row.updated_at >= row.created_at


def test_cached_locations_belong_to_no_session_and_are_complete(engine):
    with new_session(engine) as db:
        box = storage.get_location(db, "BOX-0001")
        again = storage.get_location(db, "BOX-0001")
        assert box is again  # cached
        assert inspect(box).transient  # no session owns it, none can flush it
        fresh = db.exec(storage.select(Location).where(Location.code == "BOX-0001")).one()
        assert {k: getattr(box, k) for k in row_shape(Location)[0]} == {
            k: getattr(fresh, k) for k in row_shape(Location)[0]
        }
        assert storage.location_by_id(db, box.id) is box
        assert storage.is_frozen(db, box)  # BOX-0001 sits in the -80 freezer


def _registered(db):  # noqa: ANN001, ANN202
    """Register a sample as tech1 and commit; return the actor and the sample."""
    tech = users.actor_for(db, db.exec(users.select(User).where(User.username == "tech1")).one())
    s = samples.register_sample(
        db, actor=tech, data=samples.SampleCreate(sample_type="PBMC", project="CART-001")
    )
    db.commit()
    return tech, s


def test_a_change_pending_in_the_session_is_seen_as_an_orm_query_would(engine):
    with new_session(engine) as db:
        tech, s = _registered(db)
        s.condition = "label smudged"  # not flushed yet
        assert samples.get_sample(db, s.barcode, tech).condition == "label smudged"
        row = driver_execute(db, "SELECT condition FROM sample WHERE id = ?", (s.id,)).fetchone()
        assert row[0] == "label smudged"


def test_driver_errors_arrive_as_sqlalchemy_errors_and_the_session_recovers(engine):
    with new_session(engine) as db:
        taken = db.exec(samples.select(Sample.barcode)).first()
        with pytest.raises(IntegrityError):
            # The barcode is unique: the driver's own error comes back as SQLAlchemy's, which the
            # request boundary answers with 409 instead of a 500.
            driver_execute(db, "UPDATE sample SET barcode = ? WHERE barcode <> ?", (taken, taken))
        db.rollback()
        with pytest.raises(DBAPIError):
            # The audit trail refuses changes (database trigger), whichever path asks.
            driver_execute(db, "UPDATE audit_event SET actor = 'x' WHERE seq = 1")
        db.rollback()
        count = driver_execute(db, "SELECT count(*) FROM sample WHERE barcode = ?", (taken,))
        assert count.fetchone()[0] == 1  # nothing half-written


def test_verify_failing_in_the_database_answers_503_not_500(app, client, auth, engine):
    qa = auth("qa1")
    # Break what verify's own driver statements read (as a botched migration could).
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_event RENAME COLUMN prev_hash TO prev_hash_old")
    r = client.get("/api/audit/verify", headers=qa)
    assert r.status_code == 503, r.json
    assert r.json["error"] == "database_error"


@pytest.mark.skipif(ENGINE != "postgresql", reason="a server connection to lose")
def test_a_lost_connection_mid_move_is_invalidated_and_the_session_recovers(engine):
    with new_session(engine) as db:
        tech, s = _registered(db)
        pid = driver_execute(db, "SELECT pg_backend_pid()").fetchone()[0]
        with engine.connect() as admin:
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        with pytest.raises(DBAPIError) as err:
            samples.transition(
                db,
                barcode=s.barcode,
                actor=tech,
                data=samples.TransitionIn(action="receive", condition="ok"),
            )
        assert err.value.connection_invalidated
        db.rollback()  # does not fail on the dead connection
        moved = samples.transition(
            db,
            barcode=s.barcode,
            actor=tech,
            data=samples.TransitionIn(action="receive", condition="ok"),
        )
        db.commit()
        assert moved.state == "received" and moved.version == 2
