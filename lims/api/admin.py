"""Reference data and administration: organisations, locations, stations, users, tokens."""

from __future__ import annotations

from apiflask import APIBlueprint
from pydantic import Field
from sqlmodel import select

from lims import bench as benches
from lims import storage
from lims.accounts import users
from lims.boundary import current_actor, get_db, require, write
from lims.inputs import Input, Line
from lims.models import Location, Organisation, Printer, Project, SampleType, Station, User
from lims.roles import LAB

bp = APIBlueprint("admin", __name__, url_prefix="/api", tag="Reference data")


@bp.get("/health")
def health():
    """Tell whether the server and its database answer (no sign-in needed)."""
    get_db().exec(select(Organisation.id).limit(1)).first()
    return {"ok": True}


@bp.get("/organisations")
def organisations():
    """List organisations (client users see only their own)."""
    actor = current_actor()
    stmt = select(Organisation).order_by(Organisation.id)
    if not actor.sees_all:
        stmt = stmt.where(Organisation.id == actor.org.id)
    return {
        "organisations": [
            {"name": o.name, "display_name": o.display_name, "kind": o.kind}
            for o in get_db().exec(stmt).all()
        ]
    }


@bp.get("/projects")
def projects():
    """List projects you may see."""
    actor = current_actor()
    stmt = select(Project).order_by(Project.id)
    if not actor.sees_all:
        stmt = stmt.where(Project.org_id == actor.org.id)
    db = get_db()
    return {
        "projects": [
            {"code": p.code, "name": p.name, "organisation": db.get(Organisation, p.org_id).name}
            for p in db.exec(stmt).all()
        ]
    }


@bp.get("/sample-types")
def sample_types():
    """List sample types."""
    current_actor()
    return {
        "sample_types": [
            {"code": t.code, "name": t.name}
            for t in get_db().exec(select(SampleType).order_by(SampleType.id)).all()
        ]
    }


@bp.get("/locations")
def locations():
    """Return the location tree: site > room (grade) > equipment > rack > box."""
    current_actor()
    return {"locations": storage.tree(get_db())}


@bp.get("/locations/<code>")
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
        from lims.models import Sample

        rows = db.exec(
            select(Sample.position, Sample.barcode, Sample.org_id).where(
                Sample.location_id == loc.id, Sample.position.is_not(None)
            )
        ).all()
        out.update(
            rows=loc.rows,
            cols=loc.cols,
            # Another organisation's tube shows as occupied, without its identity.
            positions={p: (b if actor.can_see(o) else "occupied") for p, b, o in rows},
        )
    return out


@bp.get("/stations")
def stations():
    """List bench stations with their current operator and mode."""
    actor = require(*LAB)
    db = get_db()
    out = []
    for st in db.exec(select(Station).order_by(Station.id)).all():
        # A client's staff see another organisation's task only as "in use" (redacted: true).
        view = benches.station_view(db, st, actor)
        out.append(
            {
                "name": st.name,
                "room": db.get(Location, st.room_id).code if st.room_id else None,
                "mode": view["mode"],
                "operator": view["operator"],
                "target": view["target"],
                "redacted": view["redacted"],
            }
        )
    return {"stations": out}


@bp.get("/printers")
def printers():
    """List label printers (where each is plugged in only for the centre's lab staff)."""
    actor = current_actor()
    # A printer's URL is a device path or a network address inside the centre: not for clients.
    wiring = actor.sees_all and actor.role in ("technician", "qa", "admin")
    db = get_db()
    out = []
    for p in db.exec(select(Printer).order_by(Printer.id)).all():
        row = {
            "name": p.name,
            "language": p.language,
            "dpi": p.dpi,
            "station": db.get(Station, p.station_id).name if p.station_id else None,
            "active": p.active,
        }
        if wiring:
            row.update(url=p.url, baud=p.baud, flow=p.flow)
        out.append(row)
    return {"printers": out}


class UserIn(Input):
    username: Line = Field(min_length=1, max_length=64)
    role: Line = Field(min_length=1, max_length=32)
    org: Line = Field(min_length=1, max_length=64)
    full_name: Line | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=500)


@bp.get("/users")
def list_users():
    """List users (admin)."""
    require("admin")
    db = get_db()
    return {
        "users": [
            {
                "username": u.username,
                "full_name": u.full_name,
                "role": u.role,
                "organisation": db.get(Organisation, u.org_id).name,
                "active": u.active,
            }
            for u in db.exec(select(User).order_by(User.id)).all()
        ]
    }


@bp.post("/users")
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
    )
    return {"username": u.username, "role": u.role, "org": data.org}, 201


class TokenIn(Input):
    username: Line = Field(min_length=1, max_length=64)
    station: Line | None = Field(default=None, max_length=64)


@bp.post("/tokens")
@bp.input(TokenIn, arg_name="data")
@write
def create_token(data: TokenIn):
    """Create an API token (admin); the secret is shown once."""
    actor = require("admin")
    station = data.station or None  # "" binds to no station, so say so
    secret, tok = users.create_token(get_db(), username=data.username, station=station, actor=actor)
    return {"id": tok.id, "token": secret, "username": data.username, "station": station}, 201


@bp.delete("/tokens/<int:token_id>")
@write
def revoke_token(token_id: int):
    """Revoke an API token (admin)."""
    actor = require("admin")
    tok = users.revoke_token(get_db(), token_id=token_id, actor=actor)
    return {"id": tok.id, "revoked": True}
