"""The request boundary: one session per request, who is asking, one commit, JSON errors."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, g, jsonify, request
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from lims import audit
from lims.accounts.users import Actor, authenticate_token
from lims.db import new_session
from lims.errors import Forbidden, LimsError, Refused, Unauthorized
from lims.models import IdempotencyKey, Organisation, User

log = logging.getLogger("lims")


def get_db() -> Session:
    """Return this request's session, opening it on first use."""
    if "db" not in g:
        g.db = new_session(current_app.extensions["lims"]["engine"])
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    """Close the request's session; whatever was not committed is rolled back."""
    db = g.pop("db", None)
    if db is not None:
        db.close()


def current_actor() -> Actor:
    """Return who is making this request (bearer token or signed-in session), or 401."""
    if "actor" in g:
        return g.actor
    db = get_db()
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("use the header 'Authorization: Bearer <token>'")
        g.actor = authenticate_token(db, token.strip())
        return g.actor
    user = _session_user(db)
    if user is None:
        # Keep what the session check recorded (a session that just timed out, and its audit
        # event) although this request is refused.
        db.commit()
        raise Unauthorized("sign in, or send 'Authorization: Bearer <token>'")
    _check_session_csrf()
    g.actor = Actor(user=user, org=db.get(Organisation, user.org_id))
    return g.actor


def _check_session_csrf() -> None:
    """Refuse a cookie-authenticated write without the session's X-CSRF-Token header (403).

    A browser sends the cookie on any site's request; only our own pages can read the token.
    """
    if request.method in ("GET", "HEAD", "OPTIONS"):
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


def _body_hash() -> str:
    h = hashlib.sha256()
    h.update(request.method.encode())
    h.update(b"\0")
    h.update(request.full_path.encode())
    h.update(b"\0")
    h.update(request.get_data(cache=True))
    return h.hexdigest()


def _record_refusal(err: LimsError) -> None:
    """Write the audit event a refusal asks for, in a transaction of its own."""
    if not err.audit and err.after_rollback is None:
        return
    try:
        actor = g.get("actor")
        db = get_db()
        if err.audit:
            audit.record(
                db,
                actor=actor.username if actor else "anonymous",
                station=actor.station if actor else None,
                org_id=actor.org.id if actor else None,
                **err.audit,
            )
        if err.after_rollback is not None:
            err.after_rollback(db, current_app.config)
        db.commit()
    except Exception:  # the refusal itself must still reach the user
        log.exception("could not record the audit event of a refusal")
        get_db().rollback()


def accepts_nul(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let NUL characters through to a view that records raw device input safely itself."""
    view.accepts_nul = True  # type: ignore[attr-defined]
    return view


def write(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run a writing view as one transaction, with Idempotency-Key replay."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        actor = current_actor()
        db = get_db()
        key = request.headers.get("Idempotency-Key")
        body_hash = None
        if key is not None:
            if not key or len(key) > 200:
                raise LimsError(
                    "Idempotency-Key must be 1-200 characters", code="bad_idempotency_key"
                )
            body_hash = _body_hash()
            done = db.get(IdempotencyKey, (actor.user.id, key))
            if done is not None:
                return _replay(done, body_hash)
        try:
            rv = view(*args, **kwargs)
            resp = current_app.make_response(rv)
            if key is not None and 200 <= resp.status_code < 300:
                db.add(
                    IdempotencyKey(
                        user_id=actor.user.id,
                        key=key,
                        method=request.method,
                        path=request.path,
                        body_hash=body_hash,
                        status=resp.status_code,
                        response=resp.get_data(as_text=True),
                    )
                )
            db.commit()
            return resp
        except LimsError as err:
            db.rollback()
            _record_refusal(err)
            raise
        except IntegrityError:
            db.rollback()
            if key is not None:
                # Two requests with the same key raced; the other one committed first.
                done = db.get(IdempotencyKey, (actor.user.id, key))
                if done is not None:
                    return _replay(done, body_hash)
            raise

    return wrapper


def _replay(done: IdempotencyKey, body_hash: str | None) -> Response:
    if done.body_hash != body_hash:
        raise Refused(
            "this Idempotency-Key was used with another request; use a new key",
            code="idempotency_key_reused",
        )
    resp = Response(done.response, status=done.status, mimetype="application/json")
    resp.headers["Idempotent-Replayed"] = "true"
    return resp


def error_response(code: str, message: str, status: int, **extra: Any) -> Response:
    """Return the JSON error body every /api error uses."""
    resp = jsonify({"error": code, "message": message, **extra})
    resp.status_code = status
    return resp


def handle_lims_error(err: LimsError) -> Response:
    """Turn a domain refusal into its JSON error."""
    return error_response(err.code, err.message, err.status, **err.extra)


def handle_db_error(err: DBAPIError) -> Response:
    """Turn a database conflict (unique key, lock, serialisation) into 409, not a 500."""
    db = g.get("db")
    if db is not None:
        db.rollback()
    if isinstance(err, IntegrityError):
        return error_response(
            "conflict", "the change conflicts with another record (it may already exist)", 409
        )
    orig = getattr(err, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or ""
    text = str(orig).lower()
    if sqlstate in ("40001", "40P01") or "locked" in text or "busy" in text:
        return error_response(
            "conflict", "the database was busy with a conflicting change; retry", 409
        )
    log.exception("database error", exc_info=err)
    return error_response(
        "database_error", "the database refused the request; nothing was changed", 503
    )


def handle_unexpected(err: Exception) -> Response:
    """Log an unexpected error and answer with a JSON 500 (never a traceback)."""
    db = g.get("db")
    if db is not None:
        db.rollback()
    log.exception("unexpected error", exc_info=err)
    return error_response(
        "internal_error", "an unexpected error happened; nothing was changed", 500
    )
