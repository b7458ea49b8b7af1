"""The desk in Chromium: one label page to preview and print, the live print queue."""

from __future__ import annotations

import re

import pytest
from helpers import register
from printing_util import add_printer, queue, worker
from test_web_browser import browser, page, server, shot, sign_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - depends on the machine
    Page = object  # type: ignore[misc,assignment]


def test_label_page_previews_and_prints_on_the_container_stock(  # noqa: F811
    client,  # noqa: ANN001
    tech,  # noqa: ANN001
    page: Page,  # noqa: F811
) -> None:
    bag = register(client, tech, sample_type="APHERESIS", container="bag")["barcode"]
    sign_in(page, "tech1")
    page.goto(f"/labels/preview/{bag}")
    # The bag's own stock is chosen; preview and print button on one screen, no warning.
    expect(page.locator("#stock-form select[name=template]")).to_have_value("bag")
    expect(page.locator("#label-img")).to_be_visible()
    expect(page.locator("#print-form button[type=submit]")).to_be_in_viewport()
    expect(page.locator("#stock-warning")).to_have_count(0)

    # Another stock warns and asks a reason before it prints.
    page.select_option("#stock-form select[name=template]", "cryovial")
    expect(page).to_have_url(re.compile(r"template=cryovial"))
    expect(page.locator("#stock-warning")).to_contain_text("goes on bag stock, not cryovial")
    reason = page.locator("#print-form input[name=stock_override]")
    expect(reason).to_have_attribute("required", "")
    shot(page, "label-page-stock-mismatch")
    reason.fill("bag labels out of stock; QA informed")
    page.click("#print-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/print-queue"))
    expect(page.locator(".flash-ok")).to_contain_text("queued: 1 label(s)")


def test_print_queue_follows_jobs_and_printer_status_without_a_reload(  # noqa: F811
    app,  # noqa: ANN001
    client,  # noqa: ANN001
    runner,  # noqa: ANN001
    tech,  # noqa: ANN001
    sim,  # noqa: ANN001
    page: Page,  # noqa: F811
) -> None:
    app.config["PRINT_QUEUE_POLL_MS"] = 300
    add_printer(runner, "ZLIVE", sim.port)
    sign_in(page, "tech1")
    page.goto("/print-queue")
    status = page.locator('[data-printer-status="ZLIVE"]')
    expect(status).to_have_text("no status yet")
    page.evaluate("window.__same_page = true")

    job = queue(client, tech, [register(client, tech)["barcode"]], printer="ZLIVE").json["id"]
    expect(page.locator(f"#job-{job} .pill")).to_have_text("queued")
    worker(app, "ZLIVE").run_once()
    expect(page.locator(f"#job-{job} .pill")).to_have_text("sent")
    expect(status).to_have_text("ready")

    sim.pause(True)
    waiting = queue(client, tech, [register(client, tech)["barcode"]], printer="ZLIVE").json["id"]
    worker(app, "ZLIVE").run_once()
    expect(status).to_have_text(re.compile(r"^paused, \d+ s ago$"))
    expect(page.locator(f"#job-{waiting}")).to_contain_text("printer not ready")
    shot(page, "print-queue-live")

    # A reason half typed is not wiped by the next refresh.
    page.fill(f"#reason-{job}", "label smudged")
    sim.pause(False)
    worker(app, "ZLIVE").run_once()
    expect(status).to_have_text("ready")
    page.wait_for_timeout(900)
    expect(page.locator(f"#reason-{job}")).to_have_value("label smudged")
    assert page.evaluate("window.__same_page") is True  # never reloaded


def test_print_queue_shows_an_idle_printers_status_as_it_changes(  # noqa: F811
    app,  # noqa: ANN001
    runner,  # noqa: ANN001
    page: Page,  # noqa: F811
) -> None:
    from printers.mock import PrinterSimulator

    app.config["PRINT_QUEUE_POLL_MS"] = 300
    idle = PrinterSimulator().start()
    try:
        add_printer(runner, "ZSHELF", idle.port)
        w = worker(app, "ZSHELF")
        sign_in(page, "tech1")
        page.goto("/print-queue")
        page.evaluate("window.__same_page = true")
        status = page.locator('[data-printer-status="ZSHELF"]')
        expect(status).to_have_text("no status yet")

        w.check_idle(force=True)
        expect(status).to_have_text("ready")
        expect(status).to_have_attribute("data-state", "ready")
        idle.paper_out_after(0)  # no job: the idle poll finds it
        w.check_idle(force=True)
        expect(status).to_have_text(re.compile(r"^paper out, \d+ s ago$"))
        expect(status).to_have_class(re.compile("pill-fail"))
        shot(page, "print-queue-paper-out")
        idle.unplug()
        w.check_idle(force=True)
        expect(status).to_have_text(re.compile(r"^no answer since \d\d:\d\d UTC$"))
        expect(status).to_have_attribute("data-state", "no_answer")
        assert page.evaluate("window.__same_page") is True  # never reloaded
    finally:
        idle.stop()


def test_print_jobs_list_is_dense_and_sorts_by_a_header(  # noqa: F811
    client,  # noqa: ANN001
    runner,  # noqa: ANN001
    tech,  # noqa: ANN001
    sim,  # noqa: ANN001
    page: Page,  # noqa: F811
) -> None:
    add_printer(runner, "ZDENSE", sim.port)
    for _ in range(25):
        queue(client, tech, [register(client, tech)["barcode"]], printer="ZDENSE")
    sign_in(page, "tech1")
    page.goto("/print-jobs")
    table = "#jobs-table"
    heights = page.eval_on_selector_all(
        f"{table} tbody tr", "rs => rs.map(r => r.getBoundingClientRect().height)"
    )
    assert len(heights) >= 25 and all(22 <= h <= 34 for h in heights), heights
    expect(page.locator("#list-total")).to_contain_text(re.compile(r"\d+ print jobs"))
    page.click(f"{table} thead a[data-sort=labels]")
    expect(page).to_have_url(re.compile(r"sort=labels"))
    expect(page.locator(f"{table} th[aria-sort]")).to_contain_text("Labels")
    shot(page, "print-jobs-dense")
