"""The browser session of a request: its cookie, its CSRF token, and finding who is signed in.

Every session has its own CSRF token, checked on every state-changing form POST and on
cookie-authenticated /api writes. The session rules themselves are in lims.accounts.sessions.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta

from flask import Response, current_app, g, request
from sqlmodel import Session, select

from lims.accounts import throttle
from lims.accounts.sessions import expiry_reason, record_use, session_id
from lims.boundary import unit
from lims.errors import BadRequest, Forbidden
from lims.models import Organisation, User, WebSession, utcnow

COOKIE = "lims_session"
LOGIN_CSRF_COOKIE = "lims_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# Background polls (the bench page's live list) must not keep an unattended session alive.
POLL_HEADER = "X-LIMS-Poll"
# Writing last_seen_at on every page view would turn readers into writers; 10 s is far finer
# than any idle timeout a centre would set.
TOUCH_EVERY = timedelta(seconds=10)
# One message for every refusal, so the page does not tell which usernames exist.
SIGN_IN_REFUSED = (
    "Sign-in refused: the username or password is wrong, or the account is locked or disabled."
)
SIGN_IN_THROTTLED = (
    "Too many wrong passwords for this account or from this address: try again in {seconds} s."
)


class CsrfMissing(BadRequest):
    code = "csrf_missing"


class CsrfInvalid(Forbidden):
    code = "csrf_invalid"


def client() -> str | None:
    """Describe where a browser request came from (address), for the audit trail."""
    try:
        return f"web:{request.remote_addr}"[:200]
    except RuntimeError:  # outside a request (CLI, tests of the domain)
        return None


def client_address() -> str | None:
    """Return the address a request came from, which sign-in throttling counts against."""
    try:
        return (request.remote_addr or "")[:64] or None
    except RuntimeError:
        return None


def _timeouts() -> dict[str, float]:
    cfg = current_app.config
    return {
        "idle_minutes": float(cfg["SESSION_IDLE_MINUTES"]),
        "absolute_hours": float(cfg["SESSION_ABSOLUTE_HOURS"]),
    }


@dataclass
class Current:
    """The signed-in browser session of this request."""

    session: WebSession
    user: User


def current(db: Session) -> Current | None:
    """Return this request's signed-in session (cached), ending it if it has timed out."""
    if "web_current" in g:
        return g.web_current
    g.web_current = None
    g.web_end_reason = None
    throttle.CLIENT_ADDRESS.set(client_address())
    secret = request.cookies.get(COOKIE)
    if not secret or len(secret) > 200:
        return None
    # The session, its user and the user's organisation in one round trip: every signed-in
    # page needs all three (the organisation for the actor, found later in the identity map).
    row = db.exec(
        select(WebSession, User, Organisation)
        .join(User, User.id == WebSession.user_id, isouter=True)
        .join(Organisation, Organisation.id == User.org_id, isouter=True)
        .where(WebSession.id == session_id(secret))
    ).first()
    if row is None:
        return None
    ws, user, org = row
    # Held for the request: the session's identity map keeps objects only while referenced.
    g.web_org = org
    now = utcnow()
    timeouts = _timeouts()
    reason = expiry_reason(ws, user, now, **timeouts)
    was_open = ws.ended_at is None
    touch = (
        reason is None
        and request.headers.get(POLL_HEADER) is None
        and now - ws.last_seen_at >= TOUCH_EVERY
    )
    if (reason is not None and was_open) or touch:
        unit.record_now(lambda wdb: record_use(wdb, ws, user, reason, device=client(), **timeouts))
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
