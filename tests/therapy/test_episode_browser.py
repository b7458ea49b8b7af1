"""An episode in a real browser: a technician moves it to QC, QA releases it under a DIN."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("LIMS_TEST_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "demo-only-lims"

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Launch headless Chromium once per module (the system's, not a downloaded build)."""
    if sync_playwright is None:
        pytest.skip("playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, app) -> Iterator[Page]:  # noqa: ANN001
    """Serve the app on a free port and open a fresh browser context on it."""
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    context = browser.new_context(
        base_url=f"http://127.0.0.1:{srv.server_port}", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(10_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    srv.shutdown()
    thread.join(timeout=10)
    assert not errors, f"JavaScript errors on the page: {errors}"


def _sign_in(page: Page, username: str) -> None:
    page.context.clear_cookies()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Hello")


def test_move_an_episode_to_qc_and_release_it_under_a_checked_din(page: Page) -> None:
    _sign_in(page, "tech1")
    page.get_by_role("link", name="Episodes").click()
    page.locator("#episodes a.rowlink").first.click()
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
    page.click("#move-release button[type=submit]")
    expect(page.locator("#episode-error")).to_contain_text("check character A is wrong")
    page.fill("#release-din", "G1234 98 654321 H")
    page.fill("#release-product_code", "S0001")
    page.click("#move-release button[type=submit]")
    expect(page.locator("#episode-state")).to_contain_text("released")
    expect(page.locator("#episode-din")).to_have_text("G1234 98 654321 H")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "episode-released.png"), full_page=True)
