"""No sequence of moves gives a sample a COI other than its episode's.

Hypothesis draws what people do around two patients' episodes: register samples under a COI,
aliquot, derive with a COI typed by hand, pool (autologous and allogeneic product codes), and
move the episodes on, scanning any bag with any label COI and any wristband. After each
sequence the whole database is checked against the rule, independently of the domain's code:
every bag an episode accepted at a change of custody carries the episode's COI, every aliquot
or derivative its parent's, every pool of one COI that COI, and a pool of several (allogeneic
only) a COI of its own that is no patient's.
"""

from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlmodel import select
from therapy_util import EXPIRY, RELEASE, final_product, go, new_episode, walk

from lims.db import new_session
from lims.models import AuditEvent, Sample
from lims.therapy.isbt import din_check
from lims.therapy.models import Episode, Patient, PoolParent

CUSTODY = ("receive", "ship", "receive_at_site", "infuse")
# The bag's own custody event that follows each episode move that moves it.
BAG_MOVES = {
    "episode.ship": "sample.ship",
    "episode.receive_at_site": "sample.receive",
    "episode.infuse": "sample.infuse",
}
# The sample move a sample's state calls for (an available one is shipped or checked out).
NEXT_MOVE = {
    "registered": "receive",
    "received": "quarantine",
    "quarantine": "release",
    "in_use": "hand_over",
    "in_transit": "receive",
}

_moves = st.tuples(
    st.just("move"),
    st.integers(0, 1),
    st.tuples(st.integers(0, 20), st.integers(0, 1), st.integers(0, 1)),
    st.booleans(),  # True: the next custody move when one is allowed, else any move
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("register"), st.integers(0, 1), st.none(), st.none()),
        st.tuples(st.just("aliquot"), st.integers(0, 20), st.none(), st.none()),
        st.tuples(st.just("derive"), st.integers(0, 20), st.integers(0, 1), st.none()),
        st.tuples(
            st.just("pool"),
            st.lists(st.integers(0, 20), min_size=2, max_size=3),
            st.sampled_from(["S0001", "S0002", None]),
            st.none(),
        ),
        _moves,
        _moves,
        st.tuples(st.just("acknowledge"), st.integers(0, 1), st.none(), st.none()),
        # A sample's own change of custody, scanning either patient's COI (or none).
        st.tuples(
            st.just("sample_move"),
            st.integers(0, 20),
            st.booleans(),  # an available sample: True ships it, False checks it out
            st.sampled_from([0, 1, None]),
        ),
    ),
    min_size=1,
    max_size=16,
)
_serial = itertools.count(1)


def _din() -> str:
    din = f"G1234{26}{next(_serial):06d}"
    return din + din_check(din)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(middle=steps)
def test_no_sequence_of_moves_gives_a_sample_another_coi(app, client, auth, tech, middle) -> None:  # noqa: ANN001
    qa = auth("qa1")
    n = next(_serial)
    eps = [new_episode(client, qa, tech, hospital_id=f"P-{n}-{i}") for i in range(2)]
    cois = [e["coi"] for e in eps]
    bags: list[str] = [e["bag"] for e in eps]
    for e in eps:  # collected, bags in hand (so they can be aliquoted and pooled)
        walk(client, tech, qa, e, until="collect")
        final_product(client, tech, qa, e)  # QC'd: QA may release the episode
        r = client.post(
            f"/api/samples/{e['bag']}/transitions",
            json={"action": "receive", "condition": "intact", "coi": e["coi"]},
            headers=tech,
        )
        assert r.status_code == 200
    for op, a, b, c in middle:
        if op == "register":
            r = client.post(
                "/api/samples",
                json={"sample_type": "PBMC", "project": "CART-001", "coi": cois[a]},
                headers=tech,
            )
            assert r.status_code == 201, r.json
            barcode = r.json["barcode"]
            client.post(
                f"/api/samples/{barcode}/transitions",
                json={"action": "receive", "condition": "ok", "coi": cois[a]},
                headers=tech,
            )
            bags.append(barcode)
        elif op == "aliquot":
            r = client.post(
                f"/api/samples/{bags[a % len(bags)]}/aliquots",
                json={"count": 1, "volume": 0.5, "unit": "mL"},
                headers=tech,
            )
            if r.status_code == 201:
                bags += [x["barcode"] for x in r.json["children"]]
        elif op == "derive":
            r = client.post(
                "/api/samples",
                json={"sample_type": "PBMC", "parent": bags[a % len(bags)], "coi": cois[b]},
                headers=tech,
            )
            if r.status_code == 201:
                bags.append(r.json["barcode"])
        elif op == "pool":
            parents = list(dict.fromkeys(bags[i % len(bags)] for i in a))
            body = {"parents": parents, "sample_type": "PBMC"}
            if b:
                body["product_code"] = b
            r = client.post("/api/pools", json=body, headers=tech)
            event(f"pool {b}: {r.json.get('error', 'made')}")
            if r.status_code == 201:
                bags.append(r.json["barcode"])
            else:
                assert r.status_code in (400, 422), r.json
        elif op == "sample_move":
            barcode = bags[a % len(bags)]
            scanned = None if c is None else cois[c]
            state = client.get(f"/api/samples/{barcode}", headers=tech).json["state"]
            b = ("ship" if b else "check_out") if state == "available" else NEXT_MOVE.get(state)
            if b is None:
                continue
            fields = {
                "check_out": {"custodian": "tech2"},
                "hand_over": {"custodian": "tech1"},
                "check_in": {"location": "FRZ-80-1"},
                "ship": {"destination": "Clinic"},
                "receive": {"condition": "ok"},
            }.get(b, {})
            if b in ("hand_over", "ship", "receive") and scanned:
                fields["coi"] = scanned
            r = client.post(
                f"/api/samples/{barcode}/transitions",
                json={"action": b, **fields},
                headers=qa if b == "release" else tech,
            )
            assert r.status_code in (200, 422), r.json
            event(f"sample {b}: {r.json.get('error', 'done')}")
            if r.status_code == 200 and b in ("hand_over", "ship", "receive"):
                # A patient's material changed hands: the COI scanned was its own.
                assert r.json["coi"] not in cois or scanned == r.json["coi"], (b, barcode)
        elif op == "acknowledge":
            r = client.post(
                f"/api/episodes/{eps[a]['number']}/acknowledge",
                json={"reason": "QA checked the scan"},
                headers=qa,
            )
            assert r.status_code in (200, 422), r.json
        else:
            ep = client.get(f"/api/episodes/{eps[a]['number']}", headers=tech).json["episode"]
            allowed = [x for x in ep["allowed_actions"] if x not in ("cancel", "fail")]
            if not allowed:
                continue
            custody = [x for x in allowed if x in CUSTODY]
            action = custody[0] if (c and custody) else allowed[0]
            bag, label, wrist = b
            fields = {
                "bag": bags[bag % len(bags)],
                "coi": cois[label],
                "wristband": cois[wrist],
                "din": _din(),
                "product_code": "S0001",
                "expires_on": EXPIRY,
            }
            needs = {
                "receive": ("bag", "coi"),
                "ship": ("bag", "coi"),
                "receive_at_site": ("bag", "coi"),
                "infuse": ("bag", "coi", "wristband"),
                "release": ("din", "product_code", "expires_on"),
            }.get(action, ())
            who = qa if action == "release" else tech
            signed = {"signature": RELEASE} if action == "release" else {}
            r = go(client, who, ep["number"], action, **{k: fields[k] for k in needs}, **signed)
            assert r.status_code in (200, 422), r.json
            event(f"{action}: {r.json.get('error', 'done')}")
    _check_the_rule(app)


def _check_the_rule(app) -> None:  # noqa: ANN001
    with new_session(app.extensions["lims"]["engine"]) as db:
        by_id = {s.id: s for s in db.exec(select(Sample)).all()}
        by_barcode = {s.barcode: s for s in by_id.values()}
        episode_coi = {e.number: e.coi for e in db.exec(select(Episode)).all()}
        patient_cois = set(db.exec(select(Patient.coi)).all())
        for ev in db.exec(
            select(AuditEvent).where(
                AuditEvent.entity_type == "episode",
                AuditEvent.action.in_([f"episode.{a}" for a in CUSTODY]),
            )
        ).all():
            bag = json.loads(ev.after)["bag"]
            assert by_barcode[bag].coi == episode_coi[ev.entity_id], (ev.action, bag)
            follows = BAG_MOVES.get(ev.action)
            if follows:
                # The bag followed in the same transaction: the very next event is its move.
                nxt = db.exec(select(AuditEvent).where(AuditEvent.seq == ev.seq + 1)).one()
                assert (nxt.action, nxt.entity_id) == (follows, bag), ev.action
        for s in by_id.values():
            if s.parent_id is not None:
                assert s.coi == by_id[s.parent_id].coi, s.barcode
        parents: dict[int, list[int]] = {}
        for link in db.exec(select(PoolParent)).all():
            parents.setdefault(link.pool_id, []).append(link.parent_id)
        for pool_id, ids in parents.items():
            own = {by_id[i].coi for i in ids}
            if len(own) == 1:
                assert by_id[pool_id].coi in own
            else:
                assert by_id[pool_id].coi not in patient_cois
