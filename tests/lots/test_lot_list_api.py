"""GET /api/lots: filters by state, vector, project and expiry in any case, totals and pages."""

from __future__ import annotations

import pytest

LOTS = [
    # lot number, type, vector, serotype, project, expires
    ("F-AAV-1", "AAV", "AAV9-CMV-GFP", "AAV9", "CART-001", "2027-01-10"),
    ("F-AAV-2", "AAV", "AAV2-CMV-GFP", "AAV2", "CART-001", "2027-03-01"),
    ("F-LV-1", "LV", "LV-EF1a-GFP", None, "CART-001", "2027-06-30"),
    ("F-LV-2", "LV", "LV-EF1a-GFP", None, "CART-001", None),
]


@pytest.fixture
def made(client, tech) -> list[str]:
    for number, kind, vector, sero, project, expires in LOTS:
        body = {"lot_number": number, "vector_type": kind, "vector": vector, "project": project}
        if sero:
            body["serotype"] = sero
        if expires:
            body["expires_on"] = expires
        r = client.post("/api/lots", json=body, headers=tech)
        assert r.status_code == 201, r.json
    return [x[0] for x in LOTS]


def _lots(client, headers, query: str) -> dict:  # noqa: ANN001
    r = client.get(f"/api/lots?{query}", headers=headers)
    assert r.status_code == 200, r.json
    return r.json


def _numbers(client, headers, query: str) -> list[str]:  # noqa: ANN001
    return [x["lot_number"] for x in _lots(client, headers, query)["lots"]]


def test_filters_any_case(client, tech, made):
    assert _numbers(client, tech, "vector=aav9&project=Cart-001") == ["F-AAV-1"]
    assert "AAV9-2611-001" in _numbers(client, tech, "vector=aav9")  # the demo's, another project
    assert _numbers(client, tech, "vector=lv-ef1a-gfp") == ["F-LV-1", "F-LV-2"]
    assert set(_numbers(client, tech, "vector=aav&project=cart-001")) == {"F-AAV-1", "F-AAV-2"}
    assert _numbers(client, tech, "state=PLANNED&vector=LV&project=CART-001") == [
        "F-LV-1",
        "F-LV-2",
    ]
    assert _numbers(client, tech, "state=Released&vector=lv") == ["LV-2611-002"]  # the demo
    assert _numbers(client, tech, "project=no-such-project") == []


def test_expiry_before_and_after_include_the_day(client, tech, made):
    mine = "project=CART-001&"
    assert _numbers(client, tech, mine + "expires_before=2027-03-01") == ["F-AAV-1", "F-AAV-2"]
    assert _numbers(client, tech, mine + "expires_after=2027-03-01") == ["F-AAV-2", "F-LV-1"]
    both = mine + "expires_after=2027-01-11&expires_before=2027-06-29"
    assert _numbers(client, tech, both) == ["F-AAV-2"]
    lot = _lots(client, tech, mine + "expires_before=2027-01-10")["lots"][0]
    assert lot["expires_on"] == "2027-01-10"


def test_total_and_pages(client, tech, made):
    first = _lots(client, tech, "project=cart-001&limit=3")
    assert first["total"] == 4 and first["sort"] == "created"
    assert [x["lot_number"] for x in first["lots"]] == made[:3]  # oldest first, as before
    second = _lots(client, tech, f"project=cart-001&limit=3&cursor={first['next_cursor']}")
    assert [x["lot_number"] for x in second["lots"]] == made[3:]
    assert second["next_cursor"] is None and second["total"] == 4
    back = _lots(client, tech, f"project=cart-001&limit=3&before={second['prev_cursor']}")
    assert [x["lot_number"] for x in back["lots"]] == made[:3]
    newest = _lots(client, tech, "project=cart-001&sort=-created&limit=1")
    assert newest["lots"][0]["lot_number"] == made[-1]


@pytest.mark.parametrize(
    "query", ["expires_before=soon", "limit=0", "sort=colour", "colour=red", "cursor=1.5"]
)
def test_bad_filters_are_400_with_a_message(client, tech, query):
    r = client.get(f"/api/lots?{query}", headers=tech)
    assert r.status_code == 400 and r.json["message"], r.json


def test_client_sees_only_its_lots_in_the_total(client, auth, made):
    helix = auth("helix_tech")
    page = _lots(client, helix, "")
    assert page["total"] == len(page["lots"])
    assert not set(made) & {x["lot_number"] for x in page["lots"]}
