"""What each kind of scan does at a station: badge, command, location, lot, COI label, tube."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, select

from lims import custody, samples, storage
from lims.accounts.users import Actor
from lims.bench.modes import BY_COMMAND, MODES
from lims.bench.resolve import Resolved
from lims.bench.station import change, context, prompt, set_operator, settings
from lims.errors import LimsError
from lims.manufacturing import genealogy, materials
from lims.models import Location, Organisation, Sample, Station, User, VectorLot
from lims.samples import TransitionIn


class Refusal(Exception):
    """A scan the station refuses: nothing changes, the operator is told why."""

    def __init__(self, code: str, message: str, cause: LimsError | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.cause = cause  # the domain's refusal it says at the bench, when there is one


def apply(
    session: Session,
    st: Station,
    r: Resolved,
    actor: Actor | None,
    operator: User | None,
    device: str,
    result: dict[str, Any],
) -> None:
    """Do what the resolved scan means at the station; fill result's action and message."""
    if r.kind == "badge":
        _badge(session, st, r.obj, operator, device, result)
        return
    assert actor is not None  # every other kind was refused without an operator
    if st.mode is None and r.kind in _LOOKUPS:
        # With no task a place, lot or tube is looked up: nothing changes.
        result["action"] = "lookup"
        result["message"] = _LOOKUPS[r.kind](session, r, result)
        return
    if st.mode is not None and MODES[st.mode].handles_material and r.kind != "command":
        if MODES[st.mode].receives_material:
            _material(session, r, actor, result)
        else:
            _use_material(session, st, r, actor, result)
        return
    handler = _BY_KIND.get(r.kind)
    if handler is None:  # gs1 with nothing of ours in it
        raise Refusal(
            "not_ours",
            f"GS1 code {r.parsed.gs1['hri'] if r.parsed and r.parsed.gs1 else r.ref} is not a "
            "LIMS record (no lot of ours); nothing done",
        )
    handler(session, st, r, actor, result)


def _badge(
    session: Session,
    st: Station,
    user: User,
    previous: User | None,
    device: str,
    result: dict[str, Any],
) -> None:
    if not user.active:
        raise Refusal("user_disabled", f"badge of {user.username}: the account is disabled")
    org = session.get(Organisation, user.org_id)
    who = Actor(user=user, org=org, station=st.name, device=device)
    custody.require_role(
        who.role, custody.HANDLERS, f"{user.username} ({who.role}) may not work at a bench station"
    )
    result["action"] = "sign_in"
    if st.operator_id == user.id:
        result["message"] = f"{user.full_name} is signed in already"
        return
    set_operator(session, st, who, user.id)
    after = ""
    if previous is not None and who.can_see(previous.org_id):
        after = f" (after {previous.username})"
    result["message"] = f"signed in: {user.full_name}{after}; scan a command"


def _set(
    session: Session,
    st: Station,
    actor: Actor,
    result: dict[str, Any],
    setting: str,
    value: str,
    message: str,
) -> None:
    """Set one setting of the station's task (an audited change)."""
    result["action"] = f"set_{setting}"
    change(session, st, actor, "station.setting", context={**context(st), setting: value})
    result["message"] = message


def _in_mode(st: Station, setting: str, refusal: str) -> None:
    """Refuse a setting scanned in a mode that does not take it."""
    if st.mode is None or not MODES[st.mode].takes(setting):
        raise Refusal("wrong_mode", refusal)


# CMD:<name>:<value> -> (setting, refused outside its modes, message once set)
_SETTING_COMMANDS = {
    "REASON": (
        "reason",
        "a reason is scanned in dispose mode: CMD:DISPOSE first",
        "reason: {}; scan the tubes to dispose of",
    ),
    "CONDITION": (
        "condition",
        "a condition is scanned in receive mode: CMD:RECEIVE",
        "condition: {}; scan the tubes that arrived so",
    ),
}


def _command(
    session: Session, st: Station, r: Resolved, actor: Actor, result: dict[str, Any]
) -> None:
    name = r.ref
    if name in _SETTING_COMMANDS:
        setting, refusal, message = _SETTING_COMMANDS[name]
        arg = r.parsed.argument if r.parsed else None
        _in_mode(st, setting, refusal)
        _set(session, st, actor, result, setting, arg, message.format(arg))
    elif name == "LOGOUT":
        result["action"] = "sign_out"
        set_operator(session, st, actor, None)
        result["message"] = f"signed off: {actor.user.full_name}"
    elif name == "DONE":
        _done(session, st, actor, result)
    else:
        mode = BY_COMMAND[name]
        result["action"] = "set_mode"
        change(session, st, actor, "station.mode", mode=mode.name, target_id=None, context={})
        result["message"] = f"mode {name}: " + prompt(st, {}, None)


def _done(session: Session, st: Station, actor: Actor, result: dict[str, Any]) -> None:
    result["action"] = "done"
    if st.mode is None and st.target_location_id is None and not context(st):
        result["message"] = "no task to end"
        return
    ended = st.mode.replace("_", " ") if st.mode else "task"
    change(session, st, actor, "station.mode", mode=None, target_id=None, context={})
    result["message"] = f"{ended} ended; scan a command or CMD:LOGOUT"


def _location(
    session: Session, st: Station, r: Resolved, actor: Actor, result: dict[str, Any]
) -> None:
    loc: Location = r.obj
    _in_mode(st, "target", f"a location is not used when you {MODES[st.mode].words}")
    if loc.kind in ("site",):
        raise Refusal("bad_location", f"{loc.code} is a site; scan a room, freezer or box")
    position = _free_position(session, loc, r.parsed.position if r.parsed else None, actor)
    ctx = context(st)
    ctx.pop("position", None)
    if position:
        ctx["position"] = position
    result["action"] = "set_target"
    change(session, st, actor, "station.target", target_id=loc.id, context=ctx)
    if position:
        where = f"{loc.code} {position} (next tube), then the next free positions"
    elif loc.kind == "box":
        where = f"{loc.code}, next free position {storage.next_free_position(session, loc)}"
    else:
        where = loc.code
    result["message"] = f"target: {where}"


def _look_up_location(session: Session, r: Resolved, result: dict[str, Any]) -> str:
    loc: Location = r.obj
    used = ""
    if loc.kind == "box" and loc.rows and loc.cols:
        taken = len(storage.occupied(session, loc.id))
        used = f" ({taken} of {loc.rows * loc.cols} positions used)"
    return f"{loc.code}: {storage.path_text(session, loc)}{used}; scan a command"


def _look_up_lot(session: Session, r: Resolved, result: dict[str, Any]) -> str:
    lot: VectorLot = r.obj
    expires = f", expires {lot.expires_on.isoformat()}" if lot.expires_on else ""
    return f"lot {lot.lot_number}: {lot.vector}, {lot.state}{expires}"


def _look_up_sample(session: Session, r: Resolved, result: dict[str, Any]) -> str:
    s: Sample = r.obj
    result["sample"] = samples.sample_dict(session, s)
    lot = session.get(VectorLot, s.lot_id) if s.lot_id else None
    held = ""
    if lot is not None and lot.state != "released":
        # What blocks the vial's use is its lot, which the tube's own state does not show.
        held = f"; its lot {lot.lot_number} is {custody.lot_state_words(lot.state)}"
    return f"{s.barcode}: {s.state}{_where(session, s)}{held}; scan a command to act"


def _free_position(
    session: Session, loc: Location, position: str | None, actor: Actor
) -> str | None:
    """Return the scanned box position, refused unless it is in a box and free."""
    if position is None:
        return None
    if loc.kind != "box":
        raise Refusal("bad_position", f"{loc.code} is a {loc.kind}; positions exist in boxes")
    position = storage.parse_position(loc, position)
    holder = session.exec(
        select(Sample.barcode, Sample.org_id).where(
            Sample.location_id == loc.id, Sample.position == position
        )
    ).first()
    if holder:
        # Boxes are shared: another organisation's tube is "occupied", never named.
        what = f"already holds {holder[0]}" if actor.can_see(holder[1]) else "is occupied"
        raise Refusal("position_occupied", f"{loc.code} {position} {what}")
    return position


def _lot(session: Session, st: Station, r: Resolved, actor: Actor, result: dict[str, Any]) -> None:
    lot = r.obj
    expiry = (r.parsed.gs1 or {}).get("expiry") if r.parsed else None
    if expiry and lot.expires_on and expiry != lot.expires_on.isoformat():
        raise Refusal(
            "lot_label_mismatch",
            f"the label says lot {lot.lot_number} expires {expiry}; the LIMS says "
            f"{lot.expires_on.isoformat()}: check the label",
        )
    message = f"lot {lot.lot_number} ({lot.state}): only its vials from now on"
    _set(session, st, actor, result, "lot", lot.lot_number, message)


def _coi(session: Session, st: Station, r: Resolved, actor: Actor, result: dict[str, Any]) -> None:
    _in_mode(
        st,
        "coi",
        "a COI label is scanned in receive or hand-over mode: CMD:RECEIVE or CMD:HANDOVER",
    )
    said = f"expected COI {r.ref}: scan the tubes to {MODES[st.mode].words}"
    _set(session, st, actor, result, "coi", r.ref, said)


def _sample(
    session: Session, st: Station, r: Resolved, actor: Actor, result: dict[str, Any]
) -> None:
    s: Sample = r.obj
    ctx = context(st)
    target = storage.location_by_id(session, st.target_location_id)
    _check_lot(session, s, ctx.get("lot"))
    if st.mode == "store" and target is not None and s.location_id == target.id:
        if not ctx.get("position"):
            raise Refusal(
                "already_there", f"{s.barcode} is in {target.code} at {s.position} already"
            )
    mode = MODES[st.mode]
    fields = mode.fields(settings(st, ctx, target, actor.username))
    try:
        # Custody decides whether the move may be made (role, state, required fields, COI, and
        # a rented room's rule for the station's room: the same answer the API gives).
        s = samples.apply_transition(
            session, sample=s, data=TransitionIn(**fields), actor=actor, room_id=st.room_id
        )
    except LimsError as err:
        raise Refusal(*mode.explain(err), cause=err) from err
    if ctx.pop("position", None):
        # A scanned position takes the next tube only.
        st.context = json.dumps(ctx, sort_keys=True) if ctx else None
        session.add(st)
    result["action"] = mode.name
    result["sample"] = samples.sample_dict(session, s)
    result["message"] = mode.done.format(
        barcode=s.barcode, state=s.state, where=_where(session, s), **fields
    )


def _material(session: Session, r: Resolved, actor: Actor, result: dict[str, Any]) -> None:
    """Receive the supplier item a GS1 scan describes (receive material mode)."""
    if r.parsed is None or r.parsed.kind != "gs1":
        raise Refusal(
            "wrong_mode",
            f"{r.ref} is not a supplier GS1 barcode: in receive material mode scan the GS1 "
            "code on the item (CMD:DONE ends the mode)",
        )
    try:
        mat = materials.receive_scan(session, data=r.parsed.gs1["hri"], actor=actor)
    except LimsError as err:
        raise Refusal(err.code, err.message) from err
    said = materials.material_dict(session, mat)
    result["action"] = "receive_material"
    result["material"] = said
    result["message"] = MODES["receive_material"].done.format(**said)


def _use_material(
    session: Session, st: Station, r: Resolved, actor: Actor, result: dict[str, Any]
) -> None:
    """Use material mode: a lot's own label sets the lot; each material then goes into it."""
    if r.kind == "lot" and (r.parsed is None or r.parsed.kind != "gs1"):
        message = f"lot {r.obj.lot_number}: scan the materials that go into it"
        _set(session, st, actor, result, "lot", r.obj.lot_number, message)
        return
    lot_number = context(st).get("lot")
    if not lot_number:
        raise Refusal("no_lot", "scan the label of the lot the materials go into first")
    if r.kind == "material":
        scan = r.ref
    elif r.parsed is not None and r.parsed.kind == "gs1" and r.parsed.gs1:
        scan = r.parsed.gs1["hri"]
    else:
        raise Refusal(
            "wrong_mode",
            f"{r.ref} is not a material: scan the supplier's GS1 barcode or our MAT- label",
        )
    try:
        genealogy.consume(
            session, lot_number=lot_number, data=genealogy.ConsumeIn(material=scan), actor=actor
        )
        mat = materials.material_by_scan(session, scan, actor)
    except LimsError as err:
        raise Refusal(err.code, err.message) from err
    said = materials.material_dict(session, mat)
    result["action"] = "use_material"
    result["material"] = said
    result["message"] = MODES["use_material"].done.format(lot=lot_number, **said)


def _check_lot(session: Session, s: Sample, lot_number: str | None) -> None:
    """Refuse a tube that is not a vial of the task's lot (when the task has one)."""
    if not lot_number:
        return
    lot = session.get(VectorLot, s.lot_id) if s.lot_id else None
    if lot is None or lot.lot_number != lot_number:
        raise Refusal(
            "wrong_lot",
            f"WRONG LOT: {s.barcode} is "
            + (f"of lot {lot.lot_number}" if lot else "not a vial of any lot")
            + f", not {lot_number}; put it aside",
        )


def _where(session: Session, s: Sample) -> str:
    if s.location_id is None:
        holder = session.get(User, s.custodian_id) if s.custodian_id else None
        return f" with {holder.username}" if holder else ""
    loc = storage.location_by_id(session, s.location_id)
    return f" in {loc.code}" + (f" at {s.position}" if s.position else "")


def _look_up_material(session: Session, r: Resolved, result: dict[str, Any]) -> str:
    said = materials.material_dict(session, r.obj)
    usable = said["unusable_because"] or "usable"
    return (
        f"{said['code']}: {said['name']} lot {said['supplier_lot']}, {said['state']}, "
        f"expires {said['expires_on']} ({usable})"
    )


def _material_elsewhere(
    session: Session, st: Station, r: Resolved, actor: Actor, result: dict[str, Any]
) -> None:
    raise Refusal(
        "wrong_mode",
        f"{r.ref} is a material: CMD:USE-MATERIAL records it into a lot; nothing done",
    )


_BY_KIND = {
    "material": _material_elsewhere,
    "command": _command,
    "location": _location,
    "lot": _lot,
    "coi": _coi,
    "sample": _sample,
}
_LOOKUPS = {
    "material": _look_up_material,
    "location": _look_up_location,
    "lot": _look_up_lot,
    "sample": _look_up_sample,
}
