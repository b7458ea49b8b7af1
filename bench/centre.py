"""Time every page and the main API lists at a centre's size, each next to its bare SQL.

A centre after five years: 100,000 samples, 1,000,000 audit events, 10,000 vector lots
(released, in quarantine, on hold, rejected ...), each lot with its four release results judged
against an approved specification and reviewed by QA, open OOS investigations and deviations.
Timed through the app (a Flask test client in this process: session, access, domain, template;
no network) and, next to it, every statement those requests sent, replayed on a bare driver
connection. The quality loop's pages (QA's and a technician's home, the lot page, the lot API)
answer to 25 ms at p95, every other page and list to 100 ms.

    python bench/centre.py --database-url sqlite:////tmp/c.sqlite3      # builds it, then times
    python bench/centre.py --tiny                                        # CI smoke

Rows, targets and example commands: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import re
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import insert, select, text, update  # noqa: E402

from bench import gen_audit  # noqa: E402
from bench._common import database_url, parse_args  # noqa: E402
from bench.audit import Capture, drop_schema, p95, raw_connection  # noqa: E402
from lims import create_app  # noqa: E402
from lims import db as lims_db  # noqa: E402
from lims import samples as lims_samples  # noqa: E402
from lims.accounts import users  # noqa: E402
from lims.audit import chain as lims_chain  # noqa: E402
from lims.db import make_engine, new_session  # noqa: E402
from lims.models import (  # noqa: E402
    Deviation,
    DeviationLink,
    LotTrailReview,
    OosRecord,
    QcResult,
    Sample,
    Signature,
    Specification,
    SpecLimit,
    User,
    VectorLot,
)

TINY = {"events": 3000, "lots": 40, "samples": 400, "rounds": 1}
QUALITY_MS = 25.0  # the quality loop's issue
PAGE_MS = 100.0  # every other page and API list
PASSWORD = "bench-only-password"
# (test, unit, lower, upper, accepted text, a passing result, a failing one)
LIMITS = (
    ("titer", "vg/mL", 1e12, None, None, "3.2e12", "4.0e11"),
    ("sterility", None, None, None, "no growth", "no growth", "growth"),
    ("endotoxin", "EU/mL", None, 5.0, None, "0.8", "9.5"),
    ("mycoplasma", None, None, None, "not detected", "not detected", "detected"),
)
# One lot in 20 per state: mostly released, as in a working centre.
STATES = ["released"] * 13 + ["quarantine"] * 3 + ["in_production", "rejected", "on_hold"]
STATES += ["expired"]


def _ids(conn, sql: str) -> dict[str, int]:  # noqa: ANN001
    return {name: i for name, i in conn.execute(text(sql)).all()}


def seed_quality(url: str, seed: int) -> dict[str, Any]:
    """Give every lot of the generated centre its specification, results, reviews, OOS."""
    rng = random.Random(seed)
    engine = make_engine(url)
    now = datetime.now(UTC)
    in_force = now - timedelta(days=800)  # before the first generated event
    with engine.begin() as conn:
        helix = conn.execute(text("SELECT id FROM organisation WHERE name = 'helix-bio'")).scalar()
        conn.execute(
            insert(User).values(
                username="client1",
                full_name="Client viewer of Helix",
                org_id=helix,
                role="client_viewer",
                active=True,
                failed_logins=0,
                created_at=now,
            )
        )
        people = _ids(conn, "SELECT username, id FROM app_user")
        techs = [people[u] for u in gen_audit.TECHS]
        qas = [people[u] for u in gen_audit.QAS]
        conn.execute(
            update(User)
            .where(User.username.in_(["qa1", "tech01", "client1"]))
            .values(password_hash=users.hash_password(PASSWORD), password_changed_at=now)
        )
        spec_id = conn.execute(
            insert(Specification)
            .values(
                code="SPEC-AAV-REL",
                version=1,
                product="AAV",
                stage="release",
                title="AAV vector lot release",
                state="approved",
                created_by_id=qas[0],
                created_at=in_force,
                approved_by_id=qas[1],
                approved_at=in_force,
            )
            .returning(Specification.id)
        ).scalar_one()
        limit_ids = {}
        for test, unit, lo, hi, txt, _ok, _bad in LIMITS:
            limit_ids[test] = conn.execute(
                insert(SpecLimit)
                .values(spec_id=spec_id, test=test, unit=unit, lower=lo, upper=hi, text=txt)
                .returning(SpecLimit.id)
            ).scalar_one()
        lots = conn.execute(select(VectorLot.id, VectorLot.lot_number, VectorLot.org_id)).all()
        sig_rows, result_rows, review_rows, state_of = [], [], [], {}
        failing: list[tuple[int, int]] = []  # (lot id, index of its failing result)
        for k, (lot_id, number, _org) in enumerate(lots):
            state = STATES[k % len(STATES)]
            state_of[lot_id] = state
            sampled = in_force + timedelta(days=30 + rng.random() * 700)
            reviewed = state not in ("in_production", "quarantine") or rng.random() < 0.5
            fails = state == "rejected" or (state == "quarantine" and rng.random() < 0.2)
            for j, (test, unit, lo, hi, txt, ok, bad) in enumerate(LIMITS):
                if state == "in_production" and j >= 2:
                    break  # results still coming in
                bad_one = fails and j == 0
                seen = reviewed and not bad_one
                qa = rng.choice(qas)
                if seen:
                    sig_rows.append(
                        dict(
                            user_id=qa,
                            username=f"qa{qas.index(qa) + 1}",
                            printed_name="Bench QA",
                            meaning="review",
                            signed_at=sampled + timedelta(days=2),
                            record_type="qc_result",
                            record_id=f"{number}/{test}",
                            content_hash="0" * 64,
                            hash="0" * 64,
                        )
                    )
                shown = " or ".join(
                    p for p in (f">= {lo:g}" if lo else "", f"<= {hi:g}" if hi else "", txt) if p
                )
                result_rows.append(
                    dict(
                        lot_id=lot_id,
                        test=test,
                        spec=shown,
                        result=bad if bad_one else ok,
                        passed=not bad_one,
                        recorded_by_id=rng.choice(techs),
                        recorded_at=sampled + timedelta(days=1),
                        spec_id=spec_id,
                        limit_id=limit_ids[test],
                        unit=unit,
                        sampled_at=sampled,
                        reviewed_by_id=qa if seen else None,
                        reviewed_at=sampled + timedelta(days=2) if seen else None,
                    )
                )
                if bad_one:
                    failing.append((lot_id, len(result_rows) - 1))
            if state in ("released", "on_hold", "expired"):
                review_rows.append((lot_id, sampled + timedelta(days=3)))
        for i in range(0, len(sig_rows), 5000):
            conn.execute(insert(Signature), sig_rows[i : i + 5000])
        for i in range(0, len(result_rows), 5000):
            conn.execute(insert(QcResult), result_rows[i : i + 5000])
        first_sig = conn.execute(text("SELECT min(id) FROM signature")).scalar()
        conn.execute(
            insert(LotTrailReview),
            [
                dict(
                    lot_id=lot_id,
                    reviewed_up_to_seq=10**9,
                    signature_id=first_sig,
                    reviewer_id=qas[0],
                    reviewed_at=at,
                )
                for lot_id, at in review_rows
            ],
        )
        org_of = {lot_id: org for lot_id, _n, org in lots}
        result_ids = dict(
            conn.execute(
                select(QcResult.lot_id, QcResult.id).where(QcResult.passed.is_(False))
            ).all()
        )
        oos_rows = [
            dict(
                result_id=result_ids[lot_id],
                lot_id=lot_id,
                org_id=org_of[lot_id],
                test="titer",
                phase="confirmed" if state_of[lot_id] == "rejected" else "phase_1",
                opened_at=now,
                closed_at=now if state_of[lot_id] == "rejected" else None,
            )
            for lot_id, _i in failing
        ]
        if oos_rows:
            conn.execute(insert(OosRecord), oos_rows)
        # A deviation for one lot in 50, a quarter of them still open.
        dev_lots = [lot for lot in lots if rng.random() < 0.02] or lots[:1]
        for n, (lot_id, number, org) in enumerate(dev_lots):
            open_ = n % 4 == 0
            dev_id = conn.execute(
                insert(Deviation)
                .values(
                    number=f"DEV-26-{n + 1:04d}",
                    title=f"Fill volume out of range on {number}",
                    description="Found at the fill step; investigated by QA.",
                    severity=("minor", "major", "critical")[n % 3],
                    org_id=org,
                    state="open" if open_ else "closed",
                    raised_by_id=rng.choice(techs),
                    raised_at=now - timedelta(days=rng.randrange(700)),
                    closed_by_id=None if open_ else qas[0],
                    closed_at=None if open_ else now,
                )
                .returning(Deviation.id)
            ).scalar_one()
            conn.execute(
                insert(DeviationLink).values(
                    deviation_id=dev_id,
                    kind="lot",
                    ref=number,
                    lot_id=lot_id,
                    added_by_id=qas[0],
                    added_at=now,
                )
            )
        expiry = date.today() + timedelta(days=365)
        for state in set(STATES):
            ids = [i for i, s in state_of.items() if s == state]
            for i in range(0, len(ids), 5000):
                conn.execute(
                    update(VectorLot)
                    .where(VectorLot.id.in_(ids[i : i + 5000]))
                    .values(state=state, vector_type="AAV", expires_on=expiry)
                )
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()
    return counted(url)


def replay(raw, statements) -> None:  # noqa: ANN001
    """Run the statements on the bare connection, reading every row, then roll back.

    A page also writes (the session's last-seen time): replayed too, as it costs, but undone so
    that the bare connection never holds a lock the app then waits for.
    """
    cur = raw.cursor()
    for sql, params in statements:
        cur.execute(sql, params)
        if cur.description is not None:
            cur.fetchall()
    cur.close()
    raw.rollback()


class DriverCapture(Capture):
    """Capture, and also the hot statements lims.db.driver_execute sends past SQLAlchemy."""

    def __init__(self, engine) -> None:  # noqa: ANN001
        super().__init__(engine)
        original = lims_db.driver_execute

        def recorded(session, sql: str, params=()):  # noqa: ANN001, ANN202
            if self.on:
                dialect = lims_db.dialect_name(session)
                self.statements.append((lims_db.driver_sql(dialect, sql), tuple(params)))
            return original(session, sql, params)

        # Bound by name where they are imported: the bench records, the app is unchanged.
        for module in (lims_samples, lims_chain, users):
            module.driver_execute = recorded


def counted(url: str) -> dict[str, int]:
    """Return how big the centre at url is."""
    engine = make_engine(url)
    with engine.connect() as conn:
        out = {
            what: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for what, table in (
                ("events", "audit_event"),
                ("samples", "sample"),
                ("lots", "vector_lot"),
                ("results", "qc_result"),
                ("oos", "oos_record"),
                ("deviations", "deviation"),
            )
        }
    engine.dispose()
    return out


_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def signed_in(app, username: str):  # noqa: ANN001, ANN201
    """Return a test client signed in as username through the sign-in form."""
    client = app.test_client()
    token = _CSRF.search(client.get("/login").text).group(1)
    r = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    if r.status_code != 302:
        raise SystemExit(f"cannot sign in as {username}: {r.status_code}")
    return client


def time_requests(app, raw, cap: Capture, client, paths: list[str], **kw: Any) -> dict:  # noqa: ANN001
    """Time GET paths through the app and the statements each sent through the bare driver."""
    lims_ms, raw_ms, counts = [], [], []
    # Warm the caches the same way for both (every pooled connection plans its statements).
    for p in paths[: max(10, len(paths) // 5)]:
        client.get(p, **kw)
    for p in paths:
        t = time.perf_counter()
        r = client.get(p, **kw)
        lims_ms.append((time.perf_counter() - t) * 1000)
        # Find answers with the record's page (a redirect); anything else must be the page.
        if r.status_code != 200 and not (p.startswith("/find") and r.status_code == 302):
            raise SystemExit(f"GET {p}: {r.status_code} {r.text[:300]}")
        st = cap.grab(lambda p=p: client.get(p, **kw))
        counts.append(len(st))
        t = time.perf_counter()
        replay(raw, st)
        raw_ms.append((time.perf_counter() - t) * 1000)
    return {
        "p95_ms": round(p95(lims_ms), 2),
        "raw_p95_ms": round(p95(raw_ms), 2),
        "statements": max(counts),
        "n": len(paths),
    }


# key, what, who asks (a signed-in page user, or "api"/"api_client" by bearer token), path, the
# target in ms. {lot}, {quarantine}, {sample}... are drawn afresh for every request.
PAGES = (
    ("qa_home", "QA home: what needs my attention", "qa", "/home", QUALITY_MS),
    ("tech_home", "technician home", "tech", "/home", QUALITY_MS),
    ("lot_released", "lot page, a released lot", "qa", "/lots/{lot}", QUALITY_MS),
    ("lot_quarantine", "lot page, a lot in quarantine", "qa", "/lots/{quarantine}", QUALITY_MS),
    ("lot_api", "GET /api/lots/<lot>", "api", "/api/lots/{lot}", QUALITY_MS),
    ("client_home", "client home", "client", "/home", PAGE_MS),
    ("samples", "samples list", "qa", "/samples", PAGE_MS),
    ("samples_state", "samples list, in use", "qa", "/samples?state=in_use", PAGE_MS),
    ("samples_client", "samples list, a client's", "client", "/samples", PAGE_MS),
    ("sample", "sample page", "qa", "/samples/{sample}", PAGE_MS),
    ("lots", "lots list", "qa", "/lots", PAGE_MS),
    ("lots_quarantine", "lots list, in quarantine", "qa", "/lots?state=quarantine", PAGE_MS),
    ("lot_trail", "lot audit-trail review", "qa", "/lots/{lot}/audit-trail", PAGE_MS),
    ("audit", "audit search, newest", "qa", "/audit", PAGE_MS),
    ("audit_lot", "audit search, one lot", "qa", "/audit?lot={lot}", PAGE_MS),
    ("deviations", "deviations list", "qa", "/deviations", PAGE_MS),
    ("deviation", "deviation page", "qa", "/deviations/{deviation}", PAGE_MS),
    ("specs", "specifications", "qa", "/quality/specs", PAGE_MS),
    ("oos_list", "OOS list", "qa", "/quality/oos", PAGE_MS),
    ("print_queue", "print queue", "tech", "/print-queue", PAGE_MS),
    ("print_jobs", "print jobs list", "tech", "/print-jobs", PAGE_MS),
    ("label", "label preview and print", "tech", "/labels/preview/{sample}", PAGE_MS),
    ("episodes", "treatment episodes", "qa", "/episodes", PAGE_MS),
    ("rooms", "rooms", "qa", "/rooms", PAGE_MS),
    ("bookings", "a client's bookings calendar", "client", "/bookings/calendar", PAGE_MS),
    ("storage", "storage tree", "tech", "/storage", PAGE_MS),
    ("box", "a box", "tech", "/storage/{box}", PAGE_MS),
    ("find", "find a barcode", "tech", "/find?q={sample}", PAGE_MS),
    ("api_samples", "GET /api/samples", "api", "/api/samples", PAGE_MS),
    ("api_samples_lot", "GET /api/samples?lot=", "api", "/api/samples?lot={lot}", PAGE_MS),
    ("api_sample", "GET /api/samples/<barcode>", "api", "/api/samples/{sample}", PAGE_MS),
    ("api_history", "GET /api/samples/<b>/history", "api", "/api/samples/{sample}/history", 100),
    ("api_lots", "GET /api/lots", "api", "/api/lots", PAGE_MS),
    ("api_audit", "GET /api/audit", "api", "/api/audit", PAGE_MS),
    ("api_audit_lot", "GET /api/audit?lot=", "api", "/api/audit?lot={lot}", PAGE_MS),
    ("api_client_audit", "GET /api/audit as a client", "api_client", "/api/audit", PAGE_MS),
    ("api_print_jobs", "GET /api/print-jobs", "api", "/api/print-jobs", PAGE_MS),
    ("api_lots_state", "GET /api/lots?state=quarantine", "api", "/api/lots?state=quarantine", 100),
    ("api_episodes", "GET /api/episodes", "api", "/api/episodes", PAGE_MS),
    ("api_bookings", "GET /api/bookings", "api", "/api/bookings", PAGE_MS),
    ("api_deviations", "GET /api/deviations", "api", "/api/deviations", PAGE_MS),
    ("api_scans", "GET /api/scans?station=", "api", "/api/scans?station=BENCH-B1", PAGE_MS),
    ("api_locations", "GET /api/locations", "api", "/api/locations", PAGE_MS),
)


def pools(url: str, rng: random.Random) -> dict[str, list[str]]:
    """Return what the page paths draw from: lot numbers by state, barcodes, boxes, deviations."""
    engine = make_engine(url)
    with engine.connect() as conn:
        top = conn.execute(text("SELECT max(id) FROM sample")).scalar()
        ids = [rng.randint(1, top) for _ in range(200)]
        barcodes = conn.execute(select(Sample.barcode).where(Sample.id.in_(ids)))
        out = {
            "sample": [b for (b,) in barcodes],
            "box": [c for (c,) in conn.execute(text("SELECT code FROM location WHERE kind='box'"))],
            "deviation": [n for (n,) in conn.execute(text("SELECT number FROM deviation"))],
        }
        lots = conn.execute(select(VectorLot.lot_number, VectorLot.state)).all()
    engine.dispose()
    out["lot"] = [n for n, state in lots if state == "released"]
    out["quarantine"] = [n for n, state in lots if state == "quarantine"]
    return out


def measure(url: str, rounds: int, seed: int, only: str) -> dict:
    """Time every page of PAGES (or those whose key contains only); return the figures."""
    rng = random.Random(seed)
    drawn = pools(url, rng)
    app = create_app(
        {"DATABASE_URL": url, "SECRET_KEY": "bench", "TESTING": True, "LOAD_DEMO": False}
    )
    gc.freeze()  # as app.py does for the served app (see app.settle)
    engine = app.extensions["lims"]["engine"]
    cap = DriverCapture(engine)
    raw = raw_connection(url)
    tokens = {}
    with new_session(engine) as db:
        for who, username in (("api", "qa1"), ("api_client", "client1")):
            tokens[who], _ = users.create_token(db, username=username, actor=users.system_actor(db))
        db.commit()
    clients = {
        "qa": signed_in(app, "qa1"),
        "tech": signed_in(app, "tech01"),
        "client": signed_in(app, "client1"),
    }
    out: dict[str, Any] = {}
    for key, _what, who, path, _target in PAGES:
        if only and only not in key:
            continue
        paths = [
            path.format(**{k: rng.choice(v) for k, v in drawn.items() if v})
            for _ in range(rounds * 10)
        ]
        client = clients.get(who) or app.test_client()
        kw = {"headers": {"Authorization": f"Bearer {tokens[who]}"}} if who in tokens else {}
        out[key] = time_requests(app, raw, cap, client, paths, **kw)
    raw.close()
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> None:
    """Build the centre, time its pages and lists, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--database-url", help="where to build it (--tiny: a temporary SQLite file)")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--lots", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=10, help="x10 requests per page")
    ap.add_argument("--only", default="", help="time only the pages whose key contains this")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--drop", action="store_true", help="drop the PostgreSQL schema afterwards")
    ap.add_argument(
        "--no-build", action="store_true", help="time the centre built at --database-url before"
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parse_args(ap, TINY, argv)
    with database_url(ap, args) as url:
        try:
            t0 = time.perf_counter()
            if args.no_build:
                seeded = counted(url)
            else:
                with contextlib.redirect_stdout(sys.stderr):  # stdout carries the figures
                    gen_audit.generate(
                        url, args.events, args.seed, samples=args.samples, lots=args.lots
                    )
                    seeded = seed_quality(url, args.seed)
            built_s = time.perf_counter() - t0
            pages = measure(url, args.rounds, args.seed, args.only)
        finally:
            if args.drop:
                drop_schema(url)
    out = {
        "engine": "sqlite" if url.startswith("sqlite") else "postgresql",
        "events": seeded["events"],
        "lots": seeded["lots"],
        "samples": seeded["samples"],
        "results": seeded["results"],
        "oos": seeded["oos"],
        "deviations": seeded["deviations"],
        "built_s": round(built_s, 1),
        "pages": [
            {"key": key, "what": what, "who": who, "target_ms": target, **pages[key]}
            for key, what, who, _path, target in PAGES
            if key in pages
        ],
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{out['engine']}: {out['lots']:,} lots, {out['samples']:,} samples, "
        f"{out['events']:,} events, {out['results']:,} results (built in {built_s:.0f} s)"
    )
    print(f"{'page':38} {'p95 ms':>8} {'bare SQL':>9} {'stmts':>6} {'target':>7}  met")
    for r in out["pages"]:
        met = "yes" if r["p95_ms"] <= r["target_ms"] else "NO"
        print(
            f"{r['what']:38} {r['p95_ms']:8.2f} {r['raw_p95_ms']:9.2f} {r['statements']:6d} "
            f"{'<= ' + format(r['target_ms'], 'g'):>7}  {met}"
        )


if __name__ == "__main__":
    main()
