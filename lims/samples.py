"""Sample operations: register, transition, aliquot, history, genealogy."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from pydantic import Field, model_validator
from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from lims import audit, custody, lineage, lots, signatures, storage
from lims.accounts.users import Actor
from lims.db import adopt, column_list, dialect_name, driver_execute, rows_by_id, to_db_time
from lims.errors import Conflict, NotFound, Refused
from lims.identifiers import check_coi, coi_id, sample_barcode
from lims.inputs import Input, Line, Text
from lims.listing import Page, SortKey, keyset_page, parse_sort
from lims.models import (
    Counter,
    Location,
    Organisation,
    PrintJobLabel,
    Project,
    Sample,
    SampleType,
    User,
    VectorLot,
    utcnow,
)
from lims.quality import deviations, oos, release
from lims.rooms import clearance as room_rule
from lims.rooms.status import org_name
from lims.signatures import SignatureIn

MAX_ALIQUOTS = 96


class SampleCreate(Input):
    """What a technician gives to register a sample."""

    sample_type: Line = Field(min_length=1, max_length=64, description="sample type code: PBMC")
    project: Line | None = Field(default=None, max_length=64, description="project code")
    volume: float | None = Field(default=None, gt=0, lt=1e7)
    unit: Line | None = Field(default=None, max_length=16)
    container: Line | None = Field(default=None, max_length=32)
    lot: Line | None = Field(default=None, max_length=64, description="vector lot of a vial")
    parent: Line | None = Field(default=None, max_length=64, description="parent barcode")
    coi: Line | None = Field(default=None, max_length=64, description="chain of identity id")
    coi_scheme: str = Field(default="local", pattern="^(local|isbt128)$")


class TransitionIn(Input):
    """A custody move: the action plus the fields its row of the table needs."""

    action: Line = Field(min_length=1, max_length=32)
    version: int | None = Field(default=None, ge=1, description="the version you last saw")
    condition: Text | None = Field(default=None, max_length=200)
    location: Line | None = Field(default=None, max_length=64)
    position: Line | None = Field(default=None, max_length=8)
    custodian: Line | None = Field(default=None, max_length=64)
    coi: Line | None = Field(default=None, max_length=64)
    destination: Text | None = Field(default=None, max_length=200)
    reason: Text | None = Field(default=None, max_length=2000)
    signature: SignatureIn | None = Field(
        default=None, description="release of a cell product: the QA e-signature ('release')"
    )


class AliquotIn(Input):
    count: int = Field(ge=1, le=MAX_ALIQUOTS)
    volume: float = Field(gt=0, lt=1e7)
    unit: Line = Field(min_length=1, max_length=16)
    container: Line | None = Field(default=None, max_length=32)
    location: Line | None = Field(
        default=None, max_length=64, description="a box: the aliquots go to its next free positions"
    )
    version: int | None = Field(default=None, ge=1)


def next_serial(session: Session, name: str) -> int:
    """Allocate the next number of a named counter (atomic on both engines)."""
    dialect = session.connection().dialect.name
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(Counter)
    stmt = (
        ins.values(name=name, value=1)
        .on_conflict_do_update(index_elements=[Counter.name], set_={"value": Counter.value + 1})
        .returning(Counter.value)
    )
    return session.connection().execute(stmt).scalar_one()


# --- reading -------------------------------------------------------------------------------


_BY_BARCODE = f"SELECT {column_list(Sample)} FROM sample WHERE barcode = ?"


def find_sample(session: Session, barcode: str, actor: Actor | None) -> Sample | None:
    """Return the sample with this barcode if the actor may see it, else None.

    The one way a sample is loaded by its barcode. Another organisation's sample is None, as an
    unknown one is, so that no caller reveals it exists.
    """
    # Every scan and move starts here: the row is read through the driver (lims.db.adopt).
    row = driver_execute(session, _BY_BARCODE, (barcode,)).fetchone()
    if row is None and barcode != barcode.upper():
        # Barcodes are issued in upper case; the bench reads s26-000123-k as S26-000123-K.
        row = driver_execute(session, _BY_BARCODE, (barcode.upper(),)).fetchone()
    return _visible(session, row, actor)


def get_sample(session: Session, barcode: str, actor: Actor) -> Sample:
    """Return a sample the actor may see; another organisation's sample does not exist (404)."""
    return _found(find_sample(session, barcode, actor), barcode)


def _visible(session: Session, row: Any, actor: Actor | None) -> Sample | None:
    sample = None if row is None else adopt(session, Sample, row)
    if sample is None or actor is None or not actor.can_see(sample.org_id):
        return None
    return sample


def _found(sample: Sample | None, barcode: str) -> Sample:
    if sample is None:
        raise NotFound(f"no sample {barcode!r}", code="unknown_sample")
    return sample


# Codes, names and barcodes never change once written, so their lookups by id are cached per
# database engine; every sample response needs six of them.
_IMMUTABLE = {
    (SampleType, "code"),
    (Project, "code"),
    (Organisation, "name"),
    (Location, "code"),
    (User, "username"),
    (VectorLot, "lot_number"),
    (Sample, "barcode"),
}
_ref_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _code(session: Session, model: Any, id_: int | None, attr: str) -> str | None:
    if id_ is None:
        return None
    cacheable = (model, attr) in _IMMUTABLE
    if cacheable:
        cache = _ref_cache.setdefault(session.get_bind(), {})
        hit = cache.get((model, attr, id_))
        if hit is not None:
            return hit
    obj = session.get(model, id_)
    value = getattr(obj, attr) if obj is not None else None
    if cacheable and value is not None:
        cache[(model, attr, id_)] = value
    return value


def snapshot(session: Session, s: Sample) -> dict[str, Any]:
    """Return the custody-relevant state of a sample, as recorded in audit before/after."""
    return {
        "state": s.state,
        "version": s.version,
        "location": _code(session, Location, s.location_id, "code"),
        "position": s.position,
        "custodian": _code(session, User, s.custodian_id, "username"),
        "volume": s.volume,
        "unit": s.unit,
        "condition": s.condition,
        "freeze_thaw_count": s.freeze_thaw_count,
    }


def sample_dict(session: Session, s: Sample) -> dict[str, Any]:
    """Return the public JSON of a sample."""
    return {
        "barcode": s.barcode,
        "sample_type": _code(session, SampleType, s.sample_type_id, "code"),
        "project": _code(session, Project, s.project_id, "code"),
        "organisation": _code(session, Organisation, s.org_id, "name"),
        "parent": _code(session, Sample, s.parent_id, "barcode"),
        "lineage": s.lineage,
        "lot": _code(session, VectorLot, s.lot_id, "lot_number"),
        "coi": s.coi,
        "coi_scheme": s.coi_scheme,
        "container": s.container,
        **snapshot(session, s),
        "allowed_actions": custody.allowed_actions(s.state),
        "created_at": s.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "updated_at": s.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _filtered(
    session: Session,
    actor: Actor,
    *,
    state: str | None = None,
    lot: str | None = None,
    project: str | None = None,
    location: str | None = None,
) -> Any:
    """Return SELECT sample with the filters, whatever their case (as a scan is read)."""
    stmt = select(Sample)
    if not actor.sees_all:
        stmt = stmt.where(Sample.org_id == actor.org.id)
    if state:
        stmt = stmt.where(Sample.state == state.strip().lower())
    if lot:
        lot_row = lots.find_lot(session, lot)
        stmt = stmt.where(Sample.lot_id == (lot_row.id if lot_row else -1))
    if project:
        proj = session.exec(
            select(Project.id).where(func.lower(Project.code) == project.lower())
        ).first()
        stmt = stmt.where(Sample.project_id == (proj if proj is not None else -1))
    if location:
        loc = storage.find_location(session, location)
        stmt = stmt.where(Sample.location_id == (loc.id if loc else -1))
    return stmt


def list_samples(
    session: Session,
    actor: Actor,
    *,
    state: str | None = None,
    lot: str | None = None,
    project: str | None = None,
    location: str | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[Sample]:
    """Return visible samples matching the filters, oldest first."""
    stmt = _filtered(session, actor, state=state, lot=lot, project=project, location=location)
    if after_id:
        stmt = stmt.where(Sample.id > after_id)
    return list(session.exec(stmt.order_by(Sample.id).limit(limit)).all())


_Holder = aliased(User)
_Lot = aliased(VectorLot)
_Place = aliased(Location)
_Type = aliased(SampleType)
_Proj = aliased(Project)

# What a sample list may be sorted by; nullable columns sort as '' (first when ascending).
SAMPLE_SORTS: dict[str, SortKey] = {
    "created": SortKey(Sample.created_at),
    "updated": SortKey(Sample.updated_at),
    "barcode": SortKey(Sample.barcode),
    "coi": SortKey(Sample.coi),
    "state": SortKey(Sample.state),
    "type": SortKey(_Type.code, lambda q: q.join(_Type, _Type.id == Sample.sample_type_id)),
    "project": SortKey(_Proj.code, lambda q: q.join(_Proj, _Proj.id == Sample.project_id)),
    "lot": SortKey(
        func.coalesce(_Lot.lot_number, ""), lambda q: q.outerjoin(_Lot, _Lot.id == Sample.lot_id)
    ),
    "location": SortKey(
        func.coalesce(_Place.code, ""),
        lambda q: q.outerjoin(_Place, _Place.id == Sample.location_id),
    ),
    "holder": SortKey(
        func.coalesce(_Holder.full_name, ""),
        lambda q: q.outerjoin(_Holder, _Holder.id == Sample.custodian_id),
    ),
}
SAMPLE_SORT_DEFAULT = "-created"  # newest first


def sample_page(
    session: Session,
    actor: Actor,
    *,
    state: str | None = None,
    lot: str | None = None,
    project: str | None = None,
    location: str | None = None,
    sort: str | None = None,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
    default_sort: str = SAMPLE_SORT_DEFAULT,
) -> Page:
    """Return one page of the visible samples matching the filters, sorted, with the total."""
    name, descending = parse_sort(sort, SAMPLE_SORTS, default_sort)
    stmt = _filtered(session, actor, state=state, lot=lot, project=project, location=location)
    return keyset_page(
        session,
        stmt,
        model=Sample,
        key=SAMPLE_SORTS[name],
        sort=name,
        descending=descending,
        after=after,
        before=before,
        limit=limit,
    )


def list_rows(session: Session, rows: list[Sample]) -> list[dict[str, Any]]:
    """Return what a list shows of each sample, reading each referenced table once."""
    types = rows_by_id(session, SampleType, (s.sample_type_id for s in rows))
    projects = rows_by_id(session, Project, (s.project_id for s in rows))
    lot_rows = rows_by_id(session, VectorLot, (s.lot_id for s in rows))
    places = rows_by_id(session, Location, (s.location_id for s in rows))
    holders = rows_by_id(session, User, (s.custodian_id for s in rows))
    out = []
    for s in rows:
        lot, place, holder = lot_rows.get(s.lot_id), places.get(s.location_id), None
        holder = holders.get(s.custodian_id)
        out.append(
            {
                "id": s.id,
                "barcode": s.barcode,
                "sample_type": types[s.sample_type_id].code if s.sample_type_id in types else None,
                "project": projects[s.project_id].code if s.project_id in projects else None,
                "coi": s.coi,
                "state": s.state,
                "lot": lot.lot_number if lot else None,
                "lot_state": lot.state if lot else None,
                "location": place.code if place else None,
                "position": s.position,
                "holder": holder.username if holder else None,
                "holder_name": holder.full_name if holder else None,
                "volume": s.volume,
                "unit": s.unit,
                "container": s.container,
                "created_at": s.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "updated_at": s.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return out


# --- writing -------------------------------------------------------------------------------


def _require_lab(actor: Actor, what: str) -> None:
    custody.require_role(
        actor.role, custody.HANDLERS, f"{what} needs a technician, qa or admin role"
    )


def _record(session: Session, actor: Actor, action: str, s: Sample, before, after, **kw) -> dict:  # noqa: ANN001
    return audit.record_by(
        session,
        actor,
        action=action,
        entity_type="sample",
        entity_id=s.barcode,
        before=before,
        after=after,
        org_id=s.org_id,
        lot_id=s.lot_id,
        location_id=s.location_id,
        **kw,
    )


def register_sample(session: Session, *, data: SampleCreate, actor: Actor) -> Sample:
    """Register a new sample (state registered) with its identity and lineage."""
    _require_lab(actor, "registering a sample")
    stype = session.exec(select(SampleType).where(SampleType.code == data.sample_type)).first()
    if stype is None:
        raise NotFound(f"no sample type {data.sample_type!r}", code="unknown_sample_type")
    parent = get_sample(session, data.parent, actor) if data.parent else None
    lot = None
    if data.lot:
        lot = lots.get_lot(session, data.lot, actor)
        if lot.state in ("rejected", "expired"):
            raise Refused(f"lot {lot.lot_number} is {lot.state}; no new vials", code="lot_closed")
    project = None
    if data.project:
        project = session.exec(select(Project).where(Project.code == data.project)).first()
        if project is None or not actor.can_see(project.org_id):
            raise NotFound(f"no project {data.project!r}", code="unknown_project")
    elif parent is not None:
        project = session.get(Project, parent.project_id)
    elif lot is not None:
        project = session.get(Project, lot.project_id)
    else:
        raise Refused(
            "a sample needs a project (or a parent or lot)",
            code="missing_fields",
            missing=["project"],
        )
    if parent is not None:
        if parent.state in custody.TERMINAL or parent.state == "registered":
            raise Refused(
                f"parent {parent.barcode} is {parent.state}; derive only from material in hand",
                code="parent_unusable",
            )
        if data.coi and data.coi != parent.coi:
            raise Refused(
                f"COI {data.coi} does not match the parent's {parent.coi}", code="coi_mismatch"
            )
        if project.id != parent.project_id:
            raise Refused("a derivative stays in its parent's project", code="project_mismatch")
        if lot is not None and parent.lot_id not in (None, lot.id):
            raise Refused("a derivative stays in its parent's lot", code="lot_mismatch")
    if lot is not None and project.id != lot.project_id:
        raise Refused(f"lot {lot.lot_number} belongs to another project", code="project_mismatch")
    year = utcnow().year
    serial = next_serial(session, f"sample-{year}")
    if parent is not None:
        coi, scheme = parent.coi, parent.coi_scheme
    elif data.coi:
        coi, scheme = data.coi, data.coi_scheme
        _check_new_coi(session, coi, scheme, project.org_id, actor)
    else:
        coi, scheme = coi_id(year, next_serial(session, f"coi-{year}")), "local"
    s = Sample(
        barcode=sample_barcode(year, serial),
        sample_type_id=stype.id,
        project_id=project.id,
        org_id=project.org_id,
        volume=data.volume,
        unit=data.unit,
        container=data.container,
        parent_id=parent.id if parent else None,
        lineage="derivative" if parent else None,
        lot_id=lot.id if lot else (parent.lot_id if parent else None),
        coi=coi,
        coi_scheme=scheme,
    )
    session.add(s)
    session.flush()
    after = {
        **snapshot(session, s),
        "sample_type": stype.code,
        "project": project.code,
        "coi": coi,
        "parent": parent.barcode if parent else None,
        "lineage": s.lineage,
        "lot": lot.lot_number if lot else None,
    }
    _record(session, actor, "sample.register", s, None, after)
    return s


_UPDATES: dict[tuple[str, ...], str] = {}


def _check_new_coi(session: Session, coi: str, scheme: str, org_id: int, actor: Actor) -> None:
    """Refuse a given COI that is malformed or already another organisation's patient.

    A client gives a local COI (the centre's own numbering) only for a patient of its own: one
    it does not carry is refused the same way whether unallocated or another organisation's.
    """
    if not check_coi(coi, scheme):
        raise Refused(
            f"COI {coi!r} is not a valid {scheme} Chain of Identity id (format or check character)",
            code="bad_coi",
        )
    if scheme == "local" and not actor.sees_all:
        own = session.exec(
            select(Sample.id).where(Sample.coi == coi, Sample.org_id == org_id).limit(1)
        ).first()
        if own is None:
            raise Refused(
                f"COI {coi} is not one of your organisation's patients: leave the COI empty for "
                "a new patient (one is allocated), or give the COI of a sample of yours",
                code="coi_refused",
            )
    other = session.exec(
        select(Sample.id).where(Sample.coi == coi, Sample.org_id != org_id).limit(1)
    ).first()
    if other is not None:
        # Do not confirm another organisation's identity exists: refuse without details.
        raise Refused(f"COI {coi} cannot be used for this project", code="coi_refused")


def _save(
    session: Session, s: Sample, changes: dict[str, Any], *, recorded_next: bool = True
) -> None:
    """Write changes with the optimistic lock: 409 if anyone changed the sample meanwhile.

    recorded_next: the caller appends the change's event straight after (audit's
    update_before_append). Pass False when other writes come first: they would wait for their
    locks while holding the chain's.
    """
    old = s.version
    changes = {**changes, "version": old + 1, "updated_at": utcnow()}
    keys = tuple(sorted(changes))
    sql = _UPDATES.get(keys)
    if sql is None:
        # Column names come from this module's own code, never from a request.
        sets = ", ".join(f'"{k}" = ?' for k in keys)
        sql = _UPDATES[keys] = f"UPDATE sample SET {sets} WHERE id = ? AND version = ?"
    dialect = dialect_name(session)
    values = [
        to_db_time(dialect, v) if isinstance(v, datetime) else v for v in map(changes.get, keys)
    ]
    params = (*values, s.id, old)
    if recorded_next:
        updated = audit.update_before_append(session, sql, params)
    else:
        updated = driver_execute(session, sql, params).rowcount
    if updated != 1:
        raise Conflict(
            f"sample {s.barcode} was changed by someone else; reload it and try again",
            code="version_conflict",
        )
    for k, v in changes.items():
        set_committed_value(s, k, v)


def transition(session: Session, *, barcode: str, data: TransitionIn, actor: Actor) -> Sample:
    """Apply one custody move to a sample: guards, optimistic lock, one audit event."""
    if not data.custodian:
        s = get_sample(session, barcode, actor)
        return apply_transition(session, sample=s, data=data, actor=actor)
    # The custodian is read with the sample: on PostgreSQL a statement costs about a round trip.
    row = driver_execute(session, _BY_BARCODE_WITH_USER, (data.custodian, barcode)).fetchone()
    n = len(_CUSTODIAN_COLUMNS)
    s = _found(_visible(session, None if row is None else row[:-n], actor), barcode)
    user = None if row[-n] is None else tuple(row[-n:])
    return apply_transition(session, sample=s, data=data, actor=actor, custodian_row=user)


_CUSTODIAN_COLUMNS = ("id", "active", "org_id")
_CUSTODIAN = f"SELECT {', '.join(_CUSTODIAN_COLUMNS)} FROM app_user WHERE username = ?"
_BY_BARCODE_WITH_USER = (
    f"SELECT {column_list(Sample, 's')}, {', '.join('u.' + c for c in _CUSTODIAN_COLUMNS)} "
    "FROM sample s LEFT JOIN app_user u ON u.username = ? WHERE s.barcode = ?"
)
_LOOK_UP = object()

CustodyCheck = Callable[[Session, Sample, custody.Transition, TransitionIn, Actor], None]
# Checks an area above this one adds to every custody move, once the table allowed it: the
# area that owns the rule registers it here (lims.therapy.sample_custody, a treatment
# episode's COI check), so the API, the bench and bulk moves all ask it.
CUSTODY_CHECKS: list[CustodyCheck] = []


def apply_transition(
    session: Session,
    *,
    sample: Sample,
    data: TransitionIn,
    actor: Actor,
    custodian_row: Any = _LOOK_UP,
    room_id: int | None = None,
) -> Sample:
    """Apply a custody move to a loaded sample.

    custodian_row: the (id, active, org_id) of data.custodian, or None for no such user, when
    the caller read it already. room_id: the room of the bench the move is made at.
    """
    s = sample
    if data.version is not None and data.version != s.version:
        raise Conflict(
            f"sample {s.barcode} is at version {s.version}, not {data.version}; reload it",
            code="version_conflict",
            current_version=s.version,
        )
    lot = session.get(VectorLot, s.lot_id) if s.lot_id else None
    fields = data.model_dump(exclude={"action", "version", "signature"})
    t = custody.check(
        action=data.action,
        state=s.state,
        role=actor.role,
        fields=fields,
        lot_state=lot.state if lot else None,
        lot_expired=lot_is_expired(lot),
        barcode=s.barcode,
        lot_number=lot.lot_number if lot else None,
    )
    if t.action == "release":
        deviations.refuse_release(session, what=f"sample {s.barcode}", sample=s)
        oos.refuse_release_of_derivative(session, what=f"sample {s.barcode}", sample=s)
    for name, value in fields.items():
        if value not in (None, "") and name not in t.requires and name not in t.optional:
            raise Refused(f"{data.action} takes no {name}", code="unexpected_field", field=name)
    if data.position and not data.location:
        raise Refused(
            "a position is in a box: give the box as location too",
            code="missing_fields",
            missing=["location"],
        )
    for guard in CUSTODY_CHECKS:
        # Another area's rule on this move (a treatment episode's COI check): it refuses by raising.
        guard(session, s, t, data, actor)
    if data.coi and data.coi != s.coi:
        # Identity first: a wrong patient's tube stops the move whoever holds it.
        raise Refused(
            f"COI MISMATCH - STOP: {s.barcode} carries {s.coi}, not the expected {data.coi}; "
            f"{t.action.replace('_', '-')} refused, set the tube aside and call QA",
            code="coi_mismatch",
            expected=data.coi,
        )
    # The rented rooms' rule, before anything is signed or written.
    target = storage.find_location(session, data.location) if data.location else None
    check_rooms(session, s, room_id, [s.location_id, target.id if target else None])
    quality_release = data.action == "release" and release.needs_quality_release(session, s)
    if quality_release:
        if data.signature is None:
            # The bench cannot type a password: it says where the release is done.
            raise Refused(
                f"release needs an e-signature on the sample page: {s.barcode} is a cell "
                "product with a release specification (API: 'signature', meaning 'release')",
                code="signature_required",
            )
        release.sample_release_refusal(session, s, actor)
    elif data.signature is not None:
        raise Refused(
            f"{data.action} takes no signature", code="unexpected_field", field="signature"
        )
    before = snapshot(session, s)
    sig = None
    if quality_release:
        sig = signatures.sign_required(
            session,
            actor=actor,
            given=data.signature,
            meaning="release",
            what=f"release of {s.barcode}",
            record_type="sample",
            record_id=s.barcode,
            content={**before, "state": t.target, "version": s.version + 1},
        )
    changes: dict[str, Any] = {}
    if t.target is not None:
        changes["state"] = t.target
    if data.location:
        loc, pos = storage.place(session, data.location, data.position, actor=actor)
        if data.action == "store" and loc.kind in ("site", "room"):
            # A room says where someone works with a tube, not where it is kept.
            raise Refused(
                f"{loc.code} is a {loc.kind}; store into a box, rack or storage unit "
                "(freezer, LN2 tank, incubator)",
                code="bad_location",
            )
        changes["location_id"], changes["position"] = loc.id, pos
    if data.condition:
        changes["condition"] = data.condition
    if data.custodian:
        user = custodian_row
        if user is _LOOK_UP:
            user = driver_execute(session, _CUSTODIAN, (data.custodian,)).fetchone()
        unknown = NotFound(f"no active user {data.custodian!r}", code="unknown_user")
        # The system account acts for jobs; it cannot hold a tube.
        if user is None or not user[1] or data.custodian == "system":
            raise unknown
        user_id, _, user_org = user
        if not (user_org == s.org_id or _is_centre(session, user_org)):
            if not actor.can_see(user_org):
                # A client is not told that another client organisation has such a user.
                raise unknown
            raise Refused(f"{data.custodian} may not hold this organisation's material")
        if data.action == "hand_over" and user_id == s.custodian_id:
            # Taking over what one holds already would record a hand-over that never happened.
            raise Refused(
                f"{s.barcode} is in {data.custodian}'s custody already: nothing to hand over",
                code="no_change",
            )
        changes["custodian_id"] = user_id
    if data.action in ("check_out", "ship") or (t.target in custody.TERMINAL):
        if data.action == "check_out" and storage.is_frozen(
            session, storage.location_by_id(session, s.location_id)
        ):
            changes["freeze_thaw_count"] = s.freeze_thaw_count + 1
        changes["location_id"], changes["position"] = None, None
    if data.action in ("check_in", "store", "ship", "receive") or t.target in custody.TERMINAL:
        # In a box, in transit or gone: nobody holds it any more.
        changes.setdefault("custodian_id", None)
    if data.action == "receive" and s.state == "in_transit" and not data.location:
        changes["location_id"], changes["position"] = None, None
    _save(session, s, changes)
    after = snapshot(session, s)
    if data.destination:
        after["destination"] = data.destination
    if sig is not None:
        after["signature"] = signatures.manifestation(sig)
    _record(
        session,
        actor,
        f"sample.{data.action}",
        s,
        before,
        after,
        reason=data.reason,
        signature_id=sig.id if sig else None,
    )
    return s


def check_rooms(
    session: Session, s: Sample, bench_room_id: int | None, location_ids: list[int | None]
) -> None:
    """Refuse (409) a custody move at or into a rented room not cleared for the sample's client.

    The rooms are the bench's and those of the locations the tube leaves and goes into; the
    rule is the rooms' own (rooms.clearance.use_refusal), the same for the bench, API and pages.
    """
    rooms = [bench_room_id, *(room_rule.room_of(session, i) for i in location_ids)]
    found = room_rule.custody_refusal(session, s.org_id, rooms)
    if found is None:
        return
    room, why = found
    org = org_name(session, s.org_id)
    raise Conflict(
        f"{s.barcode} ({org}'s material): {why}",
        code="room_not_cleared",
        room=room.code,
        organisation=org,
    )


def lot_is_expired(lot: VectorLot | None, today: date | None = None) -> bool:
    """Tell whether a lot's expiry date has come (whether or not `lots expire-due` ran yet)."""
    if lot is None or lot.expires_on is None:
        return False
    return lot.expires_on <= (today or utcnow().date())


def _is_centre(session: Session, org_id: int) -> bool:
    org = session.get(Organisation, org_id)
    return org is not None and org.kind == "centre"


def transition_many(
    session: Session, *, items: list[tuple[str, TransitionIn]], actor: Actor
) -> list[Sample]:
    """Apply moves to many samples in one transaction: all of them or none."""
    seen: set[str] = set()
    for barcode, _ in items:
        if barcode in seen:
            raise Refused(f"{barcode} appears twice in the request", code="duplicate_barcode")
        seen.add(barcode)
    # One query for the whole rack instead of one per tube.
    loaded = {
        s.barcode: s
        for s in session.exec(select(Sample).where(Sample.barcode.in_(sorted(seen)))).all()
        if actor.can_see(s.org_id)
    }
    out = []
    for barcode, data in items:
        if barcode not in loaded:
            raise NotFound(f"no sample {barcode!r}", code="unknown_sample")
        out.append(apply_transition(session, sample=loaded[barcode], data=data, actor=actor))
    return out


def aliquot(session: Session, *, barcode: str, data: AliquotIn, actor: Actor) -> list[Sample]:
    """Split a sample into count child aliquots; the parent's volume goes down."""
    _require_lab(actor, "aliquoting")
    parent = get_sample(session, barcode, actor)
    if data.version is not None and data.version != parent.version:
        raise Conflict(
            f"sample {barcode} is at version {parent.version}, not {data.version}; reload it",
            code="version_conflict",
            current_version=parent.version,
        )
    # Aliquoting happens in someone's hands: a checked-out tube, or quarantined material
    # sampled for QC. A tube sitting in a box is checked out first (that counts its thaw).
    if parent.state not in ("quarantine", "in_use"):
        hint = "; check it out first" if parent.state == "available" else ""
        raise Refused(
            f"cannot aliquot a sample that is {parent.state}{hint}",
            code="illegal_transition",
            state=parent.state,
        )
    lot = session.get(VectorLot, parent.lot_id) if parent.lot_id else None
    if lot is not None and (lot.state in ("on_hold", "rejected", "expired") or lot_is_expired(lot)):
        raise Refused(
            f"lot {lot.lot_number} is {lot.state if lot.state != 'released' else 'expired'}; "
            "its vials are not split",
            code="lot_closed",
        )
    if parent.state == "quarantine" and not data.location:
        raise Refused(
            "aliquots of quarantined material stay in quarantine: give the box they go into",
            code="missing_fields",
            missing=["location"],
        )
    box = storage.find_location(session, data.location) if data.location else None
    check_rooms(session, parent, None, [parent.location_id, box.id if box else None])
    total = data.count * data.volume
    new_volume = parent.volume
    if parent.volume is not None:
        if parent.unit and parent.unit != data.unit:
            raise Refused(
                f"{barcode} is measured in {parent.unit}; give aliquot volumes in {parent.unit}",
                code="unit_mismatch",
            )
        if total > parent.volume + 1e-9:
            raise Refused(
                f"{data.count} x {data.volume} {data.unit} needs {total:g} {data.unit}; "
                f"{barcode} holds {parent.volume:g}",
                code="insufficient_volume",
            )
        new_volume = round(parent.volume - total, 9)
    places: list[tuple[int | None, str | None]] = [(None, None)] * data.count
    if data.location:
        box = storage.get_location(session, data.location)
        places = [(box.id, p) for p in storage.free_positions(session, box, data.count)]
    before = snapshot(session, parent)
    parent_changes: dict[str, Any] = {"volume": new_volume}
    if parent.state == "quarantine" and storage.is_frozen(
        session, storage.location_by_id(session, parent.location_id)
    ):
        parent_changes["freeze_thaw_count"] = parent.freeze_thaw_count + 1
    # Children take serial numbers (a counter row lock) before the events are appended.
    _save(session, parent, parent_changes, recorded_next=False)
    children = []
    year = utcnow().year
    if parent.state == "quarantine":
        child_state, holder = "quarantine", None
    elif data.location:
        child_state, holder = "available", None
    else:
        # Made at the bench and not stored yet: in the operator's hands.
        child_state, holder = "in_use", actor.user.id
    for location_id, position in places:
        child = Sample(
            barcode=sample_barcode(year, next_serial(session, f"sample-{year}")),
            sample_type_id=parent.sample_type_id,
            project_id=parent.project_id,
            org_id=parent.org_id,
            volume=data.volume,
            unit=data.unit,
            container=data.container or parent.container,
            parent_id=parent.id,
            lineage="aliquot",
            lot_id=parent.lot_id,
            coi=parent.coi,
            coi_scheme=parent.coi_scheme,
            state=child_state,
            custodian_id=holder,
            location_id=location_id,
            position=position,
        )
        children.append(child)
    session.add_all(children)
    session.flush()
    after = snapshot(session, parent)
    after["aliquots"] = [c.barcode for c in children]
    _record(session, actor, "sample.aliquot", parent, before, after)
    for child in children:
        _record(
            session,
            actor,
            "sample.register",
            child,
            None,
            {
                **snapshot(session, child),
                "coi": child.coi,
                "parent": parent.barcode,
                "lineage": "aliquot",
            },
        )
    return children


def history(session: Session, s: Sample) -> list[dict[str, Any]]:
    """Return the sample's custody events, oldest first."""
    events = audit.query(session, entity_type="sample", entity_ids=[s.barcode], limit=100_000)
    return [audit.event_dict(e) for e in events]


def label_jobs(session: Session, sample_ids: list[int]) -> list[str]:
    """Return the ids (as the audit trail names them) of print jobs labelling these samples."""
    rows = session.exec(
        select(PrintJobLabel.job_id).where(col(PrintJobLabel.sample_id).in_(sample_ids)).distinct()
    ).all()
    return [str(j) for j in sorted(rows)]


def label_history(session: Session, s: Sample, actor: Actor) -> list[dict[str, Any]]:
    """Return the events of the print jobs that labelled the sample (queued, printed, reprinted).

    A client sees only events of its own organisation: a job that also labelled another
    organisation's tube or lot, or a centre box, names them (printing._scope leaves it none).
    """
    events = audit.query(
        session,
        entities=[("print_job", label_jobs(session, [s.id]))],
        org_id=None if actor.sees_all else actor.org.id,
        limit=100_000,
    )
    return [audit.event_dict(e) for e in events]


def descendants(session: Session, s: Sample) -> list[Sample]:
    """Return every descendant of s (breadth first)."""
    out: list[Sample] = []
    frontier = [s.id]
    while frontier:
        kids = list(session.exec(select(Sample).where(Sample.parent_id.in_(frontier))).all())
        out.extend(kids)
        frontier = [k.id for k in kids]
    return out


def genealogy(session: Session, s: Sample) -> dict[str, Any]:
    """Return the ancestors (root first; a pool's every parent and theirs), the samples s was
    made from and the descendant tree of s."""
    ancestors, parents = lineage.ancestors(session, s)
    kids = descendants(session, s)
    by_parent: dict[int, list[Sample]] = {}
    for k in kids:
        by_parent.setdefault(k.parent_id, []).append(k)

    def node(x: Sample) -> dict[str, Any]:
        return {**_kin(x), "children": [node(c) for c in by_parent.get(x.id, [])]}

    return {
        "barcode": s.barcode,
        "coi": s.coi,
        "ancestors": [
            {**_kin(a), "parents": [p.barcode for p in parents.get(a.id, [])]} for a in ancestors
        ],
        "parents": [p.barcode for p in parents[s.id]],
        "tree": node(s),
    }


def _kin(x: Sample) -> dict[str, Any]:
    return {"barcode": x.barcode, "state": x.state, "lineage": x.lineage, "coi": x.coi}


# --- corrections (EU GMP Annex 11 §9: a change to recorded data needs a reason) ------------

CORRECTABLE = ("volume", "unit", "condition", "container")
# Fields that only custody moves (or nothing) may change; a correction never touches them.
_NOT_CORRECTABLE = ("state", "location", "position", "custodian", "coi", "lot", "parent")


class CorrectionIn(Input):
    """A correction of recorded sample data, with the reason for it."""

    volume: float | None = Field(default=None, gt=0, lt=1e7)
    unit: Line | None = Field(default=None, min_length=1, max_length=16)
    condition: Text | None = Field(default=None, min_length=1, max_length=200)
    container: Line | None = Field(default=None, min_length=1, max_length=32)
    reason: Text | None = Field(default=None, max_length=2000, description="why (required)")
    version: int | None = Field(default=None, ge=1, description="the version you last saw")

    @model_validator(mode="before")
    @classmethod
    def _no_custody_fields(cls, values: Any) -> Any:
        if isinstance(values, dict):
            bad = [k for k in _NOT_CORRECTABLE if k in values]
            if bad:
                raise ValueError(
                    f"{', '.join(bad)} cannot be corrected: state, place and custody move only "
                    f"by transitions; correctable: {', '.join(CORRECTABLE)}"
                )
        return values


def recorded_by(session: Session, s: Sample, field: str) -> int | None:
    """Return the seq of the latest event that recorded the sample's value of field."""
    import json

    events = audit.query(session, entity_type="sample", entity_ids=[s.barcode], limit=100_000)
    for ev in reversed(events):
        after = json.loads(ev.after) if ev.after else {}
        if field not in after:
            continue
        before = json.loads(ev.before) if ev.before else None
        if before is None or before.get(field) != after[field]:
            return ev.seq  # the event that set the value (later events only carried it along)
    # Never changed by an event (e.g. the container, given at registration): the registration.
    return events[0].seq if events else None


def correct_sample(
    session: Session, *, barcode: str, data: CorrectionIn, actor: Actor
) -> tuple[Sample, dict[str, Any]]:
    """Correct recorded data of a sample: one new event, linked to the event it corrects."""
    _require_lab(actor, "correcting recorded data")
    s = get_sample(session, barcode, actor)
    if not data.reason or not data.reason.strip():
        raise Refused(
            "a correction of recorded data needs a reason",
            code="reason_required",
            missing=["reason"],
        )
    if data.version is not None and data.version != s.version:
        raise Conflict(
            f"sample {s.barcode} is at version {s.version}, not {data.version}; reload it",
            code="version_conflict",
            current_version=s.version,
        )
    given = {k: getattr(data, k) for k in CORRECTABLE if getattr(data, k) is not None}
    if not given:
        raise Refused(f"name a field to correct: {', '.join(CORRECTABLE)}", code="missing_fields")
    changes = {k: v for k, v in given.items() if getattr(s, k) != v}
    if not changes:
        raise Refused("nothing to correct: these values are recorded already", code="no_change")
    corrects = {k: recorded_by(session, s, k) for k in changes}
    before = {**snapshot(session, s), "container": s.container}
    _save(session, s, changes)
    after = {**snapshot(session, s), "container": s.container, "corrects": corrects}
    seq = max((v for v in corrects.values() if v is not None), default=None)
    reason = data.reason.strip()
    event = _record(
        session, actor, "sample.correct", s, before, after, reason=reason, corrects_seq=seq
    )
    return s, event


def first_with_coi(session: Session, coi: str, actor: Actor) -> str | None:
    """Return the barcode of the first sample actor may see that carries this COI, or None."""
    rows = session.exec(
        select(Sample.barcode, Sample.org_id).where(Sample.coi == coi).order_by(Sample.id)
    )
    return next((barcode for barcode, org_id in rows if actor.can_see(org_id)), None)


def vials_of_lot(session: Session, lot: VectorLot) -> list[dict[str, Any]]:
    """Return the vials of a lot, each with its place and who holds it."""
    # One round trip: each vial with its place and holder joined, not a lookup per kind.
    rows = session.exec(
        select(Sample, Location, User)
        .join(Location, Location.id == Sample.location_id, isouter=True)
        .join(User, User.id == Sample.custodian_id, isouter=True)
        .where(Sample.lot_id == lot.id)
        .order_by(Sample.id)
    ).all()
    return [{"s": v, "loc": place, "holder": holder} for v, place, holder in rows]


def sample_type(session: Session, s: Sample) -> SampleType:
    """Return the sample's type."""
    return session.get(SampleType, s.sample_type_id)


def custodian(session: Session, s: Sample) -> User | None:
    """Return who holds the sample, if anyone does."""
    return session.get(User, s.custodian_id) if s.custodian_id else None
