"""Patients and donors: identifiers for the centre's QA and admin only; everyone else the COI.

The identifiers (name, date of birth, hospital id) never go into the audit trail, which client
users of the organisation may read: the trail records that they were written and, each time,
who read them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from lims import audit
from lims.accounts.users import Actor
from lims.errors import Conflict, Forbidden, NotFound, Refused
from lims.identifiers import check_coi, coi_id
from lims.inputs import Day, Input, Line
from lims.models import Organisation, Sample, utcnow
from lims.roles import CENTRE_ROLES
from lims.samples import next_serial
from lims.therapy.models import Patient

KINDS = ("patient", "donor")
IDENTIFIERS = ("full_name", "date_of_birth", "hospital_id")


class PatientIn(Input):
    kind: str = Field(default="patient", pattern="^(patient|donor)$")
    full_name: Line = Field(min_length=1, max_length=200)
    date_of_birth: Day
    hospital_id: Line = Field(min_length=1, max_length=64, description="the hospital's number")
    organisation: Line | None = Field(
        default=None, max_length=64, description="whose patient (default: the centre)"
    )
    coi: Line | None = Field(
        default=None, max_length=64, description="an ISBT 128 identifier held; default: allocated"
    )
    coi_scheme: str = Field(default="local", pattern="^(local|isbt128)$")


def may_read_identifiers(actor: Actor) -> bool:
    """Tell whether actor may read patients' identifiers: the centre's QA and admin only."""
    return actor.sees_all and actor.role in CENTRE_ROLES


def require_identifier_reader(actor: Actor) -> None:
    """Refuse (403) anyone but the centre's QA and admin."""
    if not may_read_identifiers(actor):
        raise Forbidden(
            "patient identifiers are for the centre's qa and admin; others see the COI only",
            code="role_required",
        )


def _org_name(session: Session, org_id: int) -> str:
    return session.get(Organisation, org_id).name


def patient_dict(session: Session, p: Patient) -> dict[str, Any]:
    """Return a patient with identifiers (only for callers that checked the reader's role)."""
    return {
        "coi": p.coi,
        "coi_scheme": p.coi_scheme,
        "kind": p.kind,
        "organisation": _org_name(session, p.org_id),
        "full_name": p.full_name,
        "date_of_birth": p.date_of_birth.isoformat(),
        "hospital_id": p.hospital_id,
    }


def find_patient(session: Session, coi: str) -> Patient | None:
    """Return the patient or donor whose COI this is (no access check: callers check)."""
    return session.exec(select(Patient).where(Patient.coi == coi.strip().upper())).first()


def list_patients(session: Session, actor: Actor, *, limit: int = 500) -> list[Patient]:
    """Return the patients and donors, newest first (QA and admin of the centre)."""
    require_identifier_reader(actor)
    stmt = select(Patient).order_by(col(Patient.id).desc()).limit(limit)
    return list(session.exec(stmt).all())


def get_patient(session: Session, coi: str, actor: Actor) -> Patient:
    """Return one patient or donor by COI (QA and admin of the centre)."""
    require_identifier_reader(actor)
    p = find_patient(session, coi)
    if p is None:
        raise NotFound(f"no patient or donor with COI {coi!r}", code="unknown_patient")
    return p


def record_read(session: Session, actor: Actor, patients: list[Patient], purpose: str) -> None:
    """Record that actor read these patients' identifiers: one event per patient."""
    for p in patients:
        audit.record_by(
            session,
            actor,
            action="patient.identifiers_read",
            entity_type="patient",
            entity_id=p.coi,
            after={"coi": p.coi, "read": list(IDENTIFIERS), "where": purpose},
            org_id=p.org_id,
        )


def _registered_as(session: Session, org_id: int, hospital_id: str) -> str | None:
    """Return the COI of the organisation's patient with this hospital id (any case), or None."""
    return session.exec(
        select(Patient.coi).where(
            Patient.org_id == org_id, func.lower(Patient.hospital_id) == hospital_id.lower()
        )
    ).first()


def _registered_already(hospital_id: str, coi: str) -> Conflict:
    # One person, one COI: a second registration would split their chain of identity.
    return Conflict(
        f"hospital id {hospital_id} is registered already, as COI {coi}",
        code="patient_exists",
        coi=coi,
    )


def register_patient(session: Session, *, data: PatientIn, actor: Actor) -> Patient:
    """Register a patient or donor and give them a COI (QA and admin of the centre)."""
    require_identifier_reader(actor)
    org = actor.org
    if data.organisation:
        org = session.exec(
            select(Organisation).where(Organisation.name == data.organisation)
        ).first()
        if org is None:
            raise NotFound(f"no organisation {data.organisation!r}", code="unknown_organisation")
    if data.date_of_birth > utcnow().date():
        raise Refused("the date of birth is in the future", code="bad_date_of_birth")
    hospital_id = data.hospital_id.strip()
    twin = _registered_as(session, org.id, hospital_id)
    if twin is not None:
        raise _registered_already(hospital_id, twin)
    if data.coi:
        coi, scheme = data.coi.strip().upper(), data.coi_scheme
        if not check_coi(coi, scheme):
            raise Refused(
                f"COI {coi!r} is not a valid {scheme} Chain of Identity id", code="bad_coi"
            )
        if find_patient(session, coi) is not None:
            raise Conflict(f"COI {coi} belongs to another patient already", code="coi_taken")
        other = session.exec(
            select(Sample.id).where(Sample.coi == coi, Sample.org_id != org.id).limit(1)
        ).first()
        if other is not None:
            raise Conflict(
                f"COI {coi} is carried by another organisation's material", code="coi_taken"
            )
    else:
        year = utcnow().year
        coi, scheme = coi_id(year, next_serial(session, f"coi-{year}")), "local"
    p = Patient(
        coi=coi,
        coi_scheme=scheme,
        kind=data.kind,
        org_id=org.id,
        full_name=data.full_name.strip(),
        date_of_birth=data.date_of_birth,
        hospital_id=hospital_id,
    )
    try:
        # In a savepoint: a registration racing this one and committed first trips the unique
        # index, and the answer names the COI it got, as the check above does.
        with session.begin_nested():
            session.add(p)
            session.flush()
    except IntegrityError:
        twin = _registered_as(session, org.id, hospital_id)
        if twin is None:
            raise Conflict(
                f"COI {coi} belongs to another patient already", code="coi_taken"
            ) from None
        raise _registered_already(hospital_id, twin) from None
    audit.record_by(
        session,
        actor,
        action="patient.register",
        entity_type="patient",
        entity_id=coi,
        # The identifiers stay out of the trail: it says they were recorded, not what they are.
        after={
            "coi": coi,
            "coi_scheme": scheme,
            "kind": p.kind,
            "organisation": org.name,
            "identifiers_recorded": list(IDENTIFIERS),
        },
        org_id=org.id,
    )
    return p
