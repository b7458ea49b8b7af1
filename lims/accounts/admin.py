"""Account administration: disable, enable, unlock, password reset; with a reason, audited."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, select

from lims import bench
from lims.accounts import passwords, throttle
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
        device=device or actor.device,  # a browser's address, or the CLI's OS user
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
    throttle.clear(db, user)
    db.flush()
    return _recorded(
        db, user, actor, "user.enable", reason, device, {"active": False}, {"active": True}
    )


def unlock_user(
    db: Session, *, username: str, reason: str, actor: Actor, device: str | None = None
) -> User:
    """End an account's wait after wrong passwords and its count (one audit event)."""
    user = _admin_target(db, actor, username)
    reason = _reason(reason, "unlocking")
    if not throttle.is_locked(user) and user.failed_logins == 0 and user.lockouts == 0:
        raise Refused(f"{username} is not locked", code="not_locked")
    before = throttle.clear(db, user)
    db.flush()
    after = {"failed_logins": 0, "lockouts": 0, "locked_until": None}
    return _recorded(db, user, actor, "user.unlock", reason, device, before, after)


def reset_password(
    db: Session,
    *,
    username: str,
    reason: str,
    actor: Actor,
    config: Mapping[str, Any],
    device: str | None = None,
) -> str:
    """Give an account a one-time password, to change at its next sign-in; return it once.

    Every session of the account ends (one audit event; the password is not in it).
    """
    user = _admin_target(db, actor, username)
    reason = _reason(reason, "resetting the password of")
    if user.id == actor.user.id:
        raise Refused(
            "change your own password instead (you know the current one)", code="self_reset"
        )
    temporary = passwords.temporary_password()
    policy = passwords.Policy.from_config(config)
    passwords.set_password(db, user, temporary, policy, must_change=True, check=False)
    throttle.clear(db, user)
    n = end_all_sessions(db, user.id, "password_reset")
    db.flush()
    after = {"must_change_password": True, "sessions_ended": n}
    _recorded(db, user, actor, "user.password_reset", reason, device, {}, after)
    return temporary


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
    "user.password_change",
    "user.password_change_refused",
    "user.password_reset",
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
            "locked": throttle.is_locked(u, now),
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
