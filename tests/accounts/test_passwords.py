"""Passwords as users and admins meet them: strength, change, reset, reuse and ageing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import PASSWORD, post_form, sign_in
from sqlalchemy import update
from sqlmodel import select

from lims.db import new_session
from lims.models import AuditEvent, User, WebSession, utcnow

STRONG = "violet-ferry-cobalt-42"


def _db(app):  # noqa: ANN001, ANN202
    return new_session(app.extensions["lims"]["engine"])


def events(app, action: str) -> list[AuditEvent]:  # noqa: ANN001
    with _db(app) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def open_sessions(app, username: str) -> int:  # noqa: ANN001
    with _db(app) as db:
        uid = db.exec(select(User.id).where(User.username == username)).one()
        q = select(WebSession).where(WebSession.user_id == uid, WebSession.ended_at.is_(None))
        return len(db.exec(q).all())


def new_user(client, auth, password: str):  # noqa: ANN001, ANN201
    body = {"username": "newtech", "role": "technician", "org": "centre", "password": password}
    return client.post("/api/users", json=body, headers=auth("admin"))


@pytest.mark.parametrize(
    "password",
    ["aaaaaaaaaa", "1234567890", "aaaaaaaaaaaa", "123456789012", "password1234", "newtech123456"],
)
def test_short_common_and_guessable_passwords_are_refused(client, auth, password: str):  # noqa: ANN001
    r = new_user(client, auth, password)
    assert r.status_code == 400 and r.json["error"] == "weak_password", r.json


def test_a_strong_password_is_taken_and_the_minimum_length_is_a_setting(app, client, auth):  # noqa: ANN001
    app.config["PASSWORD_MIN_LENGTH"] = 30
    r = new_user(client, auth, STRONG)
    assert r.status_code == 400 and "at least 30 characters" in r.json["message"]
    app.config["PASSWORD_MIN_LENGTH"] = 12
    assert new_user(client, auth, STRONG).status_code == 201
    assert sign_in(client, "newtech", STRONG).status_code == 302


def test_the_cli_refuses_a_common_password(runner):  # noqa: ANN001
    r = runner.invoke(args=["user", "create", "bob", "--role", "qa"], input="1234567890ab\n")
    assert r.exit_code == 1 and "too easy to guess" in r.output


def test_a_user_changes_their_password_through_the_api(app, client, auth):  # noqa: ANN001
    tech = auth("tech1")
    url = "/api/account/password"
    r = client.post(url, json={"current_password": "wrong", "new_password": STRONG}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "wrong_password"
    [refused] = events(app, "user.password_change_refused")
    assert refused.entity_id == "tech1" and refused.actor == "tech1"
    r = client.post(url, json={"current_password": PASSWORD, "new_password": "tech1tech1tech1"})
    assert r.status_code == 401
    weak = {"current_password": PASSWORD, "new_password": "tech1tech1tech1"}
    assert client.post(url, json=weak, headers=tech).json["error"] == "weak_password"
    ok = {"current_password": PASSWORD, "new_password": STRONG}
    r = client.post(url, json=ok, headers=tech)
    assert r.status_code == 200 and r.json == {"username": "tech1", "changed": True}
    assert sign_in(app.test_client(), "tech1", PASSWORD).status_code == 401
    assert sign_in(app.test_client(), "tech1", STRONG).status_code == 302
    [ev] = events(app, "user.password_change")
    assert STRONG not in (ev.after or "") and PASSWORD not in (ev.after or "")


def test_none_of_the_last_five_passwords_can_come_back(app, client, auth):  # noqa: ANN001
    tech, url = auth("tech2"), "/api/account/password"
    chain = [PASSWORD] + [f"{w}-harbour-lantern-{i}" for i, w in enumerate("abcde")]
    for old, new in zip(chain, chain[1:], strict=False):
        body = {"current_password": old, "new_password": new}
        assert client.post(url, json=body, headers=tech).status_code == 200
    current = chain[-1]
    for earlier in chain[2:-1] + [current]:
        r = client.post(
            url, json={"current_password": current, "new_password": earlier}, headers=tech
        )
        assert r.status_code == 400 and r.json["error"] == "password_reused", earlier
    # The sixth-latest is old enough again.
    r = client.post(url, json={"current_password": current, "new_password": chain[0]}, headers=tech)
    assert r.status_code == 200


def test_a_user_changes_their_password_on_the_page_ending_other_sessions(app, client):  # noqa: ANN001
    other = app.test_client()
    assert sign_in(other, "qa1").status_code == 302
    assert sign_in(client, "qa1").status_code == 302
    assert 'href="/account/password"' in client.get("/home").text
    form = {"current_password": PASSWORD, "new_password": STRONG, "confirm_password": "x" + STRONG}
    r = post_form(client, "/account/password", **form)
    assert r.status_code == 400 and "differ" in r.text
    form["confirm_password"] = STRONG
    r = post_form(client, "/account/password", **{**form, "current_password": "nope"})
    assert r.status_code == 422 and "current password is wrong" in r.text
    r = post_form(client, "/account/password", **form)
    assert r.status_code == 302 and r.location == "/home"
    assert client.get("/home").status_code == 200  # this session goes on
    assert other.get("/home").status_code == 302  # the other one ended
    assert open_sessions(app, "qa1") == 1


def test_the_cli_changes_a_password_after_checking_the_current_one(app, runner):  # noqa: ANN001
    r = runner.invoke(args=["user", "password", "tech1"], input=f"wrong\n{STRONG}\n")
    assert r.exit_code == 1 and "current password is wrong" in r.output
    r = runner.invoke(args=["user", "password", "tech1"], input=f"{PASSWORD}\n{STRONG}\n")
    assert r.exit_code == 0, r.output
    assert sign_in(app.test_client(), "tech1", STRONG).status_code == 302
    [ev] = events(app, "user.password_change")
    assert ev.device.startswith("cli:")


def test_an_admin_reset_forces_a_change_at_the_next_sign_in(app, client, auth):  # noqa: ANN001
    tech_token = auth("tech2")
    victim = app.test_client()
    assert sign_in(victim, "tech2").status_code == 302
    assert sign_in(client, "admin").status_code == 302
    r = post_form(client, "/admin/users/tech2/reset-password", reason="forgot it")
    assert r.status_code == 200
    temporary = r.text.split('id="temporary-password"')[1].split("<code>")[1].split("</code>")[0]
    assert len(temporary) >= 20
    assert victim.get("/home").status_code == 302  # every session of theirs ended
    [ev] = events(app, "user.password_reset")
    assert ev.actor == "admin" and ev.reason == "forgot it" and temporary not in (ev.after or "")

    # Signed in with the one-time password, only the change page can be reached.
    user = app.test_client()
    r = sign_in(user, "tech2", temporary)
    assert r.status_code == 302 and r.location == "/account/password"
    r = user.get("/samples")
    assert r.status_code == 302 and r.location == "/account/password"
    assert "administrator reset your password" in user.get("/account/password").text
    r = user.get("/api/samples", headers={"X-CSRF-Token": page_csrf_of(user)})
    assert r.status_code == 403 and r.json["error"] == "password_change_required"
    r = client.get("/api/samples", headers=tech_token)
    assert r.status_code == 403 and r.json["error"] == "password_change_required"
    # The API's own change route is open to them; afterwards all is as before.
    body = {"current_password": temporary, "new_password": STRONG}
    r = client.post("/api/account/password", json=body, headers=tech_token)
    assert r.status_code == 200, r.json
    assert client.get("/api/samples", headers=tech_token).status_code == 200
    assert user.get("/samples").status_code == 302  # a change ends the other sessions
    assert sign_in(user, "tech2", STRONG).location == "/home"
    assert user.get("/samples").status_code == 200


def page_csrf_of(client) -> str:  # noqa: ANN001
    text = client.get("/account/password").text
    return text.split('name="csrf-token" content="')[1].split('"')[0]


def test_reset_through_the_api_and_the_cli(app, client, auth, runner):  # noqa: ANN001
    r = client.post("/api/users/qa1/password-reset", json={"reason": "x"}, headers=auth("tech1"))
    assert r.status_code == 403
    r = client.post("/api/users/admin/password-reset", json={"reason": "x"}, headers=auth("admin"))
    assert r.status_code == 422 and r.json["error"] == "self_reset"
    r = client.post("/api/users/qa1/password-reset", json={"reason": ""}, headers=auth("admin"))
    assert r.status_code == 400
    r = client.post("/api/users/qa1/password-reset", json={"reason": "lost"}, headers=auth("admin"))
    assert r.status_code == 200 and r.json["must_change_password"] is True
    assert sign_in(app.test_client(), "qa1", r.json["temporary_password"]).location == (
        "/account/password"
    )
    r = runner.invoke(args=["user", "reset-password", "tech1", "--reason", "new starter"])
    assert r.exit_code == 0, r.output
    temporary = r.output.split()[-1]
    assert sign_in(app.test_client(), "tech1", temporary).location == "/account/password"
    assert len(events(app, "user.password_reset")) == 2


def test_ageing_is_off_by_default_and_asks_for_a_change_when_set(app, client, auth):  # noqa: ANN001
    with _db(app) as db:
        db.connection().execute(
            update(User)
            .where(User.username == "tech1")
            .values(password_changed_at=utcnow() - timedelta(days=400))
        )
        db.commit()
    tech = auth("tech1")
    assert client.get("/api/samples", headers=tech).status_code == 200
    app.config["PASSWORD_MAX_AGE_DAYS"] = 365
    r = client.get("/api/samples", headers=tech)
    assert r.status_code == 403 and "expired" in r.json["message"]
    r = sign_in(client, "tech1")
    assert r.location == "/account/password"
    assert "has expired" in client.get("/account/password").text
