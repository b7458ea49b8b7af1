"""Sign-in, sign-out, your password, and account administration (disable, unlock, reset)."""

from __future__ import annotations

import re
import secrets

from flask import Response, current_app, flash, g, make_response, redirect, request, url_for

from lims.accounts import admin as account_admin
from lims.accounts import passwords, sessions
from lims.boundary import unit, websession
from lims.boundary.unit import get_db
from lims.inputs import check_text
from lims.web.common import actor, area, page, perform, render, safe_next
from lims.web.common import bp as common_bp

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
            config=current_app.config,
            address=websession.client_address(),
            device=websession.client(),
        )
        old = g.get("web_current")
        if result.ok and old is not None:
            sessions.end_session(db, old.session, "replaced")
        return result

    # A refused sign-in is a result, not an error: its failure count, lockout and audit events
    # are kept like any other change.
    result = unit.run(sign_in)
    if result.throttled:
        resp = _login_form(
            next_url,
            None,
            429,
            error=websession.SIGN_IN_THROTTLED.format(seconds=result.retry_after),
            user=username,
        )
        resp.headers["Retry-After"] = str(result.retry_after)
        return resp
    if not result.ok:
        return _login_form(next_url, None, 401, error=websession.SIGN_IN_REFUSED, user=username)
    target = safe_next(next_url)
    if result.change_due:
        target = url_for("web.accounts.change_password")
    resp = make_response(redirect(target))
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
        delay_seconds=current_app.config["LOGIN_DELAY_SECONDS"],
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


@bp.post("/admin/users/<username>/reset-password", endpoint="reset_password")
@page("admin")
def admin_reset_password(username: str):  # noqa: ANN201
    """Give an account a one-time password (shown once, here) to change at its next sign-in."""
    reason = (request.form.get("reason") or "")[:2000]
    try:
        check_text(reason)
    except ValueError as exc:
        flash(f"The reason {exc}.", "error")
        return redirect(url_for("web.accounts.users"))
    temporary, err = perform(
        lambda: account_admin.reset_password(
            get_db(),
            username=username[:64],
            reason=reason,
            actor=actor(),
            config=current_app.config,
            device=websession.client(),
        )
    )
    if err is not None:
        flash(err.message, "error")
        return redirect(url_for("web.accounts.users"))
    db = get_db()
    # Shown in this answer only: a redirect would carry it in the flash cookie.
    return render(
        "admin_users.html",
        accounts=account_admin.list_accounts(db),
        events=account_admin.account_events(db),
        temporary={"username": username, "password": temporary},
    )


# --- the user's own password -----------------------------------------------------------------

# What a user whose password must change may still reach.
_WHILE_DUE = frozenset(
    {"web.static", "web.accounts.login", "web.accounts.logout", "web.accounts.change_password"}
)


@common_bp.before_request
def _password_change_first() -> Response | None:
    """Send a user whose password was reset (or has aged out) to the change page first."""
    user = g.get("web_user")
    if user is None or request.endpoint in _WHILE_DUE:
        return None
    if passwords.change_due(user, passwords.Policy.from_config(current_app.config)) is None:
        return None
    return redirect(url_for("web.accounts.change_password"))


@bp.route("/account/password", methods=["GET", "POST"], endpoint="change_password")
@page()
def change_password():  # noqa: ANN201
    """Change your own password: the current one, then the new one twice."""
    cfg = current_app.config
    policy = passwords.Policy.from_config(cfg)
    due = passwords.change_due(g.web_user, policy)
    status, error = 200, None
    if request.method == "POST":
        new = request.form.get("new_password") or ""
        if new != (request.form.get("confirm_password") or ""):
            status, error = 400, "The new password and its confirmation differ."
        else:
            who = actor()  # a refusal is recorded under this name
            _, err = perform(
                lambda: passwords.change_password(
                    get_db(),
                    user=who.user,
                    current=request.form.get("current_password") or "",
                    new=new,
                    config=cfg,
                    address=websession.client_address(),
                    device=websession.client(),
                    keep_session=g.web_current.session.id,
                )
            )
            if err is None:
                flash("Your password was changed; your other sessions were ended.", "ok")
                return redirect(url_for("web.home.home"))
            status, error = err.status, err.message
    return render(
        "change_password.html",
        status,
        due=due,
        error=error,
        min_length=policy.min_length,
        history=policy.history,
    )
