"""Bench modes as data: the custody move each mode gives a tube, and the settings it takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lims import custody
from lims.errors import LimsError

DEFAULT_CONDITION = "intact; default at bench receipt, no exception scanned"
# The action of the mode that receives supplier material by GS1 scan (not a custody move).
RECEIVE_MATERIAL = "receive_material"
# The action of the mode that records materials going into the lot scanned first.
USE_MATERIAL = "use_material"


@dataclass(frozen=True)
class Ask:
    """What the bench says while a setting the move requires is not scanned yet."""

    code: str  # the scan's refusal code when a tube comes first
    prompt: str  # the station's prompt
    refusal: str  # the message of that refusal


@dataclass(frozen=True)
class Mode:
    """A bench mode: CMD:<command> sets it; each tube scanned in it gets the custody action."""

    name: str
    command: str
    action: str  # a row of lims.custody.TRANSITIONS: its requires say what must be set
    words: str  # "scan tubes to <words>"
    done: str  # the message after a tube's move (barcode, state, where and the move's fields)
    # custody field -> the station setting that supplies it: target (a location, with the
    # scanned position), condition, coi, reason, operator (the signed-in person)
    supplies: dict[str, str]
    asks: dict[str, Ask] = field(default_factory=dict)  # custody field -> what to say if unset
    things: str = "tubes"  # what is scanned in the mode: "scan <things> to <words>"

    @property
    def required(self) -> tuple[str, ...]:
        """Return the custody fields the mode's move requires (the custody table says)."""
        move = custody.TRANSITIONS.get(self.action)
        return move.requires if move is not None else ()

    @property
    def receives_material(self) -> bool:
        """Tell whether the mode receives supplier material (lims.manufacturing), not tubes."""
        return self.action == RECEIVE_MATERIAL

    @property
    def handles_material(self) -> bool:
        """Tell whether the mode's scans are supplier material, not tubes (lims.manufacturing)."""
        return self.action in (RECEIVE_MATERIAL, USE_MATERIAL)

    def takes(self, setting: str) -> bool:
        """Tell whether a scanned setting (target, coi, reason, condition) is used in this mode."""
        return setting in self.supplies.values()

    def fields(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Return the custody move for a tube: the action and the fields its settings supply."""
        out: dict[str, Any] = {"action": self.action}
        for name, setting in self.supplies.items():
            if settings.get(setting):
                out[name] = settings[setting]
        if out.get("location"):
            out["position"] = settings.get("position")
        return out

    def unset(self, settings: dict[str, Any]) -> Ask | None:
        """Return what to ask for first, when a setting the move requires is not scanned yet."""
        for name in self.required:
            if name in self.asks and not settings.get(self.supplies[name]):
                return self.asks[name]
        return None

    def explain(self, err: LimsError) -> tuple[str, str]:
        """Return the scan's refusal (code, message) for the domain's refusal of a move.

        Custody refuses a move that lacks a required field (missing_fields, missing=[...]); at
        the bench that field comes from a setting, so the operator is told what to scan.
        """
        for name in err.extra.get("missing", ()) if err.code == "missing_fields" else ():
            if name in self.asks:
                return self.asks[name].code, self.asks[name].refusal
        return err.code, err.message


def _box(into: str) -> Ask:
    return Ask(
        "no_target", f"scan the box (or location) to {into}", f"scan the box to {into} first"
    )


_COI = Ask(
    "no_coi",
    "scan the expected COI label first",
    "scan the expected COI label first, then the tubes",
)
_REASON = Ask(
    "no_reason",
    "scan a reason first (CMD:REASON:...)",
    "scan a reason first (CMD:REASON:...), then the tubes",
)

MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode(
            "receive",
            "RECEIVE",
            "receive",
            "receive",
            "{barcode} received ({condition}){where}",
            # A treatment episode's material is received only with its COI label scanned
            # (the therapy area's rule): the expected COI is scanned first, as at a hand-over.
            {"condition": "condition", "location": "target", "coi": "coi"},
            {"coi": _COI},
        ),
        Mode(
            "quarantine",
            "QUARANTINE",
            "quarantine",
            "quarantine",
            "{barcode}: quarantine done, now {state}{where}",
            {"location": "target"},
        ),
        Mode(
            "store",
            "STORE",
            "store",
            "store",
            "{barcode} stored{where}",
            {"location": "target"},
            {"location": _box("store into")},
        ),
        Mode(
            "check_out",
            "CHECKOUT",
            "check_out",
            "check out",
            "{barcode} checked out to {custodian}",
            {"custodian": "operator"},
        ),
        Mode(
            "check_in",
            "CHECKIN",
            "check_in",
            "check in",
            "{barcode}: check in done, now {state}{where}",
            # A tube checked in goes back to a place: never "available" nowhere, with nobody.
            {"location": "target"},
            {"location": _box("check the tubes in to")},
        ),
        Mode(
            "hand_over",
            "HANDOVER",
            "hand_over",
            "take over (hand-over)",
            "{barcode} handed over to {custodian} (COI {coi} matches)",
            {"custodian": "operator", "coi": "coi"},
            {"coi": _COI},
        ),
        Mode(
            "dispose",
            "DISPOSE",
            "dispose",
            "dispose of",
            "{barcode} disposed of ({reason})",
            {"reason": "reason"},
            {"reason": _REASON},
        ),
        Mode(
            "receive_material",
            "RECEIVE-MATERIAL",
            RECEIVE_MATERIAL,
            "receive them into quarantine",
            "{code} received: {name} lot {supplier_lot}, expires {expires_on}; in quarantine",
            {},
            things="supplier GS1 barcodes",
        ),
        Mode(
            "use_material",
            "USE-MATERIAL",
            USE_MATERIAL,
            "record them as inputs (the lot's label first)",
            "{code} ({name}, lot {supplier_lot}) recorded as used in lot {lot}",
            {},
            things="the materials used",
        ),
    )
}
BY_COMMAND: dict[str, Mode] = {m.command: m for m in MODES.values()}
