"""Quality pages: specifications (draft, approve, retire) and OOS investigations."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from lims.boundary.unit import get_db
from lims.errors import Refused
from lims.quality import oos, specs
from lims.roles import LAB, QA
from lims.signatures import SignatureIn
from lims.web.common import actor, area, first_error, page, perform, render

bp = area("quality", __name__)


def _signature(form: Any) -> SignatureIn | None:
    password = form.get("password") or ""
    if not password:
        return None
    meaning = (form.get("meaning") or "")[:32] or "\0"
    return SignatureIn(password=password[:500], meaning=meaning)


@bp.get("/quality/specs", endpoint="specs")
@page()
def specs_page():  # noqa: ANN201
    """List the specification versions and, for QA and admin, write a new draft."""
    return _specs_page()


def _specs_page(status: int = 200, **extra: Any):  # noqa: ANN202
    rows = specs.list_specs(get_db())
    can_author = actor().role in specs.AUTHORS
    return render(
        "quality/specs.html", status, rows=rows, can_author=can_author, stages=specs.STAGES, **extra
    )


@bp.post("/quality/specs", endpoint="create_spec")
@page(*specs.AUTHORS)
def create_spec():  # noqa: ANN201
    """Write a draft from the form: one test per line, 'test | method | unit | limit'."""
    form = request.form
    keep = {k: form.get(k, "") for k in ("code", "product", "stage", "title", "limits")}

    def write() -> Any:
        lines = [x for x in (form.get("limits") or "").splitlines() if x.strip()]
        if not lines:
            raise Refused("write at least one test", code="missing_fields", missing=["limits"])
        try:
            data = specs.SpecIn(
                code=(form.get("code") or "").strip(),
                product=(form.get("product") or "").strip(),
                stage=(form.get("stage") or "").strip(),
                title=(form.get("title") or "").strip(),
                limits=[specs.parse_limit_line(x) for x in lines],
            )
        except ValueError as exc:
            raise Refused(f"The form is incomplete: {first_error(exc)}", code="bad_form") from None
        return specs.create_draft(get_db(), data=data, actor=actor())

    spec, err = perform(write)
    if err is not None:
        return _specs_page(err.status, error=err.message, form=keep)
    flash(f"Draft {spec.code} v{spec.version} written; another QA person approves it.", "ok")
    return redirect(url_for("web.quality.spec", code=spec.code, version=spec.version))


@bp.get("/quality/specs/<code>/<int:version>", endpoint="spec")
@page()
def spec_page(code: str, version: int):  # noqa: ANN201
    """Show a specification version: its limits, sampling plan, state and signatures."""
    return _spec_page(code, version)


def _spec_page(code: str, version: int, status: int = 200, **extra: Any):  # noqa: ANN202
    db = get_db()
    spec = specs.get_spec(db, code, version)
    info = specs.spec_dict(db, spec)
    moves = [specs.SPEC_TRANSITIONS[a] for a in info["allowed_actions"]]
    return render(
        "quality/spec.html",
        status,
        spec=spec,
        info=info,
        moves=moves if actor().role in QA else [],
        **extra,
    )


@bp.post("/quality/specs/<code>/<int:version>/transition", endpoint="spec_transition")
@page(*QA)
def spec_transition(code: str, version: int):  # noqa: ANN201
    """Approve, retire or discard a specification version (signed)."""
    form = request.form
    action = (form.get("action") or "")[:32]
    try:
        data = specs.SpecTransitionIn(
            action=action,
            reason=(form.get("reason") or "").strip() or None,
            signature=_signature(form),
        )
    except ValueError as exc:
        return _spec_page(
            code, version, 400, error=f"The form could not be read: {first_error(exc)}"
        )
    _, err = perform(
        lambda: specs.transition_spec(
            get_db(), code=code, version=version, data=data, actor=actor()
        )
    )
    if err is not None:
        if err.code == "unknown_spec":
            raise err
        return _spec_page(code, version, err.status, error=err.message, failed=action)
    flash(f"{code} v{version}: {action} done.", "ok")
    return redirect(url_for("web.quality.spec", code=code, version=version))


@bp.get("/quality/oos", endpoint="oos_list")
@page()
def oos_list():  # noqa: ANN201
    """List the out-of-specification investigations, open ones first."""
    db = get_db()
    found, total = oos.list_oos(db, actor(), limit=OOS_SHOWN)
    return render("quality/oos_list.html", rows=oos.oos_summaries(db, found), total=total)


OOS_SHOWN = 200  # open ones come first, so none is ever out of sight behind closed ones


@bp.get("/quality/oos/<int:oos_id>", endpoint="oos")
@page()
def oos_page(oos_id: int):  # noqa: ANN201
    """Show an investigation: the result, its retests, its phase and the next moves."""
    return _oos_page(oos_id)


def _oos_page(oos_id: int, status: int = 200, **extra: Any):  # noqa: ANN202
    db = get_db()
    info = oos.oos_dict(db, oos.get_oos(db, oos_id, actor()))
    moves = [oos.OOS_TRANSITIONS[a] for a in info["allowed_actions"]]
    return render(
        "quality/oos.html",
        status,
        info=info,
        moves=moves if actor().role in QA else [],
        can_retest=info["open"] and actor().role in LAB,
        **extra,
    )


@bp.post("/quality/oos/<int:oos_id>/transition", endpoint="oos_transition")
@page(*QA)
def oos_transition(oos_id: int):  # noqa: ANN201
    """Move an investigation on, with a reason and a QA e-signature."""
    form = request.form
    action = (form.get("action") or "")[:32]
    try:
        data = oos.OosTransitionIn(
            action=action,
            reason=(form.get("reason") or "").strip(),
            version=int(form.get("version") or 0) or None,
            signature=_signature(form),
        )
    except ValueError as exc:
        return _oos_page(oos_id, 400, error=f"The form could not be read: {first_error(exc)}")
    _, err = perform(lambda: oos.transition_oos(get_db(), oos_id=oos_id, data=data, actor=actor()))
    if err is not None:
        if err.code == "unknown_oos":
            raise err
        return _oos_page(oos_id, err.status, error=err.message, failed=action)
    flash(f"OOS-{oos_id}: {action.replace('_', ' ')} done.", "ok")
    return redirect(url_for("web.quality.oos", oos_id=oos_id))


@bp.post("/quality/oos/<int:oos_id>/retest", endpoint="oos_retest")
@page(*LAB)
def oos_retest(oos_id: int):  # noqa: ANN201
    """Record a retest inside an open investigation."""
    form = request.form
    try:
        data = oos.RetestIn(
            result=(form.get("result") or "").strip(),
            reason=(form.get("reason") or "").strip() or None,
        )
    except ValueError as exc:
        return _oos_page(oos_id, 400, error=f"The retest form is incomplete: {first_error(exc)}")
    _, err = perform(lambda: oos.record_retest(get_db(), oos_id=oos_id, data=data, actor=actor()))
    if err is not None:
        if err.code == "unknown_oos":
            raise err
        return _oos_page(oos_id, err.status, error=err.message)
    flash(f"Retest recorded in OOS-{oos_id}.", "ok")
    return redirect(url_for("web.quality.oos", oos_id=oos_id))
