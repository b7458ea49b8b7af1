"""Account administration: disable, enable and unlock, each with a reason and one audit event."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from lims import bench
from lims.accounts.sessions import end_all_sessions
from lims.accounts.users import Actor, record_user_event
from lims.errors import Forbidden, NotFound, Refused
from lims.models import AuditEvent, Organisation, User, utcnow


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


def _recorded(
    db: Session,
    user: User,
    actor: Actor,
    action: str,
    reason: str,
    device: str | None,
    before: dict[str, Any],
    after: dict[str, Any],
) -> User:
    """Record an admin's change of user as one audit event; return the user."""
    record_user_event(
        db,
        user,
        by=actor.username,
        action=action,
        device=device,
        before=before,
        after=after,
        reason=reason,
    )
    return user


def disable_user(
    db: Session, *, username: str, reason: str, actor: Actor, device: str | None = None
) -> User:
    """Disable an account and end all its sessions (one audit event).

    device says where the admin acted from (a browser's address) for the audit trail.
    """
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
    after = {"active": False, "sessions_ended": n, "benches_signed_off": benches}
    return _recorded(db, user, actor, "user.disable", reason, device, {"active": True}, after)


def enable_user(
    db: Session, *, username: str, reason: str, actor: Actor, device: str | None = None
) -> User:
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
    return _recorded(
        db, user, actor, "user.enable", reason, device, {"active": False}, {"active": True}
    )


def unlock_user(
    db: Session, *, username: str, reason: str, actor: Actor, device: str | None = None
) -> User:
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
    after = {"failed_logins": 0, "locked_until": None}
    return _recorded(db, user, actor, "user.unlock", reason, device, before, after)


# What the account page lists as sign-in and account events.
ACCOUNT_ACTIONS = (
    "auth.login",
    "auth.logout",
    "auth.login_failed",
    "auth.locked",
    "auth.session_expired",
    "user.disable",
    "user.enable",
    "user.unlock",
)


def list_accounts(session: Session) -> list[dict[str, Any]]:
    """Return every person's account (not the system account) with its organisation and lock."""
    rows = session.exec(
        select(User, Organisation)
        .join(Organisation, Organisation.id == User.org_id)
        .where(User.username != "system")
        .order_by(User.id)
    ).all()
    now = utcnow()
    return [
        {
            "user": u,
            "org": org.name,
            "locked": u.locked_until is not None and u.locked_until > now,
        }
        for u, org in rows
    ]


def account_events(session: Session, *, limit: int = 50) -> list[AuditEvent]:
    """Return the latest sign-in and account events, newest first."""
    return list(
        session.exec(
            select(AuditEvent)
            .where(AuditEvent.action.in_(ACCOUNT_ACTIONS))
            .order_by(AuditEvent.seq.desc())
            .limit(limit)
        ).all()
    )
