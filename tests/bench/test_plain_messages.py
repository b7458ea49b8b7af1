"""Refusals say in words what happened and what to do; the machine code stays in the JSON."""

from __future__ import annotations

from helpers import move, register

from tests.bench.test_scanning_flow import Bench

STATION = "BENCH-B1"


def _aav_vial(client, auth) -> str:  # noqa: ANN001
    """Return a vial of lot AAV9-2611-001 (in quarantine in the demo), itself released."""
    admin = auth("admin")
    vial = client.get("/api/samples?lot=AAV9-2611-001", headers=admin).json["samples"][0]
    b = vial["barcode"]
    assert move(client, auth("helix_tech"), b, "quarantine").status_code == 200
    assert move(client, auth("qa1"), b, "release").status_code == 200
    return b


def test_a_vial_whose_lot_blocks_the_move_says_the_lots_status(client, auth):
    b = _aav_vial(client, auth)
    r = move(client, auth("helix_tech"), b, "check_out", custodian="helix_tech")
    assert r.status_code == 422
    assert (r.json["error"], r.json["lot_state"]) == ("lot_not_released", "quarantine")
    assert r.json["message"] == (
        "This vial's lot AAV9-2611-001 is in quarantine: "
        "it cannot be checked out until QA releases the lot"
    )


def test_the_bench_says_the_same_words(client, auth):
    b = _aav_vial(client, auth)
    bench = Bench(client, auth("admin", STATION))
    bench.ok("BADGE-0002")
    bench.ok("CMD:CHECKOUT")
    out = bench.scan(b)
    assert (out["outcome"], out["code"]) == ("refused", "lot_not_released")
    assert "lot AAV9-2611-001 is in quarantine" in out["message"]
    assert "until QA releases the lot" in out["message"]


def test_a_move_the_tubes_state_does_not_allow_says_what_can_be_done(client, tech):
    b = register(client, tech)["barcode"]
    r = move(client, tech, b, "check_out", custodian="tech1")
    assert r.status_code == 422 and r.json["error"] == "illegal_transition"
    assert r.json["allowed"] == ["receive", "dispose", "reject"]
    message = r.json["message"]
    assert message.startswith(f"{b} is registered but not received yet: it cannot be checked out")
    assert "received (receive)" in message and "cannot check_out" not in message


def test_a_missing_field_is_named_in_words(client, tech):
    b = register(client, tech)["barcode"]
    r = move(client, tech, b, "receive")
    assert r.status_code == 422 and r.json["error"] == "missing_fields"
    assert r.json["missing"] == ["condition"]
    assert "the condition it arrived in" in r.json["message"]


def test_looking_a_vial_up_at_the_bench_says_its_lot_is_held(client, auth):
    b = _aav_vial(client, auth)
    bench = Bench(client, auth("admin", STATION))
    bench.ok("BADGE-0002")
    out = bench.ok(b)
    assert out["action"] == "lookup"
    assert "its lot AAV9-2611-001 is in quarantine" in out["message"]
