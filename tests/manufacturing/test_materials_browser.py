"""Materials and a lot's genealogy in a real browser (Debian's Chromium through Playwright)."""

# ruff: noqa: F811 - the page fixture is imported, and named again by each test

from __future__ import annotations

import pytest
from browser_util import PASSWORD, browser, page  # noqa: F401 - fixtures
from browser_util import shot as _shot
from browser_util import sign_in as _sign_in
from mfg_util import gs1, receive, released_material, set_up_kind

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - depends on the machine
    Page = object  # type: ignore[misc,assignment]


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
    _shot(page, "lot-made-from")
    page.click(f"#made-from >> text={good}")
    expect(page.locator("#where-used-lots")).to_contain_text("HARV-7")
    expect(page.locator("#usable")).to_contain_text("released and in date")
