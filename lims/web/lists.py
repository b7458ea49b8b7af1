"""What every list page shares: sort links on the headers, column choice, previous/next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import request

from lims.errors import BadRequest


@dataclass(frozen=True)
class Column:
    """A column a list can show: its key, its header and the sort key it orders by (if any)."""

    key: str
    label: str
    sort: str | None = None
    shown: bool = True  # shown unless the user chose otherwise


def before_cursor() -> int | None:
    """Read the 'before' cursor (the previous page) as common.cursor() reads 'cursor'."""
    raw = request.args.get("before") or "0"
    if not raw.isdigit() or int(raw) > 2**31 - 1:
        raise BadRequest("before must be a page number this list gave you")
    return int(raw) or None


def chosen_columns(columns: Sequence[Column]) -> list[str]:
    """Return the keys of the columns to show: ?cols=a,b,... (unknown keys are ignored)."""
    ticked = request.args.getlist("col")  # the column form's checkboxes
    raw = ",".join(ticked) if ticked else request.args.get("cols")
    if raw is None:
        return [c.key for c in columns if c.shown]
    wanted = [c.key for c in columns if c.key in set(raw.split(","))]
    return wanted or [columns[0].key]


class ListView:
    """The URLs of one list page: keeps the filters, sort and columns across links."""

    def __init__(
        self,
        endpoint_url: str,
        *,
        filters: dict[str, Any],
        sort: str,
        default_sort: str,
        columns: Sequence[Column],
        shown: list[str],
    ) -> None:
        self.url = endpoint_url
        self.filters = {k: v for k, v in filters.items() if v}
        self.sort = sort
        self.default_sort = default_sort
        self.columns = list(columns)
        self.shown = shown
        self.default_cols = [c.key for c in columns if c.shown]

    def _args(self, **extra: Any) -> dict[str, Any]:
        args = dict(self.filters)
        if self.sort != self.default_sort:
            args["sort"] = self.sort
        if self.shown != self.default_cols:
            args["cols"] = ",".join(self.shown)
        args.update({k: v for k, v in extra.items() if v is not None})
        return args

    def link(self, **extra: Any) -> str:
        """Return this list's URL with its state and extra arguments."""
        args = self._args(**extra)
        return self.url + ("?" + urlencode(args) if args else "")

    def sort_link(self, key: str) -> str:
        """Return the header link: sort by key, or reverse the order when it is the sort."""
        if self.sort == key:
            new = f"-{key}"
        elif self.sort == f"-{key}":
            new = key
        else:
            # Dates read newest first the first time they are clicked, names A to Z.
            new = f"-{key}" if key in ("created", "updated", "time") else key
        args = self._args()
        args.pop("sort", None)
        if new != self.default_sort:
            args["sort"] = new
        return self.url + ("?" + urlencode(args) if args else "")

    def sorted_by(self, key: str) -> str | None:
        """Return 'ascending' or 'descending' for the column the list is sorted by, else None."""
        if self.sort == key:
            return "ascending"
        if self.sort == f"-{key}":
            return "descending"
        return None

    def page_link(self, *, cursor: int | None = None, before: int | None = None) -> str:
        """Return the link to the next (cursor) or previous (before) page."""
        return self.link(cursor=cursor, before=before)

    def hidden_fields(self, *, keep_filters: bool = False) -> list[tuple[str, str]]:
        """Return (name, value) pairs a filter or column form carries to keep the rest."""
        out = []
        if self.sort != self.default_sort:
            out.append(("sort", self.sort))
        if keep_filters:
            out += [(k, str(v)) for k, v in self.filters.items()]
        return out
