"""ISBT 128: the DIN check character (ISO 7064 Mod 37-2), product codes from the catalogue."""

from __future__ import annotations

import pytest
from helpers import race
from therapy_util import EXPIRY, RELEASE, final_product, go, new_episode, walk

from lims.errors import Refused
from lims.therapy import isbt


def test_published_vector() -> None:
    assert isbt.din_check("G123498654321") == "H"
    din = isbt.parse_din("G123498654321H")
    assert (din.din, din.flags, din.facility, din.year) == ("G123498654321", None, "G1234", "98")


def test_keyed_with_flags_and_spaces_and_scanned_forms() -> None:
    assert isbt.parse_din("g1234 98 654321 00 h").eye_readable() == "G1234 98 654321 00 H"
    scanned = isbt.parse_din("=G12349865432100")
    assert scanned.din == "G123498654321" and scanned.flags == "00" and scanned.check == "H"


@pytest.mark.parametrize(
    "typed",
    [
        "G123498654321A",  # made-up check character
        "G123498654312H",  # last two digits swapped
        "G123498654320H",  # one digit wrong
    ],
)
def test_a_wrong_check_character_is_refused(typed: str) -> None:
    with pytest.raises(Refused) as err:
        isbt.parse_din(typed)
    assert err.value.code == "bad_din_check"


@pytest.mark.parametrize("typed", ["", "G12349865432", "O123498654321H", "G12A498654321H", "=G123"])
def test_a_malformed_din_is_refused(typed: str) -> None:
    with pytest.raises(Refused) as err:
        isbt.parse_din(typed)
    assert err.value.code == "bad_din"


def test_product_code_shape() -> None:
    assert isbt.check_product_code(" s1234 ") == "S1234"
    for bad in ("S123", "12345", "SS123"):
        with pytest.raises(Refused):
            isbt.check_product_code(bad)


def test_release_checks_the_din_and_the_catalogue(client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = new_episode(client, qa, tech)
    walk(client, tech, qa, ep, until="submit_to_qc")
    final_product(client, tech, qa, ep)
    r = go(
        client,
        qa,
        ep["number"],
        "release",
        din="G123498654321A",
        product_code="S0001",
        signature=RELEASE,
        expires_on=EXPIRY,
    )
    assert r.status_code == 422 and r.json["error"] == "bad_din_check"
    assert "H" in r.json["message"]
    r = go(
        client,
        qa,
        ep["number"],
        "release",
        din="G123498654321H",
        product_code="S9999",
        signature=RELEASE,
        expires_on=EXPIRY,
    )
    assert r.status_code == 404 and r.json["error"] == "unknown_product_code"
    r = go(
        client,
        qa,
        ep["number"],
        "release",
        din="G123498654321H",
        signature=RELEASE,
        expires_on=EXPIRY,
    )
    assert r.status_code == 422 and r.json["missing"] == ["product_code"]
    r = go(
        client,
        qa,
        ep["number"],
        "release",
        din="G123498654321H",
        product_code="s0001",
        signature=RELEASE,
        expires_on=EXPIRY,
    )
    assert r.status_code == 200, r.json
    assert r.json["din"] == "G123498654321" and r.json["product_code"]["code"] == "S0001"
    # A DIN names one donation: a second product may not take it.
    other = new_episode(client, qa, tech, hospital_id="MRN-T2")
    walk(client, tech, qa, other, until="submit_to_qc")
    final_product(client, tech, qa, other)
    r = go(
        client,
        qa,
        other["number"],
        "release",
        din="=G12349865432100",
        product_code="S0001",
        signature=RELEASE,
        expires_on=EXPIRY,
    )
    assert r.status_code == 409 and r.json["error"] == "din_taken"


def test_product_codes_api_and_cli(client, auth, runner) -> None:  # noqa: ANN001
    admin = auth("admin")
    r = client.get("/api/product-codes", headers=auth("tech1"))
    assert {p["code"]: p["allogeneic"] for p in r.json["product_codes"]} == {
        "S0001": False,
        "S0002": True,
    }
    r = client.post(
        "/api/product-codes",
        json={"code": "S0003", "description": "TIL, autologous"},
        headers=auth("qa1"),
    )
    assert r.status_code == 403
    r = client.post("/api/product-codes", json={"code": "X12", "description": "bad"}, headers=admin)
    assert r.status_code == 422 and r.json["error"] == "bad_product_code"
    out = runner.invoke(
        args=["setup", "product-code", "s0004", "Allogeneic NK cells", "--allogeneic"]
    )
    assert out.exit_code == 0, out.output
    assert "S0004" in out.output
    again = runner.invoke(args=["setup", "product-code", "S0004", "again"])
    assert again.exit_code == 1 and "exists already" in again.output
    r = client.get("/api/product-codes", headers=admin)
    assert {
        "code": "S0004",
        "description": "Allogeneic NK cells",
        "allogeneic": True,
        "active": True,
        "min_temp_c": None,
        "max_temp_c": None,
    } in r.json["product_codes"]


def test_two_releases_racing_for_one_din_give_it_to_one(app, client, auth, tech) -> None:  # noqa: ANN001
    qa = auth("qa1")
    eps = [new_episode(client, qa, tech, hospital_id=f"MRN-R{i}") for i in range(2)]
    for ep in eps:
        walk(client, tech, qa, ep, until="submit_to_qc")
        final_product(client, tech, qa, ep)

    def fire(c, i: int):  # noqa: ANN001, ANN202
        return go(
            c,
            qa,
            eps[i]["number"],
            "release",
            din="G123498654321H",
            product_code="S0001",
            signature=RELEASE,
            expires_on=EXPIRY,
        )

    codes = sorted(r.status_code for r in race(app, fire, 2))
    assert codes == [200, 409]
    dins = [
        client.get(f"/api/episodes/{e['number']}", headers=qa).json["episode"]["din"] for e in eps
    ]
    assert sorted(dins, key=str) == sorted([None, "G123498654321"], key=str)
