"""Deviation pages: raise, investigate, CAPA, close with a signature; refusals shown."""

from __future__ import annotations

import html
import re

from helpers import move, page_csrf, post_form, register, sign_in

PASSWORD = "demo-only-lims"
LOT = "AAV9-2611-001"
_FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S)


def _raise(client, **fields: str) -> str:  # noqa: ANN001
    body = {
        "title": "Incubator door left open",
        "description": "found open at 07:10",
        "severity": "critical",
        "link_kind_0": "lot",
        "link_ref_0": LOT,
        **fields,
    }
    r = post_form(client, "/deviations", **body)
    assert r.status_code == 302, r.text[:2000]
    return r.location.rsplit("/", 1)[1]


def test_raise_investigate_capa_and_close_through_the_pages(client) -> None:  # noqa: ANN001
    sign_in(client, "tech1")
    assert client.get("/deviations/new").status_code == 200
    number = _raise(client)
    page = client.get(f"/deviations/{number}").text
    assert number in page and 'id="deviation-blocks"' in page
    # The lot page carries the red line, naming the deviation.
    lot_page = client.get(f"/lots/{LOT}").text
    assert 'id="deviation-hold"' in lot_page and number in lot_page
    # A technician sees no QA actions, and a forged one is refused on the page.
    assert 'id="deviation-investigate"' not in page
    r = post_form(client, f"/deviations/{number}/transition", action="investigate")
    assert r.status_code == 403 and 'id="page-error"' in r.text
    post_form(client, "/logout")
    sign_in(client, "qa1")
    r = post_form(client, f"/deviations/{number}/transition", action="investigate", version="1")
    assert r.status_code == 302
    r = post_form(
        client,
        f"/deviations/{number}/capa",
        description="Door alarm after 60 s",
        owner="tech2",
        due_on="2027-02-01",
    )
    assert r.status_code == 302
    page = client.get(f"/deviations/{number}").text
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    # Without a password: asked for it. With an open CAPA action: the rule's reason is shown.
    r = post_form(client, f"/deviations/{number}/transition", action="close", root_cause="no alarm")
    assert r.status_code == 422 and "Enter your password" in r.text
    r = post_form(
        client,
        f"/deviations/{number}/transition",
        action="close",
        version=version,
        root_cause="no door alarm",
        meaning="approval",
        password=PASSWORD,
    )
    assert r.status_code == 422
    assert "CAPA actions not done" in html.unescape(r.text)
    capa_id = re.search(r'id="capa-(\d+)"', r.text).group(1)
    r = post_form(
        client,
        f"/deviations/{number}/capa/{capa_id}/complete",
        effectiveness_check="alarm tested weekly for 4 weeks",
    )
    assert r.status_code == 302
    page = client.get(f"/deviations/{number}").text
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    r = post_form(
        client,
        f"/deviations/{number}/transition",
        action="close",
        version=version,
        root_cause="no door alarm",
        meaning="approval",
        password=PASSWORD,
    )
    assert r.status_code == 302
    page = client.get(f"/deviations/{number}").text
    assert 'id="closing-signature"' in page and "no door alarm" in page
    assert 'id="deviation-close"' not in page and "follow-up" in page
    assert 'id="deviation-hold"' not in client.get(f"/lots/{LOT}").text


def test_refusals_on_the_raise_form_keep_what_was_typed(client) -> None:  # noqa: ANN001
    sign_in(client, "tech1")
    r = post_form(client, "/deviations", title="Spill", description="d", severity="huge")
    assert r.status_code == 400 and 'id="page-error"' in r.text and 'value="Spill"' in r.text
    r = post_form(
        client,
        "/deviations",
        title="Courier late",
        description="d",
        severity="major",
        link_kind_0="shipment",
        link_ref_0="SH-1",
    )
    assert r.status_code == 404 and "no shipment" in html.unescape(r.text)
    r = post_form(
        client,
        "/deviations",
        title="x",
        description="d",
        severity="minor",
        link_kind_0="lot",
        link_ref_0="NOPE",
    )
    assert r.status_code == 404 and "no lot" in html.unescape(r.text)


def test_a_held_sample_shows_the_red_line(client, auth) -> None:  # noqa: ANN001
    tech = auth("tech1")
    s = register(client, tech)["barcode"]
    move(client, tech, s, "receive", condition="intact")
    move(client, tech, s, "quarantine")
    sign_in(client, "tech1")
    number = _raise(client, link_kind_0="sample", link_ref_0=s)
    page = client.get(f"/samples/{s}").text
    assert 'id="deviation-hold"' in page and number in page


def test_clients_read_their_own_and_nothing_else(client) -> None:  # noqa: ANN001
    sign_in(client, "tech1")
    helix = _raise(client)
    nova = _raise(client, link_ref_0="LV-2611-002")
    post_form(client, "/logout")
    sign_in(client, "helix_viewer")
    listing = client.get("/deviations").text
    assert helix in listing and nova not in listing
    assert 'id="raise-deviation"' not in listing
    assert client.get(f"/deviations/{nova}").status_code == 404
    page = client.get(f"/deviations/{helix}")
    assert page.status_code == 200
    for form in ("link-form", "capa-form", "deviation-investigate"):
        assert f'id="{form}"' not in page.text
    assert client.get("/deviations/new").status_code == 403
    assert client.get("/deviations?severity=huge").status_code == 400


def test_every_form_on_the_deviation_pages_carries_the_session_token(client) -> None:  # noqa: ANN001
    sign_in(client, "qa1")
    number = _raise(client)
    token = page_csrf(client)
    seen = 0
    for path in ("/deviations", "/deviations/new", f"/deviations/{number}"):
        r = client.get(path)
        assert r.status_code == 200, path
        for form in _FORM.findall(r.text):
            if 'method="post"' in form:
                seen += 1
                assert f'name="csrf_token" value="{token}"' in form, (path, form[:200])
    assert seen >= 3
