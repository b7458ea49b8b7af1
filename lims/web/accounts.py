"""Sign-in, sign-out and account administration (disable, enable, unlock)."""

from __future__ import annotations

import re
import secrets

from flask import Response, current_app, flash, g, make_response, redirect, request, url_for

from lims.accounts import admin as account_admin
from lims.accounts import sessions
from lims.boundary import unit, websession
from lims.boundary.unit import get_db
from lims.inputs import check_text
from lims.web.common import actor, area, page, perform, render, safe_next

bp = area("accounts", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():  # noqa: ANN201
    """Show the sign-in form; on POST check the password and open a session."""
    next_url = request.values.get("next") or ""
    if request.method == "GET":
        if g.get("web_user") is not None and not request.args.get("ended"):
            return redirect(safe_next(next_url))
        return _login_form(next_url, sessions.expiry_message(request.args.get("ended")), 200)
    websession.check_login_csrf()
    username = (request.form.get("username") or "").strip()
    password = request.form.get("password") or ""
    db = get_db()

    def sign_in() -> sessions.SignIn:
        result = sessions.sign_in(
            db,
            username=username,
            password=password,
            max_failures=int(current_app.config["LOGIN_MAX_FAILURES"]),
            lockout_minutes=float(current_app.config["LOGIN_LOCKOUT_MINUTES"]),
            device=websession.client(),
        )
        old = g.get("web_current")
        if result.ok and old is not None:
            sessions.end_session(db, old.session, "replaced")
        return result

    # A refused sign-in is a result, not an error: its failure count, lockout and audit events
    # are kept like any other change.
    result = unit.run(sign_in)
    if not result.ok:
        return _login_form(next_url, None, 401, error=websession.SIGN_IN_REFUSED, user=username)
    resp = make_response(redirect(safe_next(next_url)))
    websession.set_session_cookie(resp, result.secret)
    resp.delete_cookie(websession.LOGIN_CSRF_COOKIE, path="/")
    return resp


def _login_form(
    next_url: str, info: str | None, status: int, error: str | None = None, user: str = ""
) -> Response:
    token = secrets.token_urlsafe(24)
    body, _ = render(
        "login.html",
        login_csrf=token,
        next_url=next_url,
        info=info,
        error=error,
        username=user,
        max_failures=current_app.config["LOGIN_MAX_FAILURES"],
        lockout_minutes=current_app.config["LOGIN_LOCKOUT_MINUTES"],
    )
    resp = make_response(body, status)
    websession.set_login_csrf_cookie(resp, token)
    return resp


@bp.post("/logout")
@page()
def logout() -> Response:
    """Sign out: end this session and every other open session of the user."""
    db = get_db()
    unit.run(lambda: sessions.sign_out(db, g.web_current.session, g.web_user, websession.client()))
    resp = make_response(redirect(url_for("web.accounts.login", ended="logout")))
    websession.clear_session_cookie(resp)
    return resp


# --- administration ------------------------------------------------------------------------


@bp.get("/admin/users", endpoint="users")
@page("admin")
def admin_users():  # noqa: ANN201
    """List accounts with their state, and recent sign-in and account events."""
    db = get_db()
    return render(
        "admin_users.html",
        accounts=account_admin.list_accounts(db),
        events=account_admin.account_events(db),
    )


# action -> (the change, what the confirmation says was done)
_USER_ACTIONS = {
    "disable": (account_admin.disable_user, "disabled"),
    "enable": (account_admin.enable_user, "enabled"),
    "unlock": (account_admin.unlock_user, "unlocked"),
}


@bp.post("/admin/users/<username>/<action>", endpoint="user_action")
@page("admin")
def admin_user_action(username: str, action: str):  # noqa: ANN201
    """Disable (ending every session), enable or unlock an account, with a reason."""
    fn, done = _USER_ACTIONS.get(action, (None, ""))
    if fn is None or not re.fullmatch(r"[A-Za-z0-9._]{1,64}", username):
        return render(
            "error.html", 404, status=404, title="Not found", message="No such account action."
        )
    reason = (request.form.get("reason") or "")[:2000]
    try:
        check_text(reason)  # it goes into the audit trail, as an API reason would
    except ValueError as exc:
        flash(f"The reason {exc}.", "error")
        return redirect(url_for("web.accounts.users"))
    _, err = perform(
        lambda: fn(
            get_db(), username=username, reason=reason, actor=actor(), device=websession.client()
        )
    )
    if err is not None:
        flash(err.message, "error")
    else:
        flash(f"{username}: {done}.", "ok")
    return redirect(url_for("web.accounts.users"))
