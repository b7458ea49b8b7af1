"""Resume a bench page's ended web session with a badge scan (the page shows a lock screen).

A bench page is scanned into with gloves on: when its session ends, the next scan must not land
in a sign-in form. The page locks instead, and a badge scan opens a new session for the badge's
holder, but only for someone who signed in with their password on that page of that station
before (the page's bench pass lists them): a badge alone never opens a session anywhere else.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from lims import audit, scanning
from lims.accounts import passwords, throttle
from lims.accounts.sessions import session_id
from lims.bench.station import get_station
from lims.models import User, WebSession, utcnow
from lims.roles import LAB


@dataclass
class Resumed:
    """A badge scan's answer: a new session (its cookie secret) or why there is none."""

    ok: bool
    code: str | None = None
    message: str = ""
    secret: str | None = None
    csrf_token: str | None = None
    session_id: str | None = None
    user: User | None = None


def resume_by_badge(
    session: Session,
    *,
    station: str,
    badge: str,
    passed: list[int],
    config: Mapping[str, Any],
    address: str | None = None,
    device: str | None = None,
) -> Resumed:
    """Open a web session for a badge's holder at a station's page that they signed in on.

    passed: the users who signed in with a password on this station's page in this browser.
    Every answer is one audit event (auth.badge_resume or auth.badge_refused).
    """
    st = get_station(session, station)
    parsed = scanning.classify(badge.strip())
    user = _holder(session, parsed) if parsed.ok and parsed.kind == "code" else None
    now = utcnow()

    def refuse(code: str, message: str, why: str) -> Resumed:
        audit.record(
            session,
            actor=user.username if user else "anonymous",
            action="auth.badge_refused",
            entity_type="user",
            entity_id=user.username if user else "(no badge)",
            after={"data": scanning.printable(badge, 64)} if user is None else None,
            reason=why,
            org_id=user.org_id if user else None,
            station=st.name,
            device=device,
        )
        return Resumed(ok=False, code=code, message=message)

    if user is None:
        return refuse(
            "not_a_badge",
            f"{scanning.printable(badge, 64)} is not a badge: the page stays locked; "
            "scan your badge",
            "not a badge",
        )
    if user.id not in passed:
        return refuse(
            "badge_not_on_this_page",
            f"{user.full_name} has not signed in on this page yet: reload the page and sign in "
            "with your password once; after that your badge unlocks it",
            "no password sign-in on this page in this browser",
        )
    if not user.active or user.role not in LAB or not user.password_hash:
        return refuse(
            "badge_refused",
            f"the badge of {user.full_name} cannot unlock this page: the account is disabled "
            "or cannot sign in on the web; ask an administrator",
            "disabled, not lab staff, or no web sign-in",
        )
    waiting = throttle.wait(
        session, username=user.username, user=user, address=address, now=now, sign_in=True
    )
    if waiting:
        return refuse(
            "badge_throttled",
            f"too many wrong passwords for {user.full_name}: try again in {waiting} s",
            f"throttled: wait {waiting} s",
        )
    if passwords.change_due(user, passwords.Policy.from_config(config), now):
        return refuse(
            "password_change_due",
            f"{user.full_name} must change their password: reload the page and sign in "
            "with it first",
            "password change due",
        )
    secret = secrets.token_urlsafe(32)
    ws = WebSession(
        id=session_id(secret),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
    )
    session.add(ws)
    session.flush()
    audit.record(
        session,
        actor=user.username,
        action="auth.badge_resume",
        entity_type="user",
        entity_id=user.username,
        after={"session": ws.id[:16], "station": st.name},
        reason=f"badge scanned at the locked page of {st.name}",
        org_id=user.org_id,
        station=st.name,
        device=device,
    )
    return Resumed(
        ok=True,
        message=f"unlocked: {user.full_name}",
        secret=secret,
        csrf_token=ws.csrf_token,
        session_id=ws.id,
        user=user,
    )


def _holder(session: Session, parsed: scanning.Parsed) -> User | None:
    """Return the user whose badge this is (a badge typed in lower case too)."""
    code = parsed.value
    for spelling in dict.fromkeys([code, code.upper()]):
        user = session.exec(select(User).where(User.badge == spelling)).first()
        if user is not None:
            return user
    return None
