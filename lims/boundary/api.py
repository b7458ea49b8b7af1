"""The JSON API's side of the boundary: writes with Idempotency-Key replay, JSON errors."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError, IntegrityError

from lims.boundary import unit
from lims.boundary.auth import current_actor
from lims.errors import LimsError, Refused
from lims.models import IdempotencyKey

log = logging.getLogger("lims")


def _body_hash() -> str:
    h = hashlib.sha256()
    h.update(request.method.encode())
    h.update(b"\0")
    h.update(request.full_path.encode())
    h.update(b"\0")
    h.update(request.get_data(cache=True))
    return h.hexdigest()


def accepts_nul(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let NUL characters through to a view that records raw device input safely itself."""
    view.accepts_nul = True  # type: ignore[attr-defined]
    return view


def keeps_secret(*fields: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a view whose answer holds secrets that an Idempotency-Key replay must not repeat."""

    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        view.secret_fields = fields  # type: ignore[attr-defined]
        return view

    return mark


def _stored_answer(resp: Response, secret_fields: tuple[str, ...]) -> str:
    """Return the answer kept for replay, with any secret removed."""
    text = resp.get_data(as_text=True)
    if not secret_fields:
        return text
    # A secret is shown once: kept in the replay table it would be readable to anyone who can
    # read the database, and a replay would show it a second time.
    body = json.loads(text)
    for name in secret_fields:
        if name in body:
            body[name] = None
    body["secret_withheld"] = (
        "this is a replay of an earlier request; its secret was shown once and is not kept"
    )
    return json.dumps(body)


def write(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run a writing view as one transaction, with Idempotency-Key replay."""
    secret_fields: tuple[str, ...] = getattr(view, "secret_fields", ())

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        actor = current_actor()
        db = unit.get_db()
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

        def change() -> Response:
            resp = current_app.make_response(view(*args, **kwargs))
            if key is not None and 200 <= resp.status_code < 300:
                db.add(
                    IdempotencyKey(
                        user_id=actor.user.id,
                        key=key,
                        method=request.method,
                        path=request.path,
                        body_hash=body_hash,
                        status=resp.status_code,
                        response=_stored_answer(resp, secret_fields),
                    )
                )
            return resp

        try:
            return unit.run(change)
        except IntegrityError:
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
    """Turn a domain refusal into its JSON error (a throttled one says when to try again)."""
    resp = error_response(err.code, err.message, err.status, **err.extra)
    if "retry_after" in err.extra:
        resp.headers["Retry-After"] = str(err.extra["retry_after"])
    return resp


def handle_db_error(err: DBAPIError) -> Response:
    """Turn a database conflict (unique key, lock, serialisation) into 409, not a 500."""
    unit.abandon()
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
    unit.abandon()
    log.exception("unexpected error", exc_info=err)
    return error_response(
        "internal_error", "an unexpected error happened; nothing was changed", 500
    )
