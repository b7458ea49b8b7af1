"""An episode in a real browser: a technician moves it to QC, QA releases it under a DIN."""

# ruff: noqa: F811 - the page fixture is imported, and named again by each test

from __future__ import annotations

import pytest
from browser_util import PASSWORD, browser, page  # noqa: F401 - fixtures
from browser_util import shot as _shot
from browser_util import sign_in as _sign_in

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - depends on the machine
    Page = object  # type: ignore[misc,assignment]


def test_move_an_episode_to_qc_and_release_it_under_a_checked_din(page: Page) -> None:
    _sign_in(page, "tech1")
    page.get_by_role("link", name="Episodes").click()
    # The demo's episode under way (others are released and shipped).
    page.locator("#episodes tr", has_text="in manufacturing").locator("a.rowlink").first.click()
    expect(page.locator("#episode-state")).to_contain_text("in manufacturing")
    expect(page.locator("#episode-timeline")).to_contain_text("start manufacturing")
    page.locator("summary", has_text="submit to qc").click()
    page.click("#move-submit_to_qc button[type=submit]")
    expect(page.locator(".flash-ok")).to_contain_text("submit to qc done")
    expect(page.locator("#episode-state")).to_contain_text("qc")
    # Release is QA's: the technician is not offered it.
    expect(page.locator("#move-release")).to_have_count(0)
    url = page.url

    _sign_in(page, "qa1")
    page.goto(url)
    page.locator("summary", has_text="release").click()
    page.fill("#release-din", "G123498654321A")
    page.fill("#release-product_code", "S0001")
    page.fill("#release-expires_on", "2099-01-31")
    page.fill("#release-password", PASSWORD)
    page.click("#move-release button[type=submit]")
    expect(page.locator("#episode-error")).to_contain_text("check character A is wrong")
    page.fill("#release-din", "G1234 98 654321 H")
    page.fill("#release-product_code", "S0001")
    page.fill("#release-expires_on", "2099-01-31")
    # QA signs the release: the password again, meaning "release"; the demo's T-cell product
    # has its QC recorded and reviewed, so the quality rules allow it.
    page.fill("#release-password", "wrong password")
    page.click("#move-release button[type=submit]")
    expect(page.locator("#episode-error")).to_contain_text("password is wrong")
    page.fill("#release-din", "G1234 98 654321 H")
    page.fill("#release-product_code", "S0001")
    page.fill("#release-expires_on", "2099-01-31")
    page.fill("#release-password", PASSWORD)
    page.click("#move-release button[type=submit]")
    expect(page.locator("#episode-state")).to_contain_text("released")
    expect(page.locator("#episode-din")).to_have_text("G1234 98 654321 H")
    _shot(page, "episode-released")
