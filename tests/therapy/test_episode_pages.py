"""Episode pages: the list, one episode with its timeline and moves, the patient register."""

from __future__ import annotations

import html

from helpers import post_form, sign_in
from sqlmodel import select
from therapy_util import DEMO_NAME, new_episode, walk

from lims.db import new_session
from lims.models import AuditEvent
from lims.therapy.models import Patient


def _demo_number(client) -> str:  # noqa: ANN001
    page = client.get("/episodes").text
    return page.split('class="mono rowlink" href="/episodes/', 1)[1].split('"', 1)[0]


def test_technician_sees_episode_and_timeline_but_no_identifiers(client) -> None:  # noqa: ANN001
    sign_in(client, "tech1")
    r = client.get("/episodes")
    assert r.status_code == 200 and 'id="episodes"' in r.text
    assert 'id="patient-register"' not in r.text
    number = _demo_number(client)
    page = client.get(f"/episodes/{number}").text
    assert 'id="episode-timeline"' in page and "start manufacturing" in page
    assert DEMO_NAME not in page and "MRN-0042" not in page
    assert client.get("/patients").status_code == 403


def test_a_coi_mismatch_on_the_page_shows_the_reason_and_the_deviation(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    mine = new_episode(client, qa, tech, hospital_id="MRN-P1")
    other = new_episode(client, qa, tech, hospital_id="MRN-P2")
    walk(client, tech, qa, mine, until="collect")
    sign_in(client, "tech1")
    r = post_form(
        client,
        f"/episodes/{mine['number']}/transition",
        action="receive",
        bag=other["bag"],
        coi=mine["coi"],
    )
    assert r.status_code == 422
    text = html.unescape(r.text)
    assert "COI MISMATCH - STOP" in text and "deviation DEV-" in text
    assert 'id="episode-state"' in r.text and "collected" in r.text
    assert 'id="episode-held"' in r.text and 'id="acknowledge-form"' not in r.text
    post_form(client, "/logout")
    sign_in(client, "qa1")
    page = client.get(f"/episodes/{mine['number']}").text
    assert 'id="acknowledge-form"' in page
    r = post_form(
        client, f"/episodes/{mine['number']}/acknowledge", reason="wrong bag; right one found"
    )
    assert r.status_code == 302
    assert 'id="episode-held"' not in client.get(f"/episodes/{mine['number']}").text
    post_form(client, "/logout")
    sign_in(client, "tech1")
    r = post_form(
        client,
        f"/episodes/{mine['number']}/transition",
        action="receive",
        bag=mine["bag"],
        coi=mine["coi"],
    )
    assert r.status_code == 302
    page = client.get(f"/episodes/{mine['number']}").text
    assert "coi mismatch" in page  # the refused scan stays in the chain's timeline


def test_qa_opens_the_register_and_the_view_is_recorded(app, client) -> None:  # noqa: ANN001
    sign_in(client, "qa1")
    r = client.get("/patients")
    assert r.status_code == 200 and DEMO_NAME in r.text and "MRN-0042" in r.text
    with new_session(app.extensions["lims"]["engine"]) as db:
        reads = db.exec(
            select(AuditEvent).where(AuditEvent.action == "patient.identifiers_read")
        ).all()
        people = len(db.exec(select(Patient)).all())
    assert len(reads) == people and all("patients page" in e.after for e in reads)


def test_qa_registers_a_patient_and_a_technician_enrols_them_on_the_pages(client) -> None:  # noqa: ANN001
    sign_in(client, "qa1")
    r = post_form(
        client,
        "/patients",
        kind="patient",
        full_name="Jo Page",
        date_of_birth="1990-02-03",
        hospital_id="MRN-PG1",
    )
    assert r.status_code == 302, r.text[:2000]
    page = client.get("/patients").text
    assert "Jo Page" in page
    coi = page.split("Jo Page", 1)[0].rsplit('<td class="mono">', 1)[1].split("<", 1)[0]
    r = post_form(
        client, "/patients", full_name="Jo Page", date_of_birth="1990-02-03", hospital_id="MRN-PG1"
    )
    assert r.status_code == 409 and "registered already" in html.unescape(r.text)
    post_form(client, "/logout")
    sign_in(client, "tech1")
    assert post_form(client, "/patients", full_name="X").status_code == 403
    r = post_form(client, "/episodes", coi="COI-26-999999-Z", project="CART-001")
    assert r.status_code == 404 and "QA or admin registers them first" in r.text
    r = post_form(client, "/episodes", coi=coi, project="CART-001", product_code="S0001")
    assert r.status_code == 302
    page = client.get(r.location).text
    assert coi in page and "enrolled" in page and "Jo Page" not in page
