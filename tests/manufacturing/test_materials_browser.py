"""Materials and a lot's genealogy in a real browser (Debian's Chromium through Playwright)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from mfg_util import gs1, receive, released_material, set_up_kind
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
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Hello")


def test_record_a_material_into_a_lot_and_recall_it(page: Page, client, auth) -> None:  # noqa: ANN001
    set_up_kind(client, auth)
    good = released_material(client, auth, lot="PL-7")
    held = receive(client, auth, gs1("Q-7")).json["code"]
    body = {"lot_number": "HARV-7", "vector_type": "AAV", "vector": "AAV9-GFP"}
    r = client.post("/api/lots", json={**body, "project": "CART-001"}, headers=auth("tech1"))
    assert r.status_code == 201
    _sign_in(page, "tech1")
    page.click("nav >> text=Materials")
    expect(page.locator("#materials")).to_contain_text(held)
    expect(page.locator("#materials")).to_contain_text("QA has not released it")
    page.goto("/lots/HARV-7")
    page.fill("#add-input input[name=material]", held)
    page.click("#add-input button[type=submit]")
    expect(page.locator(".flash-error")).to_contain_text("in quarantine")
    expect(page.locator("#made-from")).to_contain_text("No inputs recorded")
    page.fill("#add-input input[name=material]", good)
    page.fill("#add-input input[name=quantity]", "2")
    page.fill("#add-input input[name=unit]", "mg")
    page.click("#add-input button[type=submit]")
    expect(page.locator("#made-from")).to_contain_text(good)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "lot-made-from.png"), full_page=True)
    page.click(f"#made-from >> text={good}")
    expect(page.locator("#where-used-lots")).to_contain_text("HARV-7")
    expect(page.locator("#usable")).to_contain_text("released and in date")
