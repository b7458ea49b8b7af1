"""The pages' plumbing: the parent blueprint, who is signed in, CSRF, errors, one commit a form."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from apiflask import HTTPError
from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from markupsafe import escape
from sqlalchemy.exc import DBAPIError, IntegrityError
from werkzeug.exceptions import HTTPException

from lims.accounts.users import Actor, actor_for
from lims.boundary import unit, websession
from lims.boundary.unit import get_db
from lims.errors import BadRequest, Forbidden, LimsError
from lims.roles import AUDIT_READERS, LAB

log = logging.getLogger("lims.web")
T = TypeVar("T")

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)
# APIFlask reads this from every blueprint when it builds /openapi.json; pages are not API.
bp.enable_openapi = False


def area(name: str, import_name: str) -> Blueprint:
    """Return the blueprint of one area's pages; it nests under `bp` (hooks, errors, assets)."""
    child = Blueprint(name, import_name)
    child.enable_openapi = False
    return child


# Pages are small and server-rendered: everything they load comes from this server.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


# POSTs made without a session, each with its own guard: sign-in (its double-submit token) and a
# locked bench page's badge scan (its SameSite=Strict bench pass; lims.web.bench).
_OWN_GUARD_POSTS = frozenset({"web.accounts.login", "web.bench.resume"})


@bp.before_request
def _load_session() -> Response | None:
    """Find the signed-in user; refuse a form POST without this session's CSRF token."""
    if request.endpoint == "web.static":
        return None
    db = get_db()
    cur = websession.current(db)
    g.web_user = cur.user if cur else None
    if request.method != "POST" or request.endpoint in _OWN_GUARD_POSTS:
        return None
    if cur is None:
        if g.get("web_end_reason"):
            unit.keep()  # the record of why the session ended
        return to_sign_in()
    websession.check_csrf_form(cur)
    return None


@bp.after_request
def _headers(resp: Response) -> Response:
    """Keep pages out of caches (the back button after sign-out) and out of frames."""
    if request.endpoint != "web.static":
        resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = _CSP
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    return resp


def to_sign_in() -> Response:
    """Redirect to the sign-in page, saying why and where to come back to."""
    args: dict[str, str] = {}
    if g.get("web_end_reason"):
        args["ended"] = g.web_end_reason
    if request.method == "GET":
        args["next"] = request.full_path.rstrip("?")
    return redirect(url_for("web.accounts.login", **args))


def safe_next(target: str | None) -> str:
    """Return target if it is a path on this site, else the home page (no open redirect)."""
    if not target:
        return url_for("web.home.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("web.home.home")
    if "\\" in target:
        return url_for("web.home.home")
    return target


def page(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a view need a signed-in user (with one of roles, when given)."""

    def deco(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if g.get("web_user") is None:
                return to_sign_in()
            if roles and actor().role not in roles:
                raise Forbidden(
                    f"this page needs the role {' or '.join(roles)}; you are {actor().role}",
                    code="role_required",
                )
            return view(*args, **kwargs)

        return wrapper

    return deco


def actor() -> Actor:
    """Return the signed-in user as the Actor the domain functions take."""
    if "actor" not in g:
        g.actor = actor_for(get_db(), g.web_user)
    return g.actor


def perform(fn: Callable[[], T]) -> tuple[T | None, LimsError | None]:
    """Run one change as one transaction; a refusal is rolled back and returned, not raised."""
    try:
        return unit.run(fn), None
    except LimsError as err:
        return None, err
    except IntegrityError:
        return None, LimsError(
            "the change conflicts with another record (it may have been made already); "
            "reload the page",
            code="conflict",
        )


def render(template_name: str, status: int = 200, /, **ctx: Any) -> tuple[str, int]:
    """Render a page with the signed-in user, CSRF token and navigation."""
    return render_template(template_name, **ctx), status


@bp.context_processor
def _page_context() -> dict[str, Any]:
    user = g.get("web_user")
    cur = g.get("web_current")
    # The role the user acts with (lims.accounts.users.Actor.role), which is what every check uses.
    role = actor().role if user else None
    return {
        "user": user,
        "role": role,
        "csrf_token": cur.session.csrf_token if cur else "",
        "nav": _nav(role),
        "is_lab": role in LAB,
    }


def _nav(role: str | None) -> list[tuple[str, str]]:
    if role is None:
        return []
    items = [("Home", url_for("web.home.home"))]
    if role == "site":
        # A clinical site's staff work with what was shipped to them, and nothing else.
        return [*items, ("Shipments", url_for("web.shipments.list"))]
    if role in LAB:
        items.append(("Bench", url_for("web.bench.benches")))
    items += [
        ("Samples", url_for("web.samples.list")),
        ("Lots", url_for("web.lots.list")),
        ("Storage", url_for("web.storage.tree")),
        ("Deviations", url_for("web.deviations.list")),
        ("Episodes", url_for("web.therapy.list")),
        ("Shipments", url_for("web.shipments.list")),
        ("Rooms", url_for("web.rooms.list")),
    ]
    if role in LAB:
        items.append(("Quality", url_for("web.quality.specs")))
        items.append(("Materials", url_for("web.manufacturing.materials")))
    if role in LAB:
        items.append(("Print queue", url_for("web.printing.queue")))
    if role in AUDIT_READERS:
        items.append(("Audit", url_for("web.audit.search")))
    if role == "admin":
        items.append(("Users", url_for("web.accounts.users")))
    return items


@bp.app_template_filter("utc")
def _utc(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("T", " ").rstrip("Z").split(".")[0] + " UTC"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


# --- errors: a readable page with the right status, never a traceback ------------------------


def _error_page(status: int, title: str, message: str) -> tuple[str, int]:
    try:
        return render_template("error.html", status=status, title=title, message=message), status
    except Exception:  # the error page itself failed: still answer in plain words
        log.exception("could not render the error page")
        return f"<!doctype html><title>{status}</title><h1>{escape(title)}</h1>", status


_TITLES = {
    400: "The request could not be read",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Changed meanwhile",
    413: "Too large",
    422: "Refused",
}


@bp.errorhandler(LimsError)
def _lims_error(err: LimsError) -> tuple[str, int]:
    unit.abandon()
    return _error_page(err.status, _TITLES.get(err.status, "Refused"), err.message)


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException) -> tuple[str, int]:
    code = err.code or 500
    return _error_page(code, _TITLES.get(code, "Error"), err.description or "")


@bp.errorhandler(HTTPError)
def _api_http_error(err: HTTPError) -> tuple[str, int]:
    # APIFlask's own HTTPError (e.g. the app-wide NUL refusal) is not a werkzeug HTTPException.
    return _error_page(err.status_code, _TITLES.get(err.status_code, "Error"), err.message or "")


@bp.errorhandler(DBAPIError)
def _db_error(err: DBAPIError) -> tuple[str, int]:
    unit.abandon()
    if isinstance(err, IntegrityError):
        return _error_page(409, _TITLES[409], "The change conflicts with another record.")
    log.exception("database error on a page", exc_info=err)
    return _error_page(
        503, "Database busy", "The database did not answer in time; nothing was changed. Retry."
    )


@bp.errorhandler(Exception)
def _unexpected(err: Exception) -> tuple[str, int]:
    unit.abandon()
    log.exception("unexpected error on a page", exc_info=err)
    return _error_page(
        500,
        "Something went wrong",
        "An unexpected error happened and nothing was changed. The error was logged.",
    )


def cursor() -> int | None:
    """Read a list's page cursor: a whole number within the ids' range, else a clear 400."""
    raw = request.args.get("cursor") or "0"
    if not raw.isdigit() or int(raw) > 2**31 - 1:
        raise BadRequest("cursor must be a page number this list gave you")
    return int(raw) or None


def first_error(exc: Exception) -> str:
    """Return the first thing wrong with a form, as a validation error names it."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc)
