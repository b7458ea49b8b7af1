"""Sorted lists a page at a time: a sort key chosen from a list, keyset paging, a total.

A page is found from the id of the row at its edge (the cursor), never by an OFFSET: the rows
before it are not read again, and a row added meanwhile does not shift the page. The order is
(key, id), so rows with equal keys keep one order from page to page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_
from sqlmodel import Session, select

from lims.errors import BadRequest


@dataclass(frozen=True)
class SortKey:
    """A column a list may be sorted by; join adds the tables expr needs to a SELECT."""

    expr: Any
    join: Callable[[Any], Any] | None = None


@dataclass
class Page:
    """One page of a sorted list; pass next_cursor as cursor, prev_cursor as before."""

    rows: list[Any]
    total: int
    sort: str
    next_cursor: int | None = None
    prev_cursor: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_sort(raw: str | None, keys: Mapping[str, SortKey], default: str) -> tuple[str, bool]:
    """Read "key" (ascending) or "-key" (descending); a key not in keys is a 400 naming them."""
    text = (raw or "").strip() or default
    descending = text.startswith("-")
    name = text[1:] if descending else text
    if name not in keys:
        raise BadRequest(f"sort must be one of {', '.join(keys)}, or one of them after '-'")
    return name, descending


def keyset_page(
    session: Session,
    stmt: Any,
    *,
    model: Any,
    key: SortKey,
    sort: str,
    descending: bool,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
    count: bool = True,
) -> Page:
    """Return the page of stmt (a filtered SELECT of model) after or before a cursor row."""
    if after and before:
        raise BadRequest("give cursor or before, not both")
    ident = model.id
    if key.join is not None:
        stmt = key.join(stmt)
    total = -1
    if count:
        total = session.exec(select(func.count()).select_from(stmt.order_by(None).subquery())).one()
    edge = after or before
    backwards = bool(before)
    # Walking back from a "before" cursor reads the order the other way round, then flips it.
    down = descending != backwards
    if edge:
        lookup = select(key.expr).select_from(model)
        if key.join is not None:
            lookup = key.join(lookup)
        found = session.exec(lookup.where(ident == edge)).first()
        if found is None:
            # No such row (a cursor past the end, or made up): nothing lies beyond it.
            return Page(rows=[], total=total, sort=f"-{sort}" if descending else sort)
        value = found
        if down:
            stmt = stmt.where(or_(key.expr < value, and_(key.expr == value, ident < edge)))
        else:
            stmt = stmt.where(or_(key.expr > value, and_(key.expr == value, ident > edge)))
    order = (key.expr.desc(), ident.desc()) if down else (key.expr.asc(), ident.asc())
    rows = list(session.exec(stmt.order_by(*order).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    has_next = more if not backwards else True
    has_prev = more if backwards else bool(after)
    name = f"-{sort}" if descending else sort
    return Page(
        rows=rows,
        total=total,
        sort=name,
        next_cursor=_id(rows[-1]) if rows and has_next else None,
        prev_cursor=_id(rows[0]) if rows and has_prev else None,
    )


def _id(row: Any) -> int:
    return row.id
