"""Domain errors: each carries the HTTP status and error code the API answers with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LimsError(Exception):
    """A refusal the user can act on; never a crash."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        audit: dict | None = None,
        after_rollback: Callable[[Any, Any], None] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        # An event to record after the refused change is rolled back (e.g. a failed signature),
        # and work that must survive the rollback (fn(session, app_config), same transaction).
        self.audit = audit
        self.after_rollback = after_rollback
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON error body."""
        return {"error": self.code, "message": self.message, **self.extra}


class BadRequest(LimsError):
    status = 400
    code = "bad_request"


class Unauthorized(LimsError):
    status = 401
    code = "unauthorized"


class Forbidden(LimsError):
    status = 403
    code = "forbidden"


class NotFound(LimsError):
    status = 404
    code = "not_found"


class Conflict(LimsError):
    status = 409
    code = "conflict"


class Refused(LimsError):
    """A rule of the process refuses the request (illegal transition, missing field, guard)."""

    status = 422
    code = "refused"
