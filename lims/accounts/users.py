"""Users, passwords, API tokens and the acting person (Actor) behind every change."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import update
from sqlmodel import Session, select

from lims import audit
from lims.db import adopt, column_list, driver_execute, from_db_time, row_shape
from lims.errors import BadRequest, Conflict, NotFound, Refused, Unauthorized
from lims.inputs import check_line
from lims.models import ApiToken, Organisation, Station, User, utcnow
from lims.roles import CENTRE_ROLES, ROLES

# QA disposition and account administration are the centre's: a client organisation's users are
# technicians (working in a rented cleanroom) or viewers.
# Lower-case ASCII only: 'Tech1', a full-width 'ｔｅｃｈ１' or a Cyrillic 'е' would read as tech1.
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._]{0,63}")
_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
# A hash to verify against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = _hasher.hash("not a real password")


@dataclass(frozen=True)
class Actor:
    """Who is doing something, from where."""

    user: User
    org: Organisation
    station: str | None = None
    device: str | None = None

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def role(self) -> str:
        # An older database may hold a client account with a centre role: it acts as a viewer.
        if self.user.role in CENTRE_ROLES and self.org.kind != "centre":
            return "client_viewer"
        # A clinical site's role means nothing elsewhere, and a site's account acts only as one.
        if (self.user.role == "site") != (self.org.kind == "clinical_site"):
            return "client_viewer"
        return self.user.role

    @property
    def sees_all(self) -> bool:
        """Centre staff see every organisation's records; client users only their own."""
        return self.org.kind == "centre"

    def can_see(self, org_id: int) -> bool:
        """Tell whether records of organisation org_id are visible to this actor."""
        return self.sees_all or org_id == self.org.id


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    return _hasher.hash(password)


def verify_hash(password_hash: str, password: str) -> bool:
    """Tell whether password matches an argon2 hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password(user: User | None, password: str) -> bool:
    """Tell whether password is the user's, spending the same time when there is no user."""
    if user is None or not user.password_hash:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return False
    return verify_hash(user.password_hash, password)


def actor_for(session: Session, user: User, *, station: str | None = None) -> Actor:
    """Build the Actor for a user."""
    org = session.get(Organisation, user.org_id)
    return Actor(user=user, org=org, station=station)


def system_actor(session: Session) -> Actor:
    """Return the built-in system actor (fixtures, scheduled jobs)."""
    user = session.exec(select(User).where(User.username == "system")).first()
    if user is None:
        raise NotFound("the system user is missing; run `flask --app app init-db`")
    return actor_for(session, user)


def get_org(session: Session, name: str) -> Organisation:
    """Return the organisation called name."""
    org = session.exec(select(Organisation).where(Organisation.name == name)).first()
    if org is None:
        raise NotFound(f"no organisation {name!r}", code="unknown_organisation")
    return org


def create_user(
    session: Session,
    *,
    username: str,
    role: str,
    org: str,
    password: str | None,
    full_name: str | None = None,
    badge: str | None = None,
    actor: Actor,
    config: Mapping[str, Any] | None = None,
) -> User:
    """Create a user; the password (if any) must pass the policy and is kept as argon2id hashes.

    config holds the PASSWORD_* settings (the defaults when None).
    """
    from lims.accounts import passwords

    if role not in ROLES:
        raise BadRequest(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if not _USERNAME.fullmatch(username):
        raise BadRequest(
            "usernames are 1-64 lower-case letters a-z, digits, '.' or '_', starting with a "
            "letter or digit"
        )
    if full_name is not None:
        full_name = full_name.strip()
        try:
            # The name is printed on e-signatures: no line breaks, direction overrides or escapes.
            check_line(full_name)
        except ValueError as exc:
            raise BadRequest(f"a full name is one line of visible text; it {exc}") from None
        if not full_name:
            raise BadRequest("a full name is one line of visible text, not empty")
        if len(full_name) > 200:
            raise BadRequest("a full name is at most 200 characters")
    if session.exec(select(User).where(User.username == username)).first():
        raise Conflict(f"user {username!r} exists already", code="user_exists")
    organisation = get_org(session, org)
    if role in CENTRE_ROLES and organisation.kind != "centre":
        raise Refused(
            f"{role} is a centre role; a client organisation's users are technician or "
            "client_viewer",
            code="role_not_for_client",
        )
    if (role == "site") != (organisation.kind == "clinical_site"):
        raise Refused(
            "a clinical site's users have the role site, and only they do",
            code="role_not_for_organisation",
        )
    policy = passwords.Policy.from_config(config or {})
    if password is not None:
        hints = (username, full_name or "")
        passwords.check_strength(password, policy, hints=hints)
    user = User(
        username=username,
        full_name=full_name or username,
        org_id=organisation.id,
        role=role,
        badge=badge,
    )
    session.add(user)
    session.flush()
    if password:
        passwords.set_password(session, user, password, policy, must_change=False, check=False)
    audit.record_by(  # the CLI's actor names the OS user who ran it as its device
        session,
        actor,
        action="user.create",
        entity_type="user",
        entity_id=username,
        after={"username": username, "role": role, "org": org, "full_name": user.full_name},
        org_id=organisation.id,
    )
    return user


def record_user_event(
    session: Session,
    user: User,
    *,
    by: str,
    action: str,
    device: str | None = None,
    **kw: object,
) -> None:
    """Record an audit event about an account (lockout, disable, enable, unlock)."""
    audit.record(
        session,
        actor=by,
        action=action,
        entity_type="user",
        entity_id=user.username,
        org_id=user.org_id,
        device=device,
        **kw,
    )


def _token_hash(token: str) -> str:
    # Tokens carry 256 bits of randomness: a fast hash is enough and keeps lookups indexed.
    return hashlib.sha256(token.encode()).hexdigest()


def _token_event(session: Session, actor: Actor, tok: ApiToken, action: str, **fields: Any) -> None:
    # Token events have never named the admin's bench (the station a token binds is in after).
    audit.record_by(
        session,
        actor,
        action=action,
        entity_type="token",
        entity_id=str(tok.id),
        station=None,
        **fields,
    )


MAX_TOKEN_DAYS = 3650


def create_token(
    session: Session,
    *,
    username: str,
    station: str | None = None,
    actor: Actor,
    days: int = 90,
) -> tuple[str, ApiToken]:
    """Create an API token for a user (optionally bound to a station); return the secret once.

    It expires after days (1 to 3650).
    """
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise BadRequest(
            f"a token lasts 1 to {MAX_TOKEN_DAYS} days, not {days}", code="bad_token_days"
        )
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"no user {username!r}; create it with `flask --app app user create`")
    if user.username == "system":
        # The LIMS's own jobs act as system; a person behind a token would be hidden by it.
        raise BadRequest(
            "the system account cannot hold a token; create one for the person who will use it",
            code="system_account",
        )
    station_id = None
    if station is not None:
        # An empty name (a shell variable that was not set) must not mint an unbound token.
        st = session.exec(select(Station).where(Station.name == station)).first()
        if st is None:
            raise NotFound(f"no station {station!r}", code="unknown_station")
        org = session.get(Organisation, user.org_id)
        if org is None or org.kind != "centre" or user.role not in ("technician", "qa", "admin"):
            # A bench agent acts for whoever badges in: only centre lab accounts may run one.
            raise BadRequest(
                f"{username} cannot hold a station token: a bench agent runs as a centre "
                "technician, QA or admin account",
                code="station_token_refused",
            )
        station_id = st.id
    secret = "lims_" + secrets.token_urlsafe(32)
    now = utcnow()
    tok = ApiToken(
        user_id=user.id,
        station_id=station_id,
        token_hash=_token_hash(secret),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(tok)
    session.flush()
    _token_event(
        session,
        actor,
        tok,
        "token.create",
        after={
            "user": username,
            "station": station,
            "expires_at": tok.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        org_id=user.org_id,
    )
    return secret, tok


def revoke_token(session: Session, *, token_id: int, actor: Actor) -> ApiToken:
    """Revoke a token so it is refused from now on."""
    tok = session.get(ApiToken, token_id)
    if tok is None:
        raise NotFound(f"no token {token_id}")
    if tok.revoked_at is None:
        tok.revoked_at = utcnow()
        session.add(tok)
        _token_event(session, actor, tok, "token.revoke")
    return tok


# One query through the driver: every API request pays for this lookup.
_BY_TOKEN = (
    "SELECT t.revoked_at, s.name, t.id, t.expires_at, t.last_used_at, "
    f"{column_list(User, 'u')}, {column_list(Organisation, 'o')} "
    "FROM api_token t JOIN app_user u ON u.id = t.user_id "
    "JOIN organisation o ON o.id = u.org_id "
    "LEFT JOIN station s ON s.id = t.station_id "
    "WHERE t.token_hash = ?"
)
_USER_WIDTH = len(row_shape(User)[0])


_FIRST_USER = 5
# Writing last_used_at on every request would turn readers into writers; a minute is enough
# to tell a token in use from one that is not.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenUse:
    """Who a bearer token acts for, and whether its last-used time is due for a write."""

    actor: Actor
    token_id: int
    touch: bool


def authenticate_token(session: Session, token: str) -> TokenUse:
    """Return who a bearer token acts for (user, organisation, station), or refuse with 401.

    Refused: unknown, revoked or expired tokens, and tokens of a disabled user or of an account
    waiting after wrong passwords (a bench's station token excepted: see docs/accounts.md).
    """
    row = driver_execute(session, _BY_TOKEN, (_token_hash(token),)).fetchone()
    if row is None or row[0] is not None:
        raise Unauthorized("the token is unknown or revoked; create one with `token create`")
    user = adopt(session, User, row[_FIRST_USER : _FIRST_USER + _USER_WIDTH])
    org = adopt(session, Organisation, row[_FIRST_USER + _USER_WIDTH :])
    now = utcnow()
    expires_at, last_used = from_db_time(row[3]), from_db_time(row[4])
    if expires_at is not None and expires_at <= now:
        raise Unauthorized(
            "the token has expired; create a new one with `token create`", code="token_expired"
        )
    if not user.active:
        raise Unauthorized("the token's user is disabled")
    station = row[1]
    if station is None and user.locked_until is not None and user.locked_until > now:
        raise Unauthorized(
            "the token's user is locked after wrong passwords; wait, or ask an administrator "
            "to unlock the account",
            code="account_locked",
        )
    touch = last_used is None or now - last_used >= TOUCH_EVERY
    return TokenUse(Actor(user=user, org=org, station=station), row[2], touch)


def touch_token(session: Session, token_id: int) -> None:
    """Write when a token was last used."""
    session.connection().execute(
        update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow())
    )


def list_users(session: Session) -> list[tuple[User, Organisation]]:
    """Return every user with their organisation, in the order they were made."""
    return list(
        session.exec(
            select(User, Organisation)
            .join(Organisation, Organisation.id == User.org_id)
            .order_by(User.id)
        ).all()
    )
