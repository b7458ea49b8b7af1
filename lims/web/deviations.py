"""Deviation pages: the list, raising one, a deviation with its links, CAPA and QA actions."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from lims.boundary.unit import get_db
from lims.errors import BadRequest, Forbidden
from lims.quality import deviations
from lims.roles import LAB, QA
from lims.web.common import actor, area, first_error, page, perform, render

bp = area("deviations", __name__)


def _text(name: str, limit: int) -> str | None:
    """Return a form field trimmed, or None when empty (overlong is cut to the field's size)."""
    return (request.form.get(name) or "").strip()[:limit] or None


def _filters() -> dict[str, str | None]:
    return {
        name: (request.args.get(name) or "").strip()[:64] or None
        for name in ("state", "severity", "lot", "sample")
    }


@bp.get("/deviations", endpoint="list")
@page()
def deviation_list():  # noqa: ANN201
    """List the deviations you may see, newest first, with filters."""
    db = get_db()
    filters = _filters()
    rows = deviations.list_deviations(db, actor(), **filters)
    return render(
        "deviations/list.html",
        rows=deviations.summaries(db, rows),
        filters=filters,
        states=deviations.STATES,
        severities=deviations.SEVERITIES,
        can_raise=_can_raise(),
    )


def _can_raise() -> bool:
    who = actor()
    return who.sees_all and who.role in LAB


def _new_context(**extra: Any) -> dict[str, Any]:
    return {
        "severities": deviations.SEVERITIES,
        "kinds": deviations.LINK_KINDS,
        "form": request.form if request.method == "POST" else request.args,
        **extra,
    }


@bp.get("/deviations/new", endpoint="new")
@page(*LAB)
def deviation_new():  # noqa: ANN201
    """Show the form to raise a deviation (prefilled with a record to link, if given)."""
    if not _can_raise():
        raise Forbidden("raising a deviation is for the centre's staff", code="role_required")
    return render("deviations/new.html", **_new_context())


def _links_from_form() -> list[deviations.LinkIn]:
    links = []
    for i in range(3):
        kind, ref = _text(f"link_kind_{i}", 16), _text(f"link_ref_{i}", 64)
        if ref:
            links.append(deviations.LinkIn(kind=kind or "", ref=ref))
    return links


@bp.post("/deviations", endpoint="create")
@page(*LAB)
def deviation_create():  # noqa: ANN201
    """Raise a deviation from the form."""
    try:
        data = deviations.DeviationCreate(
            title=_text("title", 200) or "",
            description=_text("description", 10000) or "",
            severity=_text("severity", 16) or "",
            category=_text("category", 64),
            links=_links_from_form(),
            references=_text("references", 32),
        )
    except ValueError as exc:
        msg = f"The form is incomplete: {first_error(exc)}"
        return render("deviations/new.html", 400, error=msg, **_new_context())
    dev, err = perform(lambda: deviations.create_deviation(get_db(), data=data, actor=actor()))
    if err is not None:
        return render("deviations/new.html", err.status, error=err.message, **_new_context())
    flash(f"Deviation {dev.number} raised.", "ok")
    return redirect(url_for("web.deviations.show", number=dev.number))


def _context(number: str, **extra: Any) -> dict[str, Any]:
    db = get_db()
    who = actor()
    dev = deviations.get_deviation(db, number, who)
    info = deviations.deviation_dict(db, dev)
    active = dev.state in deviations.ACTIVE
    return {
        "dev": info,
        "actions": [deviations.TRANSITIONS[a] for a in info["allowed_actions"]]
        if who.role in QA
        else [],
        "can_link": active and who.sees_all and who.role in LAB,
        "can_capa": active and who.role in QA,
        "history": deviations.history(db, dev),
        "can_raise": _can_raise(),
        "username": who.username,
        "kinds": deviations.LINK_KINDS,
        **extra,
    }


@bp.get("/deviations/<number>", endpoint="show")
@page()
def deviation_page(number: str):  # noqa: ANN201
    """Show a deviation: what happened, the records it concerns, CAPA, QA actions."""
    return render("deviations/detail.html", **_context(number))


def _after(number: str, done: str, fn: Any, failed: str) -> Any:
    """Run one change; on refusal show the page with the reason, else go back to it."""
    _, err = perform(fn)
    if err is not None:
        if err.code == "unknown_deviation":
            raise err
        ctx = _context(number, failed=failed)
        return render("deviations/detail.html", err.status, error=err.message, **ctx)
    flash(done, "ok")
    return redirect(url_for("web.deviations.show", number=number))


def _refused(number: str, exc: Exception, failed: str) -> Any:
    msg = f"The form could not be read: {first_error(exc)}"
    return render("deviations/detail.html", 400, error=msg, **_context(number, failed=failed))


@bp.post("/deviations/<number>/transition", endpoint="transition")
@page(*LAB)
def deviation_transition(number: str):  # noqa: ANN201
    """Investigate or close a deviation (QA; closing is signed)."""
    action = _text("action", 32) or ""
    t = deviations.TRANSITIONS.get(action)
    try:
        sig = None
        if t is not None and t.signature:
            sig = deviations.DeviationSignature(
                password=request.form.get("password") or "\0",
                meaning=_text("meaning", 32) or "\0",
            )
        data = deviations.DeviationTransitionIn(
            action=action,
            version=int(request.form.get("version") or 0) or None,
            reason=_text("reason", 2000),
            root_cause=_text("root_cause", 10000) if t and t.needs_root_cause else None,
            signature=sig,
        )
    except ValueError as exc:
        return _refused(number, exc, action)
    if sig is not None and sig.password == "\0":
        ctx = _context(number, failed=action)
        return render("deviations/detail.html", 422, error="Enter your password to sign.", **ctx)
    return _after(
        number,
        f"{number}: {action} done.",
        lambda: deviations.transition(get_db(), number=number, data=data, actor=actor()),
        action,
    )


@bp.post("/deviations/<number>/links", endpoint="links")
@page(*LAB)
def deviation_links(number: str):  # noqa: ANN201
    """Link a record to the deviation, or unlink one with a reason."""
    try:
        data = deviations.LinkChange(
            kind=_text("kind", 16) or "",
            ref=_text("ref", 64) or "",
            unlink=request.form.get("unlink") == "yes",
            reason=_text("reason", 2000),
        )
    except ValueError as exc:
        return _refused(number, exc, "link")
    word = "unlinked" if data.unlink else "linked"
    return _after(
        number,
        f"{data.kind} {data.ref} {word}.",
        lambda: deviations.change_link(get_db(), number=number, data=data, actor=actor()),
        "link",
    )


@bp.post("/deviations/<number>/capa", endpoint="capa")
@page(*LAB)
def deviation_capa(number: str):  # noqa: ANN201
    """Add a CAPA action (QA)."""
    try:
        data = deviations.CapaIn(
            description=_text("description", 4000) or "",
            owner=_text("owner", 64) or "",
            due_on=_text("due_on", 10) or "",
        )
    except ValueError as exc:
        return _refused(number, exc, "capa")
    return _after(
        number,
        "CAPA action added.",
        lambda: deviations.add_capa(get_db(), number=number, data=data, actor=actor()),
        "capa",
    )


def _capa_id(raw: str) -> int:
    if not raw.isdigit() or int(raw) > 2**31 - 1:
        raise BadRequest("a CAPA action is named by its number")
    return int(raw)


@bp.post("/deviations/<number>/capa/<capa>/complete", endpoint="capa_complete")
@page(*LAB)
def deviation_capa_complete(number: str, capa: str):  # noqa: ANN201
    """Mark a CAPA action done, with its effectiveness check."""
    capa_id = _capa_id(capa)
    try:
        data = deviations.CapaComplete(effectiveness_check=_text("effectiveness_check", 4000) or "")
    except ValueError as exc:
        return _refused(number, exc, f"capa-{capa_id}")
    return _after(
        number,
        f"CAPA action #{capa_id} done.",
        lambda: deviations.complete_capa(
            get_db(), number=number, capa_id=capa_id, data=data, actor=actor()
        ),
        f"capa-{capa_id}",
    )


@bp.post("/deviations/<number>/capa/<capa>/carry", endpoint="capa_carry")
@page(*LAB)
def deviation_capa_carry(number: str, capa: str):  # noqa: ANN201
    """Carry an unfinished CAPA action into another open deviation."""
    capa_id = _capa_id(capa)
    try:
        data = deviations.CapaCarry(to=_text("to", 32) or "", reason=_text("reason", 2000) or "")
    except ValueError as exc:
        return _refused(number, exc, f"capa-{capa_id}")
    return _after(
        number,
        f"CAPA action #{capa_id} carried into {data.to}.",
        lambda: deviations.carry_capa(
            get_db(), number=number, capa_id=capa_id, data=data, actor=actor()
        ),
        f"capa-{capa_id}",
    )


@bp.app_template_global("deviation_holds")
def deviation_holds(*, lot: Any = None, sample: Any = None) -> list[Any]:
    """Return the open critical deviations holding a lot or sample (for its page's red line)."""
    return deviations.release_blockers(get_db(), lot=lot, sample=sample)
