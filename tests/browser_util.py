"""Chromium fixtures for an area's browser tests: the app served on a free port, signed in.

An area's test module imports `browser` and `page` (fixtures) and `sign_in`/`shot` from here;
each test gets the `app` fixture's fresh database behind a fresh browser context.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("LIMS_TEST_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
PASSWORD = "demo-only-lims"

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None
    Browser = Page = object  # type: ignore[misc,assignment]


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


def shot(page: Page, name: str) -> None:
    """Keep a screenshot of the page under test-artifacts/screenshots (never committed)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, username: str) -> None:
    """Sign in through the form as a person does (the demo password)."""
    page.context.clear_cookies()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Hello")
