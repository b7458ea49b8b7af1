"""Sample custody state machine: states, the transition table (data) and its guards. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from lims.errors import Forbidden, Refused
from lims.inputs import blank
from lims.roles import LAB, QA, SITE

STATES = (
    "registered",
    "received",
    "quarantine",
    "available",
    "in_use",
    "in_transit",
    "consumed",
    "disposed",
    "rejected",
)
TERMINAL = frozenset({"consumed", "disposed", "rejected"})
# Where a sample sits physically in a box; other states have no position.
STORABLE = frozenset({"received", "quarantine", "available"})


@dataclass(frozen=True)
class Transition:
    action: str
    sources: frozenset[str]
    target: str | None  # None: the state does not change (store, hand_over)
    roles: frozenset[str]
    requires: tuple[str, ...] = ()
    needs_released_lot: bool = False
    description: str = ""
    optional: tuple[str, ...] = field(default=())
    # False: the move follows another record's move (a treatment episode's infusion) and is not
    # offered as a sample's own move on its page.
    direct: bool = True


def _t(
    action,
    sources,
    target,
    roles=LAB,
    requires=(),
    released=False,
    optional=(),
    desc="",
    direct=True,
):  # noqa: ANN001, ANN202, E501
    return Transition(
        action,
        frozenset(sources),
        target,
        frozenset(roles),
        tuple(requires),
        released,
        desc,
        tuple(optional),
        direct,
    )


# The table: every custody move a sample can make. Each applied row is one audit event.
TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        _t(
            "receive",
            {"registered", "in_transit"},
            "received",
            # A clinical site's staff take delivery of the product shipped to them (the
            # shipment's receipt moves its bags); they work at no bench of the centre.
            roles=(*LAB, *SITE),
            requires=("condition",),
            # The COI scanned from the label: a treatment episode's material needs it.
            optional=("location", "position", "coi"),
            desc="take delivery; record its condition",
        ),
        _t(
            "quarantine",
            {"received"},
            "quarantine",
            optional=("location", "position"),
            desc="hold until QA accepts it",
        ),
        _t(
            "release",
            {"quarantine"},
            "available",
            roles=QA,
            desc="QA accepts quarantined material for use",
        ),
        _t(
            "store",
            STORABLE,
            None,
            requires=("location",),
            optional=("position",),
            desc="put into a box position",
        ),
        _t(
            "check_out",
            {"available"},
            "in_use",
            requires=("custodian",),
            released=True,
            desc="take out of storage into a person's custody",
        ),
        _t(
            "check_in",
            {"in_use"},
            "available",
            requires=("location",),
            optional=("position",),
            desc="return to storage",
        ),
        _t(
            "hand_over",
            {"in_use"},
            None,
            requires=("custodian", "coi"),
            released=True,
            desc="pass to another person; the expected COI must match",
        ),
        _t(
            "ship",
            {"available"},
            "in_transit",
            requires=("destination",),
            optional=("coi",),
            released=True,
            desc="send to another site or organisation",
        ),
        _t("consume", {"in_use"}, "consumed", optional=("reason",), desc="used up"),
        _t(
            "infuse",
            {"received"},
            "consumed",
            optional=("coi",),
            desc="given to the patient at the bedside: follows the treatment episode's infusion",
            direct=False,
        ),
        _t(
            "dispose",
            {"registered", "received", "quarantine", "available", "in_use"},
            "disposed",
            requires=("reason",),
            desc="destroy",
        ),
        _t(
            "reject",
            {"registered", "received", "quarantine"},
            "rejected",
            requires=("reason",),
            roles=(*QA, "technician"),
            desc="refuse at receipt or by QA",
        ),
    )
}

FIELDS = ("condition", "location", "position", "custodian", "coi", "destination", "reason")
# Who handles material: the roles some custody move allows (who may work at a bench). A clinical
# site's staff only take delivery of what is shipped to them, through the shipment.
HANDLERS = frozenset().union(*(t.roles for t in TRANSITIONS.values())) - frozenset(SITE)


def require_role(role: str, roles: frozenset[str], message: str) -> None:
    """Refuse (403 role_required) a role that is not one of roles, saying message."""
    if role not in roles:
        raise Forbidden(message, code="role_required")


def allowed_actions(state: str) -> list[str]:
    """Return the actions the table allows from state, in table order."""
    return [a for a, t in TRANSITIONS.items() if state in t.sources]


# How a person says each move was done to a tube ("it cannot be checked out").
DONE_WORDS = {
    "receive": "received",
    "quarantine": "put in quarantine",
    "release": "released for use",
    "store": "stored",
    "check_out": "checked out",
    "check_in": "checked in",
    "hand_over": "handed over",
    "ship": "shipped",
    "consume": "used up",
    "infuse": "infused into the patient",
    "dispose": "disposed of",
    "reject": "rejected",
}
# Where a tube stands, in words ("S26-... is waiting for QA in quarantine").
STATE_WORDS = {
    "registered": "registered but not received yet",
    "received": "received and not yet quarantined",
    "quarantine": "in quarantine, waiting for QA",
    "available": "in storage, available",
    "in_use": "checked out, in someone's hands",
    "in_transit": "in transit",
    "consumed": "used up",
    "disposed": "disposed of",
    "rejected": "rejected",
}
# What a required field is, for someone at a bench or a form.
FIELD_WORDS = {
    "condition": "the condition it arrived in",
    "location": "where it goes (a box or storage place)",
    "position": "the box position",
    "custodian": "who takes it",
    "coi": "the expected chain-of-identity (COI) label",
    "destination": "where it is sent",
    "reason": "a reason",
}
# A lot's disposition, and until when its vials are blocked.
_LOT_BLOCK = {
    "planned": ("only planned", "until the lot is made, tested and released by QA"),
    "in_production": ("still in production", "until QA releases the lot"),
    "quarantine": ("in quarantine", "until QA releases the lot"),
    "on_hold": ("on hold", "until QA lifts the hold"),
    "rejected": ("rejected by QA", "ever: its vials can only be disposed of"),
    "expired": ("expired", "any more: its vials can only be disposed of"),
}


def _moves(actions: list[str]) -> str:
    return ", ".join(f"{DONE_WORDS.get(a, a)} ({a})" for a in actions)


def lot_state_words(lot_state: str) -> str:
    """Return a lot's disposition as a person says it ("in quarantine", "on hold")."""
    return _LOT_BLOCK.get(lot_state, (lot_state.replace("_", " "), ""))[0]


def lot_block_message(action: str, lot_number: str | None, lot_state: str) -> str:
    """Say why a vial of a lot in lot_state cannot have the move, and what would allow it."""
    state, until = _LOT_BLOCK.get(lot_state, (lot_state, "until QA releases the lot"))
    lot = f"This vial's lot {lot_number}" if lot_number else "This vial's lot"
    return f"{lot} is {state}: it cannot be {DONE_WORDS.get(action, action)} {until}"


def check(
    *,
    action: str,
    state: str,
    role: str,
    fields: dict[str, object],
    lot_state: str | None = None,
    lot_expired: bool = False,
    barcode: str | None = None,
    lot_number: str | None = None,
) -> Transition:
    """Return the transition for action from state, or refuse with the reason and allowed moves.

    barcode and lot_number only name the tube and its lot in the refusal's words.
    """
    t = TRANSITIONS.get(action)
    allowed = allowed_actions(state)
    if t is None:
        raise Refused(
            f"unknown action {action!r}; allowed from {state}: {', '.join(allowed) or 'none'}",
            code="unknown_action",
            state=state,
            allowed=allowed,
        )
    # The role first: someone who may never do this learns nothing from the sample's state.
    require_role(
        role, t.roles, f"{action} needs the role {' or '.join(sorted(t.roles))}; you are {role}"
    )
    if state not in t.sources:
        tube = barcode or "This tube"
        now = f"it can now be {_moves(allowed)}" if allowed else "nothing more can be done with it"
        raise Refused(
            f"{tube} is {STATE_WORDS.get(state, state)}: it cannot be "
            f"{DONE_WORDS.get(action, action)}; {now}",
            code="illegal_transition",
            state=state,
            allowed=allowed,
        )
    # A reason of only spaces is no reason: required fields must hold something visible.
    missing = [f for f in t.requires if blank(fields.get(f))]
    if missing:
        raise Refused(
            f"to be {DONE_WORDS.get(action, action)}, a tube needs "
            + " and ".join(f"{FIELD_WORDS.get(f, f)} ({f})" for f in missing),
            code="missing_fields",
            missing=missing,
        )
    if t.needs_released_lot and lot_state is not None and lot_state != "released":
        raise Refused(
            lot_block_message(action, lot_number, lot_state),
            code="lot_not_released",
            lot_state=lot_state,
        )
    if t.needs_released_lot and lot_expired:
        raise Refused(
            lot_block_message(action, lot_number, "expired") + " (its expiry date has passed)",
            code="lot_expired",
            lot_state=lot_state,
        )
    return t
