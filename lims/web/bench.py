"""The bench pages: the list of stations, one bench's scan page, its lock screen and its sheets.

When the session of a bench page ends, the page locks in place (no sign-in form a scan could
type into); a badge scan of someone who signed in with their password on this station's page in
this browser unlocks it. The bench pass cookie lists those people (signed, this station only).
"""

from __future__ import annotations

import calendar
import time
from typing import Any

from flask import Response, current_app, g, jsonify, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from lims import bench as bench_mod
from lims.bench import badge, sheets
from lims.boundary import unit, websession
from lims.boundary.unit import get_db
from lims.errors import LimsError
from lims.roles import LAB
from lims.rooms.clearance import station_notice
from lims.web.common import actor, area, page, render

bp = area("bench", __name__)

PASS_COOKIE = "lims_bench_pass"
PASS_PEOPLE = 12  # the latest people who signed in on this bench page in this browser
# How long a bench page keeps its pass after it was last opened signed in: a shift and more.
PASS_HOURS = 24


@bp.get("/bench")
@page(*LAB)
def benches():  # noqa: ANN201
    """List the bench stations to open one."""
    return render("benches.html", rows=bench_mod.list_stations(get_db(), actor()))


@bp.get("/bench/<station>")
def bench(station: str):  # noqa: ANN201
    """Show a bench; with its session ended, the lock screen when a badge may unlock it."""
    if g.get("web_user") is None and _passed(station):
        return render("bench_locked.html", station_name=station)
    return _bench(station)


@page(*LAB)
def _bench(station: str) -> Any:
    db = get_db()
    st = bench_mod.get_station(db, station)
    state = bench_mod.station_view(db, st, actor())
    scans = bench_mod.recent_scans(db, station=st.name, actor=actor(), limit=15)
    # Refusals not yet acknowledged stay on screen across a reload (kept with the station).
    waiting = bench_mod.refusals.waiting(db, st, actor())
    # A rented room's rule, as it stands for the operator's organisation (else the viewer's).
    room_note = station_notice(db, st, actor())
    body, status = render(
        "bench.html",
        station=st,
        state=state,
        scans=scans,
        refusals=list(reversed(waiting)),
        room_note=room_note,
    )
    resp = Response(body, status)
    _give_pass(resp, st.name, g.web_user.id)
    return resp


@bp.post("/bench/<station>/resume")
def resume(station: str) -> tuple[Response, int]:
    """Unlock a locked bench page with a badge scan: a new session for the badge's holder."""
    passed = _passed(station)
    if not passed:
        return _json_error(
            403,
            "no_bench_pass",
            f"this browser has not signed in on the page of {station[:64]} yet: reload the "
            "page and sign in with your password",
        )
    body = request.get_json(silent=True) if request.is_json else None
    code = body.get("badge") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code.strip() or len(code) > 512 or "\x00" in code:
        return _json_error(400, "malformed", 'send {"badge": "<the scanned badge code>"}')
    db = get_db()
    try:
        out = unit.run(
            lambda: badge.resume_by_badge(
                db,
                station=station,
                badge=code,
                passed=passed,
                config=current_app.config,
                address=websession.client_address(),
                device=websession.client(),
            )
        )
    except LimsError as err:
        return _json_error(err.status, err.code, err.message)
    if not out.ok:
        return _json_error(401, out.code or "badge_refused", out.message)
    resp = jsonify(
        ok=True,
        message=out.message,
        user=out.user.username,
        full_name=out.user.full_name,
        csrf_token=out.csrf_token,
    )
    websession.set_session_cookie(resp, out.secret)
    _give_pass(resp, station, out.user.id, badge_session=out.session_id)
    return resp, 200


@bp.get("/bench/sheets/commands.pdf")
@page(*LAB)
def command_sheet() -> Response:
    """Download the sheet of command codes as scannable barcodes."""
    return _pdf(sheets.command_sheet(), "bench-command-codes.pdf")


@bp.get("/bench/sheets/badge/<username>.pdf")
@page()
def badge_sheet(username: str) -> Response:
    """Download a person's badge as a barcode (an administrator's, or one's own)."""
    return _pdf(
        sheets.badge_sheet(get_db(), username=username, actor=actor()), f"badge-{username}.pdf"
    )


def _pdf(data: bytes, name: str) -> Response:
    return Response(
        data,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


def _json_error(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify(error=code, message=message), status


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="lims.bench-pass")


def _pass_seconds() -> int:
    return int(float(current_app.config.get("BENCH_PASS_HOURS", PASS_HOURS)) * 3600)


def _read_pass(station: str) -> dict[str, Any]:
    """Return this browser's pass for station's page: people (id -> since) and badge sessions.

    A person's entry dates from their password sign-in on the page and is never renewed by a
    badge: a badge unlocks the page for PASS_HOURS after the password, not for ever.
    """
    empty: dict[str, Any] = {"people": {}, "badge_sessions": []}
    raw = request.cookies.get(PASS_COOKIE)
    if not raw or len(raw) > 3000:
        return empty
    try:
        data = _signer().loads(raw, max_age=_pass_seconds())
    except BadSignature:  # tampered, another key, or too old
        return empty
    if not isinstance(data, dict) or data.get("station") != station:
        return empty
    oldest = time.time() - _pass_seconds()
    people = {
        str(uid): since
        for uid, since in (data.get("people") or {}).items()
        if str(uid).isdigit() and isinstance(since, int | float) and since > oldest
    }
    sessions = [s for s in data.get("badge_sessions") or [] if isinstance(s, str)]
    return {"people": people, "badge_sessions": sessions[-PASS_PEOPLE:]}


def _passed(station: str) -> list[int]:
    """Return who signed in with a password on this station's page in this browser lately."""
    return [int(uid) for uid in _read_pass(station)["people"]]


def _give_pass(
    resp: Response, station: str, user_id: int, *, badge_session: str | None = None
) -> None:
    """Note in this browser's pass that user_id signed in on station's page with a password.

    A session a badge opened (badge_session, or the current one if it is one) adds nobody and
    renews nobody's entry.
    """
    data = _read_pass(station)
    people, sessions = data["people"], data["badge_sessions"]
    current = g.get("web_current")
    if badge_session is not None:
        sessions = [*sessions, badge_session[:16]][-PASS_PEOPLE:]
    elif current is not None and current.session.id[:16] not in sessions:
        # Since the password sign-in that opened this session, however often the page loads.
        people[str(user_id)] = calendar.timegm(current.session.created_at.utctimetuple())
    people = dict(sorted(people.items(), key=lambda kv: kv[1])[-PASS_PEOPLE:])
    resp.set_cookie(
        PASS_COOKIE,
        _signer().dumps({"station": station, "people": people, "badge_sessions": sessions}),
        max_age=_pass_seconds(),
        httponly=True,
        samesite="Strict",  # never sent by another site's form: the pass is its own CSRF guard
        secure=request.is_secure,
        path="/bench/",
    )
