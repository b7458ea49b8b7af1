"""What a centre sets up before its first tube: client organisations, projects, sample types,
the location tree and bench stations. Each addition is one audit event; nothing is renamed or
removed here (records and printed labels name these codes).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError
from sqlalchemy import func
from sqlmodel import Session, select

from lims import audit, labels, scanning
from lims.accounts.users import Actor, get_org, record_user_event
from lims.errors import BadRequest, Conflict, Forbidden, NotFound, Refused
from lims.inputs import Input, Line, describe
from lims.models import Location, Organisation, Project, SampleType, Station, User, VectorLot
from printers import LabelError
from printers.zpl import LabelContent, get_template, plan_label

# An organisation's short name is typed in commands and shown in exports: like helix-bio.
ORG_NAME = r"^[a-z0-9][a-z0-9-]{1,31}$"
# Codes are scanned and printed on labels; scans are read in upper case (BOX-0002:C4).
CODE = r"^[A-Z0-9][A-Z0-9-]{1,31}$"
SAMPLE_TYPE_CODE = r"^[A-Z0-9][A-Z0-9_]{1,31}$"

# Where each kind of place may sit.
PARENTS: dict[str, tuple[str | None, ...]] = {
    "site": (None,),
    "room": ("site",),
    "equipment": ("room",),
    "rack": ("equipment", "rack"),
    "box": ("equipment", "rack"),
}


# Fill characters that show as nothing although they are not spaces (Hangul fillers, the
# blank braille pattern): a name of only these prints as a blank title.
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _visible(value: str) -> str:
    value = value.strip()
    if not any(not ch.isspace() and ch not in _FILLERS for ch in value):
        raise ValueError("must hold visible text, not only spaces or blank characters")
    return value


# A name shown on pages, reports and labels: one line, visible, without outer spaces.
Name = Annotated[Line, AfterValidator(_visible)]


class OrganisationIn(Input):
    name: str = Field(pattern=ORG_NAME)
    display_name: Name = Field(max_length=200)
    kind: Literal["client", "clinical_site"] = Field(
        default="client", description="a client renting space, or a clinical site we ship to"
    )


class ProjectIn(Input):
    code: str = Field(pattern=CODE)
    name: Name = Field(max_length=200)
    org: str = Field(min_length=1, max_length=64)


class SampleTypeIn(Input):
    code: str = Field(pattern=SAMPLE_TYPE_CODE)
    name: Name = Field(max_length=200)


class LocationIn(Input):
    code: str = Field(pattern=CODE)
    name: Name = Field(max_length=200)
    kind: Literal["site", "room", "equipment", "rack", "box"]
    parent: str | None = None
    grade: Literal["A", "B", "C", "D", "CNC"] | None = None
    equipment_type: Literal["freezer", "ln2", "fridge", "incubator", "cabinet"] | None = None
    temperature: Name | None = Field(default=None, max_length=32)
    rows: int | None = Field(default=None, ge=1, le=26)
    cols: int | None = Field(default=None, ge=1, le=99)


class StationIn(Input):
    name: str = Field(pattern=CODE)
    room: str = Field(min_length=1, max_length=64)


# What a name or code must look like, said as a person would (not as the pattern).
_SHAPES = {
    ORG_NAME: "lower-case letters, digits and '-', 2 to 32 of them (like helix-bio)",
    CODE: "upper-case letters, digits and '-', 2 to 32 of them (like BOX-0104)",
    SAMPLE_TYPE_CODE: "upper-case letters, digits and '_', 2 to 32 of them (like VECTOR_VIAL)",
}


def parse(model: type[Input], **fields: Any) -> Any:
    """Build a request model, turning its validation errors into one clear 400."""
    try:
        return model(**fields)
    except ValidationError as err:
        where, said = describe(err, _SHAPES)
        raise BadRequest(f"{where}: {said}", code="bad_field", field=where) from err


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _require_admin(actor: Actor) -> None:
    if actor.role != "admin" and actor.username != "system":
        raise Forbidden("setting up the centre needs the admin role", code="role_required")


def _taken(session: Session, column: Any, value: str, what: str) -> None:
    if session.exec(select(column).where(func.lower(column) == value.lower())).first():
        raise Conflict(f"{what} {value} exists already", code="exists")


def check_new_code(session: Session, code: str, what: str) -> None:
    """Refuse a new scannable code that a scan would read as something else, or that already
    names a place, lot, station or badge (whatever the case): a bare scanned code is looked up
    in those tables in turn, so it must name exactly one thing.

    A lot number may be all digits (suppliers' often are): a scan of it that reads as GS1 is
    still looked up as a lot (lims.bench.resolve).
    """
    parsed = scanning.classify(code)
    if parsed.kind != "code" and not (what == "lot" and parsed.kind == "gs1" and code.isdigit()):
        kinds = {"sample": "sample barcode", "coi": "COI", "gs1": "GS1 code"}
        said = (
            f"a scan reads it as a {kinds.get(parsed.kind, parsed.kind)}"
            if parsed.ok
            else "a scan would refuse it (it is shaped like a sample barcode, a COI or a GS1 code)"
        )
        raise Refused(f"{code} cannot be the code of {_a(what)} {what}: {said}", code="bad_code")
    for model, column, named in (
        (Location, Location.code, "location"),
        (VectorLot, VectorLot.lot_number, "lot"),
        (Station, Station.name, "station"),
        (User, User.badge, "badge"),
    ):
        if session.exec(select(model.id).where(func.lower(column) == code.lower())).first():
            raise Conflict(f"{code} is {_a(named)} {named} already; choose another", code="exists")


def _check_label(content: LabelContent, template: str, what: str) -> None:
    """Refuse a name or code whose label could never print on the stock it goes on."""
    stock = get_template(template)
    try:
        plan_label(content, stock)
    except LabelError as err:
        part = getattr(err, "field", None)
        why = f"its {part} is too wide" if part in ("title", "barcode") else str(err)
        raise Refused(
            f"{what} cannot be printed on {template} labels ({why}{_limit(str(err), stock)}); "
            "shorten it",
            code="label_does_not_fit",
        ) from err


_DOTS = re.compile(r"(?:about )?(\d+) dots(?: wide)?\b.*?(?:room for|has) (\d+) dots")


def _limit(message: str, stock: Any) -> str:
    """Return ': 412 dots, the limit 320 dots (40.6 mm at 203 dpi)' from a fit error, or ''."""
    m = _DOTS.search(message)
    if m is None:
        return ""
    need, room = int(m.group(1)), int(m.group(2))
    mm = room / stock.dpi * 25.4
    return f": {need} dots, the limit {room} dots ({mm:.1f} mm at {stock.dpi} dpi)"


def add_record(
    session: Session, actor: Actor, obj: Any, kind: str, entity_id: str, after: dict
) -> Any:
    """Insert obj and record its creation ("<kind>.create") as one audit event."""
    session.add(obj)
    session.flush()
    audit.record(
        session,
        actor=actor.username,
        action=f"{kind}.create",
        entity_type=kind,
        entity_id=entity_id,
        after=after,
        org_id=getattr(obj, "org_id", None),
        device=actor.device,
    )
    return obj


def add_organisation(session: Session, *, data: OrganisationIn, actor: Actor) -> Organisation:
    """Add a client organisation or a clinical site (the centre itself exists from the start)."""
    _require_admin(actor)
    _taken(session, Organisation.name, data.name, "organisation")
    fields = {"name": data.name, "display_name": data.display_name, "kind": data.kind}
    return add_record(session, actor, Organisation(**fields), "organisation", data.name, fields)


def add_project(session: Session, *, data: ProjectIn, actor: Actor) -> Project:
    """Add a project of an organisation (samples and lots belong to one)."""
    _require_admin(actor)
    org = get_org(session, data.org)
    _taken(session, Project.code, data.code, "project")
    after = {"code": data.code, "name": data.name, "org": org.name}
    project = Project(code=data.code, name=data.name, org_id=org.id)
    return add_record(session, actor, project, "project", data.code, after)


def add_sample_type(session: Session, *, data: SampleTypeIn, actor: Actor) -> SampleType:
    """Add a sample type (PBMC, APHERESIS...)."""
    _require_admin(actor)
    _taken(session, SampleType.code, data.code, "sample type")
    # The name is the title of every tube label: it must fit the small stocks at both dpis.
    probe = LabelContent(barcode="S26-000000-0", title=data.name)
    for stock in ("cryovial-203", "cryovial-300", "tube-2ml-203", "tube-2ml-300"):
        _check_label(probe, stock, f"sample type name {data.name!r}")
    after = {"code": data.code, "name": data.name}
    return add_record(session, actor, SampleType(**after), "sample_type", data.code, after)


def add_location(session: Session, *, data: LocationIn, actor: Actor) -> Location:
    """Add a place to the location tree under its parent (a box needs its grid)."""
    _require_admin(actor)
    parent = None
    if data.parent is not None:
        parent = session.exec(select(Location).where(Location.code == data.parent)).first()
        if parent is None:
            raise NotFound(f"no location {data.parent!r}", code="unknown_location")
    allowed = PARENTS[data.kind]
    if (parent.kind if parent else None) not in allowed:
        where = " or ".join(f"{_a(k)} {k}" if k else "the top (no parent)" for k in allowed)
        raise Refused(f"{_a(data.kind)} {data.kind} goes in {where}", code="bad_parent")
    rules = (
        (data.kind == "box", ("rows", "cols"), "a box needs rows and cols (its grid, as 9 x 9)"),
        (data.kind == "equipment", ("equipment_type",), "equipment needs its equipment_type"),
    )
    for applies, names, message in rules:
        if applies and any(getattr(data, n) is None for n in names):
            raise Refused(message, code="missing_fields", missing=list(names))
    for name, kinds in (
        ("grade", ("room",)),
        ("equipment_type", ("equipment",)),
        ("rows", ("box",)),
        ("cols", ("box",)),
    ):
        if getattr(data, name) is not None and data.kind not in kinds:
            raise Refused(
                f"{_a(data.kind)} {data.kind} has no {name}", code="unexpected_field", field=name
            )
    check_new_code(session, data.code, "place")
    fields = data.model_dump(exclude={"parent"}, exclude_none=True)
    loc = Location(parent_id=parent.id if parent else None, **fields)
    # Places print on box stock (labels.default_stock), at either dpi.
    for stock in ("box-203", "box-300"):
        _check_label(labels.box_label(loc), stock, f"{data.kind} {data.code} ({data.name})")
    return add_record(session, actor, loc, "location", data.code, {**fields, "parent": data.parent})


def add_station(session: Session, *, data: StationIn, actor: Actor) -> Station:
    """Add a bench station in a room (its agent then needs a token: `token create --station`)."""
    _require_admin(actor)
    room = session.exec(select(Location).where(Location.code == data.room)).first()
    if room is None:
        raise NotFound(f"no location {data.room!r}", code="unknown_location")
    if room.kind != "room":
        raise Refused(f"{room.code} is {_a(room.kind)} {room.kind}, not a room", code="bad_parent")
    check_new_code(session, data.name, "station")
    station = Station(name=data.name, room_id=room.id)
    after = {"name": data.name, "room": room.code}
    return add_record(session, actor, station, "station", data.name, after)


class BadgeIn(Input):
    username: str = Field(min_length=1, max_length=64)
    badge: str = Field(pattern=CODE)


def assign_badge(session: Session, *, data: BadgeIn, actor: Actor) -> User:
    """Give a person a badge to scan at benches (replacing a lost one); one audit event.

    Scanning a badge signs its holder in, so the trail keeps none of its code.
    """
    _require_admin(actor)
    user = session.exec(select(User).where(User.username == data.username)).first()
    if user is None or user.username == "system":
        raise NotFound(f"no user {data.username!r}", code="unknown_user")
    if user.badge is not None and user.badge.lower() == data.badge.lower():
        raise Refused(f"{user.username} holds badge {data.badge} already", code="no_change")
    check_new_code(session, data.badge, "badge")
    replaced = user.badge is not None
    user.badge = data.badge
    session.add(user)
    session.flush()
    record_user_event(
        session,
        user,
        by=actor.username,
        action="user.badge",
        device=actor.device,
        after={"badge": "replaced" if replaced else "issued"},
    )
    return user


# --- reading the set-up records -------------------------------------------------------------


def list_organisations(session: Session, actor: Actor) -> list[Organisation]:
    """Return the organisations actor may see (a client: only its own)."""
    stmt = select(Organisation).order_by(Organisation.id)
    if not actor.sees_all:
        stmt = stmt.where(Organisation.id == actor.org.id)
    return list(session.exec(stmt).all())


def list_projects(session: Session, actor: Actor) -> list[tuple[Project, Organisation]]:
    """Return the projects actor may see, each with its organisation."""
    stmt = (
        select(Project, Organisation)
        .join(Organisation, Organisation.id == Project.org_id)
        .order_by(Project.id)
    )
    if not actor.sees_all:
        stmt = stmt.where(Project.org_id == actor.org.id)
    return list(session.exec(stmt).all())


def list_sample_types(session: Session) -> list[SampleType]:
    """Return every sample type."""
    return list(session.exec(select(SampleType).order_by(SampleType.id)).all())


def code_maps(session: Session) -> dict[str, dict[int, str]]:
    """Return id -> code of sample types, projects and locations (to show rows by their codes)."""
    return {
        "types": {t.id: t.code for t in session.exec(select(SampleType))},
        "projects": {p.id: p.code for p in session.exec(select(Project))},
        "places": {loc.id: loc.code for loc in session.exec(select(Location))},
    }
