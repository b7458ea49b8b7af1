"""Carrying out a batch step in a real browser: values, a material scan, a refused expired one."""

# ruff: noqa: F811 - the page fixture is imported, and named again by each test

from __future__ import annotations

import pytest
from batch_util import approved_template, lot_with_record, past_its_expiry
from browser_util import browser, page  # noqa: F401 - fixtures
from browser_util import shot as _shot
from browser_util import sign_in as _sign_in
from mfg_util import released_material, set_up_kind

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - depends on the machine
    Page = object  # type: ignore[misc,assignment]


def test_do_a_step_with_a_material_scan_after_an_expired_one_is_refused(  # noqa: PLR0913
    page: Page,
    client,  # noqa: ANN001
    auth,  # noqa: ANN001
    qa2,  # noqa: ANN001
    engine,  # noqa: ANN001
) -> None:
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "BB-1")
    set_up_kind(client, auth)
    good = released_material(client, auth, lot="PL-9")
    old = released_material(client, auth, lot="OLD-9")
    past_its_expiry(engine, old)
    _sign_in(page, "tech1")
    page.goto("/lots/BB-1")
    page.click("#batch-open")
    expect(page.locator("#h-next")).to_contain_text("Step 1: Seed HEK293")
    expect(page.locator("#step-form")).to_contain_text("range 0.8–1.2 e6/mL")
    expect(page.locator("#material-scan")).to_be_focused()
    page.fill("#step-form input[name='value:cell density']", "1.05")
    page.fill("#step-equipment", "BSC-03")
    # A keyboard-wedge scanner types the code and Enter: the scan is listed, the form waits.
    page.locator("#material-scan").focus()
    page.keyboard.type(old)
    page.keyboard.press("Enter")
    expect(page.locator("#scanned")).to_contain_text(old)
    expect(page.locator("#material-scan")).to_be_focused()
    expect(page.locator("#material-scan")).to_have_value("")
    page.click("#step-submit")
    expect(page.locator("#page-error")).to_contain_text(f"material {old} expired on")
    expect(page.locator("#batch-steps #step-1")).to_contain_text("to do")
    # Take the expired one off, scan the good one, record the step.
    page.locator("#scanned li", has_text=old).locator(".unscan").click()
    expect(page.locator("#scanned")).not_to_contain_text(old)
    page.locator("#material-scan").focus()
    page.keyboard.type(good)
    page.keyboard.press("Enter")
    expect(page.locator("#scanned")).to_contain_text(good)
    page.click("#step-submit")
    expect(page.locator(".flash-ok")).to_contain_text("Step 1 (Seed HEK293) recorded")
    expect(page.locator("#batch-steps #step-1")).to_contain_text("tech1")
    expect(page.locator("#h-next")).to_contain_text("Step 2: Transfect")
    _shot(page, "batch-step")
    page.goto("/lots/BB-1")
    expect(page.locator("#made-from")).to_contain_text(good)
    expect(page.locator("#made-from")).not_to_contain_text(old)
