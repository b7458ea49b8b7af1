"""API tokens: expiry, last use, and refusal for disabled or locked users."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from alembic import command
from helpers import post_form, sign_in
from sqlalchemy import text, update
from sqlmodel import select

from lims import create_app
from lims.db import new_session
from lims.migrate import alembic_config, current_revision, head_revision
from lims.models import ApiToken, AuditEvent, utcnow

ATTACKER = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}


def _db(app):  # noqa: ANN001, ANN202
    return new_session(app.extensions["lims"]["engine"])


def token_row(app, token_id: int) -> ApiToken:  # noqa: ANN001
    with _db(app) as db:
        return db.get(ApiToken, token_id)


def cli_token(runner, *args: str) -> tuple[int, dict[str, str], str]:  # noqa: ANN001
    r = runner.invoke(args=["token", "create", *args])
    assert r.exit_code == 0, r.output
    words = r.output.split()
    return int(words[1]), {"Authorization": f"Bearer {words[-1]}"}, r.output


def test_a_token_lasts_ninety_days_by_default_or_as_asked(app, runner, client, auth):  # noqa: ANN001
    tid, _, out = cli_token(runner, "tech1")
    tok = token_row(app, tid)
    assert abs(tok.expires_at - tok.created_at - timedelta(days=90)) < timedelta(seconds=1)
    assert f"valid until {tok.expires_at:%Y-%m-%d}" in out
    tid, _, _ = cli_token(runner, "tech1", "--days", "7")
    tok = token_row(app, tid)
    assert abs(tok.expires_at - tok.created_at - timedelta(days=7)) < timedelta(seconds=1)
    assert runner.invoke(args=["token", "create", "tech1", "--days", "0"]).exit_code == 1
    app.config["TOKEN_DAYS"] = 30
    r = client.post("/api/tokens", json={"username": "tech2"}, headers=auth("admin"))
    assert r.status_code == 201
    expires = datetime.fromisoformat(r.json["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=29) < expires - utcnow() <= timedelta(days=30)
    for days in (0, 4000, "7"):
        r = client.post(
            "/api/tokens", json={"username": "tech2", "days": days}, headers=auth("admin")
        )
        assert r.status_code == 400, days
    with _db(app) as db:
        ev = db.exec(select(AuditEvent).where(AuditEvent.action == "token.create")).first()
    assert "expires_at" in ev.after


def test_an_expired_token_is_refused(app, runner, client):  # noqa: ANN001
    tid, headers, _ = cli_token(runner, "qa1", "--days", "1")
    assert client.get("/api/samples", headers=headers).status_code == 200
    with _db(app) as db:
        db.connection().execute(
            update(ApiToken)
            .where(ApiToken.id == tid)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.commit()
    r = client.get("/api/samples", headers=headers)
    assert r.status_code == 401 and r.json["error"] == "token_expired"


def test_last_use_is_kept_without_a_write_on_every_request(app, runner, client):  # noqa: ANN001
    tid, headers, _ = cli_token(runner, "tech1")
    assert token_row(app, tid).last_used_at is None
    assert client.get("/api/samples", headers=headers).status_code == 200
    first = token_row(app, tid).last_used_at
    assert first is not None and utcnow() - first < timedelta(seconds=30)
    client.get("/api/samples", headers=headers)
    assert token_row(app, tid).last_used_at == first  # within a minute: not written again
    with _db(app) as db:
        db.connection().execute(
            update(ApiToken)
            .where(ApiToken.id == tid)
            .values(last_used_at=first - timedelta(minutes=5))
        )
        db.commit()
    body = {"sample_type": "PBMC", "project": "CART-001", "volume": 1, "unit": "mL"}
    assert client.post("/api/samples", json=body, headers=headers).status_code == 201  # a writer
    assert token_row(app, tid).last_used_at > first


def test_tokens_of_disabled_or_locked_users_are_refused(app, runner, client, auth):  # noqa: ANN001
    _, tech2, _ = cli_token(runner, "tech2")
    _, qa1, _ = cli_token(runner, "qa1")
    station = auth("tech2", station="BENCH-B1")
    admin = app.test_client()
    sign_in(admin, "admin")
    assert post_form(admin, "/admin/users/tech2/disable", reason="left").status_code == 302
    assert client.get("/api/samples", headers=tech2).status_code == 401
    assert client.get("/api/stations", headers=station).status_code == 401
    # Wrong passwords at the sign-in page make qa1 wait: their token waits too.
    for i in range(5):
        sign_in(app.test_client(), "qa1", f"guess-{i}-x", **ATTACKER)
    r = client.get("/api/samples", headers=qa1)
    assert r.status_code == 401 and r.json["error"] == "account_locked"
    r = client.post("/api/users/qa1/unlock", json={"reason": "was me"}, headers=auth("admin"))
    assert r.status_code == 200
    assert client.get("/api/samples", headers=qa1).status_code == 200
    # A bench agent's token (bound to a station) is not stopped by a stranger's guesses.
    for i in range(5):
        sign_in(app.test_client(), "tech1", f"guess-{i}-y", **ATTACKER)
    assert client.get("/api/stations", headers=auth("tech1", station="BENCH-B1")).status_code == 200
    assert client.get("/api/stations", headers=auth("tech1")).status_code == 401


def test_tokens_made_before_expiry_existed_expire_ninety_days_after_the_upgrade(db_url):  # noqa: ANN001
    def start():  # noqa: ANN202
        return create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": "t"})

    app = start()
    engine = app.extensions["lims"]["engine"]
    secret = "lims_from-before-0003"
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
        uid = conn.execute(text("SELECT id FROM app_user WHERE username = 'tech1'")).scalar_one()
        conn.execute(
            text("INSERT INTO api_token (user_id, token_hash, created_at) VALUES (:u, :h, :t)"),
            {"u": uid, "h": hashlib.sha256(secret.encode()).hexdigest(), "t": utcnow()},
        )
    engine.dispose()
    app = start()
    engine = app.extensions["lims"]["engine"]
    try:
        assert current_revision(engine) == head_revision()
        with _db(app) as db:
            tok = db.exec(select(ApiToken).where(ApiToken.last_used_at.is_(None))).all()
            old = [t for t in tok if t.user_id == uid and t.expires_at is not None]
            assert old and all(
                timedelta(days=89) < t.expires_at - utcnow() <= timedelta(days=90) for t in old
            )
        r = app.test_client().get("/api/samples", headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 200
        assert sign_in(app.test_client(), "tech1").status_code == 302  # accounts as before
    finally:
        engine.dispose()


def test_a_replayed_token_creation_does_not_show_or_keep_the_secret(app, client, auth):  # noqa: ANN001
    h = {**auth("admin"), "Idempotency-Key": "new-bench-token"}
    first = client.post("/api/tokens", json={"username": "tech2"}, headers=h)
    assert first.status_code == 201 and first.json["token"]
    secret = first.json["token"]
    again = client.post("/api/tokens", json={"username": "tech2"}, headers=h)
    # The retry gets the same token's record, not a second token, and not its secret.
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == first.json["id"] and again.json["token"] is None
    assert "shown once" in again.json["secret_withheld"]
    with _db(app) as db:
        kept = db.exec(text("SELECT response FROM idempotency_key")).all()
        tokens = db.exec(select(ApiToken).where(ApiToken.id == first.json["id"])).all()
    assert len(tokens) == 1
    assert kept and all(secret not in row[0] for row in kept)
    # The secret still works.
    assert (
        client.get("/api/stations", headers={"Authorization": f"Bearer {secret}"}).status_code
        == 200
    )
