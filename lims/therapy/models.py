"""Tables of the cell therapy area: the product code catalogue, patients, treatment episodes."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

# Multi-parent lineage is the samples' own (lims.lineage): the table lives with them.
from lims.models import PoolParent, utcnow  # noqa: F401


class ProductCode(SQLModel, table=True):
    """An ISBT 128 product description code the centre makes (its own catalogue)."""

    __tablename__ = "therapy_product_code"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=8)  # e.g. S1234: one letter, four digits
    description: str = Field(max_length=200)
    # Allogeneic material comes from a donor for other patients: a pool may mix identities.
    allogeneic: bool = False
    # The temperature the product must be kept within in transit (degrees Celsius).
    min_temp_c: float | None = None
    max_temp_c: float | None = None
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Patient(SQLModel, table=True):
    """A patient or donor: the identifiers only the centre's QA and admin read, and the COI."""

    __tablename__ = "therapy_patient"
    # One hospital id, one person, per organisation (the hospital or client that issued it),
    # whatever its case: two registrations racing cannot both pass the check (migration 0013).
    __table_args__ = (
        Index("uq_therapy_patient_hospital_id", "org_id", text("lower(hospital_id)"), unique=True),
    )
    id: int | None = Field(default=None, primary_key=True)
    coi: str = Field(unique=True, max_length=64)
    coi_scheme: str = Field(default="local", max_length=16)  # local | isbt128
    kind: str = Field(default="patient", max_length=16)  # patient | donor
    org_id: int = Field(foreign_key="organisation.id", index=True)
    full_name: str = Field(max_length=200)
    date_of_birth: date
    hospital_id: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class Episode(SQLModel, table=True):
    """One treatment of one patient, from enrolment to infusion; its samples carry its COI."""

    __tablename__ = "therapy_episode"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, max_length=32)  # EP-26-0001
    patient_id: int = Field(foreign_key="therapy_patient.id", index=True)
    coi: str = Field(index=True, max_length=64)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    project_id: int = Field(foreign_key="project.id")
    product_code_id: int | None = Field(default=None, foreign_key="therapy_product_code.id")
    # A DIN names one donation for ever: unique, so two releases racing cannot share it.
    din: str | None = Field(default=None, unique=True, max_length=16)
    # The released product's expiry date (QA gives it at release; it goes on the bag's label).
    expires_on: date | None = None
    state: str = Field(default="enrolled", max_length=32, index=True)
    reason: str | None = Field(default=None, max_length=2000)  # why cancelled or failed
    # The deviation a COI mismatch opened: the episode moves on only once QA acknowledged it.
    held_by: str | None = Field(default=None, max_length=32)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Shipment(SQLModel, table=True):
    """A cold-chain shipment of released product to a clinical site: manifest, logger, limits."""

    __tablename__ = "therapy_shipment"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, max_length=32)  # SH-26-0001
    # Whose material travels (one organisation per shipment) and the site it goes to.
    org_id: int = Field(foreign_key="organisation.id", index=True)
    site_id: int = Field(foreign_key="organisation.id", index=True)
    product_code_id: int = Field(foreign_key="therapy_product_code.id")
    # The limits are copied from the product when packed: a later catalogue change does not
    # rewrite what the shipment was checked against.
    min_temp_c: float
    max_temp_c: float
    shipper: str = Field(max_length=200)
    logger_id: str = Field(max_length=64)
    state: str = Field(default="packed", max_length=32, index=True)
    reason: str | None = Field(default=None, max_length=2000)  # why cancelled or rejected
    # The deviation a mismatch at receipt opened: receipt waits until QA acknowledges it.
    held_by: str | None = Field(default=None, max_length=32)
    readings: int = 0
    excursion: bool = False
    excursion_first: datetime | None = None
    excursion_last: datetime | None = None
    min_seen_c: float | None = None
    max_seen_c: float | None = None
    dispatched_at: datetime | None = None
    received_at: datetime | None = None
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ShipmentContainer(SQLModel, table=True):
    """One bag on a shipment's manifest, of one episode, with the COI scanned at packing."""

    __tablename__ = "therapy_shipment_container"
    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="therapy_shipment.id", index=True)
    sample_id: int = Field(foreign_key="sample.id", index=True)
    episode_id: int = Field(foreign_key="therapy_episode.id", index=True)
    coi: str = Field(max_length=64)
    received_at: datetime | None = None


class LoggerReading(SQLModel, table=True):
    """One data-logger reading of a shipment (time in UTC, temperature in degrees Celsius)."""

    __tablename__ = "therapy_logger_reading"
    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="therapy_shipment.id", index=True)
    ts: datetime
    temp_c: float
    import_no: int = 1
