"""A lot number is accepted at creation only if every label of the lot can print it."""

from __future__ import annotations

from datetime import date

import pytest
from helpers import audit_count, register
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lims.errors import Refused
from lims.labels import coi_short, lot_label
from lims.manufacturing.lot_numbers import (
    DPIS,
    LOT_STOCKS,
    VIAL_STOCKS,
    check_lot_number,
    longest_printable_prefix,
)
from lims.models import VectorLot
from printers.zpl import LabelContent, get_template, plan_label

NEW_LOT = {"vector_type": "AAV", "vector": "AAV2-CMV-GFP", "project": "CART-001"}


def create(client, headers, number: str):  # noqa: ANN001, ANN201
    return client.post("/api/lots", json={**NEW_LOT, "lot_number": number}, headers=headers)


@pytest.mark.parametrize(
    ("number", "status"),
    [("AAV9_2611", 422), ("LV 2611", 400), ("AAV9-2611_01", 422), ("AAV9/2611", 400)],
)
def test_a_lot_number_a_label_cannot_encode_is_refused_at_creation(
    app, client, tech, number, status
):  # noqa: ANN001
    before = audit_count(app)
    r = create(client, tech, number)
    assert r.status_code == status, r.json
    if status == 422:
        assert r.json["error"] == "lot_number_unprintable"
        # It names only what creation takes: following it never leads to another refusal.
        assert "letters, digits, - and ." in r.json["message"] and "/" not in r.json["limit"]
    assert client.get(f"/api/lots/{number}", headers=tech).status_code == 404
    assert audit_count(app) == before


def test_an_underscore_is_named_in_the_refusal(client, tech):  # noqa: ANN001
    r = create(client, tech, "AAV9_2611")
    assert (r.status_code, r.json["error"]) == (422, "lot_number_unprintable")
    assert "'_' not allowed" in r.json["message"]


def test_a_lot_number_too_long_for_the_label_is_refused_naming_the_limit(app, client, tech):  # noqa: ANN001
    number = "AAV9-2611-0000000000"
    fits = longest_printable_prefix(number)
    assert 0 < fits < len(number)
    before = audit_count(app)
    r = create(client, tech, number)
    assert (r.status_code, r.json["error"]) == (422, "lot_number_unprintable")
    assert r.json["limit"] == fits
    assert f"at most {fits} of these {len(number)} characters fit" in r.json["message"]
    assert audit_count(app) == before


def test_the_longest_accepted_lot_number_prints_on_the_lot_and_on_its_vials(client, tech):  # noqa: ANN001
    """What creation accepts, printing accepts: the rule is the label planner's."""
    number = "AAV9-2611-0000000000"
    number = number[: longest_printable_prefix(number)]
    check_lot_number(number)
    r = create(client, tech, number)
    assert r.status_code == 201, r.json
    vial = register(client, tech, lot=number)
    for barcode in (number, vial["barcode"]):
        r = client.post(
            "/api/labels", json={"barcodes": [barcode], "printer": "ZEBRA-B1"}, headers=tech
        )
        assert r.status_code in (200, 201, 202), r.json


# --- box stock: the lot label on a box or rack of the lot's vials -------------------------------

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-./:+#*=,()W_ "


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(number=st.text(alphabet=_ALPHABET, min_size=1, max_size=24))
def test_every_accepted_lot_number_prints_on_every_stock_its_labels_use(number: str) -> None:
    try:
        check_lot_number(number)
    except Refused:
        return
    lot = VectorLot(
        lot_number=number,
        vector="AAV9-CMV-GFP",
        vector_type="AAV",
        serotype="AAV9",
        expires_on=date(2027, 12, 31),
    )
    vial = LabelContent(
        barcode="S26-000123-K",
        title="Vector vial",
        lot=number,
        date="EXP 2027-12-31",
        coi_short=coi_short("COI-26-000123-K"),
    )
    for base in LOT_STOCKS:
        for dpi in DPIS:
            stock = get_template(base, dpi)
            plan_label(lot_label(lot), stock)  # raises LabelError if it could not print
            if base in VIAL_STOCKS:
                plan_label(vial, stock)
    assert "box" in LOT_STOCKS


def test_a_lot_number_too_long_for_box_stock_is_refused_and_what_fits_prints_there(
    app,
    client,
    tech,  # noqa: ANN001
):
    number = "AAV9-2611-00000"  # fits a cryovial, a tube and a bag; not a box label
    fits = longest_printable_prefix(number)
    assert fits < len(number)
    before = audit_count(app)
    r = create(client, tech, number)
    assert (r.status_code, r.json["error"]) == (422, "lot_number_unprintable")
    assert r.json["stock"].startswith("box-") and r.json["limit"] == fits
    assert audit_count(app) == before
    r = create(client, tech, number[:fits])
    assert r.status_code == 201, r.json
    body = {"barcodes": [number[:fits]], "printer": "ZEBRA-B1", "template": "box"}
    r = client.post("/api/labels", json=body, headers=tech)
    assert r.status_code in (200, 201, 202), r.json
