"""The bench pages: a client's staff see another organisation's task only as "in use"; a signed-in
browser scans as its own person."""

from __future__ import annotations

import pytest
from helpers import page_csrf, sign_in

from tests.web.test_web_browser import browser, page, server  # noqa: F401 (fixtures)
from tests.web.test_web_browser import sign_in as browser_sign_in

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - the browser fixture skips the browser test then
    Page = expect = None

STATION = "BENCH-B1"


@pytest.fixture
def novacell_task(client, auth) -> None:  # noqa: ANN001
    """tech1 is signed in at the bench's scanner, receiving NovaCell's lot into BOX-0002."""
    agent = auth("admin", STATION)
    for i, data in enumerate(["BADGE-0002", "CMD:RECEIVE", "LV-2611-002", "BOX-0002"]):
        r = client.post(
            "/api/scans",
            json={"station": STATION, "data": data, "scan_id": f"task-{i}"},
            headers=agent,
        )
        assert r.json["outcome"] == "accepted", r.json


def test_a_client_technician_sees_only_that_the_bench_is_in_use(app, client, novacell_task):
    sign_in(client, "helix_tech")
    page_ = client.get(f"/bench/{STATION}")
    assert page_.status_code == 200
    for secret in ("LV-2611-002", "Tara Technician", "tech1", "BOX-0002", "mode-receive"):
        assert secret not in page_.text, secret
    assert "another operator" in page_.text
    listing = client.get("/bench")
    assert listing.status_code == 200
    assert "in use" in listing.text and "mode receive" not in listing.text


def test_centre_staff_see_the_whole_task(app, client, novacell_task):
    sign_in(client, "tech2")
    page_ = client.get(f"/bench/{STATION}")
    assert "LV-2611-002" in page_.text and "Tara Technician" in page_.text
    assert "mode receive" in client.get("/bench").text


def test_a_signed_in_browser_scans_as_its_own_person(app, client, novacell_task):
    sign_in(client, "tech2")
    csrf = page_csrf(client)

    def post(data: str, scan_id: str) -> dict:
        r = client.post(
            "/api/scans",
            json={"station": STATION, "data": data, "scan_id": scan_id},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 200, r.json
        return r.json

    assert post("BADGE-0002", "w1")["code"] == "not_your_badge"
    assert post("CMD:DONE", "w2")["code"] == "operator_elsewhere"
    out = post("BADGE-0003", "w3")
    assert out["outcome"] == "accepted" and out["station_state"]["operator"] == "tech2"
    # Their own scan log shows what they scanned from the page, refusals included.
    log = client.get(f"/api/scans?station={STATION}").json["scans"]
    assert [s["scan_id"] for s in log[:3]] == ["w3", "w2", "w1"]


@pytest.mark.browser
def test_the_live_bench_page_hides_another_orgs_task(app, page: Page, novacell_task) -> None:  # noqa: F811
    browser_sign_in(page, "helix_tech")
    page.goto(f"/bench/{STATION}")
    # The page polls the station state every second: it stays redacted, never filled in.
    expect(page.locator("#operator")).to_have_text("another operator")
    page.wait_for_timeout(1500)
    expect(page.locator("#operator")).to_have_text("another operator")
    expect(page.locator("#settings")).to_have_text("")
    expect(page.locator("#target")).to_have_text("\u2014")
    # Scanning their own badge takes the bench over; the task is then theirs.
    page.keyboard.type("BADGE-0101\n")
    expect(page.locator("#operator")).to_have_text("Hana Helix")
    expect(page.locator("#last-result")).to_have_class("result result-accepted")
