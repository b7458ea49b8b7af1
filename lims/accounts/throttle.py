"""Throttled password checks: a growing wait per account and per client address, never a sleep.

Its rules, and why a stranger cannot lock the owner out: docs/accounts.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from lims import audit
from lims.errors import LimsError
from lims.models import LoginThrottle, User, utcnow

# The client address of the request being served, set by the request boundary: an e-signature
# is checked deep inside a domain change that has no other reason to know it.
CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("client_address", default=None)
# An unknown name or an address nobody used for a day is forgotten.
FORGET_AFTER = timedelta(days=1)


class Throttled(LimsError):
    """Too many wrong passwords: try again after retry_after seconds."""

    status = 429
    code = "throttled"


@dataclass(frozen=True)
class Limits:
    """How many wrong passwords start a wait, the first wait, and the longest."""

    max_failures: int = 5
    address_max_failures: int = 20
    delay_seconds: float = 30
    longest_minutes: float = 15

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Limits:
        return cls(
            max_failures=max(1, int(config.get("LOGIN_MAX_FAILURES", 5))),
            address_max_failures=max(1, int(config.get("LOGIN_ADDRESS_MAX_FAILURES", 20))),
            delay_seconds=max(0.0, float(config.get("LOGIN_DELAY_SECONDS", 30))),
            longest_minutes=max(0.0, float(config.get("LOGIN_LOCKOUT_MINUTES", 15))),
        )


class _Counter(Protocol):
    failed_logins: int
    lockouts: int
    locked_until: datetime | None


def seconds_left(counter: _Counter | None, now: datetime) -> int:
    """Return how many seconds the counter's wait still lasts (0: none)."""
    if counter is None or counter.locked_until is None or counter.locked_until <= now:
        return 0
    return max(1, math.ceil((counter.locked_until - now).total_seconds()))


def _row(db: Session, key: str, *, create: bool) -> LoginThrottle | None:
    """Return the counter row of key, locked for this transaction; create it if asked."""
    if create:
        dialect = db.connection().dialect.name
        ins = (postgresql if dialect == "postgresql" else sqlite).insert(LoginThrottle)
        # Two first failures at once must not collide on the key (a 500 instead of a refusal).
        db.connection().execute(
            ins.values(
                key=key, failed_logins=0, lockouts=0, last_failure_at=utcnow()
            ).on_conflict_do_nothing(index_elements=[LoginThrottle.key])
        )
    return db.exec(select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()).first()


def _address_key(address: str) -> str:
    return f"address:{address}"[:100]


def _name_key(username: str) -> str:
    return f"account:{username}"[:100]


def _account(db: Session, username: str, user: User | None, *, create: bool) -> _Counter | None:
    # An unknown name is counted and made to wait like an account, so waits tell nothing
    # about which usernames exist.
    if user is None:
        return _row(db, _name_key(username), create=create)
    if create:  # counting: read the latest count under a row lock (two guesses at once)
        return db.get(User, user.id, with_for_update=True, populate_existing=True)
    return user


def wait(
    db: Session,
    *,
    username: str,
    user: User | None,
    address: str | None,
    now: datetime,
    sign_in: bool = False,
) -> int:
    """Return how long this attempt must wait before a password is even checked (0: not).

    A sign-in from the address the owner last signed in from skips the account's wait (that
    address's own wait still applies): a stranger's guesses elsewhere do not lock the owner
    out. A signature or a password change, made in a session already open, never skips it.
    """
    waits = [seconds_left(_row(db, _address_key(address), create=False), now)] if address else []
    if not sign_in or user is None or address is None or address != user.last_login_from:
        waits.append(seconds_left(_account(db, username, user, create=False), now))
    return max(waits, default=0)


def _count(counter: _Counter, max_failures: int, limits: Limits, now: datetime) -> float | None:
    """Count one wrong password; return the new wait in seconds when it starts one."""
    if counter.locked_until is not None:
        if counter.locked_until > now:
            return None  # already waiting (the owner's own address): no longer wait for it
        if now - counter.locked_until > timedelta(minutes=limits.longest_minutes):
            counter.lockouts = 0  # quiet since the last wait: start small again
        counter.locked_until = None
        counter.failed_logins = 0
    counter.failed_logins += 1
    if counter.failed_logins < max_failures:
        return None
    counter.lockouts += 1
    seconds = min(
        limits.delay_seconds * 2 ** min(counter.lockouts - 1, 30), limits.longest_minutes * 60
    )
    counter.locked_until = now + timedelta(seconds=seconds)
    return seconds


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def count_failure(
    db: Session,
    *,
    username: str,
    user: User | None,
    address: str | None,
    limits: Limits,
    what: str,
    device: str | None = None,
) -> int:
    """Count a wrong password for the account and the address; return the wait it starts (s).

    Each wait that starts is one auth.locked event: for the user, or for the address.
    """
    now = utcnow()
    longest = 0.0
    account = _account(db, username, user, create=True)
    seconds = _count(account, limits.max_failures, limits, now)
    if isinstance(account, LoginThrottle):
        account.last_failure_at = now
    db.add(account)
    if seconds is not None:
        longest = seconds
        audit.record(
            db,
            actor=user.username if user else "anonymous",
            action="auth.locked",
            entity_type="user",
            entity_id=(user.username if user else username or "(blank)")[:64],
            org_id=user.org_id if user else None,
            device=device,
            after={"locked_until": _stamp(account.locked_until), "wait_s": round(seconds)},
            reason=f"{account.failed_logins} wrong passwords in a row ({what}); "
            f"wait {account.lockouts} in a row",
        )
    if address:
        row = _row(db, _address_key(address), create=True)
        seconds = _count(row, limits.address_max_failures, limits, now)
        row.last_failure_at = now
        db.add(row)
        if seconds is not None:
            longest = max(longest, seconds)
            audit.record(
                db,
                actor="anonymous",
                action="auth.locked",
                entity_type="address",
                entity_id=address[:64],
                device=device,
                after={"locked_until": _stamp(row.locked_until), "wait_s": round(seconds)},
                reason=f"{row.failed_logins} wrong passwords in a row from this address ({what})",
            )
    db.connection().execute(
        delete(LoginThrottle).where(LoginThrottle.last_failure_at < now - FORGET_AFTER)
    )
    db.flush()
    return math.ceil(longest)


def count_success(user: User, address: str | None, *, signed_in: bool) -> None:
    """A right password ends the account's run of failures (and its growing waits)."""
    user.failed_logins = 0
    user.lockouts = 0
    user.locked_until = None
    if signed_in and address:
        user.last_login_from = address[:64]


def refuse(seconds: int, doing: str) -> Throttled:
    """Return the refusal of an attempt that must wait."""
    return Throttled(
        f"too many wrong passwords: {doing} refused; try again in {seconds} s",
        retry_after=seconds,
    )


def clear(db: Session, user: User) -> dict[str, Any]:
    """End the account's wait and its count (an admin's unlock); return what it was."""
    before = {
        "failed_logins": user.failed_logins,
        "lockouts": user.lockouts,
        "locked_until": _stamp(user.locked_until) if user.locked_until else None,
    }
    user.failed_logins = 0
    user.lockouts = 0
    user.locked_until = None
    db.add(user)
    return before


def is_locked(user: User, now: datetime | None = None) -> bool:
    """Tell whether the account is waiting after wrong passwords."""
    return seconds_left(user, now or utcnow()) > 0
