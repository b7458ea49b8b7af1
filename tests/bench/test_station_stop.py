"""A COI mismatch stops the station: nothing more is done there until CMD:ACK and a supervisor's
badge, each step audited; other refusals are acknowledged by CMD:ACK alone."""

from __future__ import annotations

from helpers import move, register

from tests.bench.test_scanning_flow import Bench, events, sample

STATION = "BENCH-B1"
STOPPED = "station stopped: COI mismatch on {}; scan CMD:ACK with a supervisor badge"


def _mismatch(client, auth, bench: Bench) -> tuple[str, str]:  # noqa: ANN001
    """tech2 takes over tech1's tube expecting another patient's COI: return (tube, its COI)."""
    qa, tech = auth("qa1"), auth("tech1")
    tube = register(client, tech)
    other = register(client, tech)
    b = tube["barcode"]
    move(client, tech, b, "receive", condition="intact")
    move(client, tech, b, "quarantine")
    move(client, qa, b, "release")
    move(client, tech, b, "check_out", custodian="tech1")
    bench.ok("BADGE-0003")
    bench.ok("CMD:HANDOVER")
    bench.ok(other["coi"])
    out = bench.scan(b)
    assert (out["outcome"], out["code"]) == ("refused", "coi_mismatch")
    assert out["station_stopped"] is True
    assert out["station_state"]["stopped"]["barcode"] == b
    return b, tube["coi"]


def test_a_coi_mismatch_stops_the_station_until_ack_and_a_qa_badge(app, client, auth):
    bench = Bench(client, auth("admin", STATION))
    b, coi = _mismatch(client, auth, bench)
    stopped = STOPPED.format(b)
    assert events(app, action="station.stopped")[-1].entity_id == STATION

    # Every scan is refused, the right COI and the tube included; nothing moves.
    for data in (coi, b, "CMD:DONE", "CMD:LOGOUT", "BADGE-0004"):
        out = bench.scan(data)
        assert (out["outcome"], out["code"], out["message"]) == (
            "refused",
            "station_stopped",
            stopped,
        ), data
    assert sample(client, auth("tech1"), b)["custodian"] == "tech1"
    state = client.get(f"/api/stations/{STATION}", headers=auth("tech1")).json
    assert state["prompt"] == stopped and state["operator"] == "tech2"

    out = bench.ok("CMD:ACK")
    assert out["action"] == "acknowledge" and "supervisor (QA) scans their badge" in out["message"]
    ack = events(app, action="station.stop_acknowledged")[-1]
    assert ack.actor == "tech2"
    # A technician's badge is not a supervisor's: still stopped, and said why.
    out = bench.scan("BADGE-0002")
    assert (
        out["code"] == "station_stopped" and "Tara Technician is not a supervisor" in out["message"]
    )
    assert bench.scan(b)["code"] == "station_stopped"

    out = bench.ok("BADGE-0004")
    assert out["action"] == "release_stop" and "Quinn Quality" in out["message"]
    released = events(app, action="station.stop_released")[-1]
    assert released.actor == "qa1" and b in released.reason
    state = out["station_state"]
    # The bench goes on where it was: tech2 signed in, in hand-over mode, not stopped.
    assert state["stopped"] is None and state["operator"] == "tech2"
    assert state["mode"] == "hand_over"
    bench.ok(coi)
    assert bench.ok(b)["action"] == "hand_over"


def test_a_stop_outlives_a_new_operator(client, auth):
    bench = Bench(client, auth("admin", STATION))
    b, _ = _mismatch(client, auth, bench)
    # A badge is refused too, so swapping operators cannot get past the stop.
    assert bench.scan("BADGE-0002")["code"] == "station_stopped"
    assert bench.ok("CMD:ACK")["action"] == "acknowledge"
    assert bench.ok("BADGE-0004")["action"] == "release_stop"
    assert bench.ok("BADGE-0002")["station_state"]["operator"] == "tech1"


def test_other_refusals_are_acknowledged_by_ack_alone(app, client, auth):
    bench = Bench(client, auth("admin", STATION))
    bench.ok("BADGE-0002")
    assert bench.scan("S26-999999-X")["outcome"] == "refused"
    out = bench.ok("CMD:ACK")
    assert out["action"] == "acknowledge" and out["station_state"]["stopped"] is None
    assert not events(app, action="station.stopped")
    # The log shows the acknowledgement, so every page watching the bench clears its list.
    log = client.get(f"/api/scans?station={STATION}", headers=auth("tech1")).json["scans"]
    assert log[0]["resolved"] == {"kind": "command", "ref": "ACK"}


def test_a_browser_signed_in_as_a_technician_releases_with_the_qa_badge(app, client, auth):
    """From the bench page (a person, not the agent) the supervisor's badge still releases."""
    from helpers import page_csrf, sign_in

    person = Bench(client, None)
    sign_in(client, "tech2")
    person.headers = {"X-CSRF-Token": page_csrf(client)}
    qa, tech = auth("qa1"), auth("tech1")
    tube, other = register(client, tech), register(client, tech)
    b = tube["barcode"]
    for action, fields, who in [
        ("receive", {"condition": "intact"}, tech),
        ("quarantine", {}, tech),
        ("release", {}, qa),
        ("check_out", {"custodian": "tech1"}, tech),
    ]:
        move(client, who, b, action, **fields)
    person.ok("BADGE-0003")
    person.ok("CMD:HANDOVER")
    person.ok(other["coi"])
    assert person.scan(b)["code"] == "coi_mismatch"
    assert person.scan("BADGE-0003")["code"] == "station_stopped"
    person.ok("CMD:ACK")
    assert person.ok("BADGE-0004")["action"] == "release_stop"
    assert events(app, action="station.stop_released")[-1].actor == "qa1"


def test_a_client_at_a_stopped_bench_is_not_told_the_tube(client, auth):
    bench = Bench(client, auth("admin", STATION))
    b, _ = _mismatch(client, auth, bench)
    helix = Bench(client, auth("helix_tech"))
    out = helix.scan("BADGE-0101", scan_id="helix-1")
    assert out["code"] == "station_stopped" and b not in out["message"]
    assert "COI mismatch" in out["message"]
    assert out["station_state"]["stopped"] is None and b not in out["station_state"]["prompt"]
