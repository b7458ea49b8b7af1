"""Sign-in, sign-out, the home page and account administration (disable, enable, unlock)."""

from __future__ import annotations

import re
import secrets

from flask import Response, current_app, flash, g, make_response, redirect, request, url_for
from sqlmodel import select

from lims.accounts import admin as account_admin
from lims.accounts import sessions
from lims.boundary import unit, websession
from lims.boundary.unit import get_db
from lims.identifiers import SAMPLE_BARCODE_RE, check_coi
from lims.inputs import check_text
from lims.models import (
    AuditEvent,
    Location,
    Organisation,
    Sample,
    User,
    VectorLot,
    WebSession,
    utcnow,
)
from lims.web.common import actor, bp, page, perform, render, safe_next

_HOME_TILES = {
    "technician": [
        ("Bench", "web.benches", "Scan tubes: receive, store, check out"),
        ("Samples", "web.samples", "Find a sample, its custody and lineage"),
        ("Lots", "web.lots", "Vector lots, QC results"),
        ("Storage", "web.storage", "Rooms, freezers and box grids"),
        ("Print queue", "web.print_queue", "Label jobs and reprints"),
    ],
    "qa": [
        ("Lots", "web.lots", "QC results, release and reject with e-signature"),
        ("Audit", "web.audit_search", "Search and export the audit trail"),
        ("Samples", "web.samples", "Custody timelines and lineage"),
        ("Bench", "web.benches", "Scan at a bench"),
        ("Storage", "web.storage", "Rooms, freezers and box grids"),
        ("Print queue", "web.print_queue", "Label jobs and reprints"),
    ],
    "admin": [
        ("Users", "web.admin_users", "Accounts, lockouts, sign-in events"),
        ("Audit", "web.audit_search", "Search and export the audit trail"),
        ("Bench", "web.benches", "Scan at a bench"),
        ("Samples", "web.samples", "Find a sample"),
        ("Lots", "web.lots", "Vector lots"),
        ("Storage", "web.storage", "Rooms, freezers and box grids"),
        ("Print queue", "web.print_queue", "Label jobs and reprints"),
    ],
    "client_viewer": [
        ("Samples", "web.samples", "Your organisation's samples"),
        ("Lots", "web.lots", "Your organisation's lots"),
        ("Audit", "web.audit_search", "Your organisation's audit trail"),
        ("Storage", "web.storage", "Where material is kept"),
    ],
}


@bp.get("/")
def index() -> Response:
    """Send a visitor to the sign-in page, or a signed-in user home."""
    if g.get("web_user") is None:
        return redirect(url_for("web.login"))
    return redirect(url_for("web.home"))


@bp.get("/home")
@page()
def home():  # noqa: ANN201
    """Show the links that fit the signed-in user's role."""
    org = get_db().get(Organisation, g.web_user.org_id)
    tiles = [(t, url_for(ep), d) for t, ep, d in _HOME_TILES.get(actor().role, [])]
    return render("home.html", tiles=tiles, org=org)


@bp.get("/find")
@page()
def find() -> Response:
    """Open what a scanned or typed code names: a sample, a lot or a location."""
    q = (request.args.get("q") or "").strip()
    db = get_db()
    if not q:
        return redirect(url_for("web.home"))
    if SAMPLE_BARCODE_RE.match(q.upper()):
        return redirect(url_for("web.sample_page", barcode=q.upper()))
    if check_coi(q.upper()):
        # A Chain of Identity id: open the first sample that carries it (its page shows the
        # genealogy down to every aliquot).
        who = actor()
        for barcode, org_id in db.exec(
            select(Sample.barcode, Sample.org_id).where(Sample.coi == q.upper()).order_by(Sample.id)
        ):
            if who.can_see(org_id):
                return redirect(url_for("web.sample_page", barcode=barcode))
    lot_org = db.exec(select(VectorLot.org_id).where(VectorLot.lot_number == q)).first()
    if lot_org is not None and actor().can_see(lot_org):
        return redirect(url_for("web.lot_page", lot=q))
    code = q.split(":")[0]
    if db.exec(select(Location.id).where(Location.code == code)).first():
        return redirect(url_for("web.location_page", code=code))
    flash(f"Nothing is known by the code {q[:80]!r}.", "error")
    return redirect(safe_next(request.args.get("back")))


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
            sessions.end_session(db, db.get(WebSession, old.session.id), "replaced")
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
    resp = make_response(redirect(url_for("web.login", ended="logout")))
    websession.clear_session_cookie(resp)
    return resp


# --- administration ------------------------------------------------------------------------

_AUTH_ACTIONS = (
    "auth.login",
    "auth.logout",
    "auth.login_failed",
    "auth.locked",
    "auth.session_expired",
    "user.disable",
    "user.enable",
    "user.unlock",
)


@bp.get("/admin/users")
@page("admin")
def admin_users():  # noqa: ANN201
    """List accounts with their state, and recent sign-in and account events."""
    db = get_db()
    rows = db.exec(select(User).where(User.username != "system").order_by(User.id)).all()
    orgs = {o.id: o for o in db.exec(select(Organisation)).all()}
    now = utcnow()
    accounts = [
        {
            "user": u,
            "org": orgs[u.org_id].name,
            "locked": u.locked_until is not None and u.locked_until > now,
        }
        for u in rows
    ]
    events = db.exec(
        select(AuditEvent)
        .where(AuditEvent.action.in_(_AUTH_ACTIONS))
        .order_by(AuditEvent.seq.desc())
        .limit(50)
    ).all()
    return render("admin_users.html", accounts=accounts, events=events)


# action -> (the change, what the confirmation says was done)
_USER_ACTIONS = {
    "disable": (account_admin.disable_user, "disabled"),
    "enable": (account_admin.enable_user, "enabled"),
    "unlock": (account_admin.unlock_user, "unlocked"),
}


@bp.post("/admin/users/<username>/<action>")
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
        return redirect(url_for("web.admin_users"))
    _, err = perform(
        lambda: fn(
            get_db(), username=username, reason=reason, actor=actor(), device=websession.client()
        )
    )
    if err is not None:
        flash(err.message, "error")
    else:
        flash(f"{username}: {done}.", "ok")
    return redirect(url_for("web.admin_users"))
