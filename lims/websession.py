"""Browser sign-in: argon2id passwords, lockout, server-side sessions, timeouts and CSRF.

The cookie holds a random secret; the database keeps only its SHA-256 (WebSession.id), so a
copy of the database cannot be replayed as a cookie. Every session has its own CSRF token,
checked on every state-changing form POST and on cookie-authenticated /api writes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Response, current_app, g, request
from sqlalchemy import update
from sqlmodel import Session, select

from lims import audit, bench
from lims.boundary import unit
from lims.errors import BadRequest, Forbidden, NotFound, Refused
from lims.models import User, WebSession, utcnow
from lims.users import (
    Actor,
    check_password,
    clear_expired_lock,
    count_password_failure,
    record_user_event,
)

COOKIE = "lims_session"
LOGIN_CSRF_COOKIE = "lims_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# Background polls (the bench page's live list) must not keep an unattended session alive.
POLL_HEADER = "X-LIMS-Poll"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Writing last_seen_at on every page view would turn readers into writers; 10 s is far finer
# than any idle timeout a centre would set.
TOUCH_EVERY = timedelta(seconds=10)
# One message for every refusal, so the page does not tell which usernames exist.
SIGN_IN_REFUSED = (
    "Sign-in refused: the username or password is wrong, or the account is locked or disabled."
)


class CsrfMissing(BadRequest):
    code = "csrf_missing"


class CsrfInvalid(Forbidden):
    code = "csrf_invalid"


def session_id(secret: str) -> str:
    """Return the stored id of a session: the SHA-256 of the cookie secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _cfg(name: str) -> float:
    return float(current_app.config[name])


# --- sign-in -------------------------------------------------------------------------------


@dataclass
class SignIn:
    """The outcome of a sign-in attempt: a session secret for the cookie, or a refusal."""

    ok: bool
    secret: str | None = None
    session: WebSession | None = None
    user: User | None = None


def _user_event(db: Session, user: User | None, claimed: str, action: str, **kw: object) -> None:
    audit.record(
        db,
        actor=user.username if user else "anonymous",
        action=action,
        entity_type="user",
        entity_id=(user.username if user else claimed or "(blank)")[:64],
        org_id=user.org_id if user else None,
        device=_client(),
        **kw,
    )


def _client() -> str | None:
    """Describe where a browser request came from (address), for the audit trail."""
    try:
        return f"web:{request.remote_addr}"[:200]
    except RuntimeError:  # outside a request (CLI, tests of the domain)
        return None


def sign_in(
    db: Session,
    *,
    username: str,
    password: str,
    max_failures: int,
    lockout_minutes: float,
) -> SignIn:
    """Check a username and password; on success open a session, else count the failure."""
    now = utcnow()
    user = None
    if username and len(username) <= 64:
        user = db.exec(select(User).where(User.username == username)).first()
    # Always one argon2 verification, whether or not the user exists, is locked or disabled.
    password_ok = check_password(user, password)
    if user is None:
        _user_event(db, None, username, "auth.login_failed", reason="unknown user")
        return SignIn(ok=False)
    clear_expired_lock(user)
    if not user.active:
        _user_event(db, user, username, "auth.login_failed", reason="account disabled")
        return SignIn(ok=False)
    if user.locked_until is not None:
        until = user.locked_until.strftime("%Y-%m-%dT%H:%M:%SZ")
        _user_event(db, user, username, "auth.login_failed", reason=f"account locked until {until}")
        return SignIn(ok=False)
    if not password_ok:
        _user_event(
            db,
            user,
            username,
            "auth.login_failed",
            reason=f"wrong password (failure {user.failed_logins + 1} of {max_failures})",
        )
        count_password_failure(
            db,
            user.id,
            max_failures=max_failures,
            lockout_minutes=lockout_minutes,
            what="sign-in",
            device=_client(),
        )
        db.flush()
        return SignIn(ok=False)
    user.failed_logins = 0
    user.locked_until = None
    db.add(user)
    secret = secrets.token_urlsafe(32)
    ws = WebSession(
        id=session_id(secret),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
    )
    db.add(ws)
    db.flush()
    _user_event(db, user, username, "auth.login", after={"session": ws.id[:16]})
    return SignIn(ok=True, secret=secret, session=ws, user=user)


def end_session(db: Session, ws: WebSession, reason: str) -> None:
    """End one session now (it can never be used again)."""
    if ws.ended_at is None:
        ws.ended_at = utcnow()
        ws.end_reason = reason
        db.add(ws)
        db.flush()


def end_all_sessions(db: Session, user_id: int, reason: str) -> int:
    """End every open session of a user; return how many were open."""
    res = db.connection().execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason)
    )
    return res.rowcount or 0


def sign_out(db: Session, ws: WebSession, user: User) -> int:
    """Sign the user out: end this and every other open session of theirs (one audit event)."""
    n = end_all_sessions(db, user.id, "logout")
    db.expire(ws)
    _user_event(db, user, user.username, "auth.logout", after={"sessions_ended": n})
    return n


# --- the current session -------------------------------------------------------------------


@dataclass
class Current:
    """The signed-in browser session of this request."""

    session: WebSession
    user: User


def _expiry_reason(ws: WebSession, user: User | None, now: datetime) -> str | None:
    if ws.ended_at is not None:
        return ws.end_reason or "ended"
    if user is None or not user.active:
        return "user_disabled"
    if now - ws.last_seen_at > timedelta(minutes=_cfg("SESSION_IDLE_MINUTES")):
        return "idle_timeout"
    if now - ws.created_at > timedelta(hours=_cfg("SESSION_ABSOLUTE_HOURS")):
        return "absolute_timeout"
    return None


_EXPIRY_TEXT = {
    "idle_timeout": "Your session timed out after a period without activity. Sign in again.",
    "absolute_timeout": "Your session reached its maximum length. Sign in again.",
    "user_disabled": "Your account was disabled. Ask an administrator.",
    "logout": "You signed out.",
}


def expiry_message(reason: str | None) -> str | None:
    """Return the sign-in page's message for why a session ended."""
    if reason is None:
        return None
    return _EXPIRY_TEXT.get(reason, "Your session has ended. Sign in again.")


def _apply(db: Session, ws: WebSession, user: User | None, reason: str | None) -> None:
    """Write what a request learned about its session: its end, or that it is still in use."""
    if reason is not None:
        if ws.ended_at is None:
            ws = db.get(WebSession, ws.id)
            end_session(db, ws, reason)
            if user is not None:
                minutes = _cfg("SESSION_IDLE_MINUTES")
                why = {
                    "idle_timeout": f"no activity for {minutes:g} minutes",
                    "absolute_timeout": f"older than {_cfg('SESSION_ABSOLUTE_HOURS'):g} hours",
                }.get(reason, reason)
                _user_event(db, user, user.username, "auth.session_expired", reason=why)
        return
    db.connection().execute(
        update(WebSession).where(WebSession.id == ws.id).values(last_seen_at=utcnow())
    )


def current(db: Session) -> Current | None:
    """Return this request's signed-in session (cached), ending it if it has timed out."""
    if "web_current" in g:
        return g.web_current
    g.web_current = None
    g.web_end_reason = None
    secret = request.cookies.get(COOKIE)
    if not secret or len(secret) > 200:
        return None
    ws = db.get(WebSession, session_id(secret))
    if ws is None:
        return None
    user = db.get(User, ws.user_id)
    now = utcnow()
    reason = _expiry_reason(ws, user, now)
    was_open = ws.ended_at is None
    touch = (
        reason is None
        and request.headers.get(POLL_HEADER) is None
        and now - ws.last_seen_at >= TOUCH_EVERY
    )
    if (reason is not None and was_open) or touch:
        if request.method in SAFE_METHODS:
            # This request's own transaction is a reader; the small write goes in its own.
            unit.write_aside(lambda wdb: _apply(wdb, ws, user, reason))
        else:
            # A writer: its transaction holds the write lock already; it commits with the view.
            _apply(db, ws, user, reason)
    if reason is not None:
        g.web_end_reason = reason
        return None
    g.web_current = Current(session=ws, user=user)
    g.session_csrf = ws.csrf_token
    return g.web_current


def session_user(db: Session) -> User | None:
    """Return the user of the browser session (the hook lims.boundary.auth.current_actor calls)."""
    cur = current(db)
    return cur.user if cur else None


def check_csrf_form(cur: Current) -> None:
    """Refuse a form POST whose CSRF token is missing (400) or not this session's (403)."""
    sent = request.form.get(CSRF_FIELD, "")
    if not sent:
        raise CsrfMissing("the form has no security token; reload the page and try again")
    if not hmac.compare_digest(sent.encode(), cur.session.csrf_token.encode()):
        raise CsrfInvalid("the form's security token is not valid; reload the page and try again")


def check_login_csrf() -> None:
    """Refuse a sign-in POST whose token does not match its cookie (login CSRF)."""
    sent = request.form.get(CSRF_FIELD, "")
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not sent or not cookie:
        raise CsrfMissing("the sign-in form expired; reload the page and try again")
    if not hmac.compare_digest(sent.encode(), cookie.encode()):
        raise CsrfInvalid("the sign-in form is not valid; reload the page and try again")


def _secure() -> bool:
    # Browsers drop Secure cookies sent over plain http, so mark them only on https: the demo
    # on http://127.0.0.1 keeps working, a deployment behind TLS gets Secure cookies.
    return request.is_secure


def set_session_cookie(resp: Response, secret: str) -> None:
    """Put the session secret in an HttpOnly, SameSite=Lax cookie (Secure over https)."""
    resp.set_cookie(COOKIE, secret, httponly=True, samesite="Lax", secure=_secure(), path="/")


def clear_session_cookie(resp: Response) -> None:
    """Remove the session cookie from the browser."""
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="Lax", secure=_secure())


def set_login_csrf_cookie(resp: Response, token: str) -> None:
    """Set the double-submit token the sign-in form carries."""
    resp.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Lax", secure=_secure(), path="/"
    )


# --- administration ------------------------------------------------------------------------


def _admin_target(db: Session, actor: Actor, username: str) -> User:
    """Return the account an admin acts on; refuse a non-admin (403) or an unknown name (404)."""
    if actor.role != "admin":
        raise Forbidden("managing accounts needs the admin role", code="role_required")
    user = db.exec(select(User).where(User.username == username)).first()
    if user is None or user.username == "system":
        raise NotFound(f"no user {username!r}", code="unknown_user")
    return user


def _reason(reason: str, doing: str) -> str:
    """Return the stripped reason, or refuse an account change that has none."""
    if not reason.strip():
        raise Refused(f"{doing} an account needs a reason", code="missing_fields")
    return reason.strip()


def disable_user(db: Session, *, username: str, reason: str, actor: Actor) -> User:
    """Disable an account and end all its sessions (one audit event)."""
    user = _admin_target(db, actor, username)
    if user.id == actor.user.id:
        raise Refused("you cannot disable your own account", code="self_disable")
    reason = _reason(reason, "disabling")
    if not user.active:
        raise Refused(f"{username} is disabled already", code="already_disabled")
    user.active = False
    db.add(user)
    db.flush()
    n = end_all_sessions(db, user.id, "user_disabled")
    # A bench agent posts for whoever badged in: sign them off there too (one event per bench).
    benches = bench.sign_off_everywhere(
        db, user, actor=actor, reason=f"account of {user.username} disabled: {reason}"
    )
    record_user_event(
        db,
        user,
        by=actor.username,
        action="user.disable",
        device=_client(),
        before={"active": True},
        after={"active": False, "sessions_ended": n, "benches_signed_off": benches},
        reason=reason,
    )
    return user


def enable_user(db: Session, *, username: str, reason: str, actor: Actor) -> User:
    """Enable a disabled account again (one audit event); the password is unchanged."""
    user = _admin_target(db, actor, username)
    reason = _reason(reason, "enabling")
    if user.active:
        raise Refused(f"{username} is enabled already", code="already_enabled")
    user.active = True
    user.failed_logins = 0
    user.locked_until = None
    db.add(user)
    db.flush()
    record_user_event(
        db,
        user,
        by=actor.username,
        action="user.enable",
        device=_client(),
        before={"active": False},
        after={"active": True},
        reason=reason,
    )
    return user


def unlock_user(db: Session, *, username: str, reason: str, actor: Actor) -> User:
    """Lift a sign-in lockout before it runs out (one audit event)."""
    user = _admin_target(db, actor, username)
    reason = _reason(reason, "unlocking")
    if user.locked_until is None and user.failed_logins == 0:
        raise Refused(f"{username} is not locked", code="not_locked")
    before = {
        "failed_logins": user.failed_logins,
        "locked_until": user.locked_until.strftime("%Y-%m-%dT%H:%M:%SZ")
        if user.locked_until
        else None,
    }
    user.failed_logins = 0
    user.locked_until = None
    db.add(user)
    db.flush()
    record_user_event(
        db,
        user,
        by=actor.username,
        action="user.unlock",
        device=_client(),
        before=before,
        after={"failed_logins": 0, "locked_until": None},
        reason=reason,
    )
    return user
