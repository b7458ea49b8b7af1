"""Cold-chain shipments: packed, dispatched, read out and received at the clinical site by
scanning every bag and its COI; an excursion or a mismatch opens a deviation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from helpers import audit_count, verify
from sqlmodel import select
from therapy_util import DEMO_NAME, EXPIRY, RELEASE, final_product, go, new_episode, walk

from lims.db import new_session
from lims.models import AuditEvent
from lims.therapy.isbt import din_check
from lims.therapy.logger import record_gaps
from lims.therapy.models import LoggerReading

CSV_OK = "time,temperature_c\n2026-12-01T10:00:00Z,-185.0\n2026-12-01T10:15:00Z,-184.5\n"


def released(client, auth, tech, hospital_id: str = "MRN-S1") -> dict:  # noqa: ANN001
    """Return a released episode (with its bag) ready to ship."""
    qa = auth("qa1")
    ep = new_episode(client, qa, tech, hospital_id=hospital_id)
    walk(client, tech, qa, ep, until="submit_to_qc")
    # A DIN names one donation: each test episode gets its own.
    din = f"G123426{int(ep['number'].rsplit('-', 1)[1]):06d}"
    ep["bag"] = final_product(client, tech, qa, ep)  # the bag that ships
    r = go(
        client,
        qa,
        ep["number"],
        "release",
        din=din + din_check(din),
        product_code="S0001",
        expires_on=EXPIRY,
        signature=RELEASE,
    )
    assert r.status_code == 200, r.json
    return ep


def pack(client, tech, *eps: dict, site: str = "st-marys") -> dict:  # noqa: ANN001
    body = {
        "site": site,
        "product_code": "S0001",
        "shipper": "CryoCourier",
        "logger_id": "LOG-1",
        "containers": [{"bag": e["bag"], "coi": e["coi"]} for e in eps],
    }
    r = client.post("/api/shipments", json=body, headers=tech)
    assert r.status_code == 201, r.json
    return r.json


def dispatched(client, auth, tech, hospital_id: str = "MRN-S1") -> tuple[dict, dict]:  # noqa: ANN001
    ep = released(client, auth, tech, hospital_id)
    sh = pack(client, tech, ep)
    r = client.post(f"/api/shipments/{sh['number']}/dispatch", json={}, headers=tech)
    assert r.status_code == 200, r.json
    return ep, r.json


def episode_state(client, auth, number: str) -> dict:  # noqa: ANN001
    return client.get(f"/api/episodes/{number}", headers=auth("qa1")).json["episode"]


def events(app, action: str, entity: str) -> list[AuditEvent]:  # noqa: ANN001
    with new_session(app.extensions["lims"]["engine"]) as db:
        return list(
            db.exec(
                select(AuditEvent).where(
                    AuditEvent.action == action, AuditEvent.entity_id == entity
                )
            ).all()
        )


def test_pack_dispatch_and_receipt_by_scans_move_the_episode(app, client, auth, tech) -> None:  # noqa: ANN001
    ep = released(client, auth, tech)
    sh = pack(client, tech, ep)
    assert sh["state"] == "packed" and (sh["min_temp_c"], sh["max_temp_c"]) == (-196, -150)
    assert [c["bag"] for c in sh["containers"]] == [ep["bag"]]
    r = client.post(f"/api/shipments/{sh['number']}/dispatch", json={}, headers=tech)
    assert r.status_code == 200 and r.json["state"] == "dispatched", r.json
    assert episode_state(client, auth, ep["number"])["state"] == "shipped"

    site = auth("site_nurse")
    r = client.get("/api/shipments", headers=site)
    assert sh["number"] in [s["number"] for s in r.json["shipments"]]
    r = client.post(
        f"/api/shipments/{sh['number']}/receive",
        json={"scans": [{"bag": ep["bag"].lower(), "coi": ep["coi"]}]},
        headers=site,
    )
    assert r.status_code == 200 and r.json["state"] == "received_at_site", r.json
    assert r.json["containers"][0]["received_at"]
    assert episode_state(client, auth, ep["number"])["state"] == "received_at_site"
    # Each change is one event; the episode's moves are its own events, by whoever made them.
    for action in ("shipment.pack", "shipment.dispatch", "shipment.receive"):
        assert len(events(app, action, sh["number"])) == 1, action
    (got,) = events(app, "episode.receive_at_site", ep["number"])
    assert got.actor == "site_nurse"
    assert verify(app).ok


def test_a_site_sees_only_what_was_shipped_to_it(client, auth, tech) -> None:  # noqa: ANN001
    ep = released(client, auth, tech)
    sh = pack(client, tech, ep)
    number = sh["number"]
    site = auth("site_nurse")
    # Packed, not yet sent: the site does not see it.
    assert client.get(f"/api/shipments/{number}", headers=site).status_code == 404
    client.post(f"/api/shipments/{number}/dispatch", json={}, headers=tech)
    r = client.get(f"/api/shipments/{number}", headers=site)
    assert r.status_code == 200 and r.json["episodes"][0]["coi"] == ep["coi"]
    assert any(e["action"] == "episode.ship" for e in r.json["episodes"][0]["timeline"])
    other = auth("city_nurse")
    r = client.get(f"/api/shipments/{number}", headers=other)
    assert r.status_code == 404 and r.json["error"] == "unknown_shipment"
    assert number not in [
        s["number"] for s in client.get("/api/shipments", headers=other).json["shipments"]
    ]
    r = client.post(
        f"/api/shipments/{number}/receive",
        json={"scans": [{"bag": ep["bag"], "coi": ep["coi"]}]},
        headers=other,
    )
    assert r.status_code == 404
    # A client sees none of the centre's shipments; a site user cannot pack or read episodes.
    assert client.get(f"/api/shipments/{number}", headers=auth("helix_viewer")).status_code == 404
    r = client.get(f"/api/episodes/{ep['number']}", headers=site)
    assert r.status_code == 404
    r = client.post(f"/api/shipments/{number}/dispatch", json={}, headers=site)
    assert r.status_code == 403


def test_shipments_never_show_patient_identifiers(client, auth, tech) -> None:  # noqa: ANN001
    dispatched(client, auth, tech)
    for who in ("tech1", "qa1", "site_nurse", "helix_viewer", "admin"):
        h = auth(who)
        listed = client.get("/api/shipments", headers=h)
        assert listed.status_code == 200
        texts = [listed.get_data(as_text=True)]
        for s in listed.json["shipments"]:
            texts.append(client.get(f"/api/shipments/{s['number']}", headers=h).get_data(True))
        for text in texts:
            for secret in ("Pat Test", "1980-05-06", "MRN-S1", DEMO_NAME, "MRN-0107", "Robin"):
                assert secret not in text, (who, secret)


def test_an_excursion_marks_the_shipment_and_opens_one_deviation_per_import(
    app, client, auth, tech
) -> None:  # noqa: ANN001
    _ep, sh = dispatched(client, auth, tech)
    url = f"/api/shipments/{sh['number']}/readings"
    site = auth("site_nurse")
    r = client.post(url, json={"csv": "\ufeff" + CSV_OK}, headers=site)
    assert r.status_code == 200, r.json
    assert r.json["imported"]["readings"] == 2 and r.json["imported"]["deviation"] is None
    assert r.json["shipment"]["excursion"] is False
    warm = (
        "time,temperature_c\r\n"
        "2026-12-01T11:00:00Z,-170\r\n"
        "2026-12-01T11:15:00+01:00,-140.5\r\n"  # 10:15 UTC
        "2026-12-01T11:30:00Z,-120\r\n"
        "2026-12-01T11:45:00,-180\r\n"
    )
    r = client.post(url, json={"csv": warm}, headers=tech)
    assert r.status_code == 200, r.json
    s = r.json["shipment"]
    assert s["excursion"] is True and s["readings"] == 6
    assert (s["excursion_first"], s["excursion_last"]) == (
        "2026-12-01T10:15:00Z",
        "2026-12-01T11:30:00Z",
    )
    assert (s["min_seen_c"], s["max_seen_c"]) == (-185.0, -120.0)
    dev = r.json["imported"]["deviation"]
    assert dev and s["deviations"] == [dev]
    d = client.get(f"/api/deviations/{dev}", headers=auth("qa1")).json
    assert {"kind": "shipment", "ref": sh["number"]}.items() <= d["links"][0].items()
    assert "2 of 4 readings" in d["description"]
    # Another import with an excursion: one more deviation; the flag keeps the widest span.
    r = client.post(url, json={"csv": "2026-12-02T09:00:00Z,-100\n"}, headers=tech)
    s = r.json["shipment"]
    assert len(s["deviations"]) == 2 and s["excursion_last"] == "2026-12-02T09:00:00Z"
    assert len(events(app, "shipment.import_readings", sh["number"])) == 3


def test_a_gap_in_the_logger_record_opens_a_deviation_once(app, client, auth, tech) -> None:  # noqa: ANN001
    _ep, sh = dispatched(client, auth, tech)
    url = f"/api/shipments/{sh['number']}/readings"
    r = client.post(url, json={"csv": CSV_OK}, headers=tech)
    assert r.status_code == 200 and r.json["imported"]["gaps"] == []
    # Every reading within limits, but nothing between 10:15 and 12:30: a temperature unknown.
    late = "time,temperature_c\n2026-12-01T12:30:00Z,-185\n2026-12-01T12:45:00Z,-184\n"
    r = client.post(url, json={"csv": late}, headers=tech)
    assert r.status_code == 200, r.json
    got = r.json["imported"]
    assert got["gaps"] == [{"from": "2026-12-01T10:15:00Z", "to": "2026-12-01T12:30:00Z"}]
    assert got["outside_limits"] == 0 and r.json["shipment"]["excursion"] is False
    d = client.get(f"/api/deviations/{got['deviation']}", headers=auth("qa1")).json
    assert d["title"] == f"Gap in the temperature record of shipment {sh['number']}"
    assert "2026-12-01T10:15:00Z to 2026-12-01T12:30:00Z (2 h 15 min)" in d["description"]
    assert (d["severity"], d["source"]) == ("major", "cold chain")
    # A later file that only continues the record shows no new gap and opens nothing.
    more = "2026-12-01T13:00:00Z,-185\n"
    r = client.post(url, json={"csv": more}, headers=tech)
    assert r.json["imported"]["gaps"] == [] and r.json["imported"]["deviation"] is None
    assert r.json["shipment"]["deviations"] == [got["deviation"]]
    assert verify(app).ok


def test_record_gaps_counts_only_spans_a_new_reading_bounds() -> None:
    t = [datetime(2026, 12, 1, h, m, tzinfo=UTC) for h, m in ((8, 0), (10, 0), (10, 30), (12, 0))]
    hour = timedelta(hours=1)
    # The 8:00-10:00 gap was reported with the file that had 10:00; 10:30-12:00 is new.
    assert record_gaps(t, [t[3]], hour) == [(t[2], t[3])]
    assert record_gaps(t, t, hour) == [(t[0], t[1]), (t[2], t[3])]
    assert record_gaps(t, t, timedelta(hours=2)) == []
    # The database may give back times without their zone (SQLite): they are UTC.
    naive = [x.replace(tzinfo=None) for x in t]
    assert record_gaps(naive, [t[3]], hour) == [(t[2], t[3])]


def test_a_bad_logger_file_is_refused_whole_with_its_line_numbers(app, client, auth, tech) -> None:  # noqa: ANN001
    _ep, sh = dispatched(client, auth, tech)
    url = f"/api/shipments/{sh['number']}/readings"
    bad = (
        "time,temperature_c\n"
        "2026-12-01T10:00:00Z,-185\n"
        "yesterday,-185\n"
        "2026-12-01T10:30:00Z,cold\n"
        "\n"
        "2026-12-01T10:45:00Z,-185,extra\n"
        "2026-12-01T11:00:00Z,-100\n"
    )
    n0 = audit_count(app)
    r = client.post(url, json={"csv": bad}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "bad_csv"
    assert [p["line"] for p in r.json["problems"]] == [3, 4, 6]
    assert "line 3" in r.json["message"]
    assert audit_count(app) == n0
    with new_session(app.extensions["lims"]["engine"]) as db:
        assert db.exec(select(LoggerReading).where(LoggerReading.import_no > 1)).all() == []
    s = client.get(f"/api/shipments/{sh['number']}", headers=tech).json
    assert s["readings"] == 0 and s["excursion"] is False and s["deviations"] == []
    for body in ({"csv": "time,temperature_c\n"}, {"csv": "x"}):
        r = client.post(url, json=body, headers=tech)
        assert r.status_code == 422, body


def test_a_coi_mismatch_at_receipt_stops_it_until_qa_acknowledges(app, client, auth, tech) -> None:  # noqa: ANN001
    ep, sh = dispatched(client, auth, tech)
    other = new_episode(client, auth("qa1"), tech, hospital_id="MRN-S2")
    site = auth("site_nurse")
    url = f"/api/shipments/{sh['number']}/receive"
    r = client.post(url, json={"scans": [{"bag": ep["bag"], "coi": other["coi"]}]}, headers=site)
    assert r.status_code == 422 and r.json["error"] == "coi_mismatch", r.json
    assert "COI MISMATCH - STOP" in r.json["message"]
    dev = r.json["deviation"]
    s = client.get(f"/api/shipments/{sh['number']}", headers=site).json
    assert s["state"] == "dispatched" and s["held_by"] == dev and dev in s["deviations"]
    e = episode_state(client, auth, ep["number"])
    assert e["state"] == "shipped" and e["held_by"] == dev
    assert client.get(f"/api/deviations/{dev}", headers=auth("qa1")).json["severity"] == "critical"
    # Held: even the right scans wait for QA.
    good = {"scans": [{"bag": ep["bag"], "coi": ep["coi"]}]}
    r = client.post(url, json=good, headers=site)
    assert r.status_code == 422 and r.json["error"] == "shipment_held"
    ack = f"/api/shipments/{sh['number']}/acknowledge"
    assert client.post(ack, json={"reason": "x"}, headers=site).status_code == 403
    r = client.post(ack, json={"reason": "label misread, bag checked"}, headers=auth("qa1"))
    assert r.status_code == 200 and r.json["held_by"] is None
    assert episode_state(client, auth, ep["number"])["held_by"] is None
    r = client.post(url, json=good, headers=site)
    assert r.status_code == 200 and r.json["state"] == "received_at_site"
    assert verify(app).ok


def test_a_bag_not_on_the_manifest_or_a_bag_not_scanned_stops_receipt(client, auth, tech) -> None:  # noqa: ANN001
    ep, sh = dispatched(client, auth, tech)
    stray = new_episode(client, auth("qa1"), tech, hospital_id="MRN-S3")
    site = auth("site_nurse")
    url = f"/api/shipments/{sh['number']}/receive"
    # Nothing scanned but the manifest is not complete: refused, no deviation.
    r = client.post(url, json={"scans": [{"bag": ep["bag"], "coi": ep["coi"]}] * 2}, headers=site)
    assert r.status_code == 400 and r.json["error"] == "duplicate_scan"
    r = client.post(url, json={"scans": [{"bag": stray["bag"], "coi": stray["coi"]}]}, headers=site)
    assert r.status_code == 422 and r.json["error"] == "manifest_mismatch"
    dev = r.json["deviation"]
    d = client.get(f"/api/deviations/{dev}", headers=auth("qa1")).json
    assert d["links"][0]["kind"] == "shipment" and d["links"][0]["ref"] == sh["number"]
    s = client.get(f"/api/shipments/{sh['number']}", headers=site).json
    assert s["held_by"] == dev and s["state"] == "dispatched"
    # The episode on the manifest was not at fault: it is not held.
    assert episode_state(client, auth, ep["number"])["held_by"] is None


def test_two_bags_of_one_episode_must_both_be_scanned(client, auth, tech) -> None:  # noqa: ANN001
    from helpers import move

    ep = released(client, auth, tech)
    # A second bag of the product, QC'd and released by QA after the episode.
    second = {"barcode": final_product(client, tech, auth("qa1"), ep)}
    r = move(client, auth("qa1"), second["barcode"], "release", signature=RELEASE)
    assert r.status_code == 200, r.json
    sh = pack(client, tech, ep)
    r = client.post(
        f"/api/shipments/{sh['number']}/containers",
        json={"containers": [{"bag": second["barcode"], "coi": ep["coi"]}]},
        headers=tech,
    )
    assert r.status_code == 200 and len(r.json["containers"]) == 2, r.json
    r = client.post(f"/api/shipments/{sh['number']}/dispatch", json={}, headers=tech)
    assert r.status_code == 200, r.json
    bags = (ep["bag"], second["barcode"])
    for b in bags:  # both bags left in custody, not only the one the episode's event names
        assert client.get(f"/api/samples/{b}", headers=tech).json["state"] == "in_transit"
    site = auth("site_nurse")
    url = f"/api/shipments/{sh['number']}/receive"
    r = client.post(url, json={"scans": [{"bag": ep["bag"], "coi": ep["coi"]}]}, headers=site)
    assert r.status_code == 422 and r.json["error"] == "containers_missing"
    assert r.json["missing"] == [second["barcode"]]
    scans = [{"bag": ep["bag"], "coi": ep["coi"]}, {"bag": second["barcode"], "coi": ep["coi"]}]
    r = client.post(url, json={"scans": scans}, headers=site)
    assert r.status_code == 200 and r.json["state"] == "received_at_site"
    for b in bags:
        assert client.get(f"/api/samples/{b}", headers=tech).json["state"] == "received"


def test_packing_refusals(client, auth, tech, runner) -> None:  # noqa: ANN001
    qa = auth("qa1")
    ep = new_episode(client, qa, tech, hospital_id="MRN-S4")
    body = {
        "site": "st-marys",
        "product_code": "S0001",
        "shipper": "c",
        "logger_id": "L",
        "containers": [{"bag": ep["bag"], "coi": ep["coi"]}],
    }
    r = client.post("/api/shipments", json=body, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "episode_not_released"
    r = client.post("/api/shipments", json={**body, "site": "helix-bio"}, headers=tech)
    assert r.status_code == 404 and r.json["error"] == "unknown_site"
    r = client.post("/api/shipments", json={**body, "product_code": "S0002"}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "no_temperature_limits"
    r = client.post("/api/shipments", json=body, headers=auth("helix_viewer"))
    assert r.status_code == 403
    # Set-up from the command line: a site, and a product with its transit limits.
    out = runner.invoke(args=["setup", "clinical-site", "north-clinic", "North Clinic"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(
        args=[
            "setup",
            "product-code",
            "S0005",
            "CAR-T, fresh",
            "--min-temp",
            "2",
            "--max-temp",
            "8",
        ]
    )
    assert out.exit_code == 0 and "2 to 8 C" in out.output, out.output
    out = runner.invoke(args=["setup", "product-code", "S0006", "bad", "--min-temp", "8"])
    assert out.exit_code == 1
    rel = released(client, auth, tech, hospital_id="MRN-S5")
    r = client.post(
        "/api/shipments",
        json={
            **body,
            "site": "north-clinic",
            "containers": [{"bag": rel["bag"], "coi": rel["coi"]}],
        },
        headers=tech,
    )
    assert r.status_code == 201 and r.json["site"] == "north-clinic"
    # The same bag cannot be on two shipments; a wrong COI at packing is the COI check's.
    r = client.post(
        "/api/shipments",
        json={**body, "containers": [{"bag": rel["bag"], "coi": rel["coi"]}]},
        headers=tech,
    )
    assert r.status_code == 409 and r.json["error"] == "already_shipped"


def test_a_wrong_coi_at_packing_is_refused_and_holds_the_episode(client, auth, tech) -> None:  # noqa: ANN001
    ep = released(client, auth, tech)
    body = {
        "site": "st-marys",
        "product_code": "S0001",
        "shipper": "c",
        "logger_id": "L",
        "containers": [{"bag": ep["bag"], "coi": "COI-26-999999-X"}],
    }
    r = client.post("/api/shipments", json=body, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "coi_mismatch" and r.json["deviation"]
    assert (
        client.get("/api/shipments", headers=tech).json["shipments"][0]["containers"][0]["bag"]
        != ep["bag"]
    )
    assert episode_state(client, auth, ep["number"])["held_by"] == r.json["deviation"]


def test_cancel_and_reject_need_a_reason_and_their_roles(client, auth, tech) -> None:  # noqa: ANN001
    ep = released(client, auth, tech)
    sh = pack(client, tech, ep)
    url = f"/api/shipments/{sh['number']}/transitions"
    r = client.post(url, json={"action": "cancel"}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "missing_fields"
    r = client.post(url, json={"action": "reject", "reason": "x"}, headers=tech)
    assert r.status_code == 403
    r = client.post(url, json={"action": "cancel", "reason": "patient unwell"}, headers=tech)
    assert r.status_code == 200 and r.json["state"] == "cancelled"
    _ep2, sh2 = dispatched(client, auth, tech, hospital_id="MRN-S6")
    url = f"/api/shipments/{sh2['number']}/transitions"
    r = client.post(
        url, json={"action": "reject", "reason": "box warm"}, headers=auth("site_nurse")
    )
    assert r.status_code == 200 and r.json["state"] == "rejected"
    r = client.post(url, json={"action": "fly"}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "unknown_action"


def test_the_demo_has_a_delivered_shipment_and_one_in_transit(client, auth) -> None:  # noqa: ANN001
    rows = client.get("/api/shipments", headers=auth("qa1")).json["shipments"]
    states = sorted(s["state"] for s in rows)
    assert states == ["dispatched", "received_at_site"]
    done = next(s for s in rows if s["state"] == "received_at_site")
    assert done["readings"] > 50 and done["excursion"] is False
    site_rows = client.get("/api/shipments", headers=auth("site_nurse")).json["shipments"]
    assert [s["number"] for s in site_rows] == [done["number"]]


def test_a_deviation_can_name_a_shipment_by_hand(client, auth, tech) -> None:  # noqa: ANN001
    _ep, sh = dispatched(client, auth, tech)
    body = {"title": "Courier late", "description": "d", "severity": "minor"}
    r = client.post(
        "/api/deviations",
        json={**body, "links": [{"kind": "shipment", "ref": sh["number"]}]},
        headers=tech,
    )
    assert r.status_code == 201, r.json
    r = client.post(
        "/api/deviations",
        json={**body, "links": [{"kind": "shipment", "ref": "SH-00-0000"}]},
        headers=tech,
    )
    assert r.status_code == 404 and r.json["error"] == "unknown_shipment"


def test_the_site_role_is_a_clinical_sites_and_only_its(runner) -> None:  # noqa: ANN001
    for role, org in (("site", "helix-bio"), ("site", "centre"), ("technician", "st-marys")):
        out = runner.invoke(
            args=[
                "user",
                "create",
                f"x_{role}_{org}".replace("-", "_"),
                "--role",
                role,
                "--org",
                org,
                "--no-password",
            ]
        )
        assert out.exit_code == 1 and "role site" in out.output, (role, org, out.output)
    out = runner.invoke(
        args=["user", "create", "nurse2", "--role", "site", "--org", "st-marys", "--no-password"]
    )
    assert out.exit_code == 0, out.output
