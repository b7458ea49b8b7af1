"""Browser sign-in through the Flask test client: refusals, lockout, timeouts, sign-out, CSRF."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from helpers import FORM_TOKEN, PASSWORD, page_csrf, sign_in
from sqlalchemy import update
from sqlmodel import select

from lims.boundary.websession import COOKIE, SIGN_IN_REFUSED
from lims.db import new_session
from lims.models import AuditEvent, Sample, User, VectorLot, WebSession, utcnow


def _db(app):  # noqa: ANN001, ANN202
    return new_session(app.extensions["lims"]["engine"])


def events(app, action: str) -> list[AuditEvent]:  # noqa: ANN001
    with _db(app) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def user(app, username: str) -> User:  # noqa: ANN001
    with _db(app) as db:
        return db.exec(select(User).where(User.username == username)).one()


def sessions_of(app, username: str) -> list[WebSession]:  # noqa: ANN001
    with _db(app) as db:
        uid = db.exec(select(User.id).where(User.username == username)).one()
        return list(db.exec(select(WebSession).where(WebSession.user_id == uid)).all())


def sample_in_state(app, state: str, org: str | None = None) -> Sample:  # noqa: ANN001
    with _db(app) as db:
        rows = db.exec(select(Sample).where(Sample.state == state).order_by(Sample.id)).all()
        return rows[0]


def _normalised(body: str) -> str:
    # The only differences allowed between two refusals: the fresh per-form token, and the
    # username typed, which the form shows back.
    body = FORM_TOKEN.sub('name="csrf_token" value=""', body)
    return re.sub(r'name="username" value="[^"]*"', 'name="username" value=""', body)


def test_sign_in_opens_a_session_with_safe_cookie_flags(app, client):  # noqa: ANN001
    r = sign_in(client, "tech1")
    assert r.status_code == 302 and r.location == "/home"
    cookie = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http (the demo on 127.0.0.1) must keep working
    secret = cookie.split(";")[0].split("=", 1)[1]
    [ws] = sessions_of(app, "tech1")
    assert ws.id != secret and len(ws.id) == 64  # only the hash is stored
    assert ws.ended_at is None
    assert len(events(app, "auth.login")) == 1
    assert client.get("/home").status_code == 200


def test_cookie_is_secure_over_https(client):  # noqa: ANN001
    r = sign_in(client, "tech1", base_url="https://lims.example")
    cookie = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "="))
    assert "Secure" in cookie


def test_unknown_user_wrong_password_and_disabled_get_the_same_answer(app, client):  # noqa: ANN001
    with _db(app) as db:
        db.connection().execute(update(User).where(User.username == "tech2").values(active=False))
        db.commit()
    answers = [
        sign_in(client, "tech1", "not-the-password"),
        sign_in(client, "nobody-here", "not-the-password"),
        sign_in(client, "tech2", PASSWORD),  # disabled, right password
    ]
    assert {a.status_code for a in answers} == {401}
    bodies = {_normalised(a.text) for a in answers}
    assert len(bodies) == 1
    assert SIGN_IN_REFUSED in answers[0].text
    for a in answers:
        assert not any(h.startswith(COOKIE + "=") for h in a.headers.getlist("Set-Cookie"))
    reasons = sorted(e.reason for e in events(app, "auth.login_failed"))
    assert reasons == ["account disabled", "unknown user", "wrong password (failure 1 of 5)"]
    assert client.get("/home").status_code == 302


def test_lockout_after_max_failures_then_released_when_it_runs_out(app, client):  # noqa: ANN001
    app.config["LOGIN_MAX_FAILURES"] = 3
    app.config["LOGIN_LOCKOUT_MINUTES"] = 10
    for _ in range(3):
        assert sign_in(client, "tech1", "wrong-password").status_code == 401
    locked = user(app, "tech1")
    assert locked.failed_logins == 3 and locked.locked_until is not None
    assert len(events(app, "auth.locked")) == 1
    # Waiting: even the right password is refused, unchecked, saying when to try again.
    r = sign_in(client, "tech1", PASSWORD)
    assert r.status_code == 429 and "try again in" in r.text
    assert 25 <= int(r.headers["Retry-After"]) <= 30  # LOGIN_DELAY_SECONDS, the first wait
    assert len(events(app, "auth.login_failed")) == 4
    assert len(events(app, "auth.locked")) == 1  # the lock is not extended by more tries
    assert client.get("/home").status_code == 302
    # The lock runs out: the right password works and the count starts again.
    with _db(app) as db:
        db.connection().execute(
            update(User)
            .where(User.username == "tech1")
            .values(locked_until=utcnow() - timedelta(seconds=1))
        )
        db.commit()
    assert sign_in(client, "tech1", PASSWORD).status_code == 302
    after = user(app, "tech1")
    assert after.failed_logins == 0 and after.locked_until is None


def test_admin_unlocks_a_locked_account(app, client):  # noqa: ANN001
    app.config["LOGIN_MAX_FAILURES"] = 2
    other = app.test_client()
    for _ in range(2):
        sign_in(other, "tech2", "wrong-password")
    assert user(app, "tech2").locked_until is not None
    sign_in(client, "admin")
    page = client.get("/admin/users")
    assert "locked until" in page.text and "auth.locked" in page.text
    r = client.post(
        "/admin/users/tech2/unlock", data={"csrf_token": page_csrf(client), "reason": "verified"}
    )
    assert r.status_code == 302
    assert user(app, "tech2").locked_until is None
    assert len(events(app, "user.unlock")) == 1
    assert sign_in(other, "tech2").status_code == 302


def _shift(app, column: str, delta: timedelta) -> None:  # noqa: ANN001
    with _db(app) as db:
        for ws in db.exec(select(WebSession).where(WebSession.ended_at.is_(None))).all():
            setattr(ws, column, getattr(ws, column) - delta)
            db.add(ws)
        db.commit()


def test_idle_timeout_ends_the_session_and_says_why(app, client):  # noqa: ANN001
    app.config["SESSION_IDLE_MINUTES"] = 1
    sign_in(client, "qa1")
    assert client.get("/lots").status_code == 200
    _shift(app, "last_seen_at", timedelta(minutes=2))
    r = client.get("/lots")
    assert r.status_code == 302
    assert r.location.startswith("/login?ended=idle_timeout")
    page = client.get(r.location)
    assert "timed out" in page.text
    [ws] = sessions_of(app, "qa1")
    assert ws.ended_at is not None and ws.end_reason == "idle_timeout"
    assert len(events(app, "auth.session_expired")) == 1
    # The API refuses the ended session too.
    assert client.get("/api/lots").status_code == 401


def test_a_timed_out_session_is_recorded_even_when_a_write_finds_it(app, client):  # noqa: ANN001
    app.config["SESSION_IDLE_MINUTES"] = 1
    sign_in(client, "tech1")
    csrf = page_csrf(client)
    registered = len(events(app, "sample.register"))
    _shift(app, "last_seen_at", timedelta(minutes=2))
    r = client.post(
        "/api/samples",
        json={"sample_type": "PBMC", "project": "CART-001"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 401
    [ws] = sessions_of(app, "tech1")
    assert ws.end_reason == "idle_timeout"
    assert len(events(app, "auth.session_expired")) == 1
    assert len(events(app, "sample.register")) == registered  # nothing was written


def test_activity_keeps_a_session_alive_but_background_polls_do_not(app, client):  # noqa: ANN001
    app.config["SESSION_IDLE_MINUTES"] = 1
    sign_in(client, "tech1")
    _shift(app, "last_seen_at", timedelta(seconds=40))
    before = sessions_of(app, "tech1")[0].last_seen_at
    client.get("/api/scans?station=BENCH-B1", headers={"X-LIMS-Poll": "1"})
    assert sessions_of(app, "tech1")[0].last_seen_at == before
    client.get("/samples")
    assert sessions_of(app, "tech1")[0].last_seen_at > before
    _shift(app, "last_seen_at", timedelta(seconds=40))
    assert client.get("/samples").status_code == 200  # 40 s idle twice, never 60 s in a row


def test_absolute_timeout_ends_an_active_session(app, client):  # noqa: ANN001
    app.config["SESSION_ABSOLUTE_HOURS"] = 1
    sign_in(client, "qa1")
    _shift(app, "created_at", timedelta(hours=2))
    r = client.get("/lots")
    assert r.status_code == 302 and "ended=absolute_timeout" in r.location
    assert sessions_of(app, "qa1")[0].end_reason == "absolute_timeout"


def test_logout_ends_every_session_server_side(app, client):  # noqa: ANN001
    sign_in(client, "tech1")
    old_cookie = client.get_cookie(COOKIE).value
    laptop = app.test_client()
    sign_in(laptop, "tech1")
    r = client.post("/logout", data={"csrf_token": page_csrf(client)})
    assert r.status_code == 302 and r.location == "/login?ended=logout"
    assert all(ws.end_reason == "logout" for ws in sessions_of(app, "tech1"))
    assert len(events(app, "auth.logout")) == 1
    # Replaying the old cookie gets nothing: not the pages, not the API.
    client.set_cookie(COOKIE, old_cookie)
    assert client.get("/home").status_code == 302
    assert client.get("/api/samples").status_code == 401
    assert laptop.get("/home").status_code == 302


def test_disabling_a_user_ends_their_sessions(app, client):  # noqa: ANN001
    tech = app.test_client()
    sign_in(tech, "tech1")
    assert tech.get("/api/samples").status_code == 200
    sign_in(client, "admin")
    r = client.post(
        "/admin/users/tech1/disable",
        data={"csrf_token": page_csrf(client), "reason": "left the company"},
    )
    assert r.status_code == 302
    assert not user(app, "tech1").active
    assert [ws.end_reason for ws in sessions_of(app, "tech1")] == ["user_disabled"]
    [ev] = events(app, "user.disable")
    assert ev.actor == "admin" and ev.entity_id == "tech1" and ev.reason == "left the company"
    assert tech.get("/home").status_code == 302
    assert tech.get("/api/samples").status_code == 401
    assert sign_in(tech, "tech1").status_code == 401


def test_admin_pages_never_set_passwords_and_need_admin(app, client):  # noqa: ANN001
    sign_in(client, "qa1")
    assert client.get("/admin/users").status_code == 403
    r = client.post(
        "/admin/users/tech1/disable", data={"csrf_token": page_csrf(client), "reason": "x"}
    )
    assert r.status_code == 403
    assert user(app, "tech1").active
    client.post("/logout", data={"csrf_token": page_csrf(client)})
    sign_in(client, "admin")
    page = client.get("/admin/users").text
    assert 'type="password"' not in page


def test_form_post_without_or_with_a_wrong_csrf_token_changes_nothing(app, client):  # noqa: ANN001
    s = sample_in_state(app, "registered")
    sign_in(client, "tech1")
    count = len(events(app, "sample.receive"))
    form = {"action": "receive", "condition": "intact", "version": str(s.version)}
    missing = client.post(f"/samples/{s.barcode}/transition", data=form)
    wrong = client.post(
        f"/samples/{s.barcode}/transition", data={**form, "csrf_token": "forged-token"}
    )
    assert missing.status_code == 400
    assert wrong.status_code == 403
    assert "security token" in wrong.text
    with _db(app) as db:
        assert db.get(Sample, s.id).state == "registered"
    assert len(events(app, "sample.receive")) == count
    ok = client.post(
        f"/samples/{s.barcode}/transition", data={**form, "csrf_token": page_csrf(client)}
    )
    assert ok.status_code == 302
    with _db(app) as db:
        assert db.get(Sample, s.id).state == "received"
    assert len(events(app, "sample.receive")) == count + 1


def test_sign_in_form_needs_its_token(client):  # noqa: ANN001
    r = client.post("/login", data={"username": "tech1", "password": PASSWORD})
    assert r.status_code == 400
    client.get("/login")
    r = client.post(
        "/login", data={"username": "tech1", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert r.status_code == 403
    assert client.get("/home").status_code == 302


def test_cookie_authenticated_api_writes_need_the_csrf_header(app, client):  # noqa: ANN001
    s = sample_in_state(app, "registered")
    sign_in(client, "tech1")
    body = {"action": "receive", "condition": "intact"}
    r = client.post(f"/api/samples/{s.barcode}/transitions", json=body)
    assert r.status_code == 403 and r.json["error"] == "csrf_invalid"
    r = client.post(
        f"/api/samples/{s.barcode}/transitions", json=body, headers={"X-CSRF-Token": "forged"}
    )
    assert r.status_code == 403
    with _db(app) as db:
        assert db.get(Sample, s.id).state == "registered"
    r = client.post(
        f"/api/samples/{s.barcode}/transitions",
        json=body,
        headers={"X-CSRF-Token": page_csrf(client)},
    )
    assert r.status_code == 200 and r.json["state"] == "received"
    # Reads need no token.
    assert client.get(f"/api/samples/{s.barcode}").status_code == 200


def test_next_parameter_cannot_send_you_off_site(client):  # noqa: ANN001
    r = sign_in(
        client, "tech1", form_page="/login?next=https://evil.example/x", next_url="//evil.example/x"
    )
    assert r.status_code == 302 and r.location == "/home"


def test_a_page_asked_for_while_signed_out_comes_back_after_sign_in(client):  # noqa: ANN001
    r = client.get("/lots/AAV9-2611-001")
    assert r.status_code == 302 and r.location.startswith("/login?next=")
    r = sign_in(client, "qa1", form_page=r.location, next_url="/lots/AAV9-2611-001")
    assert r.location == "/lots/AAV9-2611-001"


@pytest.mark.parametrize(
    ("username", "path", "status"),
    [
        ("helix_viewer", "/lots/AAV9-2611-001", 200),
        ("helix_viewer", "/lots/LV-2611-002", 404),
        ("nova_viewer", "/lots/AAV9-2611-001", 404),
        ("helix_viewer", "/labels/preview/{centre}", 404),
        ("helix_viewer", "/samples/{centre}", 404),
        ("helix_viewer", "/bench/BENCH-B1", 403),
        ("tech1", "/audit", 403),
        ("tech1", "/samples/S26-999999-X", 404),
        ("qa1", "/storage/NO-SUCH-BOX", 404),
    ],
)
def test_pages_show_only_what_the_user_may_see(app, client, username, path, status):  # noqa: ANN001
    with _db(app) as db:
        centre = db.exec(
            select(Sample.barcode).where(Sample.project_id == 1).order_by(Sample.id)
        ).first()
    sign_in(client, username)
    r = client.get(path.format(centre=centre))
    assert r.status_code == status
    assert r.mimetype == "text/html"


def test_box_grid_hides_other_organisations_tubes(app, client):  # noqa: ANN001
    with _db(app) as db:
        vial = db.exec(
            select(Sample)
            .join(VectorLot, VectorLot.id == Sample.lot_id)
            .where(VectorLot.lot_number == "LV-2611-002")
        ).first()
    sign_in(client, "helix_viewer")
    page = client.get("/storage/BOX-0101").text
    assert vial.barcode not in page
    assert "occupied" in page
    client.post("/logout", data={"csrf_token": page_csrf(client)})
    sign_in(client, "nova_viewer")
    assert vial.barcode in client.get("/storage/BOX-0101").text


def test_client_viewer_audit_page_shows_only_their_organisation(app, client):  # noqa: ANN001
    sign_in(client, "helix_viewer")
    page = client.get("/audit?action=lot.create").text
    assert "AAV9-2611-001" in page
    assert "LV-2611-002" not in page
