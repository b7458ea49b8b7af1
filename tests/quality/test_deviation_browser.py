"""A deviation in a real browser: raised by a technician, held lot shown, closed by QA."""

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
LOT = "AAV9-2611-001"

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


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _sign_in(page: Page, username: str) -> None:
    page.context.clear_cookies()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Hello")


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
