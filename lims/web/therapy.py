"""Cell therapy pages: episodes, one episode with its chain of identity as a timeline and its
next move, and the patient register for the centre's QA and admin."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from lims.boundary.unit import get_db, record_now
from lims.roles import CENTRE_ROLES, LAB, QA
from lims.signatures import SignatureIn
from lims.therapy import episodes, patients, products
from lims.web.common import actor, area, first_error, page, perform, render

bp = area("therapy", __name__)


def _text(name: str, limit: int) -> str | None:
    return (request.form.get(name) or "").strip()[:limit] or None


@bp.get("/episodes", endpoint="list")
@page()
def episode_list(status: int = 200, **extra: Any):  # noqa: ANN201
    """List the treatment episodes you may see, newest first (with the enrolment form)."""
    db = get_db()
    state = (request.args.get("state") or "").strip()[:32] or None
    rows = episodes.list_episodes(db, actor(), state=state)
    return render(
        "therapy/episodes.html",
        status,
        rows=[episodes.episode_dict(db, e) for e in rows],
        states=episodes.STATES,
        state=state,
        can_read_identifiers=patients.may_read_identifiers(actor()),
        can_enrol=_can_enrol(),
        product_codes=products.list_product_codes(db),
        **extra,
    )


def _can_enrol() -> bool:
    who = actor()
    return who.sees_all and who.role in LAB


@bp.post("/episodes", endpoint="enrol")
@page(*LAB)
def episode_enrol():  # noqa: ANN201
    """Enrol a registered patient or donor from the form (by COI)."""
    try:
        data = episodes.EpisodeCreate(
            coi=_text("coi", 64) or "",
            project=_text("project", 64) or "",
            product_code=_text("product_code", 8),
        )
    except ValueError as exc:
        return episode_list(error=f"The form is incomplete: {first_error(exc)}", status=400)
    ep, err = perform(lambda: episodes.enrol(get_db(), data=data, actor=actor()))
    if err is not None:
        return episode_list(error=err.message, status=err.status)
    flash(f"{ep.number} opened for {ep.coi}.", "ok")
    return redirect(url_for("web.therapy.show", number=ep.number))


def _context(number: str, **extra: Any) -> dict[str, Any]:
    db = get_db()
    who = actor()
    ep = episodes.get_episode(db, number, who)
    info = episodes.episode_dict(db, ep)
    moves = [
        episodes.TRANSITIONS[a]
        for a in info["allowed_actions"]
        if who.role in episodes.TRANSITIONS[a].roles
    ]
    return {
        "ep": info,
        "timeline": episodes.timeline(db, ep),
        "moves": moves,
        "can_acknowledge": bool(ep.held_by) and who.role in QA,
        "field_words": episodes.FIELD_WORDS,
        **extra,
    }


@bp.get("/episodes/<number>", endpoint="show")
@page()
def episode_page(number: str):  # noqa: ANN201
    """Show an episode: its COI, product identity, samples, the timeline and its next moves."""
    return render("therapy/episode.html", **_context(number))


@bp.post("/episodes/<number>/transition", endpoint="transition")
@page()
def episode_transition(number: str):  # noqa: ANN201
    """Apply one move from the form; a refusal (a COI mismatch) shows the domain's reason."""
    action = _text("action", 32) or ""
    try:
        data = episodes.EpisodeTransitionIn(
            action=action,
            version=int(request.form.get("version") or 0) or None,
            **{f: _text(f, 2000 if f == "reason" else 64) for f in episodes.FIELDS},
            # The release is signed: the password re-entered on the form, meaning "release".
            signature=SignatureIn(password=request.form.get("password") or "\0", meaning="release")
            if action == "release"
            else None,
        )
    except ValueError as exc:
        ctx = _context(number, failed=action)
        return render("therapy/episode.html", 400, error=first_error(exc), **ctx)
    if data.signature is not None and data.signature.password == "\0":
        ctx = _context(number, failed=action)
        return render("therapy/episode.html", 422, error="Enter your password to sign.", **ctx)
    _, err = perform(lambda: episodes.transition(get_db(), number=number, data=data, actor=actor()))
    if err is not None:
        if err.code == "unknown_episode":
            raise err
        ctx = _context(number, failed=action)
        return render("therapy/episode.html", err.status, error=err.message, **ctx)
    flash(f"{number}: {action.replace('_', ' ')} done.", "ok")
    return redirect(url_for("web.therapy.show", number=number))


@bp.get("/patients", endpoint="patients")
@page(*CENTRE_ROLES)
def patient_list(status: int = 200, **extra: Any):  # noqa: ANN201
    """The patient and donor register (centre QA and admin); showing it is recorded."""
    db = get_db()
    who = actor()
    rows = patients.list_patients(db, who)
    shown = [patients.patient_dict(db, p) for p in rows]
    record_now(lambda w: patients.record_read(w, who, rows, "patients page"))
    return render("therapy/patients.html", status, rows=shown, **extra)


@bp.post("/patients", endpoint="register")
@page(*CENTRE_ROLES)
def patient_register():  # noqa: ANN201
    """Register a patient or donor from the form; the COI is allocated."""
    try:
        data = patients.PatientIn(
            kind=_text("kind", 16) or "patient",
            full_name=_text("full_name", 200) or "",
            date_of_birth=_text("date_of_birth", 10) or "",
            hospital_id=_text("hospital_id", 64) or "",
            organisation=_text("organisation", 64),
        )
    except ValueError as exc:
        return patient_list(error=f"The form is incomplete: {first_error(exc)}", status=400)
    p, err = perform(lambda: patients.register_patient(get_db(), data=data, actor=actor()))
    if err is not None:
        return patient_list(error=err.message, status=err.status)
    flash(f"Registered with COI {p.coi}.", "ok")
    return redirect(url_for("web.therapy.patients"))


@bp.post("/episodes/<number>/acknowledge", endpoint="acknowledge")
@page(*QA)
def episode_acknowledge(number: str):  # noqa: ANN201
    """QA acknowledges the COI mismatch that holds the episode, with a reason."""
    try:
        data = episodes.AcknowledgeIn(
            reason=_text("reason", 2000) or "",
            version=int(request.form.get("version") or 0) or None,
        )
    except ValueError as exc:
        ctx = _context(number, failed="acknowledge")
        return render("therapy/episode.html", 400, error=first_error(exc), **ctx)
    _, err = perform(
        lambda: episodes.acknowledge_mismatch(get_db(), number=number, data=data, actor=actor())
    )
    if err is not None:
        ctx = _context(number, failed="acknowledge")
        return render("therapy/episode.html", err.status, error=err.message, **ctx)
    flash(f"{number}: COI mismatch acknowledged; the episode may move on.", "ok")
    return redirect(url_for("web.therapy.show", number=number))
