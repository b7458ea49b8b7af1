"""Rooms in a real browser: a client books a slot on the room page and finds it in its week;
QA approves it; the bench page of the rented suite says whose work it takes."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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


def _local(hours: float) -> str:
    t = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=hours)
    return t.strftime("%Y-%m-%dT%H:%M")


def test_client_books_a_slot_and_qa_approves_it(page: Page) -> None:
    _sign_in(page, "helix_tech")
    page.goto("/rooms")
    expect(page.locator("#rooms")).to_contain_text("RM-C2")
    page.click("#rooms a:text('RM-C1')")
    expect(page.locator("#room-code")).to_have_text("RM-C1")
    start = datetime.now(UTC) + timedelta(days=2)
    page.fill("#booking-start", _local(48))
    page.fill("#booking-end", _local(52))
    page.fill("#booking-changeover", "120")
    page.fill("#booking-purpose", "Fill-finish trial")
    page.click("#booking-form button[type=submit]")
    expect(page.locator(".flash-ok")).to_contain_text("Booking requested")
    page.goto(f"/rooms/RM-C1?week={start.date().isoformat()}")
    expect(page.locator("#week")).to_contain_text("helix-bio")
    expect(page.locator("#week")).to_contain_text("requested")
    number = page.locator("#room-bookings td.mono").first.inner_text()
    _shot(page, "room-booking-requested")
    # The same slot again: the page says it is taken.
    page.fill("#booking-start", _local(49))
    page.fill("#booking-end", _local(50))
    page.click("#booking-form button[type=submit]")
    expect(page.locator("#page-error")).to_contain_text("taken")

    _sign_in(page, "qa1")
    page.goto("/rooms/RM-C1")
    page.click(f"#approve-{number}")
    expect(page.locator(".flash-ok")).to_contain_text("approve done")
    page.goto(f"/bookings/calendar?org=helix-bio&week={start.date().isoformat()}")
    expect(page.locator("#week")).to_contain_text(number)
    expect(page.locator("#week")).to_contain_text("approved")
    _shot(page, "client-calendar")


def test_bench_in_the_rented_suite_says_whose_work_it_takes(page: Page) -> None:
    _sign_in(page, "tech1")
    page.goto("/bench/BENCH-C2")
    expect(page.locator("#room-note")).to_contain_text("not booked for centre now")
    _shot(page, "bench-rented-suite")
    page.goto("/em/EM-B1-A1?days=30")
    expect(page.locator("#trend-chart")).to_be_visible()
    _shot(page, "em-trend")
