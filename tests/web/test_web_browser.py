"""The pages in a real browser: Debian's Chromium driven by Playwright against a live server.

Each test gets a fresh copy of the demo centre served by werkzeug on 127.0.0.1 (a random port)
and saves a screenshot of what it looked at under test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select
from werkzeug.serving import make_server

from lims import lots
from lims.accounts import users
from lims.db import new_session
from lims.models import Sample, VectorLot

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
        pytest.skip("playwright is not installed: pip install playwright (no `playwright install`)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def server(app) -> Iterator[str]:  # noqa: ANN001
    """Serve the app on a free port of 127.0.0.1 in a thread; return its base URL."""
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    """Open a fresh browser context (no cookies) on the live server."""
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot for people to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Hello")


def _db(app):  # noqa: ANN001, ANN202
    return new_session(app.extensions["lims"]["engine"])


def _registered_sample(app) -> str:  # noqa: ANN001
    with _db(app) as db:
        return db.exec(select(Sample.barcode).where(Sample.state == "registered")).first()


def _sample_state(app, barcode: str) -> str:  # noqa: ANN001
    with _db(app) as db:
        return db.exec(select(Sample.state).where(Sample.barcode == barcode)).one()


def test_sign_in_refusal_and_home(page: Page) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#username", "tech1")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    expect(page.locator("#page-error")).to_contain_text("Sign-in refused")
    shot(page, "login-refused")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Hello, Tara Technician")
    expect(page.locator(".tile")).to_have_count(5)
    shot(page, "home-technician")
    page.click("#sign-out")
    expect(page.locator("#login-info")).to_contain_text("signed out")
    page.goto("/home")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fhome|/login\?next=/home"))


def test_receive_a_sample_by_scanning_at_the_bench(app, page: Page) -> None:  # noqa: ANN001
    barcode = _registered_sample(app)
    sign_in(page, "tech1")
    page.goto("/bench/BENCH-B1")
    scan = page.locator("#scan")
    expect(scan).to_be_focused()
    # A keyboard-wedge scanner types the code and Enter into whatever has focus.
    page.keyboard.type("BADGE-0002\n")
    expect(page.locator("#operator")).to_have_text("Tara Technician")
    expect(page.locator("#last-result")).to_have_class(re.compile("result-accepted"))
    # A click anywhere on the page gives the focus back to the scan field.
    page.click("#mode-banner")
    page.keyboard.type("CMD:RECEIVE\n")
    expect(page.locator("#mode")).to_have_text("RECEIVE")
    page.keyboard.type(barcode + "\n")
    expect(page.locator("#last-result")).to_have_class(re.compile("result-accepted"))
    expect(page.locator("#last-result")).to_contain_text("received")
    expect(page.locator("#bench")).to_have_attribute("data-last-beep", "accepted")
    assert _sample_state(app, barcode) == "received"
    expect(page.locator("#scans li").first).to_have_class(re.compile("scan-accepted"))
    shot(page, "bench-accepted")

    # A mistyped or misread barcode (wrong check character) is refused, in red, with a beep.
    bad = barcode[:-1] + ("A" if barcode[-1] != "A" else "B")
    scan.fill(bad)
    scan.press("Enter")
    expect(page.locator("#last-result")).to_have_class(re.compile("result-refused"))
    expect(page.locator("#bench")).to_have_attribute("data-last-beep", "refused")
    expect(page.locator("#scans li").first).to_have_class(re.compile("scan-refused"))
    expect(page.locator("#scans li").first).to_contain_text(bad)
    expect(scan).to_be_focused()
    shot(page, "bench-refused")


def test_agent_scans_show_up_live_on_the_bench_page(app, page: Page, auth) -> None:  # noqa: ANN001
    sign_in(page, "tech1")
    page.goto("/bench/BENCH-B1")
    expect(page.locator("#scan")).to_be_focused()
    # The station agent posts a serial scanner's read with its station token.
    agent = app.test_client()
    r = agent.post(
        "/api/scans",
        json={"station": "BENCH-B1", "data": "BADGE-0003", "scan_id": "agent-1"},
        headers=auth("tech2", "BENCH-B1"),
    )
    assert r.status_code == 200 and r.json["outcome"] == "accepted", r.json
    expect(page.locator("#operator")).to_have_text("Tomas Technician")
    expect(page.locator("#scans li").first).to_contain_text("BADGE-0003")
    expect(page.locator("#bench")).to_have_attribute("data-last-beep", "accepted")


def _record_mycoplasma(app) -> None:  # noqa: ANN001
    with _db(app) as db:
        tech = users.actor_for(
            db, db.exec(select(users.User).where(users.User.username == "tech1")).one()
        )
        lots.record_qc(
            db,
            lot_number="AAV9-2611-001",
            data=lots.QcIn(test="mycoplasma", result="not detected"),
            actor=tech,
        )
        db.commit()


def test_release_a_lot_with_an_electronic_signature(app, page: Page) -> None:  # noqa: ANN001
    sign_in(page, "qa1")
    page.goto("/lots/AAV9-2611-001")
    expect(page.locator("#qc-table")).to_contain_text("MISSING")
    shot(page, "lot-qc-missing")
    _record_mycoplasma(app)
    page.reload()
    expect(page.locator("#qc-table .qc-pass")).to_have_count(4)
    # Recorded by tech1, not yet reviewed: the release button says why it cannot be used.
    expect(page.locator("#release-blocker")).to_contain_text("not reviewed")
    expect(page.locator("#lot-release button[type=submit]")).to_be_disabled()
    for left in (3, 2, 1, 0):
        page.locator("details.review-form summary").first.click()
        review = page.locator("form[id^=review-]").first
        review.locator("input[name=password]").fill(PASSWORD)
        review.locator("button[type=submit]").click()
        expect(page.locator("form[id^=review-]")).to_have_count(left)
    # Then the lot's audit trail (EU GMP Annex 11 §9): the lot page links to it.
    expect(page.locator("#release-blocker")).to_contain_text("audit trail")
    expect(page.locator("#trail-review-status")).to_contain_text("Not reviewed")
    page.click("#trail-review-link")
    expect(page.locator("#trail-events")).to_contain_text("lot.qc")
    review = page.locator("#trail-review-form")
    review.locator("input[name=password]").fill(PASSWORD)
    review.locator("button[type=submit]").click()
    expect(page.locator(".flash-ok")).to_contain_text("reviewed up to seq")
    expect(page.locator("#review-status")).to_contain_text("Quinn Quality")
    shot(page, "lot-trail-reviewed")
    page.goto("/lots/AAV9-2611-001")
    expect(page.locator("#trail-review-status")).to_contain_text("no events since")
    expect(page.locator("#release-blocker")).to_have_count(0)
    form = page.locator("#lot-release")
    form.locator("input[name=password]").fill("not my password")
    form.locator("button[type=submit]").click()
    expect(page.locator("#page-error")).to_contain_text("signature refused")
    with _db(app) as db:
        lot = db.exec(select(VectorLot).where(VectorLot.lot_number == "AAV9-2611-001")).one()
        assert lot.state == "quarantine"
    form = page.locator("#lot-release")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash-ok")).to_contain_text("now released")
    expect(page.locator("#lot-state")).to_contain_text("released")
    expect(page.locator("#signatures")).to_contain_text("Quinn Quality")
    expect(page.locator("#signatures")).to_contain_text("release")
    shot(page, "lot-released")
    expect(page.locator("#coa-link")).to_have_attribute("href", "/api/lots/AAV9-2611-001/coa.pdf")


def test_search_the_audit_trail(page: Page) -> None:
    sign_in(page, "qa1")
    page.goto("/audit")
    page.fill("input[name=lot]", "AAV9-2611-001")
    page.select_option("#audit-action", "lot.qc")  # the actions the trail holds
    page.click("#audit-form button[type=submit]")
    rows = page.locator("#audit-results tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("lot.qc")
    csv_href = page.locator("#export-csv").get_attribute("href")
    assert "lot=AAV9-2611-001" in csv_href and "action=lot.qc" in csv_href
    expect(page.locator("#export-pdf")).to_have_attribute(
        "href", "/api/lots/AAV9-2611-001/report.pdf"
    )
    csv = page.request.get(csv_href)
    assert csv.status == 200
    assert csv.text().count("lot.qc") == 3
    shot(page, "audit-search")


def test_box_grid_and_sample_page(app, page: Page) -> None:  # noqa: ANN001
    sign_in(page, "qa1")
    page.goto("/storage")
    expect(page.locator("#loctree")).to_contain_text("Grade B")
    shot(page, "storage-rooms")
    page.click("text=Box 1")
    expect(page.locator("#boxgrid td.cell")).to_have_count(81)
    with _db(app) as db:
        # The demo's PBMC parent: back in Box 1 after its three aliquots were stored there.
        box1 = db.exec(
            select(Sample).where(
                Sample.parent_id.is_(None),
                Sample.position.is_not(None),
                Sample.container == "cryovial",
                Sample.lot_id.is_(None),
            )
        ).one()
    cell = page.locator(f"#pos-{box1.position}")
    expect(cell).to_have_class(re.compile("cell-available"))
    shot(page, "box-grid")
    cell.locator("a").click()
    expect(page.locator("#sample-barcode")).to_have_text(box1.barcode)
    expect(page.locator("#timeline li").first).to_contain_text("register")
    expect(page.locator("#lineage .node-current")).to_contain_text(box1.barcode)
    expect(page.locator("#lineage .node")).to_have_count(4)  # the parent and 3 aliquots
    shot(page, "sample-page")
    page.goto(f"/labels/preview/{box1.barcode}")
    img = page.locator("#label-img")
    expect(img).to_be_visible()
    assert page.evaluate("document.getElementById('label-img').naturalWidth") > 100
    shot(page, "label-preview")
    page.goto("/print-queue")
    expect(page.locator("h1")).to_have_text("Print queue")
    shot(page, "print-queue")


def test_api_docs_render_with_nothing_fetched_from_other_hosts(page: Page, server: str) -> None:
    hosts: set[str] = set()
    page.on("request", lambda req: hosts.add(req.url.split("/")[2]))
    page.goto("/docs")
    # Swagger UI drew the API from /openapi.json: the title and an operation are on the page.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Custody LIMS")
    expect(page.locator(".opblock").first).to_be_visible()
    assert hosts == {server.split("/")[2]}


def test_a_long_misread_does_not_widen_the_bench_page(page: Page, app) -> None:  # noqa: ANN001
    page.set_viewport_size({"width": 800, "height": 900})
    sign_in(page, "tech1")
    page.goto("/bench/BENCH-B1")
    page.fill("#scan", "x" * 600)
    page.keyboard.press("Enter")
    expect(page.locator(".scan").first).to_contain_text("xxxx")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 800, width


def test_rejecting_a_lot_asks_first_because_it_cannot_be_undone(page: Page) -> None:
    sign_in(page, "qa1")
    page.goto("/lots/AAV9-2611-001")
    form = page.locator("#lot-reject")
    form.locator("[name=reason]").fill("titer trend outside the validated range")
    form.locator("input[name=password]").fill(PASSWORD)
    asked: list[str] = []

    def say_no(dialog) -> None:  # noqa: ANN001
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", say_no)
    form.locator("button[type=submit]").click()
    expect(page.locator("#lot-state")).to_contain_text("quarantine")
    assert asked and "cannot be undone" in asked[0] and "AAV9-2611-001" in asked[0]
    page.reload()
    expect(page.locator("#lot-state")).to_contain_text("quarantine")
    form = page.locator("#lot-reject")
    form.locator("[name=reason]").fill("titer trend outside the validated range")
    form.locator("input[name=password]").fill(PASSWORD)
    page.once("dialog", lambda dialog: dialog.accept())
    form.locator("button[type=submit]").click()
    expect(page.locator("#lot-state")).to_contain_text("rejected")
