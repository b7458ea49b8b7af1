"""The lot page's genealogy picture: inputs, upstream, harvest, purification, fill, vials."""

from __future__ import annotations

import re

from helpers import sign_in
from mfg_util import GTIN, released_material, set_up_kind

KINDS = [
    ("HEK-WCB", "HEK293 working cell bank", "cell_bank", "09506000134369"),
    ("PL-REP", "pRep2Cap9 plasmid", "plasmid", "09506000134376"),
    ("PL-HELP", "pHelper plasmid", "plasmid", "09506000134383"),
    ("DMEM-500", "DMEM 500 mL", "medium", GTIN),
]


def _lot(client, headers, number: str, **inputs) -> None:  # noqa: ANN001, ANN003
    body = {"lot_number": number, "vector_type": "AAV", "vector": "AAV9-GFP", "project": "CART-001"}
    assert client.post("/api/lots", json=body, headers=headers).status_code == 201
    for m in inputs.get("materials", []):
        r = client.post(f"/api/lots/{number}/inputs", json={"material": m}, headers=headers)
        assert r.status_code == 201, r.json
    for x in inputs.get("lots", []):
        r = client.post(f"/api/lots/{number}/inputs", json={"lot": x}, headers=headers)
        assert r.status_code == 201, r.json


def test_the_lot_page_draws_its_genealogy_from_cell_bank_to_vials(client, auth):  # noqa: ANN001
    tech = auth("tech1")
    codes = []
    for code, name, category, gtin in KINDS:
        set_up_kind(client, auth, code=code, gtin=gtin, name=name, category=category)
        codes.append(released_material(client, auth, lot=f"{code}-1", gtin=gtin))
    _lot(client, tech, "UP-1", materials=codes)
    _lot(client, tech, "HV-1", lots=["UP-1"])
    _lot(client, tech, "PU-1", lots=["HV-1"])
    _lot(client, tech, "FL-1", lots=["PU-1"])
    for _ in range(40):
        r = client.post(
            "/api/samples", json={"sample_type": "VECTOR_VIAL", "lot": "FL-1"}, headers=tech
        )
        assert r.status_code == 201, r.json
    sign_in(client, "tech1")
    page = client.get("/lots/PU-1").text
    svg = re.search(r'<svg id="genealogy-picture".*?</svg>', page, re.S).group(0)
    boxes = re.findall(r'data-key="([^"]+)">\s*<rect x="(\d+)"', svg)
    x = {key: int(at) for key, at in boxes}
    titles = re.findall(r'class="gen-title">([^<]+)<', svg)
    assert "cell bank " + codes[0] in titles and "plasmid " + codes[1] in titles
    assert "40 vials" in titles and "FL-1" in titles  # 40 vials are one box, not forty
    assert len(titles) == 4 + 4 + 1
    # Left to right: materials, upstream, harvest, purification (this lot), fill, vials.
    lot_x = {t: x[k] for k, t in zip((k for k, _ in boxes), titles, strict=True)}
    order = [lot_x["cell bank " + codes[0]], lot_x["UP-1"], lot_x["HV-1"], lot_x["PU-1"]]
    order += [lot_x["FL-1"], lot_x["40 vials"]]
    assert order == sorted(order) and len(set(order)) == 6
    assert svg.count('class="gen-arrow"') == 4 + 3 + 1
    assert "gen-current" in svg and "<script" not in svg
    assert f'href="/materials/{codes[0]}"' in svg and 'href="/lots/UP-1"' in svg


def test_many_materials_are_drawn_as_one_box_a_category(client, auth):  # noqa: ANN001
    set_up_kind(client, auth)
    tech = auth("tech1")
    codes = [released_material(client, auth, lot=f"M-{i}") for i in range(9)]
    _lot(client, tech, "BIG-1", materials=codes)
    sign_in(client, "tech1")
    svg = re.search(r'<svg id="genealogy-picture".*?</svg>', client.get("/lots/BIG-1").text, re.S)
    titles = re.findall(r'class="gen-title">([^<]+)<', svg.group(0))
    assert titles == ["9 media", "BIG-1"]


def test_a_lot_without_inputs_has_no_picture(client, auth):  # noqa: ANN001
    _lot(client, auth("tech1"), "LONE-1")
    sign_in(client, "tech1")
    assert 'id="genealogy-picture"' not in client.get("/lots/LONE-1").text
