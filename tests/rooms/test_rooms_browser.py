"""Rooms in a real browser: a client books a slot on the room page and finds it in its week;
QA approves it; the bench page of the rented suite says whose work it takes."""

# ruff: noqa: F811 - the page fixture is imported, and named again by each test

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from browser_util import PASSWORD, browser, page  # noqa: F401 - fixtures
from browser_util import shot as _shot
from browser_util import sign_in as _sign_in

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - depends on the machine
    Page = object  # type: ignore[misc,assignment]


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


def test_usage_report_per_client_and_month_with_downloads(page: Page) -> None:
    month = datetime.now(UTC).strftime("%Y-%m")
    _sign_in(page, "qa1")
    page.goto("/rooms")
    page.click("#usage-report")
    expect(page.locator("#usage-month")).to_have_text(month)
    expect(page.locator("#usage-totals")).to_contain_text("helix-bio")
    page.select_option("#usage-org-input", "novacell")
    page.click("#usage-filters button[type=submit]")
    expect(page.locator("#usage-org")).to_have_text("novacell")
    expect(page.locator("#usage-totals")).to_contain_text("No approved bookings")
    page.select_option("#usage-org-input", "helix-bio")
    page.click("#usage-filters button[type=submit]")
    expect(page.locator("#usage-rows")).to_contain_text("RM-C2")
    _shot(page, "room-usage")
    csv = page.request.get(page.locator("#usage-csv").get_attribute("href"))
    assert csv.ok and "helix-bio" in csv.text() and csv.text().startswith("organisation,room")
    pdf = page.request.get(page.locator("#usage-pdf").get_attribute("href"))
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    # A client sees its own organisation's month, with no picker of others.
    _sign_in(page, "nova_viewer")
    page.goto(f"/bookings/usage?month={month}")
    expect(page.locator("#usage-org")).to_have_text("novacell")
    expect(page.locator("#usage-org-input")).to_have_count(0)
    expect(page.locator("#usage-totals")).not_to_contain_text("helix-bio")


def test_an_action_level_em_result_puts_the_room_on_hold(page: Page) -> None:
    _sign_in(page, "tech1")
    page.goto("/rooms/RM-B1")
    page.click("#em-enter")
    expect(page.locator("#em-room")).to_have_text("RM-B1")
    # A result within the limits first: judged, nothing else happens.
    page.select_option("#em-point", "EM-B1-S1/cfu")
    page.fill("#em-value-input", "1")
    page.select_option("#em-occupancy", "in_operation")
    page.click("#em-form button[type=submit]")
    expect(page.locator("#em-judgement")).to_have_text("within limits")
    expect(page.locator("#em-action")).to_have_text("5")
    expect(page.locator("#em-consequence")).to_have_count(0)
    # Grade B active air above 10 cfu/m3 in operation: action level.
    page.select_option("#em-point", "EM-B1-A1/cfu")
    page.fill("#em-value-input", "14")
    page.click("#em-form button[type=submit]")
    expect(page.locator("#em-judgement")).to_have_text("action level")
    expect(page.locator("#em-action")).to_have_text("10")
    expect(page.locator("#em-consequence")).to_contain_text("RM-B1 is on hold")
    _shot(page, "em-result-action")
    page.click("#em-deviation")
    expect(page.locator("body")).to_contain_text("EM action level exceeded in RM-B1")
    page.go_back()
    page.click("#em-room-link")
    expect(page.locator("#room-status")).to_contain_text("on hold")
