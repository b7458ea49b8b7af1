"""Specifications as master data: versions per product and stage, their limits and states."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import Field, model_validator
from sqlalchemy import update
from sqlmodel import Session, col, func, select

from lims import audit, signatures
from lims.accounts.users import Actor
from lims.db import memo
from lims.errors import BadRequest, Conflict, Forbidden, NotFound, Refused
from lims.inputs import Input, Line, Text, blank
from lims.models import SampleType, Signature, Specification, SpecLimit, User, utcnow
from lims.roles import QA
from lims.signatures import SignatureIn

STAGES = ("in_process", "release", "stability")
VECTOR_TYPES = ("AAV", "LV")
# Who writes a draft specification; QA approves it (never the draft's author).
AUTHORS = ("qa", "admin")


@dataclass(frozen=True)
class SpecTransition:
    action: str
    sources: frozenset[str]
    target: str
    signature: str | None  # the meaning the QA e-signature carries
    needs_reason: bool = False


SPEC_TRANSITIONS: dict[str, SpecTransition] = {
    t.action: t
    for t in (
        SpecTransition("approve", frozenset({"draft"}), "approved", "approval"),
        SpecTransition("retire", frozenset({"approved"}), "retired", "approval", True),
        SpecTransition("discard", frozenset({"draft"}), "retired", None, True),
    )
}
SPEC_STATES = ("draft", "approved", "superseded", "retired")


class LimitIn(Input):
    """One test of a specification: numeric limits in a unit, or the accepted text result."""

    test: Line = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")
    method: Line | None = Field(default=None, max_length=100, description="e.g. ddPCR, Ph. Eur.")
    unit: Line | None = Field(default=None, max_length=32, description="e.g. vg/mL, EU/mL")
    lower: float | None = Field(default=None, description="the lowest passing value")
    lower_inclusive: bool = True
    upper: float | None = Field(default=None, description="the highest passing value")
    upper_inclusive: bool = True
    alert_lower: float | None = None
    alert_upper: float | None = None
    action_lower: float | None = None
    action_upper: float | None = None
    text: Line | None = Field(default=None, max_length=200, description="e.g. 'no growth'")
    required: bool = Field(default=True, description="needed for disposition (sampling plan)")

    @model_validator(mode="after")
    def _one_kind(self) -> LimitIn:
        numbers = (
            self.lower,
            self.upper,
            self.alert_lower,
            self.alert_upper,
            self.action_lower,
            self.action_upper,
        )
        if any(x is not None and not math.isfinite(x) for x in numbers):
            raise ValueError("limits must be finite numbers")
        numeric = self.lower is not None or self.upper is not None
        if numeric == (self.text is not None):
            raise ValueError(
                f"{self.test}: give numeric limits (lower and/or upper) or an accepted text, "
                "not both and not neither"
            )
        if not numeric and any(x is not None for x in numbers[2:]):
            raise ValueError(f"{self.test}: alert and action limits need numeric limits")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"{self.test}: the lower limit is above the upper limit")
        return self


class SpecIn(Input):
    """A new draft: the next version of code (or its first)."""

    code: Line = Field(min_length=1, max_length=48, pattern=r"^[A-Z0-9][A-Z0-9_-]*$")
    product: Line = Field(
        min_length=1, max_length=64, description="a sample type code, or AAV or LV"
    )
    stage: str = Field(pattern="^(in_process|release|stability)$")
    title: Line = Field(min_length=1, max_length=200)
    limits: list[LimitIn] = Field(min_length=1, max_length=100)


class SpecTransitionIn(Input):
    action: Line = Field(min_length=1, max_length=32, description="approve, retire or discard")
    reason: Text | None = Field(default=None, max_length=2000)
    signature: SignatureIn | None = None


# --- reading --------------------------------------------------------------------------------


def get_spec(session: Session, code: str, version: int) -> Specification:
    """Return version of the specification code (404 if there is none)."""
    spec = session.exec(
        select(Specification).where(Specification.code == code, Specification.version == version)
    ).first()
    if spec is None:
        raise NotFound(f"no specification {code} version {version}", code="unknown_spec")
    return spec


def list_specs(
    session: Session, *, product: str | None = None, state: str | None = None
) -> list[Specification]:
    """Return the specification versions, by code then version."""
    stmt = select(Specification)
    if product:
        stmt = stmt.where(Specification.product == product)
    if state:
        stmt = stmt.where(Specification.state == state)
    return list(session.exec(stmt.order_by(Specification.code, Specification.version)).all())


def limits_of(session: Session, spec: Specification) -> list[SpecLimit]:
    """Return the tests of a specification version, in the order they were written."""

    def read() -> list[SpecLimit]:
        stmt = select(SpecLimit).where(SpecLimit.spec_id == spec.id).order_by(SpecLimit.id)
        return list(session.exec(stmt).all())

    return list(memo(session, ("limits_of", spec.id), read))


def in_force(
    session: Session, *, product: str, stage: str, at: datetime | None = None
) -> Specification | None:
    """Return the approved specification version of product and stage in force at a time."""
    now = at is None
    at = at or utcnow()

    def read() -> Specification | None:
        return session.exec(
            select(Specification)
            .where(
                Specification.product == product,
                Specification.stage == stage,
                col(Specification.approved_at).is_not(None),
                Specification.approved_at <= at,
                (col(Specification.ended_at).is_(None)) | (Specification.ended_at > at),
            )
            .order_by(col(Specification.approved_at).desc())
        ).first()

    # "Now" is the request's now: the page and the release rules it asks ask the same.
    return memo(session, ("in_force", product, stage), read) if now else read()


def has_spec(session: Session, *, product: str, stage: str = "release") -> bool:
    """Tell whether product has ever had an approved specification for stage."""
    return (
        session.exec(
            select(Specification.id).where(
                Specification.product == product,
                Specification.stage == stage,
                col(Specification.approved_at).is_not(None),
            )
        ).first()
        is not None
    )


def required_tests(session: Session, *, product: str, stage: str = "release") -> list[str] | None:
    """Return the sampling plan: the tests disposition needs now (None: no spec in force)."""
    spec = in_force(session, product=product, stage=stage)
    if spec is None:
        return None
    return [x.test for x in limits_of(session, spec) if x.required]


def _num(x: float) -> str:
    text = f"{x:g}".replace("e+", "e")
    return re.sub(r"e(-?)0+(\d)", r"e\1\2", text)


def render_limit(limit: SpecLimit) -> str:
    """Return a limit as a person writes it: '>= 1e12 vg/mL', '< 5 EU/mL', 'no growth'."""
    if limit.text is not None:
        return limit.text
    unit = f" {limit.unit}" if limit.unit else ""
    low = None
    if limit.lower is not None:
        low = f"{'>=' if limit.lower_inclusive else '>'} {_num(limit.lower)}"
    high = None
    if limit.upper is not None:
        high = f"{'<=' if limit.upper_inclusive else '<'} {_num(limit.upper)}"
    return " and ".join(x for x in (low, high) if x) + unit


def limit_dict(limit: SpecLimit) -> dict[str, Any]:
    """Return the JSON of one test of a specification."""
    return {
        "test": limit.test,
        "method": limit.method,
        "unit": limit.unit,
        "lower": limit.lower,
        "lower_inclusive": limit.lower_inclusive,
        "upper": limit.upper,
        "upper_inclusive": limit.upper_inclusive,
        "alert_lower": limit.alert_lower,
        "alert_upper": limit.alert_upper,
        "action_lower": limit.action_lower,
        "action_upper": limit.action_upper,
        "text": limit.text,
        "required": limit.required,
        "limit": render_limit(limit),
    }


def _content(session: Session, spec: Specification) -> dict[str, Any]:
    """Return what an approval signature binds: the version and every limit."""
    return {
        "code": spec.code,
        "version": spec.version,
        "product": spec.product,
        "stage": spec.stage,
        "title": spec.title,
        "state": spec.state,
        "limits": [limit_dict(x) for x in limits_of(session, spec)],
    }


def _time(t: datetime | None) -> str | None:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


def _username(session: Session, user_id: int | None) -> str | None:
    user = session.get(User, user_id) if user_id else None
    return user.username if user else None


def spec_dict(session: Session, spec: Specification) -> dict[str, Any]:
    """Return the public JSON of a specification version."""
    sig = session.get(Signature, spec.signature_id) if spec.signature_id else None
    return {
        **_content(session, spec),
        "created_by": _username(session, spec.created_by_id),
        "created_at": _time(spec.created_at),
        "approved_by": _username(session, spec.approved_by_id),
        "approved_at": _time(spec.approved_at),
        "ended_at": _time(spec.ended_at),
        "signature": signatures.signature_dict(sig) if sig else None,
        "allowed_actions": [a for a, t in SPEC_TRANSITIONS.items() if spec.state in t.sources],
    }


def spec_summary(spec: Specification) -> dict[str, Any]:
    """Return a specification version's line in a list."""
    return {
        "code": spec.code,
        "version": spec.version,
        "product": spec.product,
        "stage": spec.stage,
        "title": spec.title,
        "state": spec.state,
        "approved_at": _time(spec.approved_at),
    }


# --- judging --------------------------------------------------------------------------------

_NUMBER = re.compile(r"^\s*([0-9.eE+-]+)\s*(\S*)\s*$")


@dataclass(frozen=True)
class Judgement:
    passed: bool
    flag: str | None  # alert | action: in specification, but past a trend limit


def judge(limit: SpecLimit, result: str) -> Judgement:
    """Judge a result against one limit; refuse a result that cannot be read against it."""
    if limit.text is not None:
        return Judgement(" ".join(result.split()).casefold() == limit.text.casefold(), None)
    m = _NUMBER.match(result)
    value = None
    if m:
        try:
            value = float(m.group(1))
        except ValueError:
            value = None
    if value is None:
        raise Refused(
            f"{limit.test} is judged against {render_limit(limit)}: give the result as a number"
            + (f" in {limit.unit}" if limit.unit else ""),
            code="bad_number",
        )
    if not math.isfinite(value):
        # '1e999' overflows to infinity, which would meet any lower limit.
        raise BadRequest("a result must be a finite number", code="bad_number")
    floor = min(x for x in (limit.lower, limit.upper) if x is not None)
    if value < 0 <= floor:
        # Against limits of zero or more (titer, endotoxin, counts) the result is an amount, and
        # a negative amount is a typing error; a limit below zero (a temperature) allows one.
        raise Refused(f"a measured amount cannot be negative ({result})", code="bad_number")
    unit = m.group(2)
    if unit and (limit.unit or "").casefold() != unit.casefold():
        # 0.5 mg/L read against '< 5 EU/mL' would pass on the number alone.
        raise Refused(
            f"the result is in {unit} but {limit.test} is specified in {limit.unit or 'no unit'}; "
            "give the result in the specification's unit",
            code="unit_mismatch",
        )
    passed = True
    if limit.lower is not None:
        passed &= value >= limit.lower if limit.lower_inclusive else value > limit.lower
    if limit.upper is not None:
        passed &= value <= limit.upper if limit.upper_inclusive else value < limit.upper
    flag = None
    if passed:
        for name, low, high in (
            ("action", limit.action_lower, limit.action_upper),
            ("alert", limit.alert_lower, limit.alert_upper),
        ):
            if (low is not None and value < low) or (high is not None and value > high):
                flag = name
                break
    return Judgement(passed, flag)


# --- writing --------------------------------------------------------------------------------


def _record(
    session: Session,
    actor: Actor,
    action: str,
    spec: Specification,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    **kw: Any,
) -> None:
    audit.record_by(
        session,
        actor,
        action=action,
        entity_type="specification",
        entity_id=f"{spec.code} v{spec.version}",
        before=before,
        after=after,
        **kw,
    )


def _check_product(session: Session, product: str) -> None:
    if product in VECTOR_TYPES:
        return
    if session.exec(select(SampleType.id).where(SampleType.code == product)).first() is None:
        raise Refused(
            f"no product {product!r}: give a sample type code or a vector type (AAV, LV)",
            code="unknown_product",
        )


def create_draft(session: Session, *, data: SpecIn, actor: Actor) -> Specification:
    """Write the next version of a specification as a draft (it judges nothing until approved)."""
    if actor.role not in AUTHORS:
        raise Forbidden("writing a specification needs the role qa or admin", code="role_required")
    _check_product(session, data.product)
    tests = [x.test for x in data.limits]
    twice = sorted({t for t in tests if tests.count(t) > 1})
    if twice:
        raise Refused(f"a test appears twice: {', '.join(twice)}", code="duplicate_test")
    versions = session.exec(select(Specification).where(Specification.code == data.code)).all()
    if any(v.state == "draft" for v in versions):
        raise Conflict(
            f"{data.code} has a draft already: approve or discard it first", code="draft_exists"
        )
    latest = max(versions, key=lambda v: v.version, default=None)
    if latest is not None and (latest.product, latest.stage) != (data.product, data.stage):
        raise Refused(
            f"{data.code} is the {latest.stage} specification of {latest.product}; "
            "a new product or stage needs its own code",
            code="spec_code_taken",
        )
    spec = Specification(
        code=data.code,
        version=(
            session.exec(
                select(func.max(Specification.version)).where(Specification.code == data.code)
            ).one()
            or 0
        )
        + 1,
        product=data.product,
        stage=data.stage,
        title=data.title,
        created_by_id=actor.user.id,
    )
    session.add(spec)
    session.flush()
    for x in data.limits:
        session.add(SpecLimit(spec_id=spec.id, **x.model_dump()))
    session.flush()
    _record(session, actor, "spec.draft", spec, None, _content(session, spec))
    return spec


def transition_spec(
    session: Session, *, code: str, version: int, data: SpecTransitionIn, actor: Actor
) -> Specification:
    """Approve, retire or discard a specification version (QA, with an e-signature)."""
    if actor.role not in QA:
        raise Forbidden("moving a specification on needs the role qa", code="role_required")
    spec = get_spec(session, code, version)
    t = SPEC_TRANSITIONS.get(data.action)
    allowed = [a for a, x in SPEC_TRANSITIONS.items() if spec.state in x.sources]
    if t is None or spec.state not in t.sources:
        raise Refused(
            f"cannot {data.action} a specification that is {spec.state}; "
            f"allowed: {', '.join(allowed) or 'none'}",
            code="illegal_transition" if t else "unknown_action",
            state=spec.state,
            allowed=allowed,
        )
    if t.needs_reason and blank(data.reason):
        raise Refused(f"{data.action} needs a reason", code="missing_fields", missing=["reason"])
    if data.action == "approve" and spec.created_by_id == actor.user.id:
        raise Refused(
            "four-eyes rule: the author of a draft may not approve it; another QA person signs",
            code="four_eyes_approval",
        )
    before = _content(session, spec)
    now = utcnow()
    sig = None
    if t.signature:
        sig = signatures.sign_required(
            session,
            actor=actor,
            given=data.signature,
            meaning=t.signature,
            what=f"{data.action} of {spec.code} v{spec.version}",
            record_type="specification",
            record_id=f"{spec.code} v{spec.version}",
            content={**before, "state": t.target},
        )
    elif data.signature is not None:
        raise BadRequest(f"{data.action} takes no signature", code="unexpected_field")
    changes: dict[str, Any] = {"state": t.target}
    if t.target == "approved":
        changes |= {"approved_by_id": actor.user.id, "approved_at": now, "signature_id": sig.id}
    elif spec.state == "approved":
        changes["ended_at"] = now
    if data.action == "approve":
        _supersede(session, spec, actor, now)
    _save(session, spec, changes)
    after = _content(session, spec)
    if sig is not None:
        after["signature"] = signatures.manifestation(sig)
    _record(
        session,
        actor,
        f"spec.{data.action}",
        spec,
        before,
        after,
        reason=None if blank(data.reason) else data.reason,
        signature_id=sig.id if sig else None,
    )
    return spec


def _save(session: Session, spec: Specification, changes: dict[str, Any]) -> None:
    """Write a state change unless someone moved the specification meanwhile (409)."""
    res = session.connection().execute(
        update(Specification)
        .where(Specification.id == spec.id, Specification.state == spec.state)
        .values(**changes)
    )
    if res.rowcount != 1:
        raise Conflict(
            f"{spec.code} v{spec.version} was changed by someone else; reload it",
            code="version_conflict",
        )
    session.expire(spec)


def _supersede(session: Session, spec: Specification, actor: Actor, now: datetime) -> None:
    """End the approved versions of the same product and stage: one is in force at a time."""
    older = session.exec(
        select(Specification).where(
            Specification.product == spec.product,
            Specification.stage == spec.stage,
            Specification.state == "approved",
        )
    ).all()
    for old in older:
        before = _content(session, old)
        _save(session, old, {"state": "superseded", "ended_at": now})
        _record(
            session,
            actor,
            "spec.supersede",
            old,
            before,
            _content(session, old),
            reason=f"superseded by {spec.code} v{spec.version}",
        )


_BOUND = re.compile(r"^\s*(>=|<=|>|<)\s*([0-9.eE+-]+)\s*$")


def parse_limit_line(line: str) -> LimitIn:
    """Read one test written 'test | method | unit | limit [| optional]' (a page or file).

    The limit is '>= 1e12', '< 5', '>= 70 and <= 100', or the accepted text ('no growth').
    """
    parts = [p.strip() for p in line.split("|")]
    if len(parts) not in (4, 5) or not parts[0] or not parts[3]:
        raise Refused(
            f"cannot read {line.strip()!r}: write 'test | method | unit | limit' "
            "(and '| optional' when release does not need the test)",
            code="bad_limit",
        )
    test, method, unit, limit = parts[:4]
    fields: dict[str, Any] = {
        "test": test,
        "method": method or None,
        "unit": unit or None,
        "required": not (len(parts) == 5 and parts[4].casefold() == "optional"),
    }
    bounds = [_BOUND.match(b) for b in re.split(r"\band\b", limit)]
    if all(bounds):
        for m in bounds:
            try:
                value = float(m.group(2))
            except ValueError:
                raise Refused(f"cannot read the number in {limit!r}", code="bad_limit") from None
            side = "lower" if m.group(1).startswith(">") else "upper"
            fields[side] = value
            fields[f"{side}_inclusive"] = m.group(1).endswith("=")
    else:
        fields["text"] = limit
    try:
        return LimitIn(**fields)
    except ValueError as err:
        raise Refused(f"{test}: {_first(err)}", code="bad_limit") from None


def _first(err: ValueError) -> str:
    errors = getattr(err, "errors", None)
    if errors:
        first = errors()[0]
        return str(first.get("ctx", {}).get("error", first["msg"]))
    return str(err)
