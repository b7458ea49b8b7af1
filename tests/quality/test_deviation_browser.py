"""A deviation in a real browser: raised by a technician, held lot shown, closed by QA."""

# ruff: noqa: F811 - the page fixture is imported, and named again by each test

from __future__ import annotations

import pytest
from browser_util import PASSWORD, browser, page  # noqa: F401 - fixtures
from browser_util import shot as _shot
from browser_util import sign_in as _sign_in

LOT = "AAV9-2611-001"

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - depends on the machine
    Page = object  # type: ignore[misc,assignment]


def test_raise_a_critical_deviation_and_close_it(page: Page) -> None:
    _sign_in(page, "tech1")
    page.goto("/deviations")
    page.click("#raise-deviation")
    page.fill("#dev-title", "LN2 top-up missed over the weekend")
    page.fill("#dev-description", "Tank level at 20 % on Monday morning.")
    page.select_option("#dev-severity", "critical")
    page.select_option("#link-kind-0", "lot")
    page.fill("#link-ref-0", LOT)
    page.click("#deviation-form button[type=submit]")
    expect(page.locator(".flash-ok")).to_contain_text("raised")
    number = page.locator("#deviation-number").inner_text()
    expect(page.locator("#deviation-links")).to_contain_text(LOT)
    _shot(page, "deviation-raised")
    page.goto(f"/lots/{LOT}")
    expect(page.locator("#deviation-hold")).to_contain_text(number)
    _shot(page, "lot-held-by-deviation")

    _sign_in(page, "qa1")
    page.goto(f"/deviations/{number}")
    page.click("#deviation-investigate button[type=submit]")
    expect(page.locator("#deviation-state")).to_contain_text("investigation")
    form = page.locator("#deviation-close")
    form.locator("textarea[name=root_cause]").fill("Weekend rota had no LN2 duty")
    form.locator("input[name=password]").fill("not my password")
    form.locator("button[type=submit]").click()
    expect(page.locator("#page-error")).to_contain_text("signature refused")
    form = page.locator("#deviation-close")
    form.locator("textarea[name=root_cause]").fill("Weekend rota had no LN2 duty")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    expect(page.locator("#deviation-state")).to_contain_text("closed")
    expect(page.locator("#closing-signature")).to_contain_text("Quinn Quality")
    expect(page.locator("#deviation-history")).to_contain_text("close")
    _shot(page, "deviation-closed")
    page.goto(f"/lots/{LOT}")
    expect(page.locator("#deviation-hold")).to_have_count(0)
