"""Genealogy as links: what went into a vector lot, and where a material lot went.

A link says "this material lot (or intermediate vector lot) went into that vector lot"; a lot's
vials already point at their lot (Sample.lot_id). A recall follows the links down from a
material to every lot made from it, however many steps away, and on to the lots' vials
("where used"); a batch review follows them up from a lot to everything it was made from.
Both walks go level by level, one indexed query a level, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import Field
from sqlalchemy import func
from sqlmodel import Session, select

from lims import audit, lots
from lims.accounts.users import Actor
from lims.errors import Forbidden, Refused
from lims.inputs import Input, Line
from lims.manufacturing import materials
from lims.manufacturing.models import GenealogyLink, MaterialKind, MaterialLot
from lims.models import Sample, User, VectorLot, utcnow
from lims.roles import LAB

# A lot takes inputs while it is planned or being made; after that its record is closed.
OPEN_LOT_STATES = ("planned", "in_production")


class ConsumeIn(Input):
    """An input of a vector lot: a material lot (MAT-26-000001) or an intermediate vector lot."""

    material: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="material lot code (MAT-26-000001) or the supplier's GS1 barcode as scanned",
    )
    lot: Line | None = Field(default=None, max_length=64, description="an intermediate lot")
    quantity: float | None = Field(default=None, gt=0, lt=1e9)
    unit: Line | None = Field(default=None, max_length=16)


def consume(
    session: Session,
    *,
    lot_number: str,
    data: ConsumeIn,
    actor: Actor,
    today: date | None = None,
) -> GenealogyLink:
    """Record that a material (or an intermediate lot) went into a vector lot.

    Only released, in-date material goes in; the refusal says why not (quarantine, expired on,
    rejected ...). The one audit event is the vector lot's, so the lot's trail shows its inputs.
    """
    if actor.role not in LAB:
        raise Forbidden("recording materials used needs a lab role", code="role_required")
    lot = lots.get_lot(session, lot_number, actor)
    if (data.material is None) == (data.lot is None):
        raise Refused("name one input: a material or an intermediate lot", code="bad_input")
    if lot.state not in OPEN_LOT_STATES:
        raise Refused(
            f"lot {lot.lot_number} is {lot.state}: inputs are recorded while it is planned or "
            "in production",
            code="illegal_state",
        )
    today = today or utcnow().date()
    if data.material is not None:
        mat = materials.material_by_scan(session, data.material, actor)
        why = materials.usable_refusal(mat, today)
        if why is not None:
            raise Refused(
                f"{why}; it cannot go into lot {lot.lot_number}", code="material_unusable"
            )
        kind = session.get(MaterialKind, mat.kind_id)
        parent_kind, parent_id = "material", mat.id
        what = {
            "material": mat.code,
            "kind": kind.code,
            "supplier_lot": mat.supplier_lot,
            "serial": mat.serial or None,
            "expires_on": mat.expires_on.isoformat(),
        }
    else:
        src = lots.get_lot(session, data.lot or "", actor)
        # src made (at any depth) from lot would make lot its own ancestor.
        if src.id == lot.id or src.id in _descendant_lot_ids(session, "lot", lot.id):
            raise Refused(
                f"lot {src.lot_number} cannot go into {lot.lot_number}: it would be made from "
                "itself",
                code="genealogy_cycle",
            )
        if src.state in ("rejected", "expired", "on_hold"):
            raise Refused(
                f"lot {src.lot_number} is {src.state}; it cannot go into {lot.lot_number}",
                code="lot_unusable",
            )
        parent_kind, parent_id = "lot", src.id
        what = {"lot": src.lot_number, "state": src.state}
    if data.quantity is not None:
        what |= {"quantity": data.quantity, "unit": data.unit}
    link = GenealogyLink(
        parent_kind=parent_kind,
        parent_id=parent_id,
        child_lot_id=lot.id,
        quantity=data.quantity,
        unit=data.unit,
        recorded_by_id=actor.user.id,
    )
    session.add(link)
    session.flush()
    audit.record_by(
        session,
        actor,
        action="lot.input",
        entity_type="lot",
        entity_id=lot.lot_number,
        after={"input": what, "link": link.id},
        org_id=lot.org_id,
        lot_id=lot.id,
    )
    return link


def _descendant_lot_ids(session: Session, kind: str, ident: int) -> set[int]:
    """Return the ids of every lot made from (kind, ident), at any depth.

    Level by level, each level one indexed lookup (ix_genealogy_parent): a recursive CTE gave
    PostgreSQL a hash join over every lot-to-lot link at each step, several times slower.
    """
    conn = session.connection()
    frontier = {
        r[0]
        for r in conn.execute(
            select(GenealogyLink.child_lot_id).where(
                GenealogyLink.parent_kind == kind, GenealogyLink.parent_id == ident
            )
        )
    }
    found: set[int] = set()
    while frontier:
        found |= frontier
        rows = conn.execute(
            select(GenealogyLink.child_lot_id).where(
                GenealogyLink.parent_kind == "lot", GenealogyLink.parent_id.in_(sorted(frontier))
            )
        )
        frontier = {r[0] for r in rows} - found
    return found


def _ancestors(session: Session, lot_id: int) -> set[tuple[str, int]]:
    """Return every (kind, id) a lot was made from, at any depth (ix_genealogy_child per level)."""
    conn = session.connection()
    found: set[tuple[str, int]] = set()
    frontier = {lot_id}
    seen_lots = {lot_id}
    while frontier:
        rows = conn.execute(
            select(GenealogyLink.parent_kind, GenealogyLink.parent_id).where(
                GenealogyLink.child_lot_id.in_(sorted(frontier))
            )
        )
        new = {(k, i) for k, i in rows} - found
        found |= new
        frontier = {i for k, i in new if k == "lot"} - seen_lots
        seen_lots |= frontier
    return found


def where_used(session: Session, *, code: str, actor: Actor) -> dict[str, Any]:
    """Return every lot and vial that consumed material code, directly or through other lots.

    A client sees only its own lots and vials of it (the material is the centre's).
    """
    mat = materials.get_material(session, code, actor)
    ids = _descendant_lot_ids(session, "material", mat.id)
    return {"material": mat.code, **_lots_and_vials(session, ids, actor)}


def used_in_lot(
    session: Session, *, lot_number: str, actor: Actor, lot: VectorLot | None = None
) -> dict[str, Any]:
    """Return every lot and vial made from vector lot lot_number (intermediate -> final).

    lot: the lot itself when the caller has looked it up for actor already.
    """
    lot = lot or lots.get_lot(session, lot_number, actor)
    ids = _descendant_lot_ids(session, "lot", lot.id)
    return {"lot": lot.lot_number, **_lots_and_vials(session, ids, actor)}


def _lots_and_vials(session: Session, ids: set[int], actor: Actor) -> dict[str, Any]:
    if not ids:
        return {"lots": [], "vials": []}
    rows = [
        x
        for x in session.exec(
            select(
                VectorLot.id,
                VectorLot.lot_number,
                VectorLot.state,
                VectorLot.vector,
                VectorLot.org_id,
            ).where(VectorLot.id.in_(sorted(ids)))
        ).all()
        if actor.can_see(x.org_id)
    ]
    seen = {x.id: x.lot_number for x in rows}
    vials = (
        session.exec(
            select(Sample.barcode, Sample.state, Sample.lot_id)
            .where(Sample.lot_id.in_(list(seen)))
            .order_by(Sample.barcode)
        ).all()
        if seen
        else []
    )
    return {
        "lots": [
            {"lot_number": x.lot_number, "state": x.state, "vector": x.vector}
            for x in sorted(rows, key=lambda x: x.lot_number)
        ],
        "vials": [{"barcode": b, "state": s, "lot_number": seen[lid]} for b, s, lid in vials],
    }


def made_from(
    session: Session, *, lot_number: str, actor: Actor, lot: VectorLot | None = None
) -> dict[str, Any]:
    """Return everything lot_number was made from: materials and intermediate lots, any depth.

    lot: the lot itself when the caller has looked it up for actor already.
    """
    lot = lot or lots.get_lot(session, lot_number, actor)
    found = _ancestors(session, lot.id)
    mat_ids = [i for k, i in found if k == "material"]
    lot_ids = [i for k, i in found if k == "lot"]
    mats = (
        session.exec(
            select(
                MaterialLot.code,
                MaterialLot.supplier_lot,
                MaterialLot.serial,
                MaterialLot.expires_on,
                MaterialLot.state,
                MaterialKind.code.label("kind"),
                MaterialKind.name,
                MaterialKind.category,
            )
            .join(MaterialKind, MaterialKind.id == MaterialLot.kind_id)
            .where(MaterialLot.id.in_(sorted(mat_ids)))
            .order_by(MaterialLot.code)
        ).all()
        if mat_ids
        else []
    )
    parents = (
        session.exec(
            select(VectorLot.lot_number, VectorLot.state, VectorLot.vector, VectorLot.org_id)
            .where(VectorLot.id.in_(sorted(lot_ids)))
            .order_by(VectorLot.lot_number)
        ).all()
        if lot_ids
        else []
    )
    return {
        "lot": lot.lot_number,
        "materials": [
            {
                "material": m.code,
                "kind": m.kind,
                "name": m.name,
                "category": m.category,
                "supplier_lot": m.supplier_lot,
                "serial": m.serial or None,
                "expires_on": m.expires_on.isoformat(),
                "state": m.state,
            }
            for m in mats
        ],
        "lots": [
            {"lot_number": x.lot_number, "state": x.state, "vector": x.vector}
            for x in parents
            if actor.can_see(x.org_id)
        ],
    }


def lot_page(session: Session, *, lot: VectorLot, actor: Actor) -> dict[str, Any]:
    """Return what a lot's page shows of its genealogy, and whether actor may add an input."""
    return {
        "made_from": made_from(session, lot_number=lot.lot_number, actor=actor, lot=lot),
        "used_in": used_in_lot(session, lot_number=lot.lot_number, actor=actor, lot=lot),
        "can_add": actor.role in LAB and lot.state in OPEN_LOT_STATES,
        "picture": picture(session, lot=lot, actor=actor),
    }


def lot_inputs(session: Session, *, lot_number: str, actor: Actor) -> dict[str, Any]:
    """Return a lot's number and its direct inputs (404 for a lot actor may not see)."""
    lot = lots.get_lot(session, lot_number, actor)
    return {"lot": lot.lot_number, "inputs": inputs_of(session, lot=lot)}


def inputs_of(session: Session, *, lot: VectorLot) -> list[dict[str, Any]]:
    """Return the direct inputs of a lot as recorded, oldest first (for the lot page)."""
    links = session.exec(
        select(GenealogyLink).where(GenealogyLink.child_lot_id == lot.id).order_by(GenealogyLink.id)
    ).all()
    out = []
    for link in links:
        who = session.get(User, link.recorded_by_id)
        row: dict[str, Any] = {
            "quantity": link.quantity,
            "unit": link.unit,
            "recorded_by": who.username if who else None,
            "recorded_at": link.recorded_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if link.parent_kind == "material":
            m = session.get(MaterialLot, link.parent_id)
            k = session.get(MaterialKind, m.kind_id)
            row |= {
                "kind": "material",
                "ref": m.code,
                "name": k.name,
                "supplier_lot": m.supplier_lot,
                "expires_on": m.expires_on.isoformat(),
            }
        else:
            p = session.get(VectorLot, link.parent_id)
            row |= {"kind": "lot", "ref": p.lot_number, "name": p.vector}
        out.append(row)
    return out


# --- the lot page's picture ------------------------------------------------------------------

# Box and gap sizes of the drawing, in SVG user units (the page scales it to its width).
BOX_W, BOX_H, COL_GAP, ROW_GAP, PAD = 190, 46, 60, 14, 10
# A column with more materials than this shows them as one box per category ("12 reagents").
MAX_MATERIALS_SHOWN = 6
_PLURAL = {
    "cell_bank": "cell banks",
    "plasmid": "plasmids",
    "medium": "media",
    "reagent": "reagents",
    "consumable": "consumables",
}


def _links_around(session: Session, lot_id: int) -> list[tuple[str, int, int]]:
    """Return every (parent_kind, parent_id, child_lot_id) link above and below a lot."""
    conn = session.connection()
    edges: set[tuple[str, int, int]] = set()
    frontier, seen = {lot_id}, {lot_id}
    while frontier:  # up: what the frontier was made from
        rows = conn.execute(
            select(
                GenealogyLink.parent_kind, GenealogyLink.parent_id, GenealogyLink.child_lot_id
            ).where(GenealogyLink.child_lot_id.in_(sorted(frontier)))
        ).all()
        edges |= {(k, p, c) for k, p, c in rows}
        frontier = {p for k, p, _ in rows if k == "lot"} - seen
        seen |= frontier
    frontier, seen = {lot_id}, {lot_id}
    while frontier:  # down: what was made from the frontier
        rows = conn.execute(
            select(
                GenealogyLink.parent_kind, GenealogyLink.parent_id, GenealogyLink.child_lot_id
            ).where(
                GenealogyLink.parent_kind == "lot", GenealogyLink.parent_id.in_(sorted(frontier))
            )
        ).all()
        edges |= {(k, p, c) for k, p, c in rows}
        frontier = {c for _, _, c in rows} - seen
        seen |= frontier
    return sorted(edges)


def picture(session: Session, *, lot: VectorLot, actor: Actor) -> dict[str, Any]:
    """Lay out a lot's genealogy for drawing: inputs left, the lot, what it made, vials right.

    Each lot sits one column right of everything it was made from (upstream -> harvest ->
    purification -> fill); a material sits just left of the first lot it went into; a lot's
    vials are one box ("24 vials"). Returns boxes with their place and the arrows between them.
    """
    edges = _links_around(session, lot.id)
    lot_ids = {lot.id} | {p for k, p, _ in edges if k == "lot"} | {c for _, _, c in edges}
    lot_rows = {
        x.id: x
        for x in session.exec(
            select(
                VectorLot.id,
                VectorLot.lot_number,
                VectorLot.vector,
                VectorLot.state,
                VectorLot.org_id,
            ).where(VectorLot.id.in_(sorted(lot_ids)))
        ).all()
        if x.id == lot.id or actor.can_see(x.org_id)
    }
    edges = [(k, p, c) for k, p, c in edges if c in lot_rows and (k != "lot" or p in lot_rows)]
    mat_ids = sorted({p for k, p, _ in edges if k == "material"})
    mats = {
        m.id: m
        for m in (
            session.exec(
                select(
                    MaterialLot.id,
                    MaterialLot.code,
                    MaterialLot.state,
                    MaterialKind.name,
                    MaterialKind.category,
                )
                .join(MaterialKind, MaterialKind.id == MaterialLot.kind_id)
                .where(MaterialLot.id.in_(mat_ids))
            ).all()
            if mat_ids
            else []
        )
    }
    vial_counts = dict(
        session.exec(
            select(Sample.lot_id, func.count())
            .where(Sample.lot_id.in_(sorted(lot_rows)))
            .group_by(Sample.lot_id)
        ).all()
    )
    # Columns: a lot is one right of its latest lot input (longest path from the top).
    parents: dict[int, list[int]] = {}
    for k, p, c in edges:
        if k == "lot":
            parents.setdefault(c, []).append(p)
    col: dict[int, int] = {}

    def column(i: int, path: frozenset[int] = frozenset()) -> int:
        if i not in col:
            ups = [p for p in parents.get(i, []) if p not in path]
            col[i] = 1 + max((column(p, path | {i}) for p in ups), default=0)
        return col[i]

    for i in lot_rows:
        column(i)
    mat_col: dict[int, int] = {}
    for k, p, c in edges:
        if k == "material":
            mat_col[p] = min(mat_col.get(p, col[c]), col[c] - 1)
    boxes: dict[str, dict[str, Any]] = {}
    arrows: set[tuple[str, str]] = set()
    for i, x in lot_rows.items():
        boxes[f"lot:{i}"] = {
            "col": col[i],
            "kind": "lot",
            "title": x.lot_number,
            "sub": f"{x.vector} · {x.state.replace('_', ' ')}",
            "href": ("lot", x.lot_number),
            "current": i == lot.id,
        }
        if vial_counts.get(i):
            n = vial_counts[i]
            boxes[f"vials:{i}"] = {
                "col": col[i] + 1,
                "kind": "vials",
                "title": f"{n} vial{'s' if n != 1 else ''}",
                "sub": f"of {x.lot_number}",
                "href": ("lot", x.lot_number),
                "current": False,
            }
            arrows.add((f"lot:{i}", f"vials:{i}"))
    per_col: dict[int, list[int]] = {}
    for m, c in mat_col.items():
        per_col.setdefault(c, []).append(m)
    for c, ids in per_col.items():
        grouped = len(ids) > MAX_MATERIALS_SHOWN
        for m in sorted(ids, key=lambda m: (mats[m].category, mats[m].code)):
            x = mats[m]
            key = f"group:{c}:{x.category}" if grouped else f"mat:{m}"
            if grouped:
                box = boxes.setdefault(
                    key,
                    {
                        "col": c,
                        "kind": "material",
                        "category": x.category,
                        "count": 0,
                        "sub": "material lots",
                        "href": None,
                        "current": False,
                    },
                )
                box["count"] += 1
                word = _PLURAL.get(x.category, x.category) if box["count"] > 1 else x.category
                box["title"] = f"{box['count']} {word.replace('_', ' ')}"
            else:
                room = 29 - len(x.state)  # the box holds about 32 characters of small text
                name = x.name if len(x.name) <= room else x.name[: room - 1] + "…"
                boxes[key] = {
                    "col": c,
                    "kind": "material",
                    "category": x.category,
                    "title": f"{x.category.replace('_', ' ')} {x.code}",
                    "sub": f"{name} · {x.state}",
                    "href": ("material", x.code),
                    "current": False,
                }
        for k, p, child in edges:
            if k == "material" and p in ids:
                key = f"group:{c}:{mats[p].category}" if grouped else f"mat:{p}"
                arrows.add((key, f"lot:{child}"))
    for k, p, c in edges:
        if k == "lot":
            arrows.add((f"lot:{p}", f"lot:{c}"))
    # Shift so the leftmost column is 0, then stack each column's boxes top to bottom.
    low = min(b["col"] for b in boxes.values())
    rows: dict[int, int] = {}

    def place(kv: tuple[str, dict[str, Any]]) -> tuple[int, int, int, str]:
        # In a column: lots first, then materials as the process uses them (cell bank first).
        key, b = kv
        cat = b.get("category")
        rank = list(_PLURAL).index(cat) if cat in _PLURAL else len(_PLURAL)
        return (b["col"], b["kind"] != "lot", rank, key)

    order = sorted(boxes.items(), key=place)
    for key, b in order:
        b["col"] -= low
        b["row"] = rows.get(b["col"], 0)
        rows[b["col"]] = b["row"] + 1
        b["x"] = PAD + b["col"] * (BOX_W + COL_GAP)
        b["y"] = PAD + b["row"] * (BOX_H + ROW_GAP)
        b["key"] = key
    lines = []
    for a, z in sorted(arrows):
        s, t = boxes[a], boxes[z]
        x1, y1 = s["x"] + BOX_W, s["y"] + BOX_H // 2
        x2, y2 = t["x"], t["y"] + BOX_H // 2
        mid = (x1 + x2) // 2
        lines.append(f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 6},{y2}")
    cols = max(b["col"] for b in boxes.values()) + 1
    height = max(rows.values())
    return {
        "boxes": [b for _, b in order],
        "arrows": lines,
        "width": 2 * PAD + cols * BOX_W + (cols - 1) * COL_GAP,
        "height": 2 * PAD + height * BOX_H + (height - 1) * ROW_GAP,
        "box_w": BOX_W,
        "box_h": BOX_H,
    }
