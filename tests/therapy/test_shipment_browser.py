"""Receipt at the clinical site in a real browser: the nurse scans the bag and its COI."""

# ruff: noqa: F811 - the page fixture is imported, and named again by each test

from __future__ import annotations

import pytest
from browser_util import browser, page  # noqa: F401 - fixtures
from browser_util import shot as _shot
from browser_util import sign_in as _sign_in

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - depends on the machine
    Page = object  # type: ignore[misc,assignment]


def test_the_site_receives_a_shipment_by_scanning_bag_and_coi(page: Page) -> None:
    _sign_in(page, "city_nurse")
    page.get_by_role("link", name="Shipments").click()
    page.locator("#shipments a.rowlink").first.click()
    expect(page.locator("#shipment-state")).to_contain_text("dispatched")
    url = page.url
    row = page.locator("#manifest tbody tr").first
    bag = row.locator("td").nth(0).inner_text().strip()
    coi = row.locator("td").nth(1).inner_text().strip()
    # A wrong COI scanned from the label stops the receipt and holds the box.
    page.fill("#receipt-scans", f"{bag}\nCOI-26-999999-X\n")
    page.click("#receive-submit")
    expect(page.locator("#page-error")).to_contain_text("COI MISMATCH - STOP")
    expect(page.locator("#shipment-held")).to_be_visible()
    expect(page.locator("#receive-form")).to_be_visible()

    _sign_in(page, "qa1")
    page.goto(url)
    page.fill("#acknowledge-reason", "label misread at the site; bag and wristband re-checked")
    page.click("#acknowledge-form button[type=submit]")
    expect(page.locator(".flash-ok")).to_contain_text("mismatch acknowledged")

    _sign_in(page, "city_nurse")
    page.goto(url)
    # A keyboard-wedge scanner types each code and Enter into the focused scan field.
    field = page.locator("#receipt-scans")
    field.click()
    field.press_sequentially(bag)
    field.press("Enter")
    field.press_sequentially(coi)
    field.press("Enter")
    page.click("#receive-submit")
    expect(page.locator(".flash-ok")).to_contain_text("received at the site")
    expect(page.locator("#shipment-state")).to_contain_text("received at site")
    expect(page.locator("#manifest")).to_contain_text("received at site")
    _shot(page, "shipment-received")
