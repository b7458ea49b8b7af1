# ruff: noqa: F811 (the browser fixtures are imported by name)
"""The bench page in Chromium, gloves on: the lock screen when the session ends (a badge scan
unlocks it; no scan reaches a sign-in form), refusals that stay until acknowledged, a stop after
a COI mismatch, a sound per outcome, and the focus that always comes back to the scan field."""

from __future__ import annotations

import re

import pytest
from helpers import move, register
from sqlmodel import select

from lims import audit
from lims.accounts.sessions import end_all_sessions
from lims.db import new_session
from lims.models import User
from tests.web.test_web_browser import browser, page, server, shot  # noqa: F401 (fixtures)
from tests.web.test_web_browser import sign_in as browser_sign_in

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - the browser fixture skips the browser tests then
    Page = expect = None

pytestmark = pytest.mark.browser
STATION = "BENCH-B1"
LOCK = "Session ended - scan your badge"


def _db(app):  # noqa: ANN001, ANN202
    return new_session(app.extensions["lims"]["engine"])


def _end_sessions(app, username: str) -> None:  # noqa: ANN001
    """End every web session of username, as an idle timeout does."""
    with _db(app) as db:
        user = db.exec(select(User).where(User.username == username)).one()
        end_all_sessions(db, user.id, "idle_timeout")
        db.commit()


def _events(app, action: str) -> list:  # noqa: ANN001
    with _db(app) as db:
        return audit.query(db, limit=10_000, action=action)


def _open_bench(page: Page, username: str = "tech1", badge: str = "BADGE-0002") -> None:
    browser_sign_in(page, username)
    page.goto(f"/bench/{STATION}")
    expect(page.locator("#scan")).to_be_focused()
    page.keyboard.type(badge + "\n")
    expect(page.locator("#last-result")).to_have_class(re.compile("result-accepted"))


def test_an_ended_session_locks_the_page_and_a_badge_unlocks_it(app, page: Page) -> None:  # noqa: ANN001
    _open_bench(page)
    _end_sessions(app, "tech1")
    # The page finds out by itself (its poll is answered 401) and locks in place.
    expect(page.locator("#lock")).to_be_visible()
    expect(page.locator("#lock-title")).to_have_text(LOCK)
    expect(page.locator("#bench")).to_have_attribute("data-last-sound", "refused")
    shot(page, "bench-locked")
    # Scans while locked never reach a sign-in form: a tube is not a badge, the page stays.
    page.keyboard.type("BOX-0002\n")
    expect(page.locator("#lock-result")).to_contain_text("BOX-0002 is not a badge")
    # Another technician's badge: they never signed in on this page with a password.
    page.keyboard.type("BADGE-0003\n")
    expect(page.locator("#lock-result")).to_contain_text("has not signed in on this page")
    expect(page).to_have_url(re.compile(rf"/bench/{STATION}$"))
    assert page.locator("#username, #password").count() == 0
    # The badge of the person who signed in here unlocks it, and signs them in at the bench.
    page.keyboard.type("BADGE-0002\n")
    expect(page.locator("#lock")).to_be_hidden()
    expect(page.locator("#operator")).to_have_text("Tara Technician")
    expect(page.locator("#scan")).to_be_focused()
    page.keyboard.type("CMD:RECEIVE\n")
    expect(page.locator("#mode")).to_have_text("RECEIVE")
    resumed = _events(app, "auth.badge_resume")
    assert [(e.actor, e.station) for e in resumed] == [("tech1", STATION)]
    assert len(_events(app, "auth.badge_refused")) == 2


def test_a_scan_sent_after_the_session_ended_is_not_lost_silently(app, page: Page) -> None:  # noqa: ANN001
    _open_bench(page)
    _end_sessions(app, "tech1")
    page.keyboard.type("CMD:RECEIVE\n")
    expect(page.locator("#lock")).to_be_visible()
    # Whether the scan was answered 401 or the lock came first, the lock names what was lost.
    expect(page.locator("#lock-result")).to_contain_text("CMD:RECEIVE")
    page.keyboard.type("BADGE-0002\n")
    expect(page.locator("#lock")).to_be_hidden()
    # Whichever noticed first (the scan's 401 or the poll), nothing reached a sign-in form.
    expect(page).to_have_url(re.compile(rf"/bench/{STATION}$"))
    # Reloading a locked page shows the lock again, not the sign-in form.
    _end_sessions(app, "tech1")
    page.reload()
    expect(page.locator("#lock-title")).to_have_text(LOCK)
    assert page.locator("#username").count() == 0
    page.keyboard.type("BADGE-0002\n")
    expect(page.locator("#mode-banner")).to_be_visible()
    expect(page.locator("#lock")).to_be_hidden()


def test_a_refusal_stays_until_acknowledged_while_green_results_follow(
    app,  # noqa: ANN001
    client,  # noqa: ANN001
    auth,  # noqa: ANN001
    page: Page,
) -> None:
    a, b = (register(client, auth("tech1"))["barcode"] for _ in range(2))
    misread = a[:-1] + ("A" if a[-1] != "A" else "B")  # a wrong check character
    _open_bench(page)
    page.keyboard.type("CMD:RECEIVE\n")
    expect(page.locator("#mode")).to_have_text("RECEIVE")
    # A burst: the misread, then two good tubes straight after it.
    page.keyboard.type(f"{misread}\n{a}\n{b}\n")
    expect(page.locator("#scans .scan-accepted .scan-data", has_text=b)).to_have_count(1)
    expect(page.locator("#last-result")).to_have_class(re.compile("result-accepted"))
    refusal = page.locator("#refusal-list li")
    expect(refusal).to_have_count(1)
    expect(refusal).to_contain_text(misread)
    expect(page.locator("#refusals")).to_be_visible()
    assert page.locator("#bench").get_attribute("data-sound-log").split()[-3:] == [
        "refused",
        "accepted",
        "accepted",
    ]
    assert page.locator("#bench").get_attribute("data-audio") == "web-audio"
    shot(page, "bench-refusal-stays")
    # Acknowledged by a click: gone, and the focus is back in the scan field.
    refusal.get_by_role("button", name="OK, seen").click()
    expect(page.locator("#refusals")).to_be_hidden()
    expect(page.locator("#scan")).to_be_focused()
    # Or by scanning CMD:ACK.
    page.keyboard.type("NOT-A-THING\n")
    expect(page.locator("#refusal-list li")).to_have_count(1)
    page.keyboard.type("CMD:ACK\n")
    expect(page.locator("#refusals")).to_be_hidden()


def test_a_coi_mismatch_stops_the_bench_until_ack_and_a_qa_badge(
    app,  # noqa: ANN001
    client,  # noqa: ANN001
    auth,  # noqa: ANN001
    page: Page,
) -> None:
    tech, qa = auth("tech1"), auth("qa1")
    tube, other = register(client, tech), register(client, tech)
    b = tube["barcode"]
    for action, fields, who in [
        ("receive", {"condition": "intact"}, tech),
        ("quarantine", {}, tech),
        ("release", {}, qa),
        ("check_out", {"custodian": "tech1"}, tech),
    ]:
        assert move(client, who, b, action, **fields).status_code == 200
    _open_bench(page, "tech2", "BADGE-0003")
    page.keyboard.type(f"CMD:HANDOVER\n{other['coi']}\n{b}\n")
    stop = page.locator("#stop")
    expect(stop).to_be_visible()
    expect(stop).to_contain_text(f"station stopped: COI mismatch on {b}")
    expect(page.locator("#bench")).to_have_attribute("data-last-sound", "stop")
    expect(page.locator("#refusal-list li.refusal-stop")).to_contain_text("COI MISMATCH - STOP")
    shot(page, "bench-coi-stop")
    # A click does not acknowledge a stop; the right label and the tube are refused.
    page.click("#ack-all")
    expect(page.locator("#refusal-list li.refusal-stop")).to_have_count(1)
    page.keyboard.type(f"{tube['coi']}\n")
    expect(page.locator("#last-result")).to_contain_text("station stopped")
    page.keyboard.type("CMD:ACK\n")
    expect(page.locator("#stop")).to_contain_text("now a supervisor (QA) scans their badge")
    page.keyboard.type("BADGE-0004\n")
    expect(stop).to_be_hidden()
    expect(page.locator("#refusal-list li.refusal-stop")).to_have_count(0)
    expect(page.locator("#last-result")).to_contain_text("station released by Quinn Quality")
    released = _events(app, "station.stop_released")
    assert [e.actor for e in released] == ["qa1"]


def test_the_focus_comes_back_after_clicking_the_command_codes_sheet(page: Page) -> None:
    _open_bench(page)
    with page.context.expect_page() as opened:
        page.click("#command-codes")
    opened.value.close()
    expect(page.locator("#scan")).to_be_focused()
    page.keyboard.type("CMD:STORE\n")
    expect(page.locator("#mode")).to_have_text("STORE")
    # A click on the page's plain text gives the focus back too.
    page.click("#prompt")
    expect(page.locator("#scan")).to_be_focused()


def test_a_tab_suffix_scanner_ends_the_scan_and_keeps_the_focus(page: Page) -> None:
    browser_sign_in(page, "tech1")
    page.goto(f"/bench/{STATION}")
    # The scanner types the code, then presses Tab (its suffix) as a keyboard would.
    page.keyboard.type("BADGE-0002")
    page.keyboard.press("Tab")
    expect(page.locator("#operator")).to_have_text("Tara Technician")
    expect(page.locator("#scan")).to_be_focused()
    page.keyboard.type("CMD:RECEIVE")
    page.keyboard.press("Tab")
    expect(page.locator("#mode")).to_have_text("RECEIVE")
    expect(page.locator("#scan")).to_be_focused()
    expect(page.locator("#scan")).to_have_value("")
