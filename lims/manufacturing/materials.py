"""Material lots (reagents, media, plasmids, cell banks): received by GS1 scan, released by QA.

A supplier's GS1 barcode says what the item is (GTIN, AI 01), its lot (AI 10), its expiry
(AI 17) and, for serialised items, its serial (AI 21). Receiving one records a material lot in
quarantine; QA releases it with an electronic signature; only released, in-date material may go
into a vector lot (lims.manufacturing.genealogy asks usable_refusal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import Field
from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from lims import audit, scanning, signatures
from lims.accounts.users import Actor
from lims.errors import BadRequest, Conflict, Forbidden, NotFound, Refused
from lims.inputs import Day, Input, Line, Text, blank
from lims.listing import Page, SortKey, keyset_page, parse_sort
from lims.manufacturing.models import MATERIAL_CATEGORIES, MaterialKind, MaterialLot
from lims.models import Counter, Organisation, Signature, User, utcnow
from lims.roles import LAB, QA
from lims.signatures import SignatureIn
from printers.zpl import LabelContent

# Who sets up what kinds of material the centre buys.
KIND_EDITORS = ("admin", "qa")


@dataclass(frozen=True)
class MaterialTransition:
    action: str
    sources: frozenset[str]
    target: str
    roles: frozenset[str]
    signature: str | None = None  # the meaning a signature must carry, if one is needed
    needs_reason: bool = False


MATERIAL_TRANSITIONS: dict[str, MaterialTransition] = {
    t.action: t
    for t in (
        MaterialTransition(
            "release", frozenset({"quarantine"}), "released", frozenset(QA), "release"
        ),
        MaterialTransition(
            "reject",
            frozenset({"quarantine", "released"}),
            "rejected",
            frozenset(QA),
            "rejection",
            needs_reason=True,
        ),
        # Used up: the last of it went into a lot, or what is left was discarded.
        MaterialTransition("consume", frozenset({"released"}), "consumed", frozenset(LAB)),
        # By date only (expire refuses before the expiry date has passed).
        MaterialTransition(
            "expire", frozenset({"quarantine", "released"}), "expired", frozenset(LAB)
        ),
    )
}
MATERIAL_STATES = ("quarantine", "released", "consumed", "expired", "rejected")


class KindCreate(Input):
    code: Line = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: Line = Field(min_length=1, max_length=200)
    category: Line = Field(description="reagent, medium, plasmid, cell_bank or consumable")
    gtin: Line | None = Field(default=None, description="the product's GTIN (GS1 AI 01)")
    supplier: Line | None = Field(default=None, max_length=200)


class ReceiveScan(Input):
    """A supplier barcode as scanned (GS separators kept), e.g. ']d2010...17261100101234'."""

    data: str = Field(min_length=1, max_length=scanning.MAX_SCAN_LENGTH)
    symbology: Line | None = Field(default=None, max_length=8)


class ReceiveManual(Input):
    """An item without a GS1 barcode: what its label and certificate say."""

    kind: Line = Field(min_length=1, max_length=64)
    supplier_lot: Line = Field(min_length=1, max_length=20)
    serial: Line | None = Field(default=None, max_length=20)
    expires_on: Day


class MaterialTransitionIn(Input):
    action: Line = Field(min_length=1, max_length=32)
    version: int | None = Field(default=None, ge=1)
    reason: Text | None = Field(default=None, max_length=2000)
    signature: SignatureIn | None = None


# --- kinds -------------------------------------------------------------------------------------


def gtin_check_digit_ok(gtin: str) -> bool:
    """Tell whether a 14-digit GTIN's last digit is its GS1 mod-10 check digit."""
    body, check = gtin[:-1], int(gtin[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def normal_gtin(gtin: str) -> str:
    """Return a GTIN-8/12/13/14 as the 14 digits AI 01 carries, or refuse it (400)."""
    digits = gtin.strip()
    if not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        raise BadRequest(f"GTIN {gtin!r}: 8, 12, 13 or 14 digits", code="bad_gtin")
    digits = digits.zfill(14)
    if not gtin_check_digit_ok(digits):
        raise BadRequest(f"GTIN {gtin}: wrong check digit", code="bad_gtin")
    return digits


def create_kind(session: Session, *, data: KindCreate, actor: Actor) -> MaterialKind:
    """Set up a kind of material (admin or QA of the centre)."""
    if actor.role not in KIND_EDITORS or not actor.sees_all:
        raise Forbidden(
            "material kinds are set up by the centre's admin or QA", code="role_required"
        )
    if data.category not in MATERIAL_CATEGORIES:
        raise BadRequest(
            f"category {data.category!r}: one of {', '.join(MATERIAL_CATEGORIES)}",
            code="bad_category",
        )
    gtin = normal_gtin(data.gtin) if data.gtin else None
    if session.exec(
        select(MaterialKind.id).where(func.lower(MaterialKind.code) == data.code.lower())
    ).first():
        raise Conflict(f"material kind {data.code} exists already", code="exists")
    if gtin and session.exec(select(MaterialKind).where(MaterialKind.gtin == gtin)).first():
        raise Conflict(f"GTIN {gtin} names another material kind already", code="exists")
    kind = MaterialKind(
        code=data.code, name=data.name, category=data.category, gtin=gtin, supplier=data.supplier
    )
    session.add(kind)
    session.flush()
    audit.record_by(
        session,
        actor,
        action="material_kind.create",
        entity_type="material_kind",
        entity_id=kind.code,
        after=kind_dict(kind),
        org_id=actor.org.id,
    )
    return kind


def kind_dict(kind: MaterialKind) -> dict[str, Any]:
    """Return the public JSON of a material kind."""
    return {
        "code": kind.code,
        "name": kind.name,
        "category": kind.category,
        "gtin": kind.gtin,
        "supplier": kind.supplier,
    }


def list_kinds(session: Session, actor: Actor) -> list[MaterialKind]:
    """Return every material kind, by code (the centre's catalogue: any signed-in user)."""
    del actor  # asked for so that no caller lists them without a signed-in user
    return list(session.exec(select(MaterialKind).order_by(MaterialKind.code)).all())


def get_kind(session: Session, code: str) -> MaterialKind:
    """Return the material kind called code (any case), or 404."""
    kind = session.exec(
        select(MaterialKind).where(func.lower(MaterialKind.code) == code.strip().lower())
    ).first()
    if kind is None:
        raise NotFound(f"no material kind {code[:64]!r}", code="unknown_material_kind")
    return kind


# --- receipt -----------------------------------------------------------------------------------


def _next_code(session: Session, year: int) -> str:
    """Allocate our own id of a material lot: MAT-26-000001 (one centre-wide sequence a year)."""
    dialect = session.connection().dialect.name
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(Counter)
    stmt = (
        ins.values(name=f"material-{year}", value=1)
        .on_conflict_do_update(index_elements=[Counter.name], set_={"value": Counter.value + 1})
        .returning(Counter.value)
    )
    serial = session.connection().execute(stmt).scalar_one()
    return f"MAT-{year % 100:02d}-{serial:06d}"


@dataclass(frozen=True)
class Gs1Item:
    """What a supplier's GS1 barcode says of one item."""

    gtin: str
    lot: str
    expires_on: date
    serial: str
    hri: str


def read_gs1(data: str, symbology: str | None = None) -> Gs1Item:
    """Read a supplier's GS1 barcode, or refuse (422) saying what is wrong or missing.

    biip parses it: a GTIN with a wrong check digit is a misread; an expiry with day 00 means
    the last day of that month (GS1 General Specifications 3.4.x); a variable-length field
    (lot, serial) ends at a GS separator or at the end of the scan.
    """
    parsed = scanning.classify(data, symbology)
    if not parsed.ok:
        raise Refused(parsed.message or "unreadable scan", code=parsed.code or "gs1_unreadable")
    if parsed.kind != "gs1" or not parsed.gs1:
        raise Refused(
            f"{scanning.printable(data)} is not a supplier's GS1 barcode; scan the GS1 "
            "DataMatrix or GS1-128 on the item, or receive it by hand",
            code="not_gs1",
        )
    fields = parsed.gs1
    missing = [
        name
        for name, ai in (("gtin", "01"), ("lot", "10"), ("expiry", "17"))
        if not fields.get(name)
    ]
    if missing:
        said = ", ".join(
            f"{n} (AI {ai})"
            for n, ai in (("gtin", "01"), ("lot", "10"), ("expiry", "17"))
            if n in missing
        )
        raise Refused(
            f"the GS1 code {fields.get('hri')} has no {said}; receive it by hand with the "
            "values from its label or certificate",
            code="gs1_incomplete",
            missing=missing,
        )
    return Gs1Item(
        gtin=fields["gtin"],
        lot=fields["lot"],
        expires_on=date.fromisoformat(fields["expiry"]),
        serial=fields.get("serial") or "",
        hri=fields.get("hri") or "",
    )


def receive_scan(
    session: Session, *, data: str, actor: Actor, symbology: str | None = None
) -> MaterialLot:
    """Receive the item a supplier's GS1 barcode describes into quarantine."""
    _can_receive(actor)
    item = read_gs1(data, symbology)
    kind = session.exec(select(MaterialKind).where(MaterialKind.gtin == item.gtin)).first()
    if kind is None:
        raise Refused(
            f"no material kind has GTIN {item.gtin}; QA or an admin sets it up first "
            f"(flask setup material-kind CODE NAME --category ... --gtin {item.gtin})",
            code="unknown_gtin",
            gtin=item.gtin,
        )
    return _receive(session, actor, kind, item.lot, item.serial, item.expires_on, item.hri)


def receive_manual(
    session: Session, *, data: ReceiveManual, actor: Actor, today: date | None = None
) -> MaterialLot:
    """Receive an item that carries no GS1 barcode (it gets a label of ours)."""
    _can_receive(actor)
    kind = get_kind(session, data.kind)
    serial = (data.serial or "").strip()
    return _receive(
        session, actor, kind, data.supplier_lot.strip(), serial, data.expires_on, None, today
    )


def _can_receive(actor: Actor) -> None:
    if actor.role not in LAB or not actor.sees_all:
        raise Forbidden("materials are received by the centre's lab staff", code="role_required")


def _receive(
    session: Session,
    actor: Actor,
    kind: MaterialKind,
    supplier_lot: str,
    serial: str,
    expires_on: date,
    hri: str | None,
    today: date | None = None,
) -> MaterialLot:
    if len(supplier_lot) > 20 or len(serial) > 20:
        raise BadRequest("a supplier lot and a serial are at most 20 characters (GS1)")
    existing = session.exec(
        select(MaterialLot).where(
            MaterialLot.kind_id == kind.id,
            MaterialLot.supplier_lot == supplier_lot,
            MaterialLot.serial == serial,
        )
    ).first()
    if existing is not None:
        item = f"serial {serial}" if serial else f"lot {supplier_lot}"
        raise Conflict(
            f"{kind.name} {item} was received already as {existing.code} ({existing.state})",
            code="already_received",
            material=existing.code,
        )
    # today: the day of receipt (the demo receives an item as it was months ago).
    today = today or utcnow().date()
    if expires_on < today:
        raise Refused(
            f"{kind.name} lot {supplier_lot} expired on {expires_on.isoformat()}; "
            "it is not received (return or discard it)",
            code="material_expired",
        )
    mat = MaterialLot(
        code=_next_code(session, utcnow().year),
        kind_id=kind.id,
        org_id=actor.org.id,
        supplier_lot=supplier_lot,
        serial=serial,
        expires_on=expires_on,
        gs1=hri[:200] if hri else None,
        received_by_id=actor.user.id,
    )
    session.add(mat)
    session.flush()
    _record(session, actor, "material.receive", mat, None, snapshot(session, mat))
    return mat


# --- reading -----------------------------------------------------------------------------------


def find_material(session: Session, code: str, actor: Actor) -> MaterialLot | None:
    """Return the material lot with our id code (any case) that actor may see, or None."""
    # Our codes are printed and stored in capitals: equality uses the unique index.
    mat = session.exec(select(MaterialLot).where(MaterialLot.code == code.strip().upper())).first()
    if mat is None or not actor.can_see(mat.org_id):
        return None
    return mat


def get_material(session: Session, code: str, actor: Actor) -> MaterialLot:
    """Return a material lot actor may see, or 404."""
    mat = find_material(session, code, actor)
    if mat is None:
        raise NotFound(f"no material lot {code[:64]!r}", code="unknown_material")
    return mat


def material_by_scan(session: Session, scan: str, actor: Actor) -> MaterialLot:
    """Return the material lot a scan names: our code (MAT-26-000001) or the supplier's GS1 code.

    A GS1 scan names a kind (GTIN), a supplier lot and a serial: the material lot received so.
    """
    text = scan.strip()
    if text.upper().startswith("MAT-"):
        return get_material(session, text, actor)
    item = read_gs1(scan)
    mat = session.exec(
        select(MaterialLot)
        .join(MaterialKind, MaterialKind.id == MaterialLot.kind_id)
        .where(
            MaterialKind.gtin == item.gtin,
            MaterialLot.supplier_lot == item.lot,
            MaterialLot.serial == item.serial,
        )
    ).first()
    if mat is None or not actor.can_see(mat.org_id):
        raise NotFound(
            f"{item.hri} was never received here; receive it first (CMD:RECEIVE-MATERIAL)",
            code="unknown_material",
        )
    return mat


MATERIAL_SORTS: dict[str, SortKey] = {
    "received": SortKey(MaterialLot.id),
    "code": SortKey(MaterialLot.code),
    "kind": SortKey(
        MaterialKind.code,
        join=lambda s: s.join(MaterialKind, MaterialKind.id == MaterialLot.kind_id),
    ),
    "supplier_lot": SortKey(MaterialLot.supplier_lot),
    "expires": SortKey(MaterialLot.expires_on),
    "state": SortKey(MaterialLot.state),
}
MATERIAL_SORT_DEFAULT = "-received"  # newest first


def material_page(
    session: Session,
    actor: Actor,
    *,
    state: str | None = None,
    kind: str | None = None,
    sort: str | None = None,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page:
    """Return one page of the material lots actor may see, filtered, sorted, with a total."""
    name, descending = parse_sort(sort, MATERIAL_SORTS, MATERIAL_SORT_DEFAULT)
    return keyset_page(
        session,
        _material_query(session, actor, state=state, kind=kind),
        model=MaterialLot,
        key=MATERIAL_SORTS[name],
        sort=name,
        descending=descending,
        after=after,
        before=before,
        limit=limit,
    )


def list_materials(
    session: Session, actor: Actor, *, state: str | None = None, kind: str | None = None
) -> list[MaterialLot]:
    """Return the material lots actor may see, newest first, filtered by state and kind."""
    stmt = _material_query(session, actor, state=state, kind=kind)
    return list(session.exec(stmt.order_by(MaterialLot.id.desc()).limit(1000)).all())


def _material_query(session: Session, actor: Actor, *, state: str | None, kind: str | None) -> Any:
    stmt = select(MaterialLot)
    if not actor.sees_all:
        stmt = stmt.where(MaterialLot.org_id == actor.org.id)
    if state:
        stmt = stmt.where(MaterialLot.state == state.strip().lower())
    if kind:
        k = session.exec(
            select(MaterialKind.id).where(func.lower(MaterialKind.code) == kind.strip().lower())
        ).first()
        stmt = stmt.where(MaterialLot.kind_id == (k if k is not None else -1))
    return stmt


def snapshot(session: Session, mat: MaterialLot) -> dict[str, Any]:
    """Return the material lot content that audit events and signatures bind to."""
    kind = session.get(MaterialKind, mat.kind_id)
    return {
        "code": mat.code,
        "kind": kind.code,
        "gtin": kind.gtin,
        "supplier_lot": mat.supplier_lot,
        "serial": mat.serial or None,
        "expires_on": mat.expires_on.isoformat(),
        "state": mat.state,
        "version": mat.version,
    }


def material_dict(session: Session, mat: MaterialLot, today: date | None = None) -> dict[str, Any]:
    """Return the public JSON of a material lot, with why it may not be used now (if so)."""
    kind = session.get(MaterialKind, mat.kind_id)
    who = session.get(User, mat.received_by_id)
    releaser = session.get(User, mat.released_by_id) if mat.released_by_id else None
    sig = session.get(Signature, mat.signature_id) if mat.signature_id else None
    return {
        **snapshot(session, mat),
        "name": kind.name,
        "category": kind.category,
        "organisation": session.get(Organisation, mat.org_id).name,
        "gs1": mat.gs1,
        "received_by": who.username if who else None,
        "received_at": mat.received_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "released_by": releaser.username if releaser else None,
        "signature": signatures.signature_dict(sig) if sig else None,
        "allowed_actions": [a for a, t in MATERIAL_TRANSITIONS.items() if mat.state in t.sources],
        "unusable_because": usable_refusal(mat, today or utcnow().date()),
    }


def material_label(session: Session, mat: MaterialLot, reprint: bool = False) -> LabelContent:
    """Return the label of ours for a material lot: our code, its kind, supplier lot, expiry."""
    kind = session.get(MaterialKind, mat.kind_id)
    return LabelContent(
        barcode=mat.code,
        title=kind.code,
        lot=mat.supplier_lot,
        date=f"EXP {mat.expires_on.isoformat()}",
        reprint=reprint,
    )


def usable_refusal(mat: MaterialLot, today: date) -> str | None:
    """Return why mat may not go into a lot today (state or expiry), or None when it may."""
    if mat.state != "released":
        words = {
            "quarantine": "in quarantine: QA has not released it",
            "consumed": "used up (consumed)",
            "expired": "expired",
            "rejected": "rejected by QA",
        }
        return f"material {mat.code} is {words.get(mat.state, mat.state)}"
    if mat.expires_on < today:
        return f"material {mat.code} expired on {mat.expires_on.isoformat()}"
    return None


# --- disposition -------------------------------------------------------------------------------


def transition(
    session: Session,
    *,
    code: str,
    data: MaterialTransitionIn,
    actor: Actor,
    today: date | None = None,
) -> MaterialLot:
    """Move a material lot along its table; release and reject need a QA e-signature."""
    t = MATERIAL_TRANSITIONS.get(data.action)
    if t is not None and actor.role not in t.roles:
        # The role first: someone who may never do this learns nothing of the material.
        raise Forbidden(
            f"{data.action} needs the role {' or '.join(sorted(t.roles))}", code="role_required"
        )
    mat = get_material(session, code, actor)
    if data.version is not None and data.version != mat.version:
        raise Conflict(
            f"material {mat.code} is at version {mat.version}, not {data.version}",
            code="version_conflict",
            current_version=mat.version,
        )
    allowed = [a for a, x in MATERIAL_TRANSITIONS.items() if mat.state in x.sources]
    if t is None or mat.state not in t.sources:
        raise Refused(
            f"cannot {data.action} material that is {mat.state}; "
            f"allowed: {', '.join(allowed) or 'none'}",
            code="illegal_transition" if t else "unknown_action",
            state=mat.state,
            allowed=allowed,
        )
    if t.needs_reason and blank(data.reason):
        raise Refused(f"{data.action} needs a reason", code="missing_fields", missing=["reason"])
    today = today or utcnow().date()
    if data.action == "expire" and mat.expires_on >= today:
        raise Refused(
            f"material {mat.code} expires on {mat.expires_on.isoformat()}; not yet",
            code="not_expired",
        )
    if data.action == "release":
        if mat.expires_on < today:
            raise Refused(
                f"material {mat.code} expired on {mat.expires_on.isoformat()}; "
                "it cannot be released",
                code="material_expired",
            )
        if mat.received_by_id == actor.user.id:
            # Four eyes: who received and checked it in is not who releases it.
            raise Refused(
                f"you received {mat.code}; another QA person releases it",
                code="four_eyes",
            )
    before = snapshot(session, mat)
    sig = None
    if t.signature:
        if data.signature is None:
            raise Refused(
                f"{data.action} needs an electronic signature (password and meaning)",
                code="signature_required",
            )
        if data.signature.meaning != t.signature:
            raise BadRequest(
                f"{data.action} is signed with the meaning {t.signature!r}",
                code="signature_meaning",
            )
        sig = signatures.sign(
            session,
            actor=actor,
            password=data.signature.password,
            meaning=data.signature.meaning,
            username=data.signature.username,
            record_type="material",
            record_id=mat.code,
            content={**before, "state": t.target, "version": mat.version + 1},
        )
    elif data.signature is not None:
        raise BadRequest(f"{data.action} takes no signature", code="unexpected_field")
    changes: dict[str, Any] = {"state": t.target}
    if sig is not None:
        changes["signature_id"] = sig.id
        if t.target == "released":
            changes["released_by_id"] = actor.user.id
    _save(session, mat, changes)
    after = snapshot(session, mat)
    if sig is not None:
        after["signature"] = signatures.manifestation(sig)
    _record(
        session,
        actor,
        f"material.{data.action}",
        mat,
        before,
        after,
        data.reason,
        signature_id=sig.id if sig else None,
    )
    return mat


def _save(session: Session, mat: MaterialLot, changes: dict[str, Any]) -> None:
    old = mat.version
    changes = {**changes, "version": old + 1, "updated_at": utcnow()}
    res = session.connection().execute(
        update(MaterialLot)
        .where(MaterialLot.id == mat.id, MaterialLot.version == old)
        .values(**changes)
    )
    if res.rowcount != 1:
        raise Conflict(
            f"material {mat.code} was changed by someone else; reload it",
            code="version_conflict",
        )
    for k, v in changes.items():
        set_committed_value(mat, k, v)


def _record(
    session: Session,
    actor: Actor,
    action: str,
    mat: MaterialLot,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    reason: str | None = None,
    **kw: Any,
) -> None:
    audit.record_by(
        session,
        actor,
        action=action,
        entity_type="material",
        entity_id=mat.code,
        before=before,
        after=after,
        reason=reason,
        org_id=mat.org_id,
        **kw,
    )


def due_for_expiry(session: Session, today: date | None = None) -> list[str]:
    """Return the codes of material lots in quarantine or released whose expiry has passed."""
    today = today or utcnow().date()
    return list(
        session.exec(
            select(MaterialLot.code)
            .where(
                MaterialLot.state.in_(MATERIAL_TRANSITIONS["expire"].sources),
                MaterialLot.expires_on < today,
            )
            .order_by(MaterialLot.id)
        ).all()
    )


def expire(session: Session, *, code: str, actor: Actor, today: date | None = None) -> MaterialLot:
    """Move one material lot past its expiry to expired (one audit event)."""
    return transition(
        session, code=code, data=MaterialTransitionIn(action="expire"), actor=actor, today=today
    )
