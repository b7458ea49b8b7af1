"""Deviations and CAPA: states, QA e-signature, links, the release hold, who sees what."""

from __future__ import annotations

import re

import pytest
from helpers import (
    audit_count,
    bearer,
    move,
    race,
    register,
    review_all,
    review_trail,
    verify,
)
from sqlmodel import select

from lims.accounts import users
from lims.db import new_session
from lims.models import AuditEvent, Sample, User
from lims.quality import deviations

PASSWORD = "demo-only-lims"
SIGN = {"password": PASSWORD, "meaning": "approval"}
LOT = "AAV9-2611-001"  # helix-bio, quarantine, mycoplasma not yet recorded
RELEASED_LOT = "LV-2611-002"  # novacell, released


def _raise(client, headers, **fields) -> dict:  # noqa: ANN001
    body = {"title": "Freezer -80 alarm", "description": "rose to -60 C", "severity": "critical"}
    r = client.post("/api/deviations", json={**body, **fields}, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


def _go(client, headers, number: str, action: str, **fields):  # noqa: ANN001, ANN201
    return client.post(
        f"/api/deviations/{number}/transitions", json={"action": action, **fields}, headers=headers
    )


def _close(client, qa, number: str, root_cause: str = "door seal worn"):  # noqa: ANN001, ANN201
    return _go(client, qa, number, "close", root_cause=root_cause, signature=SIGN)


def _complete_lot_qc(client, tech, qa) -> None:  # noqa: ANN001
    r = client.post(
        f"/api/lots/{LOT}/qc", json={"test": "mycoplasma", "result": "not detected"}, headers=tech
    )
    assert r.status_code == 201, r.json
    review_all(client, LOT, qa, trail=False)  # QA reviews each result (four eyes)


def _release_lot(client, qa):  # noqa: ANN001, ANN201
    # Release also needs QA's current review of the lot's trail (raising a deviation on the lot
    # is part of that trail): review it first when it is not, so only the deviation can refuse.
    status = client.get(f"/api/lots/{LOT}/audit-trail?limit=1", headers=qa).json["review"]
    if not status["current"]:
        review_trail(client, LOT, qa)
    return client.post(
        f"/api/lots/{LOT}/transitions",
        json={"action": "release", "signature": {"password": PASSWORD, "meaning": "release"}},
        headers=qa,
    )


def _events(app, number: str) -> list[AuditEvent]:  # noqa: ANN001
    with new_session(app.extensions["lims"]["engine"]) as db:
        return list(
            db.exec(
                select(AuditEvent)
                .where(AuditEvent.entity_type == "deviation", AuditEvent.entity_id == number)
                .order_by(AuditEvent.seq)
            ).all()
        )


def test_staff_raise_a_numbered_deviation_linked_to_records_in_one_event(app, client, auth):  # noqa: ANN001
    tech = auth("tech1")
    n0 = audit_count(app)
    dev = _raise(
        client,
        tech,
        category="equipment",
        links=[{"kind": "lot", "ref": LOT.lower()}, {"kind": "room", "ref": "RM-B1"}],
    )
    assert re.fullmatch(r"DEV-\d\d-\d{4}", dev["number"])
    assert dev["state"] == "open" and dev["severity"] == "critical"
    assert dev["organisation"] == "helix-bio"  # the owner of the linked lot
    assert [(x["kind"], x["ref"]) for x in dev["links"]] == [("lot", LOT), ("room", "RM-B1")]
    assert dev["raised_by"] == "tech1" and dev["blocks_release"] is True
    assert audit_count(app) == n0 + 1
    (event,) = _events(app, dev["number"])
    assert event.action == "deviation.raise" and event.org_id is not None
    assert event.lot_id is not None  # filed under the lot: its audit trail shows it
    # The sequence is one for the whole centre, whoever raises.
    second = _raise(client, auth("qa1"), severity="minor")
    assert int(second["number"][-4:]) == int(dev["number"][-4:]) + 1
    assert second["organisation"] == "centre"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"severity": "huge"}, 400, "bad_severity"),
        ({"title": ""}, 400, None),
        ({"colour": "red"}, 400, None),
        ({"links": [{"kind": "shipment", "ref": "SH-1"}]}, 404, "unknown_shipment"),
        ({"links": [{"kind": "freezer", "ref": "F1"}]}, 400, "bad_link_kind"),
        ({"links": [{"kind": "lot", "ref": "NO-SUCH-LOT"}]}, 404, "unknown_lot"),
        ({"links": [{"kind": "sample", "ref": "S26-999999-X"}]}, 404, "unknown_sample"),
        ({"links": [{"kind": "room", "ref": "BOX-0101"}]}, 422, "not_a_room"),
        ({"links": [{"kind": "room", "ref": "RM-NOPE"}]}, 404, "unknown_location"),
        ({"links": [{"kind": "print_job", "ref": "abc"}]}, 400, "bad_link"),
        ({"links": [{"kind": "print_job", "ref": "99999999999"}]}, 400, "bad_link"),
        ({"links": [{"kind": "print_job", "ref": "424242"}]}, 404, "unknown_print_job"),
        (
            {"links": [{"kind": "room", "ref": "RM-B1"}, {"kind": "room", "ref": "RM-B1"}]},
            400,
            "duplicate_link",
        ),
        (
            {"links": [{"kind": "lot", "ref": LOT}, {"kind": "lot", "ref": RELEASED_LOT}]},
            422,
            "link_other_organisation",
        ),
        (
            {"organisation": "novacell", "links": [{"kind": "lot", "ref": LOT}]},
            422,
            "link_other_organisation",
        ),
        ({"organisation": "nobody"}, 404, "unknown_organisation"),
        ({"references": "DEV-99-9999"}, 404, "unknown_deviation"),
    ],
)
def test_bad_input_is_refused_clearly_and_nothing_is_written(app, client, auth, body, status, code):  # noqa: ANN001
    tech = auth("tech1")
    n0 = audit_count(app)
    base = {"title": "t", "description": "d", "severity": "major"}
    r = client.post("/api/deviations", json={**base, **body}, headers=tech)
    assert r.status_code == status, r.json
    if code:
        assert r.json["error"] == code
    assert audit_count(app) == n0


def test_malformed_bodies_are_400(client, auth) -> None:  # noqa: ANN001
    h = auth("tech1")
    r = client.post("/api/deviations", data="{", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 400
    r = client.post("/api/deviations", json=[], headers=h)
    assert r.status_code == 400
    r = client.get("/api/deviations?state=lost", headers=h)
    assert r.status_code == 400
    r = client.get("/api/deviations?limit=3", headers=h)
    assert r.status_code == 400


def test_clients_cannot_raise_and_see_only_their_organisation(app, client, auth) -> None:  # noqa: ANN001
    for who in ("helix_tech", "helix_viewer"):
        r = client.post(
            "/api/deviations",
            json={"title": "t", "description": "d", "severity": "minor"},
            headers=auth(who),
        )
        assert r.status_code == 403, who
    helix = _raise(client, auth("tech1"), links=[{"kind": "lot", "ref": LOT}])
    nova = _raise(client, auth("tech1"), links=[{"kind": "lot", "ref": RELEASED_LOT}])
    centre = _raise(client, auth("tech1"), links=[{"kind": "room", "ref": "RM-B1"}])
    viewer = auth("helix_viewer")
    listed = {d["number"] for d in client.get("/api/deviations", headers=viewer).json["deviations"]}
    assert helix["number"] in listed
    assert nova["number"] not in listed and centre["number"] not in listed
    assert client.get(f"/api/deviations/{helix['number']}", headers=viewer).status_code == 200
    for other in (nova, centre):
        n = other["number"]
        assert client.get(f"/api/deviations/{n}", headers=viewer).status_code == 404
        # Writing to it: as unknown as reading it.
        assert _go(client, viewer, n, "investigate").status_code == 404
        r = client.post(
            f"/api/deviations/{n}/links", json={"kind": "room", "ref": "RM-C1"}, headers=viewer
        )
        assert r.status_code == 404
    # Their own organisation's deviation: read-only.
    assert _go(client, viewer, helix["number"], "investigate").status_code == 403
    r = client.post(
        f"/api/deviations/{helix['number']}/links",
        json={"kind": "room", "ref": "RM-C1"},
        headers=auth("helix_tech"),
    )
    assert r.status_code == 403
    # Filtering by another organisation's lot tells nothing.
    r = client.get(f"/api/deviations?lot={RELEASED_LOT}", headers=viewer)
    assert r.status_code == 200 and r.json["deviations"] == []
    # Linking another organisation's record they cannot see is a 404 for a client too.
    r = client.get("/api/deviations?severity=critical&state=open", headers=auth("nova_viewer"))
    assert {d["number"] for d in r.json["deviations"]} == {nova["number"]}


def test_the_state_rules_from_open_to_closed(app, client, auth) -> None:  # noqa: ANN001
    tech, qa = auth("tech1"), auth("qa1")
    n = _raise(client, tech, links=[{"kind": "room", "ref": "RM-B1"}])["number"]
    # Investigation and closing are QA's.
    r = _go(client, tech, n, "investigate")
    assert r.status_code == 403 and r.json["error"] == "role_required"
    assert _go(client, auth("admin"), n, "investigate").status_code == 403
    r = _close(client, qa, n)
    assert r.status_code == 422 and r.json["error"] == "illegal_transition"
    assert r.json["allowed"] == ["investigate"]
    r = _go(client, qa, n, "fly")
    assert r.status_code == 422 and r.json["error"] == "unknown_action"
    r = _go(client, qa, n, "investigate", root_cause="too early")
    assert r.status_code == 400
    n0 = audit_count(app)
    r = _go(client, qa, n, "investigate", reason="alarm log reviewed")
    assert r.status_code == 200 and r.json["state"] == "investigation"
    assert audit_count(app) == n0 + 1
    # Closing: the root cause, then an approval signature by QA.
    r = _go(client, qa, n, "close", signature=SIGN)
    assert r.status_code == 422 and r.json["missing"] == ["root_cause"]
    r = _go(client, qa, n, "close", root_cause="   ", signature=SIGN)
    assert r.status_code == 422 and r.json["missing"] == ["root_cause"]
    r = _go(client, qa, n, "close", root_cause="seal")
    assert r.status_code == 422 and r.json["error"] == "signature_required"
    r = _go(client, qa, n, "close", root_cause="seal", signature={**SIGN, "meaning": "release"})
    assert r.status_code == 400 and r.json["error"] == "signature_meaning"
    n1 = audit_count(app)
    r = _go(client, qa, n, "close", root_cause="seal", signature={**SIGN, "password": "wrong"})
    assert r.status_code == 422 and r.json["error"] == "signature_refused"
    assert audit_count(app) == n1 + 1  # the refused signature is on record; nothing else
    assert client.get(f"/api/deviations/{n}", headers=qa).json["state"] == "investigation"
    r = _close(client, qa, n)
    assert r.status_code == 200, r.json
    dev = r.json
    assert dev["state"] == "closed" and dev["root_cause"] == "door seal worn"
    assert dev["closed_by"] == "qa1" and dev["signature"]["meaning"] == "approval"
    assert dev["signature"]["record"] == f"deviation/{n}" and dev["allowed_actions"] == []
    assert audit_count(app) == n1 + 2
    event = _events(app, n)[-1]
    assert event.action == "deviation.close" and event.signature_id == dev["signature"]["id"]
    # No way back: a recurrence is a new deviation that references this one.
    for action in ("reopen", "investigate", "close"):
        r = _go(
            client,
            qa,
            n,
            action,
            **({"root_cause": "x", "signature": SIGN} if action == "close" else {}),
        )
        assert r.status_code == 422, action
    assert "new deviation" in _go(client, qa, n, "reopen").json["message"]
    r = client.post(f"/api/deviations/{n}/links", json={"kind": "room", "ref": "RM-C1"}, headers=qa)
    assert r.status_code == 422 and r.json["error"] == "deviation_closed"
    follow = _raise(client, tech, references=n.lower(), severity="major")
    assert follow["references"] == n and follow["state"] == "open"


def test_stale_version_is_a_conflict(client, auth) -> None:  # noqa: ANN001
    qa = auth("qa1")
    dev = _raise(client, auth("tech1"))
    r = _go(client, qa, dev["number"], "investigate", version=dev["version"] + 1)
    assert r.status_code == 409 and r.json["error"] == "version_conflict"


def test_capa_must_be_done_or_carried_before_closing(app, client, auth) -> None:  # noqa: ANN001
    tech, qa = auth("tech1"), auth("qa1")
    n = _raise(client, tech, severity="major")["number"]
    later = _raise(client, tech, severity="minor")["number"]
    _go(client, qa, n, "investigate")
    capa = {"description": "replace the seal", "owner": "tech2", "due_on": "2027-01-15"}
    assert client.post(f"/api/deviations/{n}/capa", json=capa, headers=tech).status_code == 403
    for bad, status in (
        ({**capa, "owner": "nobody"}, 404),
        ({**capa, "owner": "helix_tech"}, 422),
        ({**capa, "due_on": "soon"}, 400),
        ({**capa, "due_on": 20270115}, 400),
        ({**capa, "description": ""}, 400),
    ):
        r = client.post(f"/api/deviations/{n}/capa", json=bad, headers=qa)
        assert r.status_code == status, (bad, r.json)
    n0 = audit_count(app)
    r = client.post(f"/api/deviations/{n}/capa", json=capa, headers=qa)
    assert r.status_code == 201
    first = r.json["capa"][0]
    assert (
        first["owner"] == "tech2" and first["status"] == "open" and first["due_on"] == "2027-01-15"
    )
    r = client.post(
        f"/api/deviations/{n}/capa", json={**capa, "description": "train the team"}, headers=qa
    )
    second = r.json["capa"][1]
    assert audit_count(app) == n0 + 2
    r = _close(client, qa, n)
    assert r.status_code == 422 and r.json["error"] == "capa_open"
    assert r.json["capa"] == [first["id"], second["id"]]
    # Done: by its owner (or QA), saying how effectiveness was checked.
    done = f"/api/deviations/{n}/capa/{first['id']}/complete"
    assert client.post(done, json={"effectiveness_check": "ok"}, headers=tech).status_code == 403
    r = client.post(done, json={"effectiveness_check": " "}, headers=auth("tech2"))
    assert r.status_code == 422
    r = client.post(done, json={}, headers=auth("tech2"))
    assert r.status_code == 400
    r = client.post(done, json={"effectiveness_check": "no leak in 30 days"}, headers=auth("tech2"))
    assert r.status_code == 200
    assert r.json["capa"][0]["status"] == "done" and r.json["capa"][0]["done_by"] == "tech2"
    r = client.post(done, json={"effectiveness_check": "again"}, headers=qa)
    assert r.status_code == 422 and r.json["error"] == "capa_settled"
    r = client.post(
        f"/api/deviations/{n}/capa/999999/complete", json={"effectiveness_check": "x"}, headers=qa
    )
    assert r.status_code == 404
    # Carried into another open deviation, with a reason.
    carry = f"/api/deviations/{n}/capa/{second['id']}/carry"
    assert client.post(carry, json={"to": n, "reason": "r"}, headers=qa).status_code == 422
    assert client.post(carry, json={"to": later, "reason": "r"}, headers=tech).status_code == 403
    n1 = audit_count(app)
    r = client.post(carry, json={"to": later, "reason": "site-wide training"}, headers=qa)
    assert r.status_code == 200, r.json
    assert r.json["capa"][1]["status"] == "carried" and r.json["capa"][1]["carried_to"] == later
    # One event on each deviation the carry changed.
    assert audit_count(app) == n1 + 2
    target = client.get(f"/api/deviations/{later}", headers=qa).json
    assert target["capa"][0]["carried_from"] == n and target["capa"][0]["status"] == "open"
    assert _close(client, qa, n).status_code == 200
    r = client.post(f"/api/deviations/{n}/capa", json=capa, headers=qa)
    assert r.status_code == 422 and r.json["error"] == "deviation_closed"


def test_link_and_unlink_are_audited_events(app, client, auth) -> None:  # noqa: ANN001
    tech = auth("tech1")
    n = _raise(client, tech, links=[{"kind": "lot", "ref": LOT}])["number"]
    url = f"/api/deviations/{n}/links"
    n0 = audit_count(app)
    vial = client.get(f"/api/lots/{LOT}", headers=tech).json["vials"][0]["barcode"]
    r = client.post(url, json={"kind": "sample", "ref": vial}, headers=tech)
    assert r.status_code == 200 and ("sample", vial) in {
        (x["kind"], x["ref"]) for x in r.json["links"]
    }
    r = client.post(url, json={"kind": "print_job", "ref": "1"}, headers=tech)
    assert r.status_code in (200, 404)  # the demo may hold no print job
    r = client.post(url, json={"kind": "sample", "ref": vial}, headers=tech)
    assert r.status_code == 409
    r = client.post(url, json={"kind": "lot", "ref": RELEASED_LOT}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "link_other_organisation"
    r = client.post(url, json={"kind": "lot", "ref": LOT, "unlink": True}, headers=tech)
    assert r.status_code == 422 and r.json["missing"] == ["reason"]
    r = client.post(
        url, json={"kind": "room", "ref": "RM-C1", "unlink": True, "reason": "x"}, headers=tech
    )
    assert r.status_code == 422 and r.json["error"] == "not_linked"
    r = client.post(
        url, json={"kind": "lot", "ref": LOT, "unlink": True, "reason": "wrong lot"}, headers=tech
    )
    assert r.status_code == 200 and ("lot", LOT) not in {
        (x["kind"], x["ref"]) for x in r.json["links"]
    }
    actions = [e.action for e in _events(app, n)]
    assert actions[-2:] == ["deviation.link", "deviation.unlink"] or actions[-3:] == [
        "deviation.link",
        "deviation.link",
        "deviation.unlink",
    ]
    assert audit_count(app) == n0 + len(actions) - 1
    assert _events(app, n)[-1].reason == "wrong lot"


def test_an_open_critical_deviation_holds_the_lot_release(app, client, auth) -> None:  # noqa: ANN001
    tech, qa = auth("tech1"), auth("qa1")
    _complete_lot_qc(client, tech, qa)
    # Minor and major deviations do not hold a release.
    _raise(client, tech, severity="major", links=[{"kind": "lot", "ref": LOT}])
    n = _raise(client, tech, links=[{"kind": "lot", "ref": LOT}])["number"]
    review_trail(client, LOT, qa)
    n0 = audit_count(app)
    r = _release_lot(client, qa)
    assert r.status_code == 422 and r.json["error"] == "deviation_open"
    assert n in r.json["message"] and r.json["deviations"] == [n]
    assert audit_count(app) == n0 + 0  # nothing signed, nothing moved
    assert client.get(f"/api/lots/{LOT}", headers=qa).json["state"] == "quarantine"
    assert (
        client.get(f"/api/deviations?lot={LOT}&severity=critical", headers=qa).json["deviations"][
            0
        ]["number"]
        == n
    )
    # Under investigation it still holds; closed, it no longer does.
    _go(client, qa, n, "investigate")
    assert _release_lot(client, qa).json["error"] == "deviation_open"
    assert _close(client, qa, n).status_code == 200
    r = _release_lot(client, qa)
    assert r.status_code == 200 and r.json["state"] == "released"


def test_a_critical_deviation_on_a_vial_holds_its_lot(client, auth) -> None:  # noqa: ANN001
    tech, qa = auth("tech1"), auth("qa1")
    _complete_lot_qc(client, tech, qa)
    vial = client.get(f"/api/lots/{LOT}", headers=tech).json["vials"][2]["barcode"]
    n = _raise(client, tech, links=[{"kind": "sample", "ref": vial}])["number"]
    r = _release_lot(client, qa)
    assert r.status_code == 422 and r.json["deviations"] == [n]
    # Unlinked (with a reason), it holds no more.
    r = client.post(
        f"/api/deviations/{n}/links",
        json={"kind": "sample", "ref": vial, "unlink": True, "reason": "wrong vial scanned"},
        headers=tech,
    )
    assert r.status_code == 200
    assert _release_lot(client, qa).status_code == 200


def test_a_critical_deviation_holds_lifting_a_hold(client, auth) -> None:  # noqa: ANN001
    tech, qa = auth("tech1"), auth("qa1")
    url = f"/api/lots/{RELEASED_LOT}/transitions"
    r = client.post(url, json={"action": "hold", "reason": "complaint"}, headers=qa)
    assert r.status_code == 200
    n = _raise(client, tech, links=[{"kind": "lot", "ref": RELEASED_LOT}])["number"]
    lift = {
        "action": "lift_hold",
        "reason": "investigated",
        "signature": {"password": PASSWORD, "meaning": "release"},
    }
    r = client.post(url, json=lift, headers=qa)
    assert r.status_code == 422 and r.json["error"] == "deviation_open" and n in r.json["message"]


def test_a_critical_deviation_holds_the_sample_release_and_its_aliquots(app, client, auth) -> None:  # noqa: ANN001
    tech, qa = auth("tech1"), auth("qa1")
    s = register(client, tech)["barcode"]
    assert move(client, tech, s, "receive", condition="intact").status_code == 200
    assert move(client, tech, s, "quarantine").status_code == 200
    n = _raise(client, tech, links=[{"kind": "sample", "ref": s}])["number"]
    other = register(client, tech)["barcode"]
    move(client, tech, other, "receive", condition="intact")
    move(client, tech, other, "quarantine")
    n0 = audit_count(app)
    r = move(client, qa, s, "release")
    assert r.status_code == 422 and r.json["error"] == "deviation_open" and n in r.json["message"]
    assert audit_count(app) == n0
    assert move(client, qa, other, "release").status_code == 200  # only the linked one is held
    _go(client, qa, n, "investigate")
    assert _close(client, qa, n).status_code == 200
    assert move(client, qa, s, "release").status_code == 200


def test_material_made_from_a_held_sample_is_held_too(app, client, auth) -> None:  # noqa: ANN001
    tech = auth("tech1")
    parent = register(client, tech)["barcode"]
    move(client, tech, parent, "receive", condition="intact")
    child = register(client, tech, parent=parent)["barcode"]
    n = _raise(client, tech, links=[{"kind": "sample", "ref": parent}])["number"]
    with new_session(app.extensions["lims"]["engine"]) as db:
        p = db.exec(select(Sample).where(Sample.barcode == parent)).one()
        c = db.exec(select(Sample).where(Sample.barcode == child)).one()
        assert [d.number for d in deviations.release_blockers(db, sample=c)] == [n]
        assert [d.number for d in deviations.release_blockers(db, sample=p)] == [n]
        assert deviations.release_blockers(db) == []


def test_other_areas_raise_a_deviation_through_the_domain(app) -> None:  # noqa: ANN001
    with new_session(app.extensions["lims"]["engine"]) as db:
        tech = users.actor_for(db, db.exec(select(User).where(User.username == "tech1")).one())
        dev = deviations.raise_deviation(
            db,
            actor=tech,
            title="OOS confirmed: titer",
            severity="critical",
            description="phase II confirmed the titer below spec",
            links=[("lot", LOT)],
            source="OOS-26-0001",
        )
        lot = db.exec(select(Sample.lot_id).where(Sample.lot_id.is_not(None))).first()
        assert dev.source == "OOS-26-0001" and dev.state == "open"
        assert lot is not None
        with pytest.raises(deviations.BadRequest):
            deviations.raise_deviation(
                db, actor=tech, title="", severity="minor", description="d", links=[]
            )
        db.commit()


def test_the_demo_holds_a_closed_minor_and_an_open_major(client, auth) -> None:  # noqa: ANN001
    rows = client.get("/api/deviations", headers=auth("qa1")).json["deviations"]
    got = {(d["severity"], d["state"]) for d in rows}
    assert {("minor", "closed"), ("major", "open")} <= got
    closed = next(d for d in rows if d["state"] == "closed")
    full = client.get(f"/api/deviations/{closed['number']}", headers=auth("qa1")).json
    assert full["signature"]["meaning"] == "approval" and full["capa"][0]["status"] == "done"


def test_raised_at_once_each_gets_its_own_number_and_one_close_wins(race_app) -> None:  # noqa: ANN001
    tech, qa = bearer(race_app, "tech1"), bearer(race_app, "qa1")
    body = {"title": "t", "description": "d", "severity": "critical"}

    def fire(c, _i):  # noqa: ANN001, ANN202
        r = c.post("/api/deviations", json=body, headers=tech)
        return r.status_code, (r.json or {}).get("number")

    results = race(race_app, fire, 8)
    assert [code for code, _ in results] == [201] * 8
    assert len({n for _, n in results}) == 8
    client = race_app.test_client()
    n = results[0][1]
    assert _go(client, qa, n, "investigate").status_code == 200
    version = client.get(f"/api/deviations/{n}", headers=qa).json["version"]

    def close(c, _i):  # noqa: ANN001, ANN202
        return _go(c, qa, n, "close", root_cause="rc", signature=SIGN, version=version).status_code

    codes = sorted(race(race_app, close, 4))
    assert codes[0] == 200 and set(codes[1:]) <= {409, 422}
    assert verify(race_app).ok
