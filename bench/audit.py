"""Measure the QA audit paths on a large trail, each next to the same SQL run by the bare driver.

Rows, targets and example commands: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import random
import statistics
import sys
import time
import tracemalloc
from datetime import timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import event, func  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlmodel import select  # noqa: E402

from bench import gen_audit  # noqa: E402
from bench._common import database_url, parse_args  # noqa: E402
from lims import audit, reports, samples  # noqa: E402
from lims.accounts.users import Actor, actor_for  # noqa: E402
from lims.db import make_engine, new_session  # noqa: E402
from lims.models import AuditEvent, Location, Organisation, Sample, User, VectorLot  # noqa: E402
from lims.quality import trail  # noqa: E402

# --tiny: a fresh trail of 2,000 events, a few histories and pages.
TINY = {"generate": 2000, "samples": 10, "filter_rounds": 2}
TARGETS = {
    "history_ms": 5.0,
    "page_ms": 25.0,
    "lot_trail_ms": 25.0,
    "csv_rows_s": 50_000,
    "verify_s": 200_000,
}


class Capture:
    """Record the SQL statements (and parameters) the engine sends, to replay them raw."""

    def __init__(self, engine: Engine) -> None:
        self.on = False
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._hook)

    def _hook(self, conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if self.on:
            self.statements.append((statement, parameters))

    def grab(self, fn):  # noqa: ANN001, ANN201
        self.statements = []
        self.on = True
        try:
            fn()
        finally:
            self.on = False
        return list(self.statements)


def raw_connection(url: str):  # noqa: ANN201
    """Open a bare driver connection to the same database."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        import sqlite3

        return sqlite3.connect(u.database)
    import psycopg

    schema = (u.query or {}).get("schema")
    return psycopg.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        user=u.username,
        dbname=u.database,
        options=f"-csearch_path={schema}" if schema else "",
    )


def replay(raw, statements) -> None:  # noqa: ANN001
    cur = raw.cursor()
    for sql, params in statements:
        cur.execute(sql, params)
        cur.fetchall()
    cur.close()


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]


def timed(fn, n: int = 1) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def explain_full_scans(raw, dialect: str, statements) -> list[str]:  # noqa: ANN001
    """Return the statements whose plan reads the audit table without an index."""
    bad = []
    cur = raw.cursor()
    for sql, params in statements:
        if "audit_event" not in sql:
            continue
        if dialect == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = " | ".join(r[3] for r in cur.fetchall())
            if "SCAN audit_event" in plan and "WHERE" in sql:
                bad.append(f"{plan}: {sql[-160:]}")
        else:
            cur.execute("EXPLAIN " + sql, params)
            plan = " | ".join(r[0] for r in cur.fetchall())
            if "Seq Scan on audit_event" in plan:
                bad.append(f"{plan}: {sql[-160:]}")
    cur.close()
    return bad


def page_filters(db, rng: random.Random, rounds: int = 25) -> list[dict[str, Any]]:  # noqa: ANN001
    """Return `rounds` mixes of QA filters over the trail (filters_for keyword arguments)."""
    first, last = (
        db.connection().execute(select(func.min(AuditEvent.ts), func.max(AuditEvent.ts))).one()
    )
    span = (last - first).total_seconds()
    actors = [u for u in db.exec(select(User.username)).all() if u != "system"]
    boxes = db.exec(select(Location.code).where(Location.kind == "box")).all()
    lots = db.exec(select(VectorLot.lot_number)).all()
    n_samples = db.connection().execute(select(func.max(Sample.id))).scalar()
    out: list[dict[str, Any]] = []
    for _ in range(rounds):
        t0 = first + timedelta(seconds=rng.random() * span * 0.9)
        week = t0 + timedelta(days=7)
        sample = db.get(Sample, rng.randint(1, n_samples)).barcode
        out += [
            {"by": rng.choice(actors)},
            {"action": rng.choice(["sample.store", "sample.check_out", "lot.release"])},
            {"station": rng.choice(["BENCH-QC", "BENCH-B2", "BENCH-STORE"])},
            {"location": rng.choice(boxes)},
            {"lot": rng.choice(lots)},
            {"sample": sample},
            {"since": t0},
            {"since": t0, "until": week},
            {"by": rng.choice(actors), "since": t0, "until": week},
            {"action": "sample.receive", "since": t0},
            {"until": t0},
        ]
    return out


def bench_history(db, cap, raw, actor: Actor, rng: random.Random, n: int) -> dict:  # noqa: ANN001
    n_samples = db.connection().execute(select(func.max(Sample.id))).scalar()
    picks = [db.get(Sample, rng.randint(1, n_samples)).barcode for _ in range(n)]
    db.expunge_all()
    lims_ms, raw_ms, stmts = [], [], []

    for b in picks[:20]:  # warm the caches the same way for both
        samples.history(db, samples.get_sample(db, b, actor))
    for b in picks:
        st = cap.grab(lambda b=b: samples.history(db, samples.get_sample(db, b, actor)))
        stmts += st
        lims_ms += timed(lambda b=b: samples.history(db, samples.get_sample(db, b, actor)))
        raw_ms += timed(lambda st=st: replay(raw, st))
        db.expunge_all()
    return {"lims_p95": p95(lims_ms), "raw_p95": p95(raw_ms), "statements": stmts}


def bench_pages(db, cap, raw, actor: Actor, rng: random.Random, rounds: int) -> dict:  # noqa: ANN001
    lims_ms, raw_ms, stmts = [], [], []

    def page(f: dict, cursor: int | None) -> list:
        rows = audit.query(db, after_seq=cursor, limit=100, **reports.filters_for(db, actor, **f))
        [audit.event_dict(e) for e in rows]
        return rows

    for f in page_filters(db, rng, rounds):
        cursor = None
        for _ in range(2):  # the first page and the next one, by cursor
            holder: list = []
            st = cap.grab(lambda f=f, c=cursor, h=holder: h.append(page(f, c)))
            stmts += st
            lims_ms += timed(lambda f=f, c=cursor: page(f, c))
            raw_ms += timed(lambda st=st: replay(raw, st))
            rows = holder[0]
            db.expunge_all()
            if len(rows) < 100:
                break
            cursor = rows[-1].seq
    return {
        "lims_p95": p95(lims_ms),
        "raw_p95": p95(raw_ms),
        "pages": len(lims_ms),
        "statements": stmts,
    }


def bench_sorted_pages(db, cap, raw, actor: Actor, rng: random.Random, rounds: int) -> dict:  # noqa: ANN001
    """Time the audit list sorted by who, action, record or where: a first and a next page."""
    lims_ms, raw_ms, stmts = [], [], []
    mixes = [{}] + [f for f in page_filters(db, rng, rounds) if "by" in f or "action" in f][:6]

    def page(sort: str, down: bool, f: dict, edge: int | None) -> list:
        rows = audit.query_sorted(
            db,
            sort=sort,
            down=down,
            edge_seq=edge,
            limit=51,
            **reports.filters_for(db, actor, **f),
        )
        [audit.event_dict(e) for e in rows]
        return rows

    for f in mixes:
        for sort in audit.AUDIT_SORTS:
            for down in (False, True):
                edge = None
                for _ in range(2):  # the first page and the next one
                    holder: list = []
                    args = (sort, down, f, edge)
                    st = cap.grab(lambda a=args, h=holder: h.append(page(*a)))
                    stmts += st
                    lims_ms += timed(lambda a=args: page(*a))
                    raw_ms += timed(lambda st=st: replay(raw, st))
                    rows = holder[0]
                    db.expunge_all()
                    if len(rows) < 51:
                        break
                    edge = rows[-2].seq
    return {"lims_p95": p95(lims_ms), "raw_p95": p95(raw_ms), "statements": stmts}


def bench_lot_trail(db, cap, raw, actor: Actor, rng: random.Random, n: int) -> dict:  # noqa: ANN001
    """Time the newest page of a lot's lineage trail with its review status (QA's review page)."""
    lots = db.exec(select(VectorLot)).all()
    picks = [rng.choice(lots) for _ in range(n)]
    lims_ms, raw_ms, stmts = [], [], []

    def page(lot: VectorLot) -> dict:
        return trail.lineage_page(db, lot, actor, limit=100)

    for lot in picks[:10]:  # warm the caches the same way for both
        page(lot)
    for lot in picks:
        st = cap.grab(lambda lot=lot: page(lot))
        stmts += st
        lims_ms += timed(lambda lot=lot: page(lot))
        raw_ms += timed(lambda st=st: replay(raw, st))
    return {"lims_p95": p95(lims_ms), "raw_p95": p95(raw_ms), "statements": stmts}


def bench_csv(db, cap, raw, org_id: int) -> dict:  # noqa: ANN001
    filters = {"org_id": org_id}  # what filters_for gives a client viewer of that organisation

    def run() -> int:
        n = 0
        for _text, k in reports.csv_batches(db, filters):
            n += k
        return n

    t = time.perf_counter()
    rows = run()
    lims_s = time.perf_counter() - t
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    run()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    # Raw: the driver reads the same columns in keyset batches and the csv module formats them.
    mark = "?" if raw.__class__.__module__.startswith("sqlite3") else "%s"
    cols = ", ".join(f'"{c}"' for c in reports.CSV_COLUMNS)
    sql = (
        f"SELECT {cols} FROM audit_event WHERE org_id = {mark} AND seq > {mark} "
        f"ORDER BY seq LIMIT 5000"
    )
    t = time.perf_counter()
    cur, after, n = raw.cursor(), 0, 0
    buf = io.StringIO()
    w = csv.writer(buf)
    while True:
        cur.execute(sql, (org_id, after))
        batch = cur.fetchall()
        if not batch:
            break
        buf.seek(0)
        buf.truncate()
        w.writerows(batch)
        n += len(batch)
        after = batch[-1][0]
    raw_s = time.perf_counter() - t
    return {
        "rows": rows,
        "lims_rows_s": rows / lims_s,
        "raw_rows_s": n / raw_s,
        "peak_mb": peak / 1e6,
    }


def bench_verify(db, raw) -> dict:  # noqa: ANN001
    t = time.perf_counter()
    result = audit.verify(db)
    lims_s = time.perf_counter() - t
    mark = "?" if raw.__class__.__module__.startswith("sqlite3") else "%s"
    cols = ", ".join(f'"{c}"' for c in (*audit.HASHED_FIELDS, "hash"))
    sql = f"SELECT {cols} FROM audit_event WHERE seq > {mark} ORDER BY seq LIMIT 10000"
    t = time.perf_counter()
    cur, after, n = raw.cursor(), 0, 0
    while True:
        cur.execute(sql, (after,))
        batch = cur.fetchall()
        if not batch:
            break
        n += len(batch)
        after = batch[-1][0]
    raw_s = time.perf_counter() - t
    return {
        "ok": result.ok,
        "events": result.events,
        "lims_events_s": result.events / lims_s,
        "raw_events_s": n / raw_s,
    }


def _vs_raw(out: dict, name: str, key: str, raw_key: str, target: str, met: bool) -> tuple:
    """One line of the table: lims' figure, the raw one and their ratio."""
    return (name, out[key], out[raw_key], out[key] / max(out[raw_key], 1e-9), target, met)


def print_report(out: dict[str, Any], scans: list[str]) -> None:
    """Print the figures as a table against their targets."""
    rows = [
        _vs_raw(
            out,
            "sample history p95 (ms)",
            "history_p95_ms",
            "history_raw_p95_ms",
            "<= 5",
            out["history_p95_ms"] <= TARGETS["history_ms"],
        ),
        _vs_raw(
            out,
            "QA page of 100 p95 (ms)",
            "page_p95_ms",
            "page_raw_p95_ms",
            "<= 25",
            out["page_p95_ms"] <= TARGETS["page_ms"],
        ),
        _vs_raw(
            out,
            "lot trail page p95 (ms)",
            "lot_trail_p95_ms",
            "lot_trail_raw_p95_ms",
            "<= 25",
            out["lot_trail_p95_ms"] <= TARGETS["lot_trail_ms"],
        ),
        _vs_raw(
            out,
            "page sorted by column p95",
            "sorted_page_p95_ms",
            "sorted_page_raw_p95_ms",
            "<= 250",
            out["sorted_page_p95_ms"] <= 250,
        ),
        _vs_raw(
            out,
            "CSV export (rows/s)",
            "csv_rows_s",
            "csv_raw_rows_s",
            ">= 50000",
            out["csv_rows_s"] >= TARGETS["csv_rows_s"],
        ),
        ("CSV peak memory (MB)", out["csv_peak_mb"], "-", "-", "<= 50", out["csv_peak_mb"] <= 50),
        _vs_raw(
            out,
            "chain verify (events/s)",
            "verify_events_s",
            "verify_raw_read_events_s",
            ">= 200000",
            out["verify_ok"] and out["verify_events_s"] >= TARGETS["verify_s"],
        ),
        ("statements without index", out["full_scans"], "-", "-", "0", out["full_scans"] == 0),
    ]
    print(
        f"{out['engine']}: {out['events']:,} events; {out['pages']} QA pages; "
        f"{out['csv_rows']:,} CSV rows; verify ok={out['verify_ok']}"
    )
    print(f"{'measure':28} {'lims':>12} {'raw SQL':>12} {'lims/raw':>9} {'target':>10}  met")
    for name, lims_v, raw_v, ratio, target, met in rows:
        ratio_s = f"{ratio:9.2f}" if isinstance(ratio, float) else f"{ratio:>9}"
        met_s = "yes" if met else "NO"
        print(f"{name:28} {lims_v!s:>12} {raw_v!s:>12} {ratio_s} {target:>10}  {met_s}")
    for s in scans[:5]:
        print("  full scan:", s)


def measure(url: str, samples_n: int, filter_rounds: int, seed: int) -> dict[str, Any]:
    """Measure every path on the trail at url; return the figures."""
    engine = make_engine(url)
    dialect = engine.dialect.name
    cap = Capture(engine)
    raw = raw_connection(url)
    rng = random.Random(seed)
    out: dict[str, Any] = {"engine": dialect}
    with new_session(engine) as db:
        out["events"] = audit.count_events(db)
        qa = actor_for(db, db.exec(select(User).where(User.username == "qa1")).one())
        client_org = db.exec(
            select(Organisation).where(Organisation.kind == "client").order_by(Organisation.id)
        ).first()
        history = bench_history(db, cap, raw, qa, rng, samples_n)
        pages = bench_pages(db, cap, raw, qa, rng, filter_rounds)
        lot_trail = bench_lot_trail(db, cap, raw, qa, rng, samples_n)
        sorted_pages = bench_sorted_pages(db, cap, raw, qa, rng, filter_rounds)
        scans = explain_full_scans(
            raw,
            dialect,
            history["statements"] + pages["statements"] + lot_trail["statements"],
        )
        db.rollback()
        exported = bench_csv(db, cap, raw, client_org.id)
        db.rollback()
        verified = bench_verify(db, raw)
    raw.close()
    engine.dispose()
    out.update(
        history_p95_ms=round(history["lims_p95"], 2),
        history_raw_p95_ms=round(history["raw_p95"], 2),
        page_p95_ms=round(pages["lims_p95"], 2),
        page_raw_p95_ms=round(pages["raw_p95"], 2),
        pages=pages["pages"],
        lot_trail_p95_ms=round(lot_trail["lims_p95"], 2),
        lot_trail_raw_p95_ms=round(lot_trail["raw_p95"], 2),
        sorted_page_p95_ms=round(sorted_pages["lims_p95"], 2),
        sorted_page_raw_p95_ms=round(sorted_pages["raw_p95"], 2),
        csv_rows=exported["rows"],
        csv_rows_s=round(exported["lims_rows_s"]),
        csv_raw_rows_s=round(exported["raw_rows_s"]),
        csv_peak_mb=round(exported["peak_mb"], 1),
        verify_ok=verified["ok"],
        verify_events_s=round(verified["lims_events_s"]),
        verify_raw_read_events_s=round(verified["raw_events_s"]),
        full_scans=len(scans),
        full_scan_statements=scans[:5],
    )
    return out


def drop_schema(url: str) -> None:
    """Drop the PostgreSQL schema named by url's ?schema= (nothing on SQLite)."""
    u = make_url(url)
    if u.get_backend_name() != "postgresql":
        return
    admin = make_engine(u.difference_update_query(["schema"]).render_as_string(False))
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{u.query["schema"]}" CASCADE')
    admin.dispose()


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--database-url", help="the trail to measure (--tiny: a temporary SQLite file)")
    ap.add_argument("--generate", type=int, default=0, help="generate N events first")
    ap.add_argument("--samples", type=int, default=300, help="sample histories to time")
    ap.add_argument("--filter-rounds", type=int, default=25, help="mixes of QA page filters")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--drop", action="store_true", help="drop the PostgreSQL schema afterwards")
    ap.add_argument("--json", action="store_true")
    args = parse_args(ap, TINY, argv)
    with database_url(ap, args) as url:
        try:
            if args.generate:
                with contextlib.redirect_stdout(sys.stderr):  # stdout carries the figures
                    gen_audit.main(["--events", str(args.generate), "--database-url", url])
            out = measure(url, args.samples, args.filter_rounds, args.seed)
        finally:
            if args.drop:
                drop_schema(url)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        print_report(out, out["full_scan_statements"])


if __name__ == "__main__":
    main()
