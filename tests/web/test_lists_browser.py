"""The lists in Chromium: dense one-line rows, many above the fold, sorting by a header click."""

from __future__ import annotations

import re

import pytest
from helpers import register
from test_web_browser import browser, page, server, shot, sign_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - depends on the machine
    Page = object  # type: ignore[misc,assignment]


def _column(pg: Page, table: str, index: int) -> list[str]:
    return pg.eval_on_selector_all(
        f"{table} tbody tr", f"rs => rs.map(r => r.cells[{index}].innerText.trim())"
    )


def test_samples_list_is_dense_newest_first_and_sorts_by_a_header(  # noqa: F811
    client,  # noqa: ANN001
    tech,  # noqa: ANN001
    page: Page,  # noqa: F811
) -> None:
    for _ in range(40):  # the demo has 16: enough for two pages
        register(client, tech, sample_type="PBMC", project="CART-001")
    sign_in(page, "tech1")
    page.goto("/samples")
    table = "#samples-table"
    heights = page.eval_on_selector_all(
        f"{table} tbody tr", "rs => rs.map(r => r.getBoundingClientRect().height)"
    )
    assert len(heights) >= 20
    # One line a row: every row as high as the others, 24 to 34 px (it was 78 px).
    assert all(24 <= h <= 34 for h in heights), heights
    above_fold = page.eval_on_selector_all(
        f"{table} tbody tr", "rs => rs.filter(r => r.getBoundingClientRect().bottom <= 900).length"
    )
    assert above_fold >= 15
    # The bulk print controls stand above the table, not under fifty rows.
    bulk = page.locator("#bulk-actions").bounding_box()
    assert bulk is not None and bulk["y"] < page.locator(table).bounding_box()["y"]
    expect(page.locator("#list-total")).to_contain_text(re.compile(r"\d+ samples"))
    headers = page.eval_on_selector_all(f"{table} thead th", "hs => hs.map(h => h.innerText)")
    for wanted in ("COI", "Lot", "Holder", "Created"):
        assert any(wanted in h for h in headers), headers
    created = _column(page, table, headers.index(next(h for h in headers if "Created" in h)))
    assert created == sorted(created, reverse=True)  # newest first
    shot(page, "samples-list-dense")

    barcode_at = next(i for i, h in enumerate(headers) if h.startswith("Barcode"))
    page.click(f"{table} thead a[data-sort=barcode]")
    expect(page).to_have_url(re.compile(r"sort=barcode"))
    up = _column(page, table, barcode_at)
    assert up == sorted(up)
    page.click(f"{table} thead a[data-sort=barcode]")
    expect(page).to_have_url(re.compile(r"sort=-barcode"))
    down = _column(page, table, barcode_at)
    assert down == sorted(down, reverse=True)
    expect(page.locator(f"{table} thead th[aria-sort=descending]")).to_contain_text("Barcode")


def test_columns_can_be_chosen_and_stay_while_paging(client, tech, page: Page) -> None:  # noqa: ANN001, F811
    for _ in range(40):
        register(client, tech, sample_type="PBMC", project="CART-001")
    sign_in(page, "tech1")
    page.goto("/samples")
    page.click(".col-chooser summary")
    page.uncheck(".col-chooser input[value=coi]")
    page.check(".col-chooser input[value=updated]")
    page.click(".col-chooser button[type=submit]")
    headers = page.eval_on_selector_all("#samples-table thead th", "hs => hs.map(h => h.innerText)")
    assert not any("COI" in h for h in headers) and any("Updated" in h for h in headers)
    nxt = page.locator("a[rel=next]").first
    nxt.click()
    expect(page).to_have_url(re.compile(r"cursor=\d+"))
    headers = page.eval_on_selector_all("#samples-table thead th", "hs => hs.map(h => h.innerText)")
    assert not any("COI" in h for h in headers) and any("Updated" in h for h in headers)
    page.click("a[rel=prev]")
    expect(page.locator("#samples-table tbody tr")).to_have_count(50)


def test_audit_rows_stay_one_line_newest_first(page: Page) -> None:  # noqa: F811
    sign_in(page, "qa1")
    page.goto("/audit")
    rows = "#audit-results tbody tr"
    heights = page.eval_on_selector_all(rows, "rs => rs.map(r => r.getBoundingClientRect().height)")
    assert len(heights) >= 20 and all(20 <= h <= 34 for h in heights), heights
    seqs = [int(s) for s in _column(page, "#audit-results", 0)]
    assert seqs == sorted(seqs, reverse=True)
    page.click("#sort-time")
    expect(page).to_have_url(re.compile(r"order=oldest"))
    up = [int(s) for s in _column(page, "#audit-results", 0)]
    assert up == sorted(up) and up[0] == 1
    page.fill("input[name=actor]", "quinn")
    page.click("#audit-form button[type=submit]")
    expect(page.locator("#people-found")).to_contain_text("Quinn Quality (qa1)")
    who = _column(page, "#audit-results", 2)
    assert who and set(who) == {"Quinn Quality"}
    shot(page, "audit-dense")


@pytest.mark.parametrize("user", ["tech1", "qa1", "admin", "helix_viewer"])
def test_the_navigation_bar_is_one_line_for_every_role(page: Page, user: str) -> None:  # noqa: F811
    # A wrapped bar pushes every list's rows below the fold; each area is still a 44 px target.
    sign_in(page, user)
    page.goto("/home")
    links = page.eval_on_selector_all(
        "header nav a, .top nav a", "as => as.map(a => a.getBoundingClientRect().top)"
    )
    assert len(links) >= 5 and len(set(links)) == 1, links
    heights = page.eval_on_selector_all(
        ".top nav a", "as => as.map(a => a.getBoundingClientRect().height)"
    )
    assert min(heights) >= 44, heights
