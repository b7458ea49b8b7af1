"""Reference data and administration: organisations, locations, stations, users, tokens."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app
from pydantic import Field

from lims import bench as benches
from lims import masterdata, printing, storage
from lims.accounts import admin as account_admin
from lims.accounts import passwords, throttle, users
from lims.api import schemas
from lims.api.schemas import READ, WRITE, answers
from lims.boundary import current_actor, get_db, keeps_secret, require, unit, write
from lims.inputs import Input, Line, Text
from lims.roles import LAB

bp = APIBlueprint("admin", __name__, url_prefix="/api", tag="Reference data")


@bp.get("/health")
@answers(bp, schemas.HealthOut, 400)
def health():
    """Tell whether the server and its database answer (no sign-in needed)."""
    unit.database_answers()
    return {"ok": True}


@bp.get("/organisations")
@answers(bp, schemas.OrganisationsOut, *READ)
def organisations():
    """List organisations (client users see only their own)."""
    rows = masterdata.list_organisations(get_db(), current_actor())
    return {
        "organisations": [
            {"name": o.name, "display_name": o.display_name, "kind": o.kind} for o in rows
        ]
    }


@bp.get("/projects")
@answers(bp, schemas.ProjectsOut, *READ)
def projects():
    """List projects you may see."""
    rows = masterdata.list_projects(get_db(), current_actor())
    return {
        "projects": [{"code": p.code, "name": p.name, "organisation": org.name} for p, org in rows]
    }


@bp.get("/sample-types")
@answers(bp, schemas.SampleTypesOut, *READ)
def sample_types():
    """List sample types."""
    current_actor()
    return {
        "sample_types": [
            {"code": t.code, "name": t.name} for t in masterdata.list_sample_types(get_db())
        ]
    }


@bp.get("/locations")
@answers(bp, schemas.LocationsOut, *READ)
def locations():
    """Return the location tree: site > room (grade) > equipment > rack > box."""
    current_actor()
    return {"locations": storage.tree(get_db())}


@bp.get("/locations/<code>")
@answers(bp, schemas.LocationOut, *READ, 404)
def location(code: str):
    """Return one location; a box lists which position holds which sample."""
    actor = current_actor()
    db = get_db()
    loc = storage.get_location(db, code)
    out = {
        "code": loc.code,
        "name": loc.name,
        "kind": loc.kind,
        "grade": loc.grade,
        "path": storage.path_text(db, loc),
    }
    if loc.kind == "box":
        # Another organisation's tube shows as occupied, without its identity.
        out.update(rows=loc.rows, cols=loc.cols, positions=storage.box_positions(db, loc, actor))
    return out


@bp.get("/stations")
@answers(bp, schemas.StationsOut, *READ, 403)
def stations():
    """List bench stations with their current operator and mode."""
    actor = require(*LAB)
    # A client's staff see another organisation's task only as "in use" (redacted: true).
    rows = benches.list_stations(get_db(), actor)
    return {
        "stations": [
            {
                "name": row["station"].name,
                "room": row["room"].code if row["room"] else None,
                "mode": row["view"]["mode"],
                "operator": row["view"]["operator"],
                "target": row["view"]["target"],
                "redacted": row["view"]["redacted"],
            }
            for row in rows
        ]
    }


@bp.get("/printers")
@answers(bp, schemas.PrintersOut, *READ)
def printers():
    """List label printers (where each is plugged in only for the centre's lab staff)."""
    every_s = float(current_app.config["PRINTER_STATUS_EVERY_S"])
    return {"printers": printing.list_printers(get_db(), current_actor(), every_s=every_s)}


class UserIn(Input):
    username: Line = Field(min_length=1, max_length=64)
    role: Line = Field(min_length=1, max_length=32)
    org: Line = Field(min_length=1, max_length=64)
    full_name: Line | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=500)


@bp.get("/users")
@answers(bp, schemas.UsersOut, *READ, 403)
def list_users():
    """List users (admin)."""
    require("admin")
    return {
        "users": [
            {
                "username": u.username,
                "full_name": u.full_name,
                "role": u.role,
                "organisation": org.name,
                "active": u.active,
                "locked": throttle.is_locked(u),
                "must_change_password": u.must_change_password,
            }
            for u, org in users.list_users(get_db())
        ]
    }


@bp.post("/users")
@answers(bp, schemas.UserCreated, *WRITE, 404, 413, status=201)
@bp.input(UserIn, arg_name="data")
@write
def create_user(data: UserIn):
    """Create a user (admin); the password is stored only as an argon2id hash."""
    actor = require("admin")
    u = users.create_user(
        get_db(),
        username=data.username,
        role=data.role,
        org=data.org,
        password=data.password,
        full_name=data.full_name,
        actor=actor,
        config=current_app.config,
    )
    return {"username": u.username, "role": u.role, "org": data.org}, 201


class TokenIn(Input):
    username: Line = Field(min_length=1, max_length=64)
    station: Line | None = Field(default=None, max_length=64)
    days: int | None = Field(
        default=None, ge=1, le=users.MAX_TOKEN_DAYS, description="default: the TOKEN_DAYS setting"
    )


@bp.post("/tokens")
@answers(bp, schemas.TokenCreated, *WRITE, 404, 413, status=201)
@bp.input(TokenIn, arg_name="data")
@write
@keeps_secret("token")
def create_token(data: TokenIn):
    """Create an API token (admin); the secret is shown once."""
    actor = require("admin")
    station = data.station or None  # "" binds to no station, so say so
    days = data.days or int(current_app.config["TOKEN_DAYS"])
    secret, tok = users.create_token(
        get_db(), username=data.username, station=station, actor=actor, days=days
    )
    return {
        "id": tok.id,
        "token": secret,
        "username": data.username,
        "station": station,
        "expires_at": tok.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }, 201


@bp.delete("/tokens/<int:token_id>")
@answers(bp, schemas.TokenRevoked, 400, 401, 403, 404, 409, 422)
@write
def revoke_token(token_id: int):
    """Revoke an API token (admin)."""
    actor = require("admin")
    tok = users.revoke_token(get_db(), token_id=token_id, actor=actor)
    return {"id": tok.id, "revoked": True}


class ReasonIn(Input):
    reason: Text = Field(min_length=1, max_length=2000)


@bp.post("/users/<username>/unlock")
@answers(bp, schemas.UnlockedOut, *WRITE, 404)
@bp.input(ReasonIn, arg_name="data")
@write
def unlock_user(username: str, data: ReasonIn):
    """End an account's wait after wrong passwords (admin), with a reason."""
    actor = require("admin")
    u = account_admin.unlock_user(get_db(), username=username, reason=data.reason, actor=actor)
    return {"username": u.username, "locked": False}


@bp.post("/users/<username>/password-reset")
@answers(bp, schemas.PasswordResetOut, *WRITE, 404)
@bp.input(ReasonIn, arg_name="data")
def reset_password(username: str, data: ReasonIn):
    """Reset a password (admin): a one-time password, to change at the next sign-in."""
    actor = require("admin")
    # Not an idempotent write: its answer holds a password, which must not be kept for replay.
    temporary = unit.run(
        lambda: account_admin.reset_password(
            get_db(), username=username, reason=data.reason, actor=actor, config=current_app.config
        )
    )
    return {"username": username, "temporary_password": temporary, "must_change_password": True}


class PasswordChangeIn(Input):
    current_password: str = Field(min_length=1, max_length=500)
    new_password: str = Field(min_length=1, max_length=500)


@bp.post("/account/password")
@answers(bp, schemas.PasswordChangedOut, *WRITE, 429)
@bp.input(PasswordChangeIn, arg_name="data")
def change_password(data: PasswordChangeIn):
    """Change your own password (the current one is checked, and throttled like sign-in)."""
    actor = current_actor()
    unit.run(
        lambda: passwords.change_password(
            get_db(),
            user=actor.user,
            current=data.current_password,
            new=data.new_password,
            config=current_app.config,
            address=throttle.CLIENT_ADDRESS.get(),
        )
    )
    return {"username": actor.username, "changed": True}
