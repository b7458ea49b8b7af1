"""Who is asking: a bearer token or a signed-in browser session, and their role."""

from __future__ import annotations

import hmac

from flask import current_app, g, request
from sqlmodel import Session

from lims.accounts import passwords, throttle
from lims.accounts.users import Actor, authenticate_token, touch_token
from lims.boundary import unit, websession
from lims.boundary.unit import get_db, keep
from lims.errors import Forbidden, Unauthorized
from lims.models import Organisation, User

# The one API route a user whose password must change may use (besides reading this refusal).
CHANGE_PASSWORD_PATH = "/api/account/password"


def current_actor() -> Actor:
    """Return who is making this request (bearer token or signed-in session), or 401."""
    if "actor" in g:
        return g.actor
    db = get_db()
    throttle.CLIENT_ADDRESS.set(websession.client_address())
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("use the header 'Authorization: Bearer <token>'")
        use = authenticate_token(db, token.strip())
        if use.touch:
            unit.record_now(lambda wdb: touch_token(wdb, use.token_id))
        _check_password_due(use.actor.user)
        g.actor = use.actor
        return g.actor
    user = _session_user(db)
    if user is None:
        # Keep what the session check recorded (a session that just timed out, and its audit
        # event) although this request is refused.
        keep()
        raise Unauthorized("sign in, or send 'Authorization: Bearer <token>'")
    _check_session_csrf()
    _check_password_due(user)
    g.actor = Actor(user=user, org=db.get(Organisation, user.org_id))
    return g.actor


def _check_password_due(user: User) -> None:
    """Refuse everything but the password change to a user whose password must change (403)."""
    if request.path == CHANGE_PASSWORD_PATH:
        return
    due = passwords.change_due(user, passwords.Policy.from_config(current_app.config))
    if due is not None:
        why = "was reset by an administrator" if due == "reset" else "has expired"
        raise Forbidden(
            f"your password {why}: change it first (POST {CHANGE_PASSWORD_PATH})",
            code="password_change_required",
        )


def _check_session_csrf() -> None:
    """Refuse a cookie-authenticated write without the session's X-CSRF-Token header (403).

    A browser sends the cookie on any site's request; only our own pages can read the token.
    """
    if unit.is_reader():
        return
    expected = g.get("session_csrf") or ""
    sent = request.headers.get("X-CSRF-Token", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden(
            "a signed-in browser must send its X-CSRF-Token header with every change",
            code="csrf_invalid",
        )


def _session_user(db: Session) -> User | None:
    """Return the user of the browser session, if the web sign-in module set one."""
    hook = current_app.extensions["lims"].get("session_user")
    return hook(db) if hook else None


def require(*roles: str) -> Actor:
    """Return the actor if it has one of roles (any role when none given), else 401/403."""
    actor = current_actor()
    if roles and actor.role not in roles:
        raise Forbidden(
            f"this needs the role {' or '.join(roles)}; you are {actor.role}", code="role_required"
        )
    return actor
