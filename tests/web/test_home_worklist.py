"""The home page starts with what needs the signed-in person now, by role."""

from __future__ import annotations

from helpers import move, register, sign_in
from printing_util import add_printer, aliquots, queue, worker


def _section(html: str, key: str) -> str:
    start = html.index(f'id="now-{key}"')
    return html[start : html.index("</section>", start)]


def _count(section: str) -> int:
    return int(section.split('class="count">')[1].split("<")[0])


def _lot_to_quarantine(client, headers, number: str) -> None:  # noqa: ANN001
    r = client.post(
        "/api/lots",
        json={
            "lot_number": number,
            "vector_type": "AAV",
            "vector": "AAV9-CMV-GFP",
            "project": "HX-AAV9",
        },
        headers=headers,
    )
    assert r.status_code == 201, r.json
    for action in ("start_production", "complete"):
        r = client.post(f"/api/lots/{number}/transitions", json={"action": action}, headers=headers)
        assert r.status_code == 200, r.json


def test_a_technician_sees_the_tubes_in_their_custody_and_failed_print_jobs(
    app, client, runner, tech, auth, sim
):  # noqa: ANN001
    qa = auth("qa1")
    b = register(client, tech)["barcode"]
    move(client, tech, b, "receive", condition="cold, intact")
    move(client, tech, b, "quarantine")
    assert move(client, qa, b, "release").status_code == 200
    move(client, tech, b, "store", location="BOX-0002", position="C4")
    assert move(client, tech, b, "check_out", custodian="tech1").status_code == 200
    add_printer(runner, "Z1", sim.port)
    job_id = queue(client, tech, aliquots(client, tech, 3)).json["id"]
    sim.paper_out_after(1)
    worker(app, "Z1").run_once()

    assert sign_in(client, "tech1").status_code == 302
    home = client.get("/home").text
    custody = _section(home, "custody")
    # Aliquoting checked the parent out to tech1 too: every tube held is listed and counted.
    assert b in custody and custody.count("<tr>") == _count(custody) >= 2
    failed = _section(home, "print_failed")
    assert f"Job {job_id}" in failed and "1 of 3 printed" in failed
    # Not a QA list, and not someone else's tube.
    assert 'id="now-lots_waiting"' not in home
    other = app.test_client()
    assert sign_in(other, "tech2").status_code == 302
    assert b not in _section(other.get("/home").text, "custody")

    # Once the rest is printed the failed job no longer waits for anyone.
    assert client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech).status_code == 201
    assert f"Job {job_id}" not in _section(client.get("/home").text, "print_failed")


def test_qa_sees_lots_waiting_for_release_and_a_client_only_its_own(app, tech):  # noqa: ANN001
    api = app.test_client()
    _lot_to_quarantine(api, tech, "AAV9-2612-077")

    def home_of(username: str) -> str:
        browser = app.test_client()
        assert sign_in(browser, username).status_code == 302
        return browser.get("/home").text

    assert "AAV9-2612-077" in _section(home_of("qa1"), "lots_waiting")
    home = home_of("nova_viewer")
    assert "AAV9-2612-077" not in home and "LV-2611-002" in _section(home, "my_lots")
    assert 'id="now-custody"' not in home and 'id="now-print_failed"' not in home
    home = home_of("helix_viewer")
    assert "AAV9-2612-077" in _section(home, "my_lots") and "LV-2611-002" not in home


def test_qa_sees_results_to_review_open_oos_and_deviations_and_draft_specs(app, auth):  # noqa: ANN001
    tech, qa = auth("tech1"), auth("qa1")
    api = app.test_client()
    # A failing mycoplasma result on the demo AAV lot opens an OOS; qa1 writes a draft spec.
    r = api.post(
        "/api/lots/AAV9-2611-001/qc",
        json={"test": "mycoplasma", "result": "detected"},
        headers=tech,
    )
    assert r.status_code == 201, r.json
    draft = {
        "code": "AAV-INPROC",
        "product": "AAV",
        "stage": "in_process",
        "title": "AAV in-process",
        "limits": [{"test": "bioburden", "unit": "CFU/mL", "upper": 10}],
    }
    assert api.post("/api/specs", json=draft, headers=qa).status_code == 201

    browser = app.test_client()
    assert sign_in(browser, "qa1").status_code == 302
    home = browser.get("/home").text
    review = _section(home, "results_to_review")
    # The demo's unreviewed AAV results and the new failing one, recorded by tech1.
    assert "AAV9-2611-001" in review and "mycoplasma: detected" in review and "FAIL" in review
    assert review.count("<tr>") == _count(review)
    oos_open = _section(home, "oos_open")
    assert "AAV9-2611-001" in oos_open and "mycoplasma, phase 1" in oos_open
    open_devs = _section(home, "deviations_open")
    assert "DEV-" in open_devs and "major" in open_devs and "closed" not in open_devs
    specs = _section(home, "specs_draft")
    assert "AAV-INPROC v1" in specs and "yours: another QA person approves" in specs
    # Not a technician's list.
    tech_page = app.test_client()
    assert sign_in(tech_page, "tech1").status_code == 302
    assert 'id="now-results_to_review"' not in tech_page.get("/home").text


def test_a_result_qa_recorded_waits_for_another_qa_person(app, auth):  # noqa: ANN001
    qa = auth("qa1")
    r = app.test_client().post(
        "/api/lots/AAV9-2611-001/qc",
        json={"test": "mycoplasma", "result": "not detected"},
        headers=qa,
    )
    assert r.status_code == 201, r.json
    browser = app.test_client()
    assert sign_in(browser, "qa1").status_code == 302
    review = _section(browser.get("/home").text, "results_to_review")
    # Four eyes: qa1's own result is not offered to qa1, and the page says who must act.
    assert "mycoplasma" not in review
    assert "1 you recorded wait for another QA person" in review


def test_a_client_sees_its_own_room_bookings_running_or_ahead(app, auth):  # noqa: ANN001
    api = app.test_client()
    # Helix asks for a slot in RM-C1 next year; its demo booking runs now in RM-C2.
    body = {"room": "RM-C1", "starts_at": "2027-03-01T08:00:00Z", "ends_at": "2027-03-01T12:00:00Z"}
    r = api.post("/api/bookings", json=body, headers=auth("helix_tech"))
    assert r.status_code == 201, r.json
    asked = r.json["number"]

    def home_of(username: str) -> str:
        browser = app.test_client()
        assert sign_in(browser, username).status_code == 302
        return browser.get("/home").text

    helix = _section(home_of("helix_viewer"), "my_bookings")
    assert asked in helix and "RM-C1" in helix and "requested" in helix
    assert "RM-C2" in helix and "approved" in helix
    assert helix.index("RM-C2") < helix.index("RM-C1")  # the running one first
    nova = home_of("nova_viewer")
    assert asked not in nova and "approved" not in _section(nova, "my_bookings")
    assert 'id="now-my_bookings"' not in home_of("qa1")
