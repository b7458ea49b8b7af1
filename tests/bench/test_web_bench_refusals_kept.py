"""In Chromium: the bench's refusals come back after a reload until acknowledged."""

from __future__ import annotations

import re

import pytest
from helpers import move, register

from tests.bench.test_web_bench_scan_safety import _open_bench
from tests.web.test_web_browser import browser, page, server, shot  # noqa: F401 (fixtures)

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - the browser fixture skips the browser tests then
    Page = expect = None

pytestmark = pytest.mark.browser
STATION = "BENCH-B1"


def _reload(pg: Page) -> None:
    pg.reload()
    expect(pg.locator("#scan")).to_be_focused()


def test_refusals_survive_a_reload_until_acknowledged(client, auth, page: Page) -> None:  # noqa: ANN001, F811
    a = register(client, auth("tech1"))["barcode"]
    misread = a[:-1] + ("A" if a[-1] != "A" else "B")
    _open_bench(page)
    page.keyboard.type(f"CMD:RECEIVE\n{misread}\nNOT-A-THING\n")
    items = page.locator("#refusal-list li")
    expect(items).to_have_count(2)

    _reload(page)
    expect(page.locator("#refusals")).to_be_visible()
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("NOT-A-THING")  # newest on top, as before
    expect(items.nth(1)).to_contain_text(misread)
    shot(page, "bench-refusals-after-reload")

    items.nth(1).get_by_role("button", name="OK, seen").click()
    expect(items).to_have_count(1)
    expect(page.locator("#scan")).to_be_focused()
    page.wait_for_load_state("networkidle")
    _reload(page)
    expect(items).to_have_count(1)
    expect(items.nth(0)).to_contain_text("NOT-A-THING")

    page.keyboard.type("CMD:ACK\n")
    expect(page.locator("#refusals")).to_be_hidden()
    _reload(page)
    expect(page.locator("#refusals")).to_be_hidden()
    expect(items).to_have_count(0)

    # The button acknowledges on the server too.
    page.keyboard.type("AGAIN-NOT-A-THING\n")
    expect(items).to_have_count(1)
    page.click("#ack-all")
    expect(page.locator("#refusals")).to_be_hidden()
    page.wait_for_load_state("networkidle")
    _reload(page)
    expect(items).to_have_count(0)


def test_a_stop_is_still_there_after_a_reload(client, auth, page: Page) -> None:  # noqa: ANN001, F811
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
    expect(page.locator("#stop")).to_be_visible()
    _reload(page)
    expect(page.locator("#stop")).to_be_visible()
    stop = page.locator("#refusal-list li.refusal-stop")
    expect(stop).to_have_count(1)
    expect(stop.get_by_role("button")).to_be_disabled()
    page.keyboard.type("CMD:ACK\nBADGE-0004\n")
    expect(page.locator("#stop")).to_be_hidden()
    expect(stop).to_have_count(0)
    _reload(page)
    expect(page.locator("#last-result")).to_have_class(re.compile("result-idle"))
    expect(stop).to_have_count(0)
