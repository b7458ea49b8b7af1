"""The print queue follows the printers: their last ~HS status, a feed the page polls, and the
print-jobs list (newest first, sortable, with a total and pages)."""

from __future__ import annotations

import re

import pytest
from helpers import register, sign_in
from printing_util import add_printer, job_row, queue, worker
from sqlmodel import select

from lims.db import new_session
from lims.printing.models import PrinterCheck


@pytest.fixture
def zebra(runner, sim) -> str:
    add_printer(runner, "ZQ", sim.port)
    return "ZQ"


def _feed(web) -> dict:  # noqa: ANN001
    r = web.get("/print-queue.json")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    return {p["name"]: p for p in r.json["printers"]}


def test_queue_shows_each_printers_last_status(app, client, tech, sim, zebra):
    web = app.test_client()
    sign_in(web, "tech1")
    assert _feed(web)["ZQ"]["status"] is None
    assert "no status yet" in web.get("/print-queue").text

    first = queue(client, tech, [register(client, tech)["barcode"]], printer=zebra).json["id"]
    worker(app, zebra).run_once()
    feed = _feed(web)["ZQ"]
    assert feed["status"]["ready"] is True and feed["status"]["summary"] == "ready"
    assert feed["jobs"][0] == {"id": first, "state": "sent", "printed": 1, "total": 1}

    # Paused at the printer: the job waits in the queue and the page says why.
    sim.pause(True)
    second = queue(client, tech, [register(client, tech)["barcode"]], printer=zebra).json["id"]
    worker(app, zebra).run_once()
    assert job_row(app, second).state == "queued"
    feed = _feed(web)["ZQ"]
    assert feed["status"]["ready"] is False and "paused" in feed["status"]["summary"]
    assert [j["id"] for j in feed["jobs"]] == [second, first]
    page = web.get("/print-queue").text
    assert re.search(r"not ready: [^<]*paused", page)
    printers = {p["name"]: p for p in client.get("/api/printers", headers=tech).json["printers"]}
    assert printers["ZQ"]["status"]["ready"] is False

    # Asked again and again while paused: one row says it, its time moves on.
    worker(app, zebra).run_once()
    with new_session(app.extensions["lims"]["engine"]) as db:
        rows = db.exec(select(PrinterCheck).order_by(PrinterCheck.id)).all()
    assert [r.ready for r in rows] == [True, False]

    sim.pause(False)
    worker(app, zebra).run_once()
    assert _feed(web)["ZQ"]["status"]["ready"] is True
    assert job_row(app, second).state == "sent"


def test_feed_version_changes_only_when_a_job_moves(app, client, tech, zebra):
    web = app.test_client()
    sign_in(web, "tech1")
    before = web.get("/print-queue.json").json["version"]
    assert web.get("/print-queue.json").json["version"] == before
    queue(client, tech, [register(client, tech)["barcode"]], printer=zebra)
    queued = web.get("/print-queue.json").json["version"]
    assert queued != before
    worker(app, zebra).run_once()
    assert web.get("/print-queue.json").json["version"] != queued
    # The page carries the version it was drawn at: the poll reloads only on a change.
    assert f'data-version="{web.get("/print-queue.json").json["version"]}"' in web.get(
        "/print-queue"
    ).text.replace("&#34;", '"')


def test_client_viewer_gets_no_queue_feed(app):
    web = app.test_client()
    sign_in(web, "helix_viewer")
    r = web.get("/print-queue.json")
    assert r.status_code in (302, 403, 404)


def _job_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr id="job-(\d+)"', html)]


def test_print_jobs_list_newest_first_sortable_with_total_and_pages(
    app, client, runner, tech, sim, zebra
):
    add_printer(runner, "AQ", sim.port)
    lot = client.get("/api/lots", headers=tech).json["lots"][0]["lot_number"]
    ids = [
        queue(client, tech, [lot], printer="AQ" if i % 2 else zebra).json["id"] for i in range(55)
    ]
    web = app.test_client()
    sign_in(web, "tech1")

    page = web.get("/print-jobs").text
    total = int(re.search(r'id="list-total">([\d,]+) print jobs', page).group(1).replace(",", ""))
    assert total >= 55
    first = _job_ids(page)
    assert len(first) == 50 and first == sorted(first, reverse=True) and first[0] == ids[-1]
    nxt = re.search(r'rel="next" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    second = _job_ids(web.get(nxt).text)
    assert second and max(second) < min(first)
    assert len(set(first) | set(second)) == total

    # Filters in any case; sorted by printer name.
    only = _job_ids(web.get("/print-jobs?printer=aq&state=QUEUED").text)
    assert sorted(only) == sorted(ids[1::2])
    by_printer = web.get("/print-jobs?sort=printer&printer=").text
    names = re.findall(
        r'<tr id="job-\d+">\s*<td><a[^>]*>#\d+</a></td>\s*<td>([^<]*)</td>', by_printer
    )
    assert names == sorted(names) and names[0] == "AQ"
    assert web.get("/print-jobs?sort=nonsense").status_code == 400


def test_a_clients_lab_user_lists_the_jobs_it_may_open(app, client, auth, tech, zebra):
    helix = auth("helix_tech")
    theirs = register(client, tech, sample_type="PLASMID", project="HX-AAV9")["barcode"]
    ours = register(client, tech)["barcode"]
    for_them = queue(client, tech, [theirs], printer=zebra).json["id"]  # by the centre
    centre_only = queue(client, tech, [ours], printer=zebra).json["id"]
    mixed = queue(
        client,
        tech,
        [
            register(client, tech, sample_type="PLASMID", project="HX-AAV9")["barcode"],
            register(client, tech)["barcode"],
        ],
        printer=zebra,
    ).json["id"]
    by_them = queue(
        client,
        helix,
        [register(client, helix, sample_type="PLASMID", project="HX-AAV9")["barcode"]],
        printer=zebra,
    ).json["id"]
    web = app.test_client()
    sign_in(web, "helix_tech")
    page = web.get("/print-jobs").text
    listed = set(_job_ids(page))
    assert {for_them, by_them} <= listed and not {centre_only, mixed} & listed
    # The list and the job's own page agree.
    for job_id in (for_them, by_them, centre_only, mixed):
        opened = client.get(f"/api/print-jobs/{job_id}", headers=helix).status_code == 200
        assert opened == (job_id in listed), job_id
    total = int(re.search(r'id="list-total">([\d,]+) print jobs', page).group(1))
    assert total == len(listed)
