"""Tables of viral vector manufacturing: material kinds, material lots, genealogy links."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from lims.models import utcnow

MATERIAL_CATEGORIES = ("reagent", "medium", "plasmid", "cell_bank", "consumable")


class MaterialKind(SQLModel, table=True):
    """What a supplier's product is (its GTIN names it on the barcode), set up once by an admin."""

    __tablename__ = "material_kind"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=64)  # e.g. DMEM-500
    name: str = Field(max_length=200)
    category: str = Field(max_length=16)  # one of MATERIAL_CATEGORIES
    gtin: str | None = Field(default=None, unique=True, max_length=14)  # 14 digits, GS1 AI 01
    supplier: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class MaterialLot(SQLModel, table=True):
    """One received supplier lot (or serialised item) of a material, from quarantine onwards."""

    __tablename__ = "material_lot"
    __table_args__ = (
        # The same supplier lot and serial of one product is received once; "" is no serial.
        UniqueConstraint("kind_id", "supplier_lot", "serial", name="uq_material_lot_item"),
    )
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)  # our own id, MAT-26-000001
    kind_id: int = Field(foreign_key="material_kind.id", index=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    supplier_lot: str = Field(max_length=20)  # GS1 AI 10 (at most 20 characters)
    serial: str = Field(default="", max_length=20)  # GS1 AI 21; "" when the item has none
    expires_on: date = Field(index=True)  # GS1 AI 17, or the certificate's date
    gs1: str | None = Field(default=None, max_length=200)  # the scan as GS1 reads it (HRI)
    state: str = Field(default="quarantine", max_length=16, index=True)
    received_by_id: int = Field(foreign_key="app_user.id")
    received_at: datetime = Field(default_factory=utcnow)
    released_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    signature_id: int | None = Field(default=None, foreign_key="signature.id")
    version: int = 1
    updated_at: datetime = Field(default_factory=utcnow)


class GenealogyLink(SQLModel, table=True):
    """One input of a vector lot: a material lot or another (intermediate) vector lot.

    Links are only ever added (a wrong one is corrected by a new audited record, not deleted):
    a recall follows them from a material down to every lot and vial that used it.
    """

    __tablename__ = "genealogy_link"
    __table_args__ = (
        # Each walk step reads only these columns: the indexes answer it alone (index-only).
        Index("ix_genealogy_parent", "parent_kind", "parent_id", "child_lot_id"),
        Index("ix_genealogy_child", "child_lot_id", "parent_kind", "parent_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    parent_kind: str = Field(max_length=16)  # material | lot
    parent_id: int
    child_lot_id: int = Field(foreign_key="vector_lot.id")
    quantity: float | None = None
    unit: str | None = Field(default=None, max_length=16)
    recorded_by_id: int = Field(foreign_key="app_user.id")
    recorded_at: datetime = Field(default_factory=utcnow)


class ProcessTemplate(SQLModel, table=True):
    """A manufacturing process as steps and parameters, versioned; QA approves it before use."""

    __tablename__ = "process_template"
    __table_args__ = (UniqueConstraint("code", "version", name="uq_process_template_version"),)
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, index=True)  # e.g. AAV-TRIPLE-TX
    version: int = 1
    name: str = Field(max_length=200)
    product: str = Field(max_length=16)  # AAV | LV: the vector lots it makes
    state: str = Field(default="draft", max_length=16)  # draft | approved | retired
    created_by_id: int = Field(foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow)
    approved_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    signature_id: int | None = Field(default=None, foreign_key="signature.id")


class ProcessStep(SQLModel, table=True):
    """One step of a process template, in order; a verified step needs a second person."""

    __tablename__ = "process_step"
    id: int | None = Field(default=None, primary_key=True)
    template_id: int = Field(foreign_key="process_template.id", index=True)
    position: int  # 1, 2, ...
    name: str = Field(max_length=200)
    instructions: str | None = Field(default=None, max_length=2000)
    needs_verifier: bool = False


class ProcessParameter(SQLModel, table=True):
    """A value a step records, with its unit and the range it must fall in (either end open)."""

    __tablename__ = "process_parameter"
    id: int | None = Field(default=None, primary_key=True)
    step_id: int = Field(foreign_key="process_step.id", index=True)
    name: str = Field(max_length=64)
    unit: str = Field(max_length=16)
    low: float | None = None
    high: float | None = None


class BatchRecord(SQLModel, table=True):
    """The executed record of one vector lot's manufacture, following one approved template."""

    __tablename__ = "batch_record"
    id: int | None = Field(default=None, primary_key=True)
    lot_id: int = Field(foreign_key="vector_lot.id", unique=True)
    template_id: int = Field(foreign_key="process_template.id")
    started_by_id: int = Field(foreign_key="app_user.id")
    started_at: datetime = Field(default_factory=utcnow)


class BatchStep(SQLModel, table=True):
    """One executed step: who did it, where, with what, when; who verified it."""

    __tablename__ = "batch_step"
    __table_args__ = (UniqueConstraint("record_id", "step_id", name="uq_batch_step_once"),)
    id: int | None = Field(default=None, primary_key=True)
    record_id: int = Field(foreign_key="batch_record.id", index=True)
    step_id: int = Field(foreign_key="process_step.id")
    operator_id: int = Field(foreign_key="app_user.id")
    done_at: datetime = Field(default_factory=utcnow)
    equipment: str | None = Field(default=None, max_length=64)
    room: str | None = Field(default=None, max_length=64)
    verifier_id: int | None = Field(default=None, foreign_key="app_user.id")
    verified_at: datetime | None = None
    signature_id: int | None = Field(default=None, foreign_key="signature.id")


class BatchValue(SQLModel, table=True):
    """A parameter value recorded at a step; out of its range it is flagged, never refused."""

    __tablename__ = "batch_value"
    id: int | None = Field(default=None, primary_key=True)
    batch_step_id: int = Field(foreign_key="batch_step.id", index=True)
    parameter_id: int = Field(foreign_key="process_parameter.id")
    value: float
    in_range: bool


class BatchRecordReview(SQLModel, table=True):
    """QA's signed review of a complete batch record (once per record); insert-only."""

    __tablename__ = "batch_record_review"
    id: int | None = Field(default=None, primary_key=True)
    record_id: int = Field(foreign_key="batch_record.id", unique=True)
    signature_id: int = Field(foreign_key="signature.id")
    reviewer_id: int = Field(foreign_key="app_user.id")
    reviewed_at: datetime = Field(default_factory=utcnow)
