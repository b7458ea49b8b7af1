"""The location tree: site > room > equipment > rack > box > position."""

from __future__ import annotations

import string
import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import Session, select

from lims.errors import NotFound, Refused
from lims.models import Location, Sample

if TYPE_CHECKING:
    from lims.accounts.users import Actor

ROW_LETTERS = string.ascii_uppercase


def position_label(row: int, col: int) -> str:
    """Return the label of a box position from 0-based row and column (A1, B3, I9)."""
    return f"{ROW_LETTERS[row]}{col + 1}"


def position_index(label: str) -> tuple[int, int] | None:
    """Return the 0-based (row, column) of a position label like C4, or None if not like A1."""
    digits = label[1:]
    # ASCII digits only: str.isdigit() also takes '²' and other scripts' digits.
    if len(label) < 2 or label[0] not in ROW_LETTERS or not (digits.isascii() and digits.isdigit()):
        return None
    return ROW_LETTERS.index(label[0]), int(digits) - 1


def parse_position(box: Location, label: str) -> str:
    """Validate a position label against a box's grid and return it normalised."""
    label = label.strip().upper()
    index = position_index(label)
    if index is None:
        raise Refused(f"position {label!r} is not like A1", code="bad_position")
    row, col = index
    if not (0 <= row < (box.rows or 0) and 0 <= col < (box.cols or 0)):
        raise Refused(
            f"box {box.code} has positions A1 to {position_label(box.rows - 1, box.cols - 1)}",
            code="bad_position",
        )
    return position_label(row, col)


# Locations are written once (by the fixtures) and never changed or removed, so every move
# does not need to read them again: they are cached per database engine, as read-only copies
# that belong to no session. Unknown codes are not cached (a location may be added later).
_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _remember(session: Session, loc: Location) -> Location:
    copy = Location(**loc.model_dump())
    cache = _cache.setdefault(session.get_bind(), {})
    cache[("code", copy.code)] = cache[("id", copy.id)] = copy
    return copy


def find_location(session: Session, code: str) -> Location | None:
    """Return the location with this scannable code, or None."""
    hit = _cache.get(session.get_bind(), {}).get(("code", code))
    if hit is not None:
        return hit
    loc = session.exec(select(Location).where(Location.code == code)).first()
    if loc is None and code != code.upper():
        # Codes are printed in upper case and unique whatever the case (masterdata): box-0002
        # typed with caps lock off names BOX-0002, as it does at the bench.
        loc = session.exec(select(Location).where(Location.code == code.upper())).first()
    return None if loc is None else _remember(session, loc)


def get_location(session: Session, code: str) -> Location:
    """Return the location with this scannable code (404 if there is none)."""
    loc = find_location(session, code)
    if loc is None:
        raise NotFound(f"no location {code!r}", code="unknown_location")
    return loc


def location_by_id(session: Session, id_: int | None) -> Location | None:
    """Return the location with this id, or None (also for no id)."""
    if id_ is None:
        return None
    hit = _cache.get(session.get_bind(), {}).get(("id", id_))
    if hit is not None:
        return hit
    loc = session.get(Location, id_)
    return None if loc is None else _remember(session, loc)


def occupied(session: Session, box_id: int) -> dict[str, str]:
    """Return position -> sample barcode for a box."""
    rows = session.exec(
        select(Sample.position, Sample.barcode).where(
            Sample.location_id == box_id, Sample.position.is_not(None)
        )
    ).all()
    return {p: b for p, b in rows}


def _lock_box(session: Session, box: Location) -> None:
    # Writers placing tubes in the same box take turns (row lock on PostgreSQL; SQLite's
    # writer already holds the database lock), so two never pick the same position.
    session.exec(select(Location.id).where(Location.id == box.id).with_for_update()).one()


def free_positions(session: Session, box: Location, count: int) -> list[str]:
    """Return the first count free positions of a box (row by row), locking the box."""
    if box.kind != "box":
        raise Refused(f"{box.code} is not a box", code="bad_position")
    _lock_box(session, box)
    taken = occupied(session, box.id)
    free = [
        position_label(r, c)
        for r in range(box.rows or 0)
        for c in range(box.cols or 0)
        if position_label(r, c) not in taken
    ]
    if len(free) < count:
        have = f"has {len(free)} free positions, not {count}" if free else "is full"
        raise Refused(f"box {box.code} {have}", code="box_full")
    return free[:count]


def next_free_position(session: Session, box: Location) -> str:
    """Return the first free position of a box, row by row (locking the box)."""
    return free_positions(session, box, 1)[0]


def place(
    session: Session, code: str, position: str | None, *, actor: Any = None
) -> tuple[Location, str | None]:
    """Resolve where a sample goes: a box position (the next free one if none given) or a place.

    actor (a lims.accounts.users.Actor) decides whether an occupied position may name its tube.
    """
    loc = get_location(session, code)
    if loc.kind in ("site", "room") and position:
        raise Refused(f"{loc.code} is a {loc.kind}; positions exist only in boxes")
    if loc.kind == "box":
        if not position:
            return loc, next_free_position(session, loc)
        _lock_box(session, loc)
        pos = parse_position(loc, position)
        holder = session.exec(
            select(Sample.barcode, Sample.org_id).where(
                Sample.location_id == loc.id, Sample.position == pos
            )
        ).first()
        if holder:
            barcode, org_id = holder
            if actor is not None and not actor.can_see(org_id):
                # Another organisation's tube: occupied, without its identity.
                raise Refused(f"position {pos} of {loc.code} is occupied", code="position_occupied")
            raise Refused(
                f"position {pos} of {loc.code} already holds {barcode}",
                code="position_occupied",
                holder=barcode,
            )
        return loc, pos
    if position:
        raise Refused(f"{loc.code} is not a box; give no position", code="bad_position")
    return loc, None


def ancestors(session: Session, loc: Location) -> list[Location]:
    """Return loc and its parents up to the site, nearest first."""
    chain = [loc]
    while chain[-1].parent_id is not None:
        chain.append(location_by_id(session, chain[-1].parent_id))
    return chain


def is_frozen(session: Session, loc: Location | None) -> bool:
    """Tell whether a location sits in a freezer or LN2 tank (leaving it is a thaw)."""
    if loc is None:
        return False
    return any(
        a.kind == "equipment" and a.equipment_type in ("freezer", "ln2")
        for a in ancestors(session, loc)
    )


def path_text(session: Session, loc: Location) -> str:
    """Return a human path such as 'Site / Room B1 / Freezer -80 / Rack 1 / Box 1'."""
    return " / ".join(a.name for a in reversed(ancestors(session, loc)))


def tree(session: Session) -> list[dict]:
    """Return the whole location tree as nested dicts."""
    locs = session.exec(select(Location).order_by(Location.id)).all()
    nodes = {
        loc.id: {
            "code": loc.code,
            "name": loc.name,
            "kind": loc.kind,
            **({"grade": loc.grade} if loc.grade else {}),
            **({"equipment_type": loc.equipment_type} if loc.equipment_type else {}),
            **({"temperature": loc.temperature} if loc.temperature else {}),
            **({"rows": loc.rows, "cols": loc.cols} if loc.kind == "box" else {}),
            "children": [],
        }
        for loc in locs
    }
    roots = []
    for loc in locs:
        (nodes[loc.parent_id]["children"] if loc.parent_id else roots).append(nodes[loc.id])
    return roots


def sample_counts(session: Session) -> dict[str, int]:
    """Return how many samples each location holds, by location code."""
    rows = session.exec(
        select(Location.code, func.count(Sample.id))
        .join(Sample, Sample.location_id == Location.id)
        .group_by(Location.code)
    ).all()
    return {code: n for code, n in rows}


def children(session: Session, loc: Location) -> list[Location]:
    """Return the places directly inside loc."""
    return list(
        session.exec(select(Location).where(Location.parent_id == loc.id).order_by(Location.id))
    )


def contents(session: Session, loc: Location, actor: Actor) -> dict[str, Any]:
    """Return what a place holds as actor may see it; a box also as its grid of positions.

    Another organisation's tube counts as occupied, without its identity.
    """
    held = session.exec(
        select(Sample).where(Sample.location_id == loc.id).order_by(Sample.id)
    ).all()
    # Box order (A2 before A10), tubes without a position last.
    held = sorted(held, key=lambda s: position_index(s.position or "") or (len(ROW_LETTERS), 0))
    grid = None
    if loc.kind == "box":
        by_pos = {s.position: s for s in held if s.position}
        grid = []
        for r in range(loc.rows or 0):
            row = []
            for c in range(loc.cols or 0):
                label = position_label(r, c)
                s = by_pos.get(label)
                visible = s if s is not None and actor.can_see(s.org_id) else None
                row.append({"pos": label, "sample": visible, "occupied": s is not None})
            grid.append(row)
    visible = [s for s in held if actor.can_see(s.org_id)]
    return {
        "held": visible,
        "hidden": len(held) - len(visible),
        "grid": grid,
        "free": sum(1 for row in grid or [] for cell in row if not cell["occupied"]),
    }


def box_positions(session: Session, box: Location, actor: Actor) -> dict[str, str]:
    """Return position -> barcode of a box; another organisation's tube shows as "occupied"."""
    rows = session.exec(
        select(Sample.position, Sample.barcode, Sample.org_id).where(
            Sample.location_id == box.id, Sample.position.is_not(None)
        )
    ).all()
    return {p: (b if actor.can_see(o) else "occupied") for p, b, o in rows}
