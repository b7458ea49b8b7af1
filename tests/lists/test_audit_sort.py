"""The audit list sorts by who, action, record and where as it does by time, page by page."""

from __future__ import annotations

import html as htmlmod
import re

import pytest
from helpers import register, sign_in

ROW = re.compile(
    r'<tr class="ev[^"]*">\s*<td>(\d+)</td>\s*<td[^>]*>[^<]*</td>\s*<td>(?:<span title="([^"]+)">'
    r"[^<]*</span>|([^<]*))</td>\s*<td class=\"mono\">([^<]+)</td>"
)


def _rows(page: str) -> list[tuple[int, str, str]]:
    """Return (seq, actor username, action) of each row of an audit page."""
    return [(int(seq), titled or plain, action) for seq, titled, plain, action in ROW.findall(page)]


def _next(page: str) -> str | None:
    found = re.search(r'rel="next" href="([^"]+)"', page)
    return htmlmod.unescape(found.group(1)) if found else None


@pytest.mark.parametrize(("sort", "field"), [("actor", 1), ("action", 2)])
def test_sorted_by_a_column_a_to_z_and_back_across_pages(client, auth, sort, field) -> None:
    tech = auth("tech1")
    for _ in range(30):
        register(client, tech, sample_type="PBMC", project="CART-001")
    register(client, auth("tech2"), sample_type="PBMC", project="CART-001")
    sign_in(client, "qa1")

    first = client.get(f"/audit?sort={sort}").text
    assert f'aria-sort="ascending"><a class="sort" href="/audit?sort=-{sort}"' in first
    rows = _rows(first)
    assert len(rows) == 50
    nxt = _next(first)
    assert nxt and f"sort={sort}" in nxt
    rows += _rows(client.get(nxt).text)
    keys = [(r[field], r[0]) for r in rows]
    assert keys == sorted(keys) and len({r[0] for r in rows}) == len(rows)

    down = _rows(client.get(f"/audit?sort=-{sort}").text)
    keys = [(r[field], r[0]) for r in down]
    assert keys == sorted(keys, reverse=True)


def test_sort_keeps_the_filters_and_a_bad_sort_is_time_order(client, auth) -> None:
    register(client, auth("tech1"), sample_type="PBMC", project="CART-001")
    sign_in(client, "qa1")
    page = client.get("/audit?action=sample.register&sort=-actor").text
    rows = _rows(page)
    assert rows and {r[2] for r in rows} == {"sample.register"}
    assert 'href="/audit?action=sample.register&amp;sort=actor"' in page
    plain = _rows(client.get("/audit?sort=colour").text)
    assert [r[0] for r in plain] == sorted((r[0] for r in plain), reverse=True)


@pytest.mark.parametrize("sort", ["record", "-record", "station", "-station"])
def test_record_and_where_sorts_page_without_repeats(client, auth, sort) -> None:
    tech = auth("tech1")
    for _ in range(30):
        register(client, tech, sample_type="PBMC", project="CART-001")
    sign_in(client, "qa1")
    first = client.get(f"/audit?sort={sort}")
    assert first.status_code == 200
    seen = [r[0] for r in _rows(first.text)]
    page = first.text
    while (nxt := _next(page)) is not None and len(seen) < 400:
        page = client.get(nxt).text
        seen += [r[0] for r in _rows(page)]
    assert len(seen) == len(set(seen)) and len(seen) > 50
