"""Label stock follows the container: cryovial, 2 mL tube and bag labels, and the override."""

from __future__ import annotations

import pytest
from helpers import register
from printing_util import add_printer, job_events, queue


@pytest.fixture
def zebra(runner, sim) -> str:
    add_printer(runner, "Z1", sim.port)
    return "Z1"


@pytest.mark.parametrize(
    ("container", "stock"),
    [("cryovial", "cryovial-203"), ("tube", "tube-2ml-203"), ("bag", "bag-203")],
)
def test_stock_comes_from_the_container(client, tech, zebra, container, stock):
    tube = register(client, tech, container=container)["barcode"]
    r = queue(client, tech, [tube])
    assert r.status_code == 201, r.json
    assert r.json["template"] == stock


def test_label_on_another_stock_is_refused_with_the_reason(client, tech, zebra):
    bag = register(client, tech, container="bag")["barcode"]
    vial = register(client, tech, container="cryovial")["barcode"]
    before = client.get("/api/print-jobs", headers=tech).json["jobs"]

    r = queue(client, tech, [bag], template="cryovial")

    assert r.status_code == 422 and r.json["error"] == "stock_mismatch"
    assert f"{bag} is in a bag: its label goes on bag stock, not cryovial" in r.json["message"]
    assert r.json["mismatched"] == [{"barcode": bag, "container": "bag", "stock": "bag"}]
    # In a batch on one stock, the sample that does not match is named.
    r = queue(client, tech, [vial, bag], template="bag")
    assert r.status_code == 422 and r.json["mismatched"][0]["barcode"] == vial
    # A blank reason is no reason.
    r = queue(client, tech, [bag], template="cryovial", stock_override="   ")
    assert r.status_code == 422 and r.json["error"] == "stock_mismatch"
    assert client.get("/api/print-jobs", headers=tech).json["jobs"] == before


def test_samples_of_two_containers_need_a_stock_each(client, tech, zebra):
    bag = register(client, tech, container="bag")["barcode"]
    vial = register(client, tech, container="cryovial")["barcode"]
    r = queue(client, tech, [bag, vial])
    assert r.status_code == 422 and r.json["error"] == "mixed_containers"
    assert r.json["stocks"] == ["bag", "cryovial"]
    assert queue(client, tech, [vial]).status_code == 201


def test_override_prints_and_is_recorded_with_the_job(app, client, tech, zebra):
    bag = register(client, tech, container="bag")["barcode"]
    reason = "bag label stock out; cryovial label on the port tag, QA informed"

    r = queue(client, tech, [bag], template="cryovial", stock_override=reason)

    assert r.status_code == 201, r.json
    assert r.json["template"] == "cryovial-203" and r.json["reason"] == reason
    (event,) = job_events(app, r.json["id"])
    assert event.action == "print_job.queue" and event.reason == reason
    assert '"stock_mismatch"' in event.after and bag in event.after
    assert reason in event.after


def test_override_is_not_recorded_when_the_stock_matches(app, client, tech, zebra):
    vial = register(client, tech, container="cryovial")["barcode"]
    r = queue(client, tech, [vial], template="cryovial", stock_override="just in case")
    assert r.status_code == 201
    (event,) = job_events(app, r.json["id"])
    assert event.reason is None and "stock_override" not in event.after
