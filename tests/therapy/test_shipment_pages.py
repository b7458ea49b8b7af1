"""Shipment pages: the list and one shipment (manifest, readings, chart, excursion banner,
receipt by the scan field), as the centre and as the clinical site see them."""

from __future__ import annotations

import html

from helpers import post_form, sign_in
from therapy_util import DEMO_NAME


def _numbers(client, auth) -> dict[str, dict]:  # noqa: ANN001
    rows = client.get("/api/shipments", headers=auth("qa1")).json["shipments"]
    return {s["state"]: s for s in rows}


def test_the_site_sees_its_delivered_shipment_with_readings_and_chart(client, auth) -> None:  # noqa: ANN001
    done = _numbers(client, auth)["received_at_site"]
    sign_in(client, "site_nurse")
    home = client.get("/home")
    assert home.status_code == 200
    assert 'href="/shipments"' in home.text and 'href="/samples"' not in home.text
    page = client.get("/shipments").text
    assert done["number"] in page
    r = client.get(f"/shipments/{done['number']}")
    assert r.status_code == 200
    assert 'id="readings-chart"' in r.text and "<polyline" in r.text
    assert 'id="readings"' in r.text and 'id="excursion-banner"' not in r.text
    assert done["containers"][0]["coi"] in r.text
    for secret in (DEMO_NAME, "MRN-0107", "Robin Delivered", "1965-07-21"):
        assert secret not in r.text
    # Not the other site's box, and no episode page.
    transit = _numbers(client, auth)["dispatched"]
    assert client.get(f"/shipments/{transit['number']}").status_code == 404
    ep = done["containers"][0]["episode"]
    assert client.get(f"/episodes/{ep}").status_code == 404


def test_an_excursion_shows_a_banner_and_the_scan_field_receives(client, auth) -> None:  # noqa: ANN001
    transit = _numbers(client, auth)["dispatched"]
    number = transit["number"]
    bag, coi = transit["containers"][0]["bag"], transit["containers"][0]["coi"]
    sign_in(client, "city_nurse")
    csv = "time,temperature_c\n2026-12-05T08:00:00Z,-185\n2026-12-05T08:15:00Z,-120\n"
    r = post_form(client, f"/shipments/{number}/readings", csv=csv)
    assert r.status_code == 302
    page = client.get(f"/shipments/{number}").text
    assert 'id="excursion-banner"' in page and "TEMPERATURE EXCURSION" in page
    r = post_form(client, f"/shipments/{number}/readings", csv="time,t\nnot a time,1\n")
    assert r.status_code == 422 and "line 2" in html.unescape(r.text)
    r = post_form(client, f"/shipments/{number}/receive", scans=bag)
    assert r.status_code == 400 and "pairs" in r.text
    r = post_form(client, f"/shipments/{number}/receive", scans=f"{bag}\n{coi}\n")
    assert r.status_code == 302, r.text
    page = client.get(f"/shipments/{number}").text
    assert "received at site" in page and 'id="receive-form"' not in page


def test_centre_staff_pack_from_the_page_and_see_deviations_linked(client, auth) -> None:  # noqa: ANN001
    transit = _numbers(client, auth)["dispatched"]
    sign_in(client, "tech1")
    page = client.get(f"/shipments/{transit['number']}").text
    assert 'id="receive-form"' in page and 'id="dispatch-form"' not in page
    assert "Shipments" in client.get("/home").text


def test_a_technician_packs_from_the_list_page(client, auth, tech) -> None:  # noqa: ANN001
    from test_shipments import released

    ep = released(client, auth, tech, hospital_id="MRN-P1")
    sign_in(client, "tech1")
    fields = {
        "site": "st-marys",
        "product_code": "S0001",
        "shipper": "CryoCourier",
        "logger_id": "LOG-9",
        "bag": ep["bag"],
    }
    r = post_form(client, "/shipments", **fields, coi="COI-26-999999-X")
    assert r.status_code == 422 and "COI MISMATCH" in html.unescape(r.text)
    assert 'value="CryoCourier"' in r.text
    ep2 = released(client, auth, tech, hospital_id="MRN-P2")
    r = post_form(client, "/shipments", **{**fields, "bag": ep2["bag"]}, coi=ep2["coi"])
    assert r.status_code == 302, r.text
    page = client.get(r.headers["Location"]).text
    assert ep2["bag"] in page and 'id="dispatch-form"' in page
    r = post_form(client, r.headers["Location"] + "/dispatch")
    assert r.status_code == 302
    assert "dispatched" in client.get(r.headers["Location"]).text
