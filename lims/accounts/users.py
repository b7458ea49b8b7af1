"""Users, passwords, API tokens and the acting person (Actor) behind every change."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from lims import audit
from lims.db import adopt, column_list, driver_execute, row_shape
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
MIN_PASSWORD = 10


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


def check_password(user: User | None, password: str) -> bool:
    """Tell whether password is the user's, spending the same time when there is no user."""
    if user is None or not user.password_hash:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


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
) -> User:
    """Create a user; the password (if any) is stored only as an argon2id hash."""
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
    if password is not None and len(password.strip()) < MIN_PASSWORD:
        raise BadRequest(f"passwords need at least {MIN_PASSWORD} characters besides spaces")
    if session.exec(select(User).where(User.username == username)).first():
        raise Conflict(f"user {username!r} exists already", code="user_exists")
    organisation = get_org(session, org)
    if role in CENTRE_ROLES and organisation.kind != "centre":
        raise Refused(
            f"{role} is a centre role; a client organisation's users are technician or "
            "client_viewer",
            code="role_not_for_client",
        )
    user = User(
        username=username,
        full_name=full_name or username,
        org_id=organisation.id,
        role=role,
        password_hash=hash_password(password) if password else None,
        badge=badge,
    )
    session.add(user)
    session.flush()
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


def clear_expired_lock(user: User) -> None:
    """Start a clean count once a lockout has run out."""
    if user.locked_until is not None and user.locked_until <= utcnow():
        user.locked_until = None
        user.failed_logins = 0


def count_password_failure(
    session: Session,
    user_id: int,
    *,
    max_failures: int,
    lockout_minutes: float,
    what: str,
    device: str | None = None,
) -> None:
    """Count a wrong password (sign-in or e-signature); lock the account at the limit."""
    user = session.get(User, user_id)
    if user is None:
        return
    clear_expired_lock(user)
    user.failed_logins += 1
    session.add(user)
    if user.failed_logins >= max_failures and user.locked_until is None:
        user.locked_until = utcnow() + timedelta(minutes=lockout_minutes)
        record_user_event(
            session,
            user,
            by=user.username,
            action="auth.locked",
            device=device,
            after={"locked_until": user.locked_until.strftime("%Y-%m-%dT%H:%M:%SZ")},
            reason=f"{user.failed_logins} wrong passwords in a row ({what})",
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


def create_token(
    session: Session, *, username: str, station: str | None = None, actor: Actor
) -> tuple[str, ApiToken]:
    """Create an API token for a user (optionally bound to a station); return the secret once."""
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
    tok = ApiToken(user_id=user.id, station_id=station_id, token_hash=_token_hash(secret))
    session.add(tok)
    session.flush()
    _token_event(
        session,
        actor,
        tok,
        "token.create",
        after={"user": username, "station": station},
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
    f"SELECT t.revoked_at, s.name, {column_list(User, 'u')}, {column_list(Organisation, 'o')} "
    "FROM api_token t JOIN app_user u ON u.id = t.user_id "
    "JOIN organisation o ON o.id = u.org_id "
    "LEFT JOIN station s ON s.id = t.station_id "
    "WHERE t.token_hash = ?"
)
_USER_WIDTH = len(row_shape(User)[0])


def authenticate_token(session: Session, token: str) -> Actor:
    """Return who a bearer token acts for (user, organisation, station), or refuse with 401."""
    row = driver_execute(session, _BY_TOKEN, (_token_hash(token),)).fetchone()
    if row is None or row[0] is not None:
        raise Unauthorized("the token is unknown or revoked; create one with `token create`")
    user = adopt(session, User, row[2 : 2 + _USER_WIDTH])
    org = adopt(session, Organisation, row[2 + _USER_WIDTH :])
    if not user.active:
        raise Unauthorized("the token's user is disabled")
    return Actor(user=user, org=org, station=row[1])


def list_users(session: Session) -> list[tuple[User, Organisation]]:
    """Return every user with their organisation, in the order they were made."""
    return list(
        session.exec(
            select(User, Organisation)
            .join(Organisation, Organisation.id == User.org_id)
            .order_by(User.id)
        ).all()
    )
