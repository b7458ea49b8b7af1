"""Database tables (SQLModel) and the request/response schemas that belong to them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Column, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Organisation(SQLModel, table=True):
    __tablename__ = "organisation"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    display_name: str = Field(max_length=200)
    kind: str = Field(default="client", max_length=16)  # centre | client


class User(SQLModel, table=True):
    __tablename__ = "app_user"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, max_length=64)
    full_name: str = Field(max_length=200)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    role: str = Field(max_length=32)  # technician | qa | admin | client_viewer
    password_hash: str | None = Field(default=None, max_length=255)
    badge: str | None = Field(default=None, unique=True, max_length=64)
    active: bool = True
    # Sign-in throttling (lims.accounts.throttle): wrong passwords in the current run, runs that
    # ended in a wait since the last success, and the end of the latest wait.
    failed_logins: int = 0
    locked_until: datetime | None = None
    lockouts: int = 0
    # Where the owner last signed in: the account's wait does not apply there (the address's does).
    last_login_from: str | None = Field(default=None, max_length=64)
    must_change_password: bool = False
    password_changed_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class PasswordHistory(SQLModel, table=True):
    """The argon2 hashes of a user's latest passwords (the current one included): no reuse."""

    __tablename__ = "password_history"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    password_hash: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow)


class LoginThrottle(SQLModel, table=True):
    """Wrong-password counts of a client address, or of a username that is not an account."""

    __tablename__ = "login_throttle"
    key: str = Field(primary_key=True, max_length=100)  # address:<ip> | account:<name>
    failed_logins: int = 0
    lockouts: int = 0
    locked_until: datetime | None = None
    last_failure_at: datetime = Field(default_factory=utcnow, index=True)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    station_id: int | None = Field(default=None, foreign_key="station.id")
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    expires_at: datetime | None = None  # None only for tokens made before expiry existed
    last_used_at: datetime | None = None


class WebSession(SQLModel, table=True):
    __tablename__ = "web_session"
    id: str = Field(primary_key=True, max_length=64)  # sha256 of the cookie value
    user_id: int = Field(foreign_key="app_user.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    end_reason: str | None = Field(default=None, max_length=32)


class Location(SQLModel, table=True):
    __tablename__ = "location"
    id: int | None = Field(default=None, primary_key=True)
    parent_id: int | None = Field(default=None, foreign_key="location.id", index=True)
    kind: str = Field(max_length=16)  # site | room | equipment | rack | box
    code: str = Field(unique=True, max_length=64)  # scannable, e.g. LOC-F80-1-R1-B1
    name: str = Field(max_length=200)
    grade: str | None = Field(default=None, max_length=8)  # rooms: B | C | D | CNC
    equipment_type: str | None = Field(default=None, max_length=32)  # freezer | ln2 | incubator
    temperature: str | None = Field(default=None, max_length=32)
    rows: int | None = None  # boxes only
    cols: int | None = None


class Station(SQLModel, table=True):
    __tablename__ = "station"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    room_id: int | None = Field(default=None, foreign_key="location.id")
    mode: str | None = Field(default=None, max_length=32)
    operator_id: int | None = Field(default=None, foreign_key="app_user.id")
    target_location_id: int | None = Field(default=None, foreign_key="location.id")
    # The mode's parameters as JSON (expected COI, lot, reason, condition, next position).
    context: str | None = Field(default=None, sa_column=Column(Text))
    version: int = 1
    updated_at: datetime = Field(default_factory=utcnow)


class Project(SQLModel, table=True):
    __tablename__ = "project"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=64)
    name: str = Field(max_length=200)
    org_id: int = Field(foreign_key="organisation.id", index=True)


class SampleType(SQLModel, table=True):
    __tablename__ = "sample_type"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=64)
    name: str = Field(max_length=200)


class VectorLot(SQLModel, table=True):
    __tablename__ = "vector_lot"
    # One lot to a reader whatever the case (migration 0002).
    __table_args__ = (
        Index("uq_vector_lot_number_ci", text("lower(lot_number)"), unique=True),
        Index("ix_vector_lot_state", "state", "id"),  # lots waiting for QA (migration 0007)
        Index("ix_vector_lot_created", "created_at", "id"),  # the lots list's newest page
    )
    id: int | None = Field(default=None, primary_key=True)
    lot_number: str = Field(unique=True, max_length=64)
    vector_type: str = Field(max_length=16)  # AAV | LV
    vector: str = Field(max_length=200)  # construct, e.g. AAV9-CMV-GFP
    serotype: str | None = Field(default=None, max_length=32)
    titer_vg_per_ml: float | None = None
    volume_ml: float | None = None
    manufactured_on: date | None = None
    expires_on: date | None = None
    project_id: int = Field(foreign_key="project.id", index=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    state: str = Field(default="planned", max_length=32)
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class QcResult(SQLModel, table=True):
    __tablename__ = "qc_result"
    # QA's results to review, and whether a result was corrected (migration 0007).
    __table_args__ = (
        Index(
            "ix_qc_result_unreviewed",
            "recorded_at",
            "id",
            "recorded_by_id",
            sqlite_where=text("reviewed_by_id IS NULL"),
            postgresql_where=text("reviewed_by_id IS NULL"),
        ),
        Index(
            "ix_qc_result_supersedes",
            "supersedes_id",
            sqlite_where=text("supersedes_id IS NOT NULL"),
            postgresql_where=text("supersedes_id IS NOT NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    # A lot's result, or a cell product's (a sample whose sample type has a specification).
    lot_id: int | None = Field(default=None, foreign_key="vector_lot.id", index=True)
    test: str = Field(max_length=32)  # titer | sterility | endotoxin | mycoplasma | ...
    spec: str = Field(max_length=200)
    result: str = Field(max_length=200)
    passed: bool
    recorded_by_id: int = Field(foreign_key="app_user.id")
    recorded_at: datetime = Field(default_factory=utcnow)
    supersedes_id: int | None = Field(default=None, foreign_key="qc_result.id")
    # Migration 0004: results judged against the specification (lims.quality).
    sample_id: int | None = Field(default=None, foreign_key="sample.id", index=True)
    spec_id: int | None = Field(default=None, foreign_key="specification.id")
    limit_id: int | None = Field(default=None, foreign_key="spec_limit.id")
    method: str | None = Field(default=None, max_length=100)
    unit: str | None = Field(default=None, max_length=32)
    sampled_at: datetime | None = None
    reason: str | None = Field(default=None, sa_column=Column(Text))
    flag: str | None = Field(default=None, max_length=16)  # alert | action (still in spec)
    reviewed_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    reviewed_at: datetime | None = None
    review_signature_id: int | None = None
    retest_of_oos_id: int | None = Field(default=None, index=True)  # a retest inside that OOS


class Sample(SQLModel, table=True):
    __tablename__ = "sample"
    __table_args__ = (
        UniqueConstraint("location_id", "position", name="uq_sample_position"),
        # The lists' newest page, a client's (migration 0007).
        Index("ix_sample_created", "created_at", "id"),
        Index("ix_sample_org_created", "org_id", "created_at", "id"),
        Index("ix_sample_org_state", "org_id", "state"),  # a client's home counts by state
        Index("ix_sample_state_created", "state", "created_at", "id"),  # the list by state
        # Tubes in someone's custody (a technician's home), migration 0007.
        Index(
            "ix_sample_custodian",
            "custodian_id",
            "state",
            sqlite_where=text("custodian_id IS NOT NULL"),
            postgresql_where=text("custodian_id IS NOT NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    barcode: str = Field(unique=True, max_length=64)
    sample_type_id: int = Field(foreign_key="sample_type.id")
    project_id: int = Field(foreign_key="project.id", index=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    volume: float | None = None
    unit: str | None = Field(default=None, max_length=16)
    container: str | None = Field(default=None, max_length=32)
    parent_id: int | None = Field(default=None, foreign_key="sample.id", index=True)
    lineage: str | None = Field(default=None, max_length=16)  # aliquot | derivative
    lot_id: int | None = Field(default=None, foreign_key="vector_lot.id", index=True)
    coi: str = Field(index=True, max_length=64)
    coi_scheme: str = Field(default="local", max_length=16)  # local | isbt128
    location_id: int | None = Field(default=None, foreign_key="location.id", index=True)
    position: str | None = Field(default=None, max_length=8)
    custodian_id: int | None = Field(default=None, foreign_key="app_user.id")
    state: str = Field(default="registered", max_length=32, index=True)
    condition: str | None = Field(default=None, max_length=200)
    freeze_thaw_count: int = 0
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PoolParent(SQLModel, table=True):
    """One parent of a pooled derivative (a sample made from several): multi-parent lineage."""

    __tablename__ = "therapy_pool_parent"
    pool_id: int = Field(foreign_key="sample.id", primary_key=True)
    parent_id: int = Field(foreign_key="sample.id", primary_key=True, index=True)


class Counter(SQLModel, table=True):
    __tablename__ = "counter"
    name: str = Field(primary_key=True, max_length=64)
    value: int = 0


class Signature(SQLModel, table=True):
    __tablename__ = "signature"
    __table_args__ = (Index("ix_signature_record", "record_type", "record_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id")
    username: str = Field(max_length=64)
    printed_name: str = Field(max_length=200)
    meaning: str = Field(max_length=32)  # review | approval | release | rejection | responsibility
    signed_at: datetime
    record_type: str = Field(max_length=32)
    record_id: str = Field(max_length=64)
    content_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_entity", "entity_type", "entity_id", "seq"),
        Index("ix_audit_actor", "actor", "seq"),
        Index("ix_audit_action", "action", "seq"),
        Index("ix_audit_org", "org_id", "seq"),
        Index("ix_audit_lot", "lot_id", "seq"),
        Index("ix_audit_station", "station", "seq"),
        Index("ix_audit_location", "location_id", "seq"),
        Index("ix_audit_ts", "ts", "seq"),
    )
    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    ts: datetime
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    entity_type: str = Field(max_length=32)
    entity_id: str = Field(max_length=64)
    org_id: int | None = None
    lot_id: int | None = None
    location_id: int | None = None
    before: str | None = Field(default=None, sa_column=Column(Text))
    after: str | None = Field(default=None, sa_column=Column(Text))
    reason: str | None = Field(default=None, sa_column=Column(Text))
    station: str | None = Field(default=None, max_length=64)
    device: str | None = Field(default=None, max_length=200)
    signature_id: int | None = None
    corrects_seq: int | None = None
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(max_length=64)
    # Time of the newest event: appends never go back in time, without reading the last row.
    ts: datetime | None = None


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_key"
    user_id: int = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=200)
    method: str = Field(max_length=8)
    path: str = Field(max_length=500)
    body_hash: str = Field(max_length=64)
    status: int
    response: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Printer(SQLModel, table=True):
    __tablename__ = "printer"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    url: str = Field(max_length=500)
    baud: int = 9600
    flow: str = Field(default="xonxoff", max_length=16)  # xonxoff | rtscts | none
    language: str = Field(default="zpl", max_length=16)
    dpi: int = 203
    default_template: str = Field(default="cryovial", max_length=32)
    station_id: int | None = Field(default=None, foreign_key="station.id")
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class PrintJob(SQLModel, table=True):
    __tablename__ = "print_job"
    __table_args__ = (Index("ix_print_job_claim", "printer_id", "state", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    printer_id: int = Field(foreign_key="printer.id")
    state: str = Field(default="queued", max_length=16)  # queued|sending|sent|failed|voided
    template: str = Field(max_length=32)
    copies: int = 1
    labels_total: int = 0
    labels_printed: int = 0
    # Labels after the printed ones whose fate is unknown (sent, then the link or worker died).
    labels_unconfirmed: int = 0
    reprint_of_id: int | None = Field(default=None, foreign_key="print_job.id")
    # A job that prints the never-printed rest of a failed job (no REPRINT mark) points to it.
    resume_of_id: int | None = Field(default=None, foreign_key="print_job.id")
    reason: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_by_id: int = Field(foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow)
    claimed_by: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = None
    sent_at: datetime | None = None
    finished_at: datetime | None = None
    version: int = 1


class PrintJobLabel(SQLModel, table=True):
    __tablename__ = "print_job_label"
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="print_job.id", index=True)
    idx: int
    sample_id: int | None = Field(default=None, foreign_key="sample.id", index=True)
    barcode: str = Field(max_length=64)
    content: str = Field(sa_column=Column(Text, nullable=False))  # label content as JSON
    printed: bool = False


class ScanEvent(SQLModel, table=True):
    __tablename__ = "scan_event"
    __table_args__ = (
        UniqueConstraint("station_id", "scan_id", name="uq_scan_station_scan_id"),
        Index("ix_scan_station_id", "station_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    station_id: int = Field(foreign_key="station.id")
    scan_id: str = Field(max_length=100)
    data: str = Field(sa_column=Column(Text, nullable=False))
    symbology: str | None = Field(default=None, max_length=8)
    resolved_kind: str | None = Field(default=None, max_length=32)
    resolved_ref: str | None = Field(default=None, max_length=200)
    outcome: str = Field(max_length=16)  # accepted | refused | duplicate
    message: str = Field(sa_column=Column(Text, nullable=False))
    user_id: int | None = Field(default=None, foreign_key="app_user.id")
    # The response JSON given for this scan_id, replayed verbatim when the agent retries it.
    result: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)


class Deviation(SQLModel, table=True):
    """A departure from an approved procedure or specification, investigated and closed by QA."""

    __tablename__ = "deviation"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, max_length=32)  # DEV-26-0001
    title: str = Field(max_length=200)
    description: str = Field(sa_column=Column(Text, nullable=False))
    severity: str = Field(max_length=16)  # minor | major | critical
    category: str | None = Field(default=None, max_length=64)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    state: str = Field(default="open", max_length=16, index=True)  # open|investigation|closed
    source: str | None = Field(default=None, max_length=200)  # what raised it, e.g. an OOS
    references_id: int | None = Field(default=None, foreign_key="deviation.id")
    raised_by_id: int = Field(foreign_key="app_user.id")
    raised_at: datetime = Field(default_factory=utcnow)
    root_cause: str | None = Field(default=None, sa_column=Column(Text))
    closed_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    closed_at: datetime | None = None
    signature_id: int | None = Field(default=None, foreign_key="signature.id")
    version: int = 1


class DeviationLink(SQLModel, table=True):
    """A record a deviation concerns; an unlinked one stays, with who removed it and when."""

    __tablename__ = "deviation_link"
    id: int | None = Field(default=None, primary_key=True)
    deviation_id: int = Field(foreign_key="deviation.id", index=True)
    kind: str = Field(max_length=16)  # lot | sample | room | print_job
    ref: str = Field(max_length=64)  # lot number, barcode, room code, print job id
    lot_id: int | None = Field(default=None, foreign_key="vector_lot.id", index=True)
    sample_id: int | None = Field(default=None, foreign_key="sample.id", index=True)
    location_id: int | None = Field(default=None, foreign_key="location.id")
    print_job_id: int | None = Field(default=None, foreign_key="print_job.id")
    added_by_id: int = Field(foreign_key="app_user.id")
    added_at: datetime = Field(default_factory=utcnow)
    removed_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    removed_at: datetime | None = None


class CapaAction(SQLModel, table=True):
    """A corrective or preventive action of a deviation, owned by one person, due by a date."""

    __tablename__ = "capa_action"
    id: int | None = Field(default=None, primary_key=True)
    deviation_id: int = Field(foreign_key="deviation.id", index=True)
    description: str = Field(sa_column=Column(Text, nullable=False))
    owner_id: int = Field(foreign_key="app_user.id")
    due_on: date
    created_by_id: int = Field(foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow)
    done_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    done_at: datetime | None = None
    effectiveness_check: str | None = Field(default=None, sa_column=Column(Text))
    # Carried into another deviation instead of being done here (that one holds the copy).
    carried_to_id: int | None = Field(default=None, foreign_key="capa_action.id")
    carried_from_id: int | None = Field(default=None, foreign_key="capa_action.id")


class LotTrailReview(SQLModel, table=True):
    """QA's signed review of a lot's audit trail up to a seq (EU GMP Annex 11 §9); append-only."""

    __tablename__ = "lot_trail_review"
    id: int | None = Field(default=None, primary_key=True)
    lot_id: int = Field(foreign_key="vector_lot.id", index=True)
    # The newest event of the lot's lineage the reviewer saw; later ones make the review stale.
    reviewed_up_to_seq: int
    signature_id: int = Field(foreign_key="signature.id")
    reviewer_id: int = Field(foreign_key="app_user.id")
    reviewed_at: datetime = Field(default_factory=utcnow)


class Specification(SQLModel, table=True):
    """One version of a product's specification for a stage (master data, lims.quality.specs)."""

    __tablename__ = "specification"
    __table_args__ = (
        UniqueConstraint("code", "version", name="uq_specification_code_version"),
        Index("ix_specification_product", "product", "stage", "state"),
    )
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64)
    version: int
    product: str = Field(max_length=64)  # a sample type code, or a vector type (AAV | LV)
    stage: str = Field(max_length=16)  # in_process | release | stability
    title: str = Field(max_length=200)
    state: str = Field(default="draft", max_length=16)  # draft|approved|superseded|retired
    created_by_id: int = Field(foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow)
    approved_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    approved_at: datetime | None = None  # in force from then ...
    ended_at: datetime | None = None  # ... until superseded or retired
    signature_id: int | None = None


class SpecLimit(SQLModel, table=True):
    """One test of a specification: its limits (or accepted text) and whether release needs it."""

    __tablename__ = "spec_limit"
    id: int | None = Field(default=None, primary_key=True)
    spec_id: int = Field(foreign_key="specification.id", index=True)
    test: str = Field(max_length=32)
    method: str | None = Field(default=None, max_length=100)
    unit: str | None = Field(default=None, max_length=32)
    lower: float | None = None
    lower_inclusive: bool = True
    upper: float | None = None
    upper_inclusive: bool = True
    alert_lower: float | None = None
    alert_upper: float | None = None
    action_lower: float | None = None
    action_upper: float | None = None
    text: str | None = Field(default=None, max_length=200)  # accepted text result
    required: bool = True  # the sampling plan: needed for disposition


class OosRecord(SQLModel, table=True):
    """An out-of-specification investigation, opened by a failing result (lims.quality.oos)."""

    __tablename__ = "oos_record"
    __table_args__ = (Index("ix_oos_record_phase", "phase", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    result_id: int = Field(foreign_key="qc_result.id", unique=True)
    lot_id: int | None = Field(default=None, foreign_key="vector_lot.id", index=True)
    sample_id: int | None = Field(default=None, foreign_key="sample.id", index=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    test: str = Field(max_length=32)
    phase: str = Field(default="phase_1", max_length=16)  # phase_1|phase_2|confirmed|invalidated
    opened_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None
    conclusion: str | None = Field(default=None, sa_column=Column(Text))
    version: int = 1
