"""Password rules: length and strength (zxcvbn's lists), history, change, reset, ageing."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, select
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from lims.accounts import throttle
from lims.accounts.users import check_password, hash_password, record_user_event, verify_hash
from lims.errors import BadRequest, Refused
from lims.models import PasswordHistory, User, WebSession, utcnow

# zxcvbn refuses longer input; a password this long is judged by its first 72 characters.
_ZXCVBN_MAX = 72
MAX_LENGTH = 500


@functools.cache
def _common() -> frozenset[str]:
    # The 30,000 most common passwords of real leaks, shipped with zxcvbn (not typed here).
    return frozenset(FREQUENCY_LISTS["passwords"])


@dataclass(frozen=True)
class Policy:
    """What a new password must be, and how long it lasts."""

    min_length: int = 12
    min_score: int = 3
    history: int = 5
    max_age_days: float = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Policy:
        return cls(
            min_length=int(config.get("PASSWORD_MIN_LENGTH", 12)),
            min_score=int(config.get("PASSWORD_MIN_SCORE", 3)),
            history=max(1, int(config.get("PASSWORD_HISTORY", 5))),
            max_age_days=float(config.get("PASSWORD_MAX_AGE_DAYS", 0)),
        )


class WeakPassword(BadRequest):
    code = "weak_password"


def check_strength(password: str, policy: Policy, *, hints: tuple[str, ...] = ()) -> None:
    """Refuse a password that is short, common or easy to guess (400 weak_password)."""
    if len(password.strip()) < policy.min_length:
        raise WeakPassword(f"passwords need at least {policy.min_length} characters besides spaces")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"passwords are at most {MAX_LENGTH} characters")
    if password.lower() in _common():
        raise WeakPassword("this is one of the most common passwords; choose another")
    result = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=[h for h in hints if h])
    if result["score"] < policy.min_score:
        advice = result["feedback"]["warning"] or "it is easy to guess"
        more = " ".join(result["feedback"]["suggestions"]) or "Add another word or two."
        raise WeakPassword(f"this password is too easy to guess ({advice.rstrip('.')}). {more}")


def _hints(user: User) -> tuple[str, ...]:
    return (user.username, user.full_name, "lims", "custody")


def _recent_hashes(db: Session, user: User, n: int) -> list[str]:
    rows = db.exec(
        select(PasswordHistory.password_hash)
        .where(PasswordHistory.user_id == user.id)
        .order_by(PasswordHistory.id.desc())
        .limit(n)
    ).all()
    hashes = list(rows)
    if user.password_hash and user.password_hash not in hashes:
        hashes.insert(0, user.password_hash)  # set before history was kept
    return hashes


def set_password(
    db: Session, user: User, password: str, policy: Policy, *, must_change: bool, check: bool
) -> None:
    """Give user a new password (checked unless generated); keep its hash in the history."""
    if check:
        check_strength(password, policy, hints=_hints(user))
        if any(verify_hash(h, password) for h in _recent_hashes(db, user, policy.history)):
            raise WeakPassword(
                f"this password was one of your last {policy.history}; choose a new one",
                code="password_reused",
            )
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.must_change_password = must_change
    db.add(user)
    db.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash))
    db.flush()
    keep = db.exec(
        select(PasswordHistory.id)
        .where(PasswordHistory.user_id == user.id)
        .order_by(PasswordHistory.id.desc())
        .limit(policy.history)
    ).all()
    db.connection().execute(
        delete(PasswordHistory).where(
            PasswordHistory.user_id == user.id, PasswordHistory.id.not_in(list(keep))
        )
    )


def change_due(user: User, policy: Policy, now: datetime | None = None) -> str | None:
    """Return why the user must change their password before anything else, or None."""
    if not user.password_hash:
        return None
    if user.must_change_password:
        return "reset"
    if policy.max_age_days > 0:
        since = user.password_changed_at or user.created_at
        if (now or utcnow()) - since > timedelta(days=policy.max_age_days):
            return "expired"
    return None


def end_other_sessions(db: Session, user_id: int, keep: str | None, reason: str) -> int:
    """End every open session of a user but keep (the one changing it); return how many."""
    cond = [WebSession.user_id == user_id, WebSession.ended_at.is_(None)]
    if keep is not None:
        cond.append(WebSession.id != keep)
    res = db.connection().execute(
        update(WebSession).where(*cond).values(ended_at=utcnow(), end_reason=reason)
    )
    return res.rowcount or 0


def change_password(
    db: Session,
    *,
    user: User,
    current: str,
    new: str,
    config: Mapping[str, Any],
    address: str | None = None,
    device: str | None = None,
    keep_session: str | None = None,
) -> User:
    """Change the user's own password after checking the current one (one audit event).

    A wrong current password counts like a wrong sign-in (a stolen session cannot guess on).
    """
    if not current or not new:
        raise BadRequest("give the current and the new password", code="missing_fields")
    limits = throttle.Limits.from_config(config)
    waiting = throttle.wait(db, username=user.username, user=user, address=address, now=utcnow())
    if waiting:
        raise throttle.refuse(waiting, "password change")
    if not check_password(user, current):
        username, user_id = user.username, user.id

        def count(rdb: Session, _config: Any) -> None:
            again = rdb.get(User, user_id)
            throttle.count_failure(
                rdb,
                username=username,
                user=again,
                address=address,
                limits=limits,
                what="password change",
                device=device,
            )

        raise Refused(
            "the current password is wrong; nothing was changed",
            code="wrong_password",
            audit={
                "action": "user.password_change_refused",
                "entity_type": "user",
                "entity_id": username,
                "device": device,
                "reason": "wrong current password",
            },
            after_rollback=count,
        )
    was = change_due(user, Policy.from_config(config))
    set_password(db, user, new, Policy.from_config(config), must_change=False, check=True)
    throttle.count_success(user, address, signed_in=False)
    ended = end_other_sessions(db, user.id, keep_session, "password_changed")
    record_user_event(
        db,
        user,
        by=user.username,
        action="user.password_change",
        device=device,
        after={"other_sessions_ended": ended, "was_due": was},
    )
    return user


def temporary_password() -> str:
    """Return a one-time password an admin hands over (changed at the first sign-in)."""
    return "-".join(secrets.token_urlsafe(6) for _ in range(3))
