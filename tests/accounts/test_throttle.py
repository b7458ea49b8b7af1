"""Sign-in and e-signature throttling as an attacker and an owner meet it: waits, not lockouts."""

from __future__ import annotations

import json
import math
import time
from datetime import timedelta

from helpers import PASSWORD, page_csrf, review_all, sign_in
from sqlalchemy import update
from sqlmodel import select

from lims.db import new_session
from lims.models import AuditEvent, LoginThrottle, User, utcnow

OWNER = {"environ_base": {"REMOTE_ADDR": "10.0.0.1"}}
ATTACKER = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
ELSEWHERE = {"environ_base": {"REMOTE_ADDR": "10.0.0.77"}}
LOT = "AAV9-2611-001"  # demo: quarantine, mycoplasma QC missing


def _db(app):  # noqa: ANN001, ANN202
    return new_session(app.extensions["lims"]["engine"])


def locked_events(app, kind: str | None = None) -> list[AuditEvent]:  # noqa: ANN001
    with _db(app) as db:
        q = select(AuditEvent).where(AuditEvent.action == "auth.locked").order_by(AuditEvent.seq)
        return [e for e in db.exec(q).all() if kind is None or e.entity_type == kind]


def run_out(app) -> None:  # noqa: ANN001
    """Let every wait run out (as if its time had passed)."""
    past = utcnow() - timedelta(seconds=1)
    with _db(app) as db:
        db.connection().execute(
            update(User).where(User.locked_until.is_not(None)).values(locked_until=past)
        )
        db.connection().execute(
            update(LoginThrottle)
            .where(LoginThrottle.locked_until.is_not(None))
            .values(locked_until=past)
        )
        db.commit()


def guess(client, username: str, n: int, who: dict) -> list[int]:  # noqa: ANN001
    return [sign_in(client, username, f"guess-{i}-x", **who).status_code for i in range(n)]


def test_a_stranger_makes_the_account_wait_but_not_its_owner(app, client):  # noqa: ANN001
    owner = app.test_client()
    assert sign_in(owner, "admin", **OWNER).status_code == 302  # where the owner works
    assert guess(client, "admin", 5, ATTACKER) == [401] * 5
    r = sign_in(client, "admin", PASSWORD, **ATTACKER)  # even the right password waits
    assert r.status_code == 429 and "try again in" in r.text
    assert 25 <= int(r.headers["Retry-After"]) <= 30
    # Anyone else signing in as admin waits too; the owner, where they work, does not.
    assert sign_in(app.test_client(), "admin", **ELSEWHERE).status_code == 429
    assert sign_in(app.test_client(), "admin", **OWNER).status_code == 302
    [ev] = locked_events(app)
    assert ev.entity_type == "user" and ev.entity_id == "admin"
    assert json.loads(ev.after)["wait_s"] == 30 and "203.0.113.9" in ev.device


def test_each_further_run_of_wrong_passwords_doubles_the_wait_up_to_the_longest(app, client):  # noqa: ANN001
    app.config["LOGIN_LOCKOUT_MINUTES"] = 1.5
    waits = []
    for _ in range(4):
        assert guess(client, "tech2", 5, ATTACKER) == [401] * 5
        waits.append(int(sign_in(client, "tech2", **ATTACKER).headers["Retry-After"]))
        run_out(app)
    assert [json.loads(e.after)["wait_s"] for e in locked_events(app, "user")] == [30, 60, 90, 90]
    # 20 wrong passwords from one address made the address wait as well.
    [by_address] = locked_events(app, "address")
    assert by_address.entity_id == "203.0.113.9" and "20 wrong passwords" in by_address.reason
    assert waits[1] > 55 and waits[3] <= 90
    # The right password ends the run: the next wrong ones start small again.
    assert sign_in(client, "tech2", **ATTACKER).status_code == 302
    guess(app.test_client(), "tech2", 5, ELSEWHERE)
    assert json.loads(locked_events(app, "user")[-1].after)["wait_s"] == 30


def test_one_address_guessing_many_accounts_waits(app, client):  # noqa: ANN001
    app.config["LOGIN_ADDRESS_MAX_FAILURES"] = 4
    for name in ("tech1", "tech2", "qa1", "nobody"):
        assert guess(client, name, 1, ATTACKER) == [401]
    r = sign_in(client, "helix_tech", PASSWORD, **ATTACKER)
    assert r.status_code == 429
    [ev] = locked_events(app)
    assert ev.entity_type == "address" and ev.entity_id == "203.0.113.9"
    # Nobody else is held up by it.
    assert sign_in(app.test_client(), "helix_tech", **ELSEWHERE).status_code == 302


def test_an_unknown_username_waits_exactly_like_a_real_one(app, client):  # noqa: ANN001
    other = app.test_client()
    started = time.monotonic()
    guess(client, "tech1", 5, ATTACKER)
    guess(other, "ghost", 5, ELSEWHERE)
    real = sign_in(client, "tech1", "x", **ATTACKER)
    unknown = sign_in(other, "ghost", "x", **ELSEWHERE)
    assert real.status_code == unknown.status_code == 429
    took = time.monotonic() - started
    # The same wait started for both. Retry-After counts down from its start, so on a slow
    # machine the two answers differ by at most the time the guesses took, never by more.
    events = {e.entity_id: json.loads(e.after) for e in locked_events(app)}
    assert set(events) == {"tech1", "ghost"}
    assert events["tech1"]["wait_s"] == events["ghost"]["wait_s"]
    gap = abs(int(real.headers["Retry-After"]) - int(unknown.headers["Retry-After"]))
    assert gap <= math.ceil(took) + 1


def test_the_cli_unlocks_an_account_with_a_reason(app, client, runner):  # noqa: ANN001
    guess(client, "qa1", 5, ATTACKER)
    assert sign_in(app.test_client(), "qa1", **ELSEWHERE).status_code == 429
    r = runner.invoke(args=["user", "unlock", "qa1", "--reason", "called them back"])
    assert r.exit_code == 0, r.output
    assert sign_in(app.test_client(), "qa1", **ELSEWHERE).status_code == 302
    with _db(app) as db:
        ev = db.exec(select(AuditEvent).where(AuditEvent.action == "user.unlock")).one()
    assert ev.entity_id == "qa1" and ev.reason == "called them back"
    assert ev.device.startswith("cli:")
    r = runner.invoke(args=["user", "unlock", "qa1", "--reason", "again"])
    assert r.exit_code == 1 and "not locked" in r.output
    assert runner.invoke(args=["user", "unlock", "qa1"]).exit_code == 2  # a reason is required


def test_the_api_unlocks_for_an_admin_only(app, client, auth):  # noqa: ANN001
    guess(client, "tech2", 5, ATTACKER)
    r = client.post("/api/users/tech2/unlock", json={"reason": "ok"}, headers=auth("qa1"))
    assert r.status_code == 403
    r = client.post("/api/users/tech2/unlock", json={"reason": "verified"}, headers=auth("admin"))
    assert r.status_code == 200 and r.json == {"username": "tech2", "locked": False}
    r = client.post("/api/users/nobody/unlock", json={"reason": "x"}, headers=auth("admin"))
    assert r.status_code == 404


def test_wrong_signature_passwords_wait_like_sign_in_and_answer_429(app, client, auth):  # noqa: ANN001
    client.post(
        f"/api/lots/{LOT}/qc",
        json={"test": "mycoplasma", "result": "not detected"},
        headers=auth("tech1"),
    )
    review_all(client, LOT, auth("qa1"))
    assert sign_in(client, "qa1", **OWNER).status_code == 302
    headers = {"X-CSRF-Token": page_csrf(client)}
    url = f"/api/lots/{LOT}/transitions"

    def release(password: str):  # noqa: ANN202
        body = {"action": "release", "signature": {"password": password, "meaning": "release"}}
        return client.post(url, json=body, headers=headers, **OWNER)

    assert [release(f"guess-{i}").status_code for i in range(5)] == [422] * 5
    r = release(PASSWORD)  # the owner's own address does not skip a signature's wait
    assert r.status_code == 429 and r.json["error"] == "account_locked"
    assert 25 <= r.json["retry_after"] <= 30 and r.headers["Retry-After"]
    assert [e.entity_id for e in locked_events(app)] == ["qa1"]
    run_out(app)
    assert release(PASSWORD).status_code == 200


def _forwarded(address: str) -> dict:
    # Every request reaches the app from the proxy; the client's address rides in a header.
    return {
        "environ_base": {"REMOTE_ADDR": "10.0.0.2"},
        "headers": {"X-Forwarded-For": address},
    }


def test_behind_a_trusted_proxy_the_client_address_is_throttled_not_the_proxy(db_url, tmp_path):  # noqa: ANN001
    from conftest import checkpoint_config

    from lims import create_app

    for proxies, expected in ((1, "203.0.113.9"), (0, "10.0.0.2")):
        app = create_app(
            {
                "DATABASE_URL": db_url,
                "TESTING": True,
                "SECRET_KEY": "test-secret",
                "TRUSTED_PROXIES": proxies,
                "LOGIN_ADDRESS_MAX_FAILURES": 3,
                **checkpoint_config(tmp_path / str(proxies)),
            }
        )
        try:
            client = app.test_client()
            for name in ("tech1", "tech2", "qa1"):
                assert guess(client, name, 1, _forwarded("203.0.113.9")) == [401]
            # With no proxy trusted the forged header is ignored: the proxy's address waits.
            [ev] = [e for e in locked_events(app) if e.entity_type == "address"][-1:]
            assert ev.entity_id == expected
            others = sign_in(app.test_client(), "helix_tech", **_forwarded("198.51.100.4"))
            assert others.status_code == (302 if proxies else 429)
        finally:
            app.extensions["lims"]["engine"].dispose()
