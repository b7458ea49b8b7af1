"""What the API answers, for its OpenAPI document: 2xx bodies, error bodies, statuses per route.

The views build their JSON with the domain's dict functions; these models only describe it
(nothing is re-serialised through them), so the document cannot change what a client receives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apiflask import APIBlueprint, APIFlask
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

# --- error bodies -----------------------------------------------------------------------------


class ErrorOut(BaseModel):
    """Every /api error: a stable code to branch on and a sentence for a person."""

    model_config = ConfigDict(extra="allow")
    error: str = Field(description="stable code, e.g. not_found, refused, version_conflict")
    message: str = Field(description="what went wrong and what to do, for a person")
    detail: dict[str, Any] | None = Field(
        default=None, description="a malformed request's fields: {location: {field: [why]}}"
    )


# Why each status happens, on every route that lists it.
ERRORS: dict[int, str] = {
    400: "Malformed: bad JSON, a field or parameter outside its schema, NUL characters, "
    "a repeated query parameter, a bad Idempotency-Key",
    401: "No valid bearer token (or browser session), or the account may not sign in",
    403: "Your role or organisation may not do this (or a browser write without X-CSRF-Token)",
    404: "No such record, or none you may see",
    409: "Conflict: a stale version, a record that exists already, or a concurrent change (retry)",
    413: "The body is larger than the server accepts (1 MiB)",
    422: "Refused by a rule of the process (illegal transition, missing reason or signature, "
    "reused Idempotency-Key, ...)",
    429: "Too many wrong passwords: wait the Retry-After seconds before the next try",
}
READ = (400, 401)
WRITE = (400, 401, 403, 409, 413, 422)


# --- reference data ---------------------------------------------------------------------------


class Out(BaseModel):
    # The answers may grow fields; a client ignores those it does not know.
    model_config = ConfigDict(extra="allow")


class HealthOut(Out):
    ok: bool


class OrganisationOut(Out):
    name: str
    display_name: str
    kind: str


class OrganisationsOut(Out):
    organisations: list[OrganisationOut]


class ProjectOut(Out):
    code: str
    name: str
    organisation: str


class ProjectsOut(Out):
    projects: list[ProjectOut]


class SampleTypeOut(Out):
    code: str
    name: str


class SampleTypesOut(Out):
    sample_types: list[SampleTypeOut]


class LocationNode(Out):
    code: str
    name: str
    kind: str = Field(description="site, room, equipment, rack or box")
    grade: str | None = None
    equipment_type: str | None = None
    temperature: str | None = None
    rows: int | None = None
    cols: int | None = None
    children: list[LocationNode]


class LocationsOut(Out):
    locations: list[LocationNode]


class LocationOut(Out):
    code: str
    name: str
    kind: str
    grade: str | None
    path: str = Field(description="e.g. 'Site / Room B1 / Freezer -80 / Rack 1 / Box 1'")
    rows: int | None = Field(default=None, description="a box only")
    cols: int | None = Field(default=None, description="a box only")
    positions: dict[str, str] | None = Field(
        default=None,
        description="a box only: position -> barcode ('occupied' for another organisation's)",
    )


class StationLine(Out):
    name: str
    room: str | None
    mode: str | None
    operator: str | None
    target: str | None
    redacted: bool


class StationsOut(Out):
    stations: list[StationLine]


class PrinterStatusOut(Out):
    ready: bool = Field(description="true only when it said ready within 3 poll intervals")
    state: str = Field(description="ready, not_ready, no_answer, or unknown (not asked lately)")
    text: str = Field(description="in words, with its age: 'paper out, 2 min ago'")
    summary: str = Field(description="what it last said: 'ready', the fault, or why no answer")
    checked_at: str = Field(description="when it was last asked")
    since: str = Field(description="when this state began")
    job: int | None = Field(default=None, description="the job whose outcome last reported it")


class PrinterOut(Out):
    name: str
    language: str
    dpi: int
    station: str | None
    active: bool
    url: str | None = Field(default=None, description="the centre's lab staff only")
    baud: int | None = None
    flow: str | None = None
    status: PrinterStatusOut | None = Field(
        default=None, description="what the printer last said to ~HS (null: never asked)"
    )


class PrintersOut(Out):
    printers: list[PrinterOut]


class PrinterStatusReported(Out):
    printer: str
    status: PrinterStatusOut


class UserLine(Out):
    username: str
    full_name: str | None
    role: str
    organisation: str
    active: bool


class UsersOut(Out):
    users: list[UserLine]


class UserCreated(Out):
    username: str
    role: str
    org: str


class TokenCreated(Out):
    id: int
    token: str | None = Field(
        description="the secret, shown only this once (null in a replay: see secret_withheld)"
    )
    username: str
    station: str | None
    secret_withheld: str | None = Field(
        default=None, description="set when this answer replays an earlier request"
    )


class TokenRevoked(Out):
    id: int
    revoked: bool


class UnlockedOut(Out):
    username: str
    locked: bool


class PasswordResetOut(Out):
    username: str
    temporary_password: str = Field(description="shown once; to be changed at the next sign-in")
    must_change_password: bool


class PasswordChangedOut(Out):
    username: str
    changed: bool


# --- audit ------------------------------------------------------------------------------------


class EventOut(Out):
    seq: int
    ts: str
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: Any = Field(description="the record before (JSON), or null")
    after: Any = Field(description="the record after (JSON), or null")
    reason: str | None
    station: str | None
    device: str | None
    signature_id: int | None
    corrects_seq: int | None
    prev_hash: str
    hash: str


class EventsOut(Out):
    events: list[EventOut]
    next_cursor: int | None = Field(description="pass as cursor for the next page; null: last")


class VerifyOut(Out):
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None
    problem: str | None
    checkpoint: dict[str, Any] | None = Field(
        default=None, description="the signed checkpoint the chain was judged against"
    )


# --- samples ----------------------------------------------------------------------------------


class SampleOut(Out):
    barcode: str
    sample_type: str
    project: str
    organisation: str
    parent: str | None
    lineage: str | None
    lot: str | None
    coi: str
    coi_scheme: str | None
    container: str | None
    state: str
    version: int = Field(description="send it back with a transition to catch races")
    location: str | None
    position: str | None
    custodian: str | None
    volume: float | None
    unit: str | None
    condition: str | None
    freeze_thaw_count: int
    allowed_actions: list[str]
    created_at: str
    updated_at: str


class SamplesOut(Out):
    samples: list[SampleOut]


class SamplePage(SamplesOut):
    next_cursor: int | None = Field(description="pass as cursor for the next page; null: last")
    prev_cursor: int | None = Field(
        default=None, description="pass as before for the previous page; null: first"
    )
    total: int = Field(description="how many samples match the filters, on every page")
    sort: str = Field(description="the order of this page: a column, '-' first for descending")


class AliquotsOut(Out):
    aliquots: list[SampleOut]


class HistoryOut(Out):
    barcode: str
    events: list[EventOut]
    label_events: list[EventOut]


class Kin(Out):
    barcode: str
    state: str
    lineage: str | None
    coi: str


class KinNode(Kin):
    children: list[KinNode]


class Ancestor(Kin):
    parents: list[str] = Field(description="the samples it was made from")


class GenealogyOut(Out):
    barcode: str
    coi: str
    ancestors: list[Ancestor] = Field(description="root first; a pool's every parent too")
    parents: list[str] = Field(description="what it was made from: one, or a pool's parents")
    tree: KinNode


class CorrectionEvent(Out):
    seq: int
    action: str
    corrects_seq: int | None
    reason: str | None


class CorrectionOut(Out):
    sample: SampleOut
    event: CorrectionEvent


# --- lots -------------------------------------------------------------------------------------


class LotLine(Out):
    lot_number: str
    state: str
    vector: str
    vector_type: str
    version: int
    expires_on: str | None = None


class LotsOut(Out):
    lots: list[LotLine]


class LotPage(LotsOut):
    next_cursor: int | None = Field(description="pass as cursor for the next page; null: last")
    prev_cursor: int | None = Field(
        default=None, description="pass as before for the previous page; null: first"
    )
    total: int = Field(description="how many lots match the filters, on every page")
    sort: str = Field(description="the order of this page: a column, '-' first for descending")


class QcOut(Out):
    id: int
    test: str
    spec: str = Field(description="the limit judged against, e.g. '>= 1e12 vg/mL'")
    result: str
    passed: bool
    recorded_at: str
    supersedes: int | None
    spec_code: str | None = Field(description="the specification (None: typed before 0004)")
    spec_version: int | None
    method: str | None
    unit: str | None
    flag: str | None = Field(description="alert or action: in specification, past a trend limit")
    sampled_at: str | None
    reason: str | None
    recorded_by: str
    reviewed_by: str | None
    reviewed_at: str | None
    oos: int | None = Field(description="the OOS investigation it opened, or its retest is in")
    oos_phase: str | None
    retest: bool


class SignatureOut(Out):
    id: int
    printed_name: str
    username: str
    meaning: str
    signed_at: str
    record: str
    content_hash: str
    hash: str


class Vial(Out):
    barcode: str
    state: str


class LotOut(Out):
    lot_number: str
    state: str
    version: int
    vector_type: str
    vector: str
    serotype: str | None
    titer_vg_per_ml: float | None
    volume_ml: float | None
    manufactured_on: str | None
    expires_on: str | None
    qc: list[QcOut]
    project: str
    organisation: str
    qc_missing: list[str]
    allowed_actions: list[str]
    signatures: list[SignatureOut]
    vials: list[Vial]


# --- quality: specifications, cell product QC, OOS ---------------------------------------------


class SpecLimitOut(Out):
    test: str
    method: str | None
    unit: str | None
    lower: float | None
    lower_inclusive: bool
    upper: float | None
    upper_inclusive: bool
    alert_lower: float | None
    alert_upper: float | None
    action_lower: float | None
    action_upper: float | None
    text: str | None
    required: bool = Field(description="the sampling plan: needed for disposition")
    limit: str = Field(description="as a person writes it: '>= 1e12 vg/mL'")


class SpecLine(Out):
    code: str
    version: int
    product: str
    stage: str
    title: str
    state: str
    approved_at: str | None


class SpecsOut(Out):
    specifications: list[SpecLine]


class SpecOut(Out):
    code: str
    version: int
    product: str
    stage: str
    title: str
    state: str
    limits: list[SpecLimitOut]
    created_by: str | None
    created_at: str | None
    approved_by: str | None
    approved_at: str | None
    ended_at: str | None
    signature: SignatureOut | None
    allowed_actions: list[str]


class SampleQcOut(Out):
    barcode: str
    state: str
    version: int
    product: str
    qc: list[QcOut]
    qc_missing: list[str]
    release_refusal: str | None = Field(description="why a release would be refused now")


class OosLine(Out):
    id: int
    name: str
    lot: str | None
    sample: str | None
    test: str
    result: str
    spec: str
    phase: str
    opened_at: str


class OosListOut(Out):
    oos: list[OosLine]


class OosOut(Out):
    id: int
    name: str
    lot: str | None
    sample: str | None
    test: str
    phase: str
    open: bool
    version: int
    opened_at: str
    closed_at: str | None
    conclusion: str | None
    result: QcOut
    retests: list[QcOut]
    allowed_actions: list[str]


# --- label printing ---------------------------------------------------------------------------


class JobLabel(Out):
    idx: int
    barcode: str
    printed: bool
    status: str = Field(description="printed, unknown or not_printed")
    reprint: bool


class JobOut(Out):
    id: int
    printer: str
    state: str
    template: str
    copies: int
    labels_total: int
    labels_printed: int
    labels_unconfirmed: int
    labels_remaining: int
    reprint_of: int | None
    resume_of: int | None
    reason: str | None
    error: str | None
    created_by: str | None
    created_at: str | None
    claimed_by: str | None
    lease_until: str | None
    stale: bool
    sent_at: str | None
    finished_at: str | None
    version: int
    labels: list[JobLabel] | None = Field(default=None, description="not in lists of jobs")


class JobQueued(JobOut):
    jobs: list[JobOut]


class JobsOut(Out):
    jobs: list[JobOut]
    next_cursor: int | None


class ClaimPrinter(Out):
    name: str
    url: str
    baud: int | None
    flow: str | None


class ClaimedJob(Out):
    id: int
    printer: ClaimPrinter
    format_b64: str | None
    labels_b64: list[str]
    lease_until: str | None
    labels_total: int
    template: str


class ClaimOut(Out):
    job: ClaimedJob | None = Field(description="null: nothing to print")


# --- scans and stations -----------------------------------------------------------------------


class StationOut(Out):
    name: str
    operator: str | None
    operator_name: str | None
    mode: str | None
    target: str | None
    position: str | None
    lot: str | None
    coi: str | None
    reason: str | None
    condition: str | None
    version: int
    updated_at: str
    prompt: str = Field(description="what to scan next")
    redacted: bool = Field(description="another organisation's task, shown only as in use")
    stopped: dict[str, Any] | None = Field(
        default=None,
        description="set while a COI mismatch stops the station (why, barcode, acknowledged): "
        "only CMD:ACK and then a supervisor's badge are taken",
    )


class ScanOut(Out):
    scan_id: str
    station: str
    data: str
    resolved: dict[str, Any] | None = Field(description="what the scan named: kind and ref")
    outcome: str = Field(description="accepted, refused or duplicate")
    code: str | None = Field(description="why it was refused")
    action: str | None
    message: str
    sample: SampleOut | None
    station_state: StationOut | None = None
    time: str | None = None
    replayed: bool | None = Field(default=None, description="true: a retry's first answer")
    station_stopped: bool | None = Field(
        default=None, description="true: this refusal stopped the station (COI mismatch)"
    )


class ScanLine(Out):
    id: int
    scan_id: str
    data: str
    symbology: str | None
    resolved: dict[str, Any] | None
    outcome: str
    code: str | None = Field(default=None, description="why it was refused")
    message: str | None
    operator: str | None
    time: str


class ScansOut(Out):
    station: str
    scans: list[ScanLine]


class RefusalLine(ScanLine):
    stop: bool = Field(description="true: only a supervisor's release of the stop clears it")


class RefusalsOut(Out):
    station: str
    refusals: list[RefusalLine] = Field(description="not yet acknowledged, newest first")
    acknowledged: int | None = Field(default=None, description="how many this request cleared")


# --- quality: audit-trail review --------------------------------------------------------------


class TrailReviewStatusOut(Out):
    newest_seq: int | None = Field(description="the newest lineage event QA must have reviewed")
    reviewed: bool = Field(description="QA has reviewed the lot's audit trail at least once")
    current: bool = Field(description="the newest review covers every lineage event")
    reviewed_up_to_seq: int | None
    new_events: int | None = Field(description="lineage events after the review (stale if > 0)")
    signature: SignatureOut | None


class LotTrailOut(Out):
    lot_number: str
    state: str
    review: TrailReviewStatusOut
    events: list[EventOut] = Field(description="the lineage's events, newest first")
    next_cursor: int | None = Field(description="pass as cursor for the next (older) page")


class TrailReviewOut(Out):
    lot_number: str
    reviewed_up_to_seq: int
    review: TrailReviewStatusOut


# --- the document -----------------------------------------------------------------------------

MODELS: list[type[BaseModel]] = [
    cls
    for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, BaseModel) and cls not in (BaseModel, Out)
]


def answers(
    bp: APIBlueprint,
    model: type[BaseModel] | None,
    *errors: int,
    status: int = 200,
    description: str = "Successful response",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Document a view's success body (model at status; None: already described) and errors."""
    responses: dict[int, Any] = {code: ERRORS[code] for code in sorted(set(errors))}
    if model is not None:
        responses[status] = {
            "description": description,
            "content": {"application/json": {"schema": _ref(model)}},
        }
    return bp.doc(responses=responses)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def register(app: APIFlask) -> None:
    """Describe errors as they are; add the models, bearer security, required bodies."""
    error_schema = ErrorOut.model_json_schema()
    app.config["HTTP_ERROR_SCHEMA"] = error_schema
    app.config["VALIDATION_ERROR_SCHEMA"] = error_schema

    @app.spec_processor
    def _complete(spec: dict[str, Any]) -> dict[str, Any]:
        _, defs = models_json_schema(
            [(m, "serialization") for m in MODELS], ref_template="#/components/schemas/{model}"
        )
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in defs["$defs"].items():
            schemas.setdefault(name, schema)
        spec["security"] = [{"BearerAuth": []}]
        for path, ops in spec["paths"].items():
            for op in ops.values():
                if "requestBody" in op:
                    # Every body is required: an empty request is refused as malformed.
                    op["requestBody"]["required"] = True
                if path == "/api/health":
                    op["security"] = []  # monitoring asks without a token
        return spec
