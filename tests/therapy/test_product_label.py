"""The final-product label of a released cell-therapy bag: DIN, product code, COI and expiry,
each as a barcode and as text, printed through the print queue and decoded from the bytes the
printer received (zplkit renders them, zxing reads them)."""

from __future__ import annotations

import io
import re

import zplkit
from PIL import Image
from printer_sim_util import decode_image
from printing_util import add_printer, queue, worker
from therapy_util import EXPIRY, RELEASE, final_product, go, new_episode, walk

from printers.zpl import get_template


def _labels(raw: bytes, template_name: str) -> list[tuple[bytes, set[str]]]:
    """Return each label the printer received with what its symbols decode to."""
    t = get_template(template_name)
    out = []
    for zpl in re.findall(rb"\^XA.*?\^XZ", raw, flags=re.S):
        doc = zplkit.render(
            zpl, zplkit.Options(width=t.width_dots, height=t.height_dots, dpi=t.dpi)
        )
        img = Image.open(io.BytesIO(doc.labels[0].png())).convert("L")
        out.append((zpl, {text for _fmt, text in decode_image(img)}))
    return out


def test_a_released_cell_product_prints_its_identity_label(
    app, client, auth, tech, runner, sim
) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = new_episode(client, qa, tech)
    walk(client, tech, qa, ep, until="submit_to_qc")
    product = final_product(client, tech, qa, ep)
    add_printer(runner, "ZP", sim.port)
    r = go(
        client,
        qa,
        ep["number"],
        "release",
        din="G123498654321H",
        product_code="S0001",
        expires_on=EXPIRY,
        signature=RELEASE,
    )
    assert r.status_code == 200, r.json
    # Released: the final product's label is the one chosen for it, not the plain bag label.
    r = queue(client, tech, [product], printer="ZP")
    assert r.status_code == 201 and r.json["template"] == "product-bag-203", r.json
    worker(app, "ZP").run_once()
    labels = _labels(bytes(sim.raw), "product-bag-203")
    wanted = {product, "=G12349865432100", "S0001", ep["coi"], EXPIRY}
    assert any(found == wanted for _zpl, found in labels), labels
    zpl = next(z for z, found in labels if found == wanted)
    for text in (b"DIN G1234 98 654321 00 H", b"PRODUCT S0001", f"EXP {EXPIRY}".encode()):
        assert text in zpl
    assert f"COI {ep['coi']}".encode() in zpl


def test_a_final_product_label_goes_on_its_own_stock_only(client, auth, tech, runner, sim) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = new_episode(client, qa, tech)
    walk(client, tech, qa, ep, until="submit_to_qc")
    product = final_product(client, tech, qa, ep)
    r = go(
        client,
        qa,
        ep["number"],
        "release",
        din="G123498654321H",
        product_code="S0001",
        expires_on=EXPIRY,
        signature=RELEASE,
    )
    assert r.status_code == 200, r.json
    add_printer(runner, "ZP", sim.port)
    r = queue(client, tech, [product], printer="ZP", template="bag")
    assert r.status_code == 422 and r.json["error"] == "stock_mismatch", r.json
    assert "product-bag" in r.json["message"]
    # The starting material (no release specification) keeps its ordinary bag label.
    r = queue(client, tech, [ep["bag"]], printer="ZP")
    assert r.status_code == 201 and r.json["template"] == "bag-203", r.json
