"""Random action sequences on samples and lots; invariants checked after every step."""

from __future__ import annotations

import shutil

import hypothesis.strategies as st
from conftest import ENGINE, _pg_url_for
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlmodel import select

from lims import audit, create_app, custody, lots
from lims.accounts import users
from lims.db import new_session
from lims.models import AuditEvent, Sample

ROLE = {"tech1": "technician", "qa1": "qa", "helix_viewer": "client_viewer"}
ACTIONS = sorted(custody.TRANSITIONS) + ["teleport"]
FIELD_VALUES = {
    "condition": st.sampled_from([None, "intact", "thawed"]),
    "location": st.sampled_from([None, "BOX-0002", "BOX-0003", "RM-B1", "BOX-9999"]),
    "custodian": st.sampled_from([None, "tech1", "tech2", "helix_viewer"]),
    "coi": st.sampled_from([None, "COI-26-000001-X", "MATCH"]),
    "destination": st.sampled_from([None, "Partner site"]),
    "reason": st.sampled_from([None, "", "broken tube"]),
}


def test_random_custody_sequences_keep_every_invariant(demo_template, tmp_path, request):
    counter = {"n": 0}

    def fresh_database() -> tuple[str, str | None]:
        """Return a fresh copy of the demo centre for one example (and its PostgreSQL name)."""
        counter["n"] += 1
        if ENGINE == "postgresql":
            name = request.getfixturevalue("pg_databases").create(template=demo_template)
            return _pg_url_for(name), name
        path = tmp_path / f"sm{counter['n']}.sqlite3"
        shutil.copyfile(demo_template, path)
        return f"sqlite:///{path}", None

    class CustodyMachine(RuleBasedStateMachine):
        samples = Bundle("samples")

        def __init__(self) -> None:
            super().__init__()
            url, self.pg_name = fresh_database()
            self.app = create_app({"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": "t"})
            self.engine = self.app.extensions["lims"]["engine"]
            self.client = self.app.test_client()
            self.headers = {}
            with new_session(self.engine) as db:
                for name in ("tech1", "qa1", "helix_viewer"):
                    secret, _ = users.create_token(db, username=name, actor=users.system_actor(db))
                    self.headers[name] = {"Authorization": f"Bearer {secret}"}
                db.commit()
                self.events = audit.count_events(db)
            self.model: dict[str, dict] = {}  # barcode -> expected state, version, coi, parent
            self.lot_state = "released"  # the demo LV lot

        def teardown(self) -> None:
            self.engine.dispose()
            if self.pg_name:
                request.getfixturevalue("pg_databases").drop(self.pg_name)

        def _expect_events(self, n: int) -> None:
            self.events += n

        @initialize(target=samples)
        def first_sample(self):
            return self._register(None)

        def _register(self, parent: str | None) -> str:
            body = {"sample_type": "PBMC", "project": "CART-001", "volume": 10, "unit": "mL"}
            if parent:
                body = {"sample_type": "TCELL", "parent": parent}
            r = self.client.post("/api/samples", json=body, headers=self.headers["tech1"])
            if parent and self.model[parent]["state"] in (*custody.TERMINAL, "registered"):
                assert r.status_code == 422, r.json
                return parent
            assert r.status_code == 201, r.json
            s = r.json
            self.model[s["barcode"]] = {
                "state": "registered",
                "version": 1,
                "coi": s["coi"],
                "parent": parent,
            }
            if parent:
                assert s["coi"] == self.model[parent]["coi"]
            self._expect_events(1)
            return s["barcode"]

        @rule(target=samples, parent=st.one_of(st.none(), samples))
        def register(self, parent):
            return self._register(parent)

        @rule(
            barcode=samples,
            action=st.sampled_from(ACTIONS),
            data=st.data(),
            who=st.sampled_from(["tech1", "qa1", "helix_viewer"]),
            stale=st.booleans(),
        )
        def transition(self, barcode, action, data, who, stale):
            m = self.model[barcode]
            t = custody.TRANSITIONS.get(action)
            fields = {}
            if t is not None:
                for name in (*t.requires, *t.optional):
                    fields[name] = data.draw(FIELD_VALUES.get(name, st.none()), label=name)
            if fields.get("coi") == "MATCH":
                fields["coi"] = m["coi"]
            fields = {k: v for k, v in fields.items() if v is not None}
            version = m["version"] - 1 if stale and m["version"] > 1 else m["version"]
            r = self.client.post(
                f"/api/samples/{barcode}/transitions",
                json={"action": action, "version": version, **fields},
                headers=self.headers[who],
            )
            legal = t is not None and m["state"] in t.sources
            if who == "helix_viewer":
                assert r.status_code == 404  # another organisation's sample does not exist
                return
            if r.status_code == 200:
                assert legal and version == m["version"] and ROLE[who] in t.roles
                assert all(fields.get(f) not in (None, "") for f in t.requires)
                new_state = t.target or m["state"]
                assert r.json["state"] == new_state and r.json["version"] == m["version"] + 1
                m["state"], m["version"] = new_state, m["version"] + 1
                self._expect_events(1)
            else:
                assert r.status_code in (403, 404, 409, 422), r.json
                assert r.json["error"] and r.json["message"]
                if version != m["version"]:
                    assert r.status_code == 409
                elif t is not None and ROLE[who] not in t.roles:
                    assert r.status_code == 403  # the role is checked before the state
                elif not legal:
                    assert r.status_code == 422

        @rule(
            barcode=samples,
            count=st.integers(min_value=1, max_value=4),
            volume=st.sampled_from([0.5, 2.0, 50.0]),
            box=st.sampled_from([None, "BOX-0002"]),
        )
        def aliquot(self, barcode, count, volume, box):
            m = self.model[barcode]
            body = {"count": count, "volume": volume, "unit": "mL"}
            if box:
                body["location"] = box
            r = self.client.post(
                f"/api/samples/{barcode}/aliquots", json=body, headers=self.headers["tech1"]
            )
            if r.status_code != 201:
                assert r.status_code == 422, r.json
                return
            # Only material in someone's hands (or quarantined, into a box) is split.
            assert m["state"] == "in_use" or (m["state"] == "quarantine" and box)
            m["version"] += 1
            for kid in r.json["aliquots"]:
                assert kid["coi"] == m["coi"] and kid["parent"] == barcode
                assert (kid["location"] is None) == (box is None)
                assert (kid["custodian"] is not None) == (kid["state"] == "in_use")
                self.model[kid["barcode"]] = {
                    "state": kid["state"],
                    "version": 1,
                    "coi": m["coi"],
                    "parent": barcode,
                }
            self._expect_events(1 + count)

        @rule(
            action=st.sampled_from(sorted(lots.LOT_TRANSITIONS)),
            password=st.sampled_from(["demo-only-lims", "wrong-password"]),
        )
        def lot_move(self, action, password):
            t = lots.LOT_TRANSITIONS[action]
            body = {"action": action, "reason": "test"}
            if t.signature:
                body["signature"] = {"password": password, "meaning": t.signature}
            r = self.client.post(
                "/api/lots/LV-2611-002/transitions", json=body, headers=self.headers["qa1"]
            )
            if r.status_code == 200:
                assert self.lot_state in t.sources
                assert not t.signature or password == "demo-only-lims"
                self.lot_state = t.target
                self._expect_events(1)
            else:
                assert r.status_code in (403, 422), r.json
                if r.json["error"] == "signature_refused":
                    self._expect_events(1)  # the refusal itself is audited

        @invariant()
        def database_matches_model_and_chain_verifies(self):
            with new_session(self.engine) as db:
                result = audit.verify(db)
                assert result.ok, result.problem
                assert result.events == self.events  # exactly one event per change
                rows = {s.barcode: s for s in db.exec(select(Sample)).all()}
                by_id = {s.id: s for s in rows.values()}
                for barcode, m in self.model.items():
                    s = rows[barcode]
                    assert (s.state, s.version) == (m["state"], m["version"])
                    assert s.state in custody.STATES
                    if s.parent_id is not None:
                        assert by_id[s.parent_id].coi == s.coi
                    if s.position is not None:
                        assert s.state in custody.STORABLE
                n = len(db.exec(select(AuditEvent.seq)).all())
                assert n == self.events

    run_state_machine_as_test(
        CustodyMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
