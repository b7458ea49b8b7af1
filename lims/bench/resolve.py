"""What a classified scan refers to: a sample, COI, location, badge or lot the actor may see."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from lims import lots, samples, storage
from lims.accounts.users import Actor
from lims.manufacturing import materials
from lims.models import Organisation, Sample, User, VectorLot
from lims.scanning import Parsed, printable


@dataclass
class Resolved:
    """What a scan refers to in the database (or why it refers to nothing)."""

    kind: str  # sample | coi | location | badge | lot | command | gs1 | refused
    ref: str = ""
    parsed: Parsed | None = None
    obj: Any = None  # Sample, Location, User or VectorLot
    code: str | None = None
    message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Return True when the scan refers to something."""
        return self.kind != "refused"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (no database objects)."""
        out: dict[str, Any] = {"kind": self.kind, "ref": self.ref}
        if self.parsed is not None:
            if self.parsed.position:
                out["position"] = self.parsed.position
            if self.parsed.argument:
                out["argument"] = self.parsed.argument
            if self.parsed.gs1:
                out["gs1"] = self.parsed.gs1
        out.update(self.extra)
        if self.code:
            out["code"] = self.code
        return out


def _unknown(parsed: Parsed, what: str | None = None) -> Resolved:
    shown = printable(parsed.value)
    return Resolved(
        "refused",
        parsed.value,
        parsed,
        code="unknown_code",
        message=f"{shown}: {what or 'not a sample, location, badge, command or lot known here'}",
    )


def resolve(
    session: Session, parsed: Parsed, actor: Actor | None, *, person: bool = False
) -> Resolved:
    """Look a classified scan up; records the actor may not see are refused as unknown.

    person: the actor scanned it themselves (not a bench's agent, whose badge scans sign in
    whoever holds the card): a client then finds no badge of another client organisation.
    """
    if not parsed.ok:
        return Resolved("refused", "", parsed, code=parsed.code, message=parsed.message)
    if parsed.kind == "command":
        return Resolved("command", parsed.value, parsed)
    if parsed.kind == "sample":
        s = samples.find_sample(session, parsed.value, actor)
        if s is None:
            return _unknown(parsed, "no such sample is registered here")
        return Resolved("sample", s.barcode, parsed, s)
    if parsed.kind == "coi":
        return _coi(session, parsed, actor) or _unknown(parsed, "no sample carries this COI")
    if parsed.kind == "location":
        loc = storage.find_location(session, parsed.value)
        if loc is None:
            return _unknown(parsed, "no such location")
        return Resolved("location", loc.code, parsed, loc)
    if parsed.kind == "gs1":
        lot = _lot(session, (parsed.gs1 or {}).get("lot"), actor)
        if lot is None and parsed.digits:
            # Only digits: GS1 reads them as a GTIN or an AI, but they may be our own label of
            # a lot numbered with digits only.
            lot = _lot(session, parsed.digits, actor)
        if lot is not None:
            return Resolved("lot", lot.lot_number, parsed, lot)
        return Resolved("gs1", parsed.value, parsed)
    # A bare code: its shape does not say what it is, the tables do. Codes are printed in upper
    # case; one typed with caps lock off (a keyboard, gloves) names the same place or badge.
    code = parsed.value
    spellings = [code] if code == code.upper() else [code, code.upper()]
    for spelling in spellings:
        loc = storage.find_location(session, spelling)
        if loc is not None:
            return Resolved("location", loc.code, parsed, loc)
    for spelling in spellings:
        user = session.exec(select(User).where(User.badge == spelling)).first()
        if user is not None and (not person or _knows(session, actor, user)):
            return Resolved("badge", spelling, parsed, user, extra={"user": user.username})
    lot = _lot(session, code, actor)
    if lot is not None:
        return Resolved("lot", lot.lot_number, parsed, lot)
    found = _coi(session, parsed, actor)
    if found is not None:
        return found
    mat = materials.find_material(session, code, actor) if actor is not None else None
    if mat is not None:
        # A label of ours on supplier material (lims.manufacturing).
        return Resolved("material", mat.code, parsed, mat)
    return _unknown(parsed)


def _knows(session: Session, actor: Actor | None, user: User) -> bool:
    """Tell whether actor may learn that user exists: its own organisation's, or the centre's."""
    if actor is None or actor.can_see(user.org_id):
        return True
    org = session.get(Organisation, user.org_id)
    return org is not None and org.kind == "centre"


def _lot(session: Session, number: str | None, actor: Actor | None) -> VectorLot | None:
    if not number or actor is None:
        return None
    return lots.find_lot(session, number, actor)


def _coi(session: Session, parsed: Parsed, actor: Actor | None) -> Resolved | None:
    """Resolve a COI label (ours or ISBT 128) carried by a sample the actor may see."""
    if actor is None:
        return None
    stmt = select(Sample.org_id).where(Sample.coi == parsed.value)
    if not actor.sees_all:
        stmt = stmt.where(Sample.org_id == actor.org.id)
    if session.exec(stmt.limit(1)).first() is None:
        return None
    return Resolved("coi", parsed.value, parsed)
