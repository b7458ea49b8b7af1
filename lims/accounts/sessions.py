"""Browser sign-in sessions: sign in (throttled) and out, idle and absolute timeouts.

The cookie holds a random secret; the database keeps only its SHA-256 (WebSession.id), so a
copy of the database cannot be replayed as a cookie. The cookie and CSRF glue is in
lims.boundary.websession.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, select

from lims import audit
from lims.accounts import passwords, throttle
from lims.accounts.users import check_password
from lims.models import User, WebSession, utcnow


def session_id(secret: str) -> str:
    """Return the stored id of a session: the SHA-256 of the cookie secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


# --- sign-in -------------------------------------------------------------------------------


@dataclass
class SignIn:
    """The outcome of a sign-in attempt: a session secret for the cookie, or a refusal."""

    ok: bool
    secret: str | None = None
    session: WebSession | None = None
    user: User | None = None
    retry_after: int | None = None  # seconds to wait before the next attempt is even checked
    throttled: bool = False  # refused unchecked: the account or the address is waiting
    change_due: str | None = None  # the password must change before anything else


def _user_event(
    db: Session, user: User | None, claimed: str, action: str, device: str | None, **kw: object
) -> None:
    audit.record(
        db,
        actor=user.username if user else "anonymous",
        action=action,
        entity_type="user",
        entity_id=(user.username if user else claimed or "(blank)")[:64],
        org_id=user.org_id if user else None,
        device=device,
        **kw,
    )


def sign_in(
    db: Session,
    *,
    username: str,
    password: str,
    config: Mapping[str, Any],
    address: str | None = None,
    device: str | None = None,
) -> SignIn:
    """Check a username and password; on success open a session, else count the failure.

    An attempt while the account or the address waits is refused unchecked (retry_after).
    address is the client's, for throttling; device says where it came from for the trail.
    """
    now = utcnow()
    user = None
    if username and len(username) <= 64:
        user = db.exec(select(User).where(User.username == username)).first()
    failed = "auth.login_failed"
    waiting = throttle.wait(
        db, username=username, user=user, address=address, now=now, sign_in=True
    )
    if waiting:
        _user_event(db, user, username, failed, device, reason=f"throttled: wait {waiting} s")
        return SignIn(ok=False, retry_after=waiting, throttled=True)
    limits = throttle.Limits.from_config(config)
    # Always one argon2 verification, whether or not the user exists or is disabled.
    password_ok = check_password(user, password)
    if user is not None and not user.active:
        _user_event(db, user, username, failed, device, reason="account disabled")
        return SignIn(ok=False)
    if user is None or not password_ok:
        if user is None:
            reason = "unknown user"
        else:
            reason = f"wrong password (failure {user.failed_logins + 1} of {limits.max_failures})"
        _user_event(db, user, username, failed, device, reason=reason)
        wait = throttle.count_failure(
            db,
            username=username,
            user=user,
            address=address,
            limits=limits,
            what="sign-in",
            device=device,
        )
        return SignIn(ok=False, retry_after=wait or None)
    throttle.count_success(user, address, signed_in=True)
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
    _user_event(db, user, username, "auth.login", device, after={"session": ws.id[:16]})
    due = passwords.change_due(user, passwords.Policy.from_config(config), now)
    return SignIn(ok=True, secret=secret, session=ws, user=user, change_due=due)


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


def sign_out(db: Session, ws: WebSession, user: User, device: str | None = None) -> int:
    """Sign the user out: end this and every other open session of theirs (one audit event)."""
    n = end_all_sessions(db, user.id, "logout")
    db.expire(ws)
    _user_event(db, user, user.username, "auth.logout", device, after={"sessions_ended": n})
    return n


# --- timeouts ------------------------------------------------------------------------------


def expiry_reason(
    ws: WebSession,
    user: User | None,
    now: datetime,
    *,
    idle_minutes: float,
    absolute_hours: float,
) -> str | None:
    """Return why a session can no longer be used (ended, user disabled, a timeout), or None."""
    if ws.ended_at is not None:
        return ws.end_reason or "ended"
    if user is None or not user.active:
        return "user_disabled"
    if now - ws.last_seen_at > timedelta(minutes=idle_minutes):
        return "idle_timeout"
    if now - ws.created_at > timedelta(hours=absolute_hours):
        return "absolute_timeout"
    return None


_EXPIRY_TEXT = {
    "idle_timeout": "Your session timed out after a period without activity. Sign in again.",
    "absolute_timeout": "Your session reached its maximum length. Sign in again.",
    "user_disabled": "Your account was disabled. Ask an administrator.",
    "password_changed": "Your password was changed. Sign in with the new one.",
    "password_reset": "Your password was reset by an administrator. Sign in with the new one.",
    "logout": "You signed out.",
}


def expiry_message(reason: str | None) -> str | None:
    """Return the sign-in page's message for why a session ended."""
    if reason is None:
        return None
    return _EXPIRY_TEXT.get(reason, "Your session has ended. Sign in again.")


def record_use(
    db: Session,
    ws: WebSession,
    user: User | None,
    reason: str | None,
    *,
    idle_minutes: float,
    absolute_hours: float,
    device: str | None = None,
) -> None:
    """Write what a request learned about its session: its end, or that it is still in use."""
    if reason is not None:
        if ws.ended_at is None:
            ws = db.get(WebSession, ws.id)
            end_session(db, ws, reason)
            if user is not None:
                why = {
                    "idle_timeout": f"no activity for {idle_minutes:g} minutes",
                    "absolute_timeout": f"older than {absolute_hours:g} hours",
                }.get(reason, reason)
                _user_event(db, user, user.username, "auth.session_expired", device, reason=why)
        return
    db.connection().execute(
        update(WebSession).where(WebSession.id == ws.id).values(last_seen_at=utcnow())
    )
