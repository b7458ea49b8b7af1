"""Custody transitions per second (domain call, test client, HTTP) next to raw SQL, same tables.

Method and targets: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import itertools
import json
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    clone_database,
    engines_to_run,
    median,
    parse_args,
    pg_create_database,
    print_table,
    timed,
    write_json,
)
from bench._server import make_samples, make_token, session_on  # noqa: E402
from lims import create_app, samples  # noqa: E402
from lims.accounts import users  # noqa: E402
from lims.db import new_session  # noqa: E402

TINY = {"n": 10, "rounds": 1, "rack": 8, "rack_repeats": 1}  # --tiny

# The limit: the database doing just the writes a transition needs, on the app's own tables
# (same indexes, same pragmas): one UPDATE of the sample, one INSERT of its audit row, COMMIT.
_RAW_UPDATE = (
    "UPDATE sample SET state = {p}, version = version + 1 WHERE id = {p} AND version = {p}"
)
_RAW_INSERT = (
    "INSERT INTO audit_event (seq, ts, actor, action, entity_type, entity_id, org_id, lot_id, "
    "location_id, before, after, reason, station, device, signature_id, corrects_seq, "
    "prev_hash, hash) VALUES ({p}, {p}, 'tech1', 'sample.check_out', 'sample', {p}, 1, NULL, "
    "NULL, {p}, {p}, NULL, NULL, NULL, NULL, NULL, {p}, {p})"
)
_SNAPSHOT = (
    '{"condition":"ok","custodian":"tech1","freeze_thaw_count":0,"location":null,'
    '"position":null,"state":"in_use","unit":"mL","version":7,"volume":1.0}'
)


def _raw_rows(n: int, first_seq: int, sample_id: int, version: int):
    for i in range(n):
        state = "in_use" if i % 2 == 0 else "available"
        yield (
            (state, sample_id, version + i),
            (
                first_seq + i,
                f"2026-01-01 00:00:{i % 60:02d}.000000",
                f"S26-{sample_id:06d}",
                _SNAPSHOT,
                _SNAPSHOT,
                "0" * 64,
                "f" * 64,
            ),
        )


def _sqlite(path: Path) -> sqlite3.Connection:
    """Open the raw sqlite3 connection with the app's pragmas (we issue BEGIN ourselves)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    return con


def _pg(url: str):  # noqa: ANN202
    """Open a raw psycopg connection to the database of url."""
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))


def _timed(con, n: int, one, begin: str | None) -> float:  # noqa: ANN001
    """Run one(i) for i in range(n), one transaction each; return transactions per second."""
    i = itertools.count()

    def transaction() -> None:
        if begin:
            con.execute(begin)
        one(next(i))
        if begin:
            con.execute("COMMIT")
        else:
            con.commit()

    try:
        return timed(transaction, n)
    finally:
        con.close()


def _raw_limit(con, p: str, n: int, sample_id: int, begin: str | None) -> float:  # noqa: ANN001
    seq = con.execute("SELECT MAX(seq) FROM audit_event").fetchone()[0] + 1_000_000
    version = con.execute(f"SELECT version FROM sample WHERE id = {p}", (sample_id,)).fetchone()[0]
    con.commit()
    upd, ins = _RAW_UPDATE.format(p=p), _RAW_INSERT.format(p=p)
    rows = list(_raw_rows(n, seq, sample_id, version))

    def one(i: int) -> None:
        con.execute(upd, rows[i][0])
        con.execute(ins, rows[i][1])

    return _timed(con, n, one, begin)


def raw_sqlite_rate(path: Path, n: int, sample_id: int) -> float:
    """The limit on SQLite: sqlite3 with the app's pragmas and BEGIN IMMEDIATE."""
    return _raw_limit(_sqlite(path), "?", n, sample_id, "BEGIN IMMEDIATE")


def raw_pg_rate(url: str, n: int, sample_id: int) -> float:
    """The limit on PostgreSQL: psycopg with the same statements."""
    return _raw_limit(_pg(url), "%s", n, sample_id, None)


# For the reader, not a target: the same database doing every statement a custody move must run
# (read the sample, read and advance the chain head, update the sample's custody columns, insert
# the event), still without any of the application's Python. It shows how much of the limit a
# move can reach at best.
_MOVE_READ = "SELECT id, version, state FROM sample WHERE barcode = {p}"
_MOVE_HEAD = "SELECT seq, hash, ts FROM audit_head WHERE id = 1"
_MOVE_UPDATE = (
    "UPDATE sample SET state = {p}, version = {p}, updated_at = {p}, location_id = NULL, "
    "position = NULL, custodian_id = NULL WHERE id = {p} AND version = {p}"
)
_MOVE_HEAD_UPDATE = "UPDATE audit_head SET seq = {p}, hash = {p}, ts = {p} WHERE id = 1"


def _raw_move(con, p: str, barcode: str, i: int, ts: object, lock: str = "") -> None:  # noqa: ANN001
    sid, version, _state = con.execute(_MOVE_READ.format(p=p), (barcode,)).fetchone()
    seq, prev, _ts = con.execute(_MOVE_HEAD + lock).fetchone()
    state = "in_use" if i % 2 == 0 else "available"
    con.execute(_MOVE_UPDATE.format(p=p), (state, version + 1, ts, sid, version))
    h = hashlib.sha256(f"{seq + 1}{prev}{_SNAPSHOT}".encode()).hexdigest()
    con.execute(_RAW_INSERT.format(p=p), (seq + 1, ts, barcode, _SNAPSHOT, _SNAPSHOT, prev, h))
    con.execute(_MOVE_HEAD_UPDATE.format(p=p), (seq + 1, h, ts))


def _raw_moves(con, p: str, n: int, sample_id: int, ts: object, begin: str | None) -> float:  # noqa: ANN001
    barcode = con.execute(f"SELECT barcode FROM sample WHERE id = {p}", (sample_id,)).fetchone()[0]
    con.commit()
    # On PostgreSQL the head row is locked as the app does; SQLite's BEGIN IMMEDIATE does that.
    lock = "" if begin else " FOR UPDATE"
    return _timed(con, n, lambda i: _raw_move(con, p, barcode, i, ts, lock), begin)


def raw_sqlite_move_rate(path: Path, n: int, sample_id: int) -> float:
    """Every statement of a move, in raw sqlite3 (same pragmas, BEGIN IMMEDIATE)."""
    return _raw_moves(
        _sqlite(path), "?", n, sample_id, "2026-01-01 00:00:00.000000", "BEGIN IMMEDIATE"
    )


def raw_pg_move_rate(url: str, n: int, sample_id: int) -> float:
    """Every statement of a move, in raw psycopg."""
    ts = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    return _raw_moves(_pg(url), "%s", n, sample_id, ts, None)


def _available_sample(app) -> str:  # noqa: ANN001
    """Register a sample and bring it to 'available' (through the domain)."""
    [(barcode, _)] = make_samples(app.config["DATABASE_URL"], 1)
    return barcode


def _cycle_body(i: int) -> dict:
    if i % 2 == 0:
        return {"action": "check_out", "custodian": "tech1"}
    return {"action": "check_in", "location": "RM-B1"}  # back onto the bench (a room: no box)


def domain_rate(app, n: int) -> float:
    """Transitions through lims.samples.transition, one transaction each (no HTTP)."""
    barcode = _available_sample(app)
    engine = app.extensions["lims"]["engine"]
    with new_session(engine) as db:
        tech = users.actor_for(
            db, db.exec(users.select(users.User).where(users.User.username == "tech1")).one()
        )
    t0 = time.perf_counter()
    for i in range(n):
        with new_session(engine) as db:
            samples.transition(
                db, barcode=barcode, actor=tech, data=samples.TransitionIn(**_cycle_body(i))
            )
            db.commit()
    return n / (time.perf_counter() - t0)


def _token(app, name: str = "tech1") -> str:  # noqa: ANN001
    return make_token(app.config["DATABASE_URL"], name)


def test_client_rate(app, n: int) -> float:
    """Transitions through the Flask test client (routing, auth, validation, JSON)."""
    barcode = _available_sample(app)
    client = app.test_client()
    h = {"Authorization": f"Bearer {_token(app)}"}
    t0 = time.perf_counter()
    for i in range(n):
        r = client.post(f"/api/samples/{barcode}/transitions", json=_cycle_body(i), headers=h)
        assert r.status_code == 200, r.json
    return n / (time.perf_counter() - t0)


def http_rate(app, n: int) -> float:
    """Transitions over real HTTP on loopback (werkzeug threaded server, keep-alive client)."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no log line per request
    barcode = _available_sample(app)
    token = _token(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        t0 = time.perf_counter()
        for i in range(n):
            conn.request(
                "POST",
                f"/api/samples/{barcode}/transitions",
                body=json.dumps(_cycle_body(i)),
                headers=h,
            )
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
        rate = n / (time.perf_counter() - t0)
        conn.close()
    finally:
        server.shutdown()
    return rate


def rack_receive_ms(app, size: int = 96, repeats: int = 3) -> float:
    """Milliseconds to receive a rack of `size` registered tubes in one request (best of)."""
    client = app.test_client()
    h = {"Authorization": f"Bearer {_token(app)}"}
    best = float("inf")
    for _ in range(repeats):
        codes = []
        with new_session(app.extensions["lims"]["engine"]) as db:
            tech = users.actor_for(
                db, db.exec(users.select(users.User).where(users.User.username == "tech1")).one()
            )
            for _ in range(size):
                codes.append(
                    samples.register_sample(
                        db,
                        actor=tech,
                        data=samples.SampleCreate(sample_type="PBMC", project="CART-001"),
                    ).barcode
                )
            db.commit()
        # A 9x9 box holds 81, so a rack of 96 is received without box positions.
        body = {
            "action": "receive",
            "condition": "rack on dry ice",
            "samples": [{"barcode": c} for c in codes],
        }
        t0 = time.perf_counter()
        r = client.post("/api/transitions", json=body, headers=h)
        best = min(best, (time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.json
    return best


def _raw_target(url: str) -> int:
    """Put a sample for the raw limit to update in the database at url; return its id."""
    [(barcode, _)] = make_samples(url, 1)
    with session_on(url) as db:
        return db.exec(
            samples.select(samples.Sample.id).where(samples.Sample.barcode == barcode)
        ).one()


def run_engine(engine: str, n: int, rounds: int = 5, rack: int = 96, rack_repeats: int = 3) -> dict:
    """Measure one engine; return the row for the table.

    The disk's fsync time moves by a factor of two from one second to the next here, so the
    limit and the app are measured in alternating rounds (n / rounds transitions each) and the
    table gives the median of each rate and the median of the per-round ratios.
    """
    tmp = Path(tempfile.mkdtemp(prefix="lims-bench-"))
    drops = [lambda: shutil.rmtree(tmp, ignore_errors=True)]
    if engine == "sqlite":
        url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    else:
        url, drop = pg_create_database()
        drops.append(drop)
    per = max(1, n // rounds)
    runs: dict[str, list[float]] = {k: [] for k in ("limit", "floor", "dom", "tc")}
    try:
        app = create_app({"DATABASE_URL": url, "LOAD_DEMO": True, "SECRET_KEY": "bench"})
        # The limit runs on a copy of the same demo centre: the app's schema, none of its code.
        app.extensions["lims"]["engine"].dispose()
        raw_url, drop_raw = clone_database(url, tmp / "raw.sqlite3")
        drops.insert(0, drop_raw)
        sample_id = _raw_target(raw_url)
        for _ in range(rounds):
            if engine == "sqlite":
                runs["limit"].append(raw_sqlite_rate(tmp / "raw.sqlite3", per, sample_id))
                runs["floor"].append(raw_sqlite_move_rate(tmp / "raw.sqlite3", per, sample_id))
            else:
                runs["limit"].append(raw_pg_rate(raw_url, per, sample_id))
                runs["floor"].append(raw_pg_move_rate(raw_url, per, sample_id))
            runs["dom"].append(domain_rate(app, per))
            runs["tc"].append(test_client_rate(app, per))
        ht = http_rate(app, n)
        rack_ms = rack_receive_ms(app, rack, rack_repeats)
        app.extensions["lims"]["engine"].dispose()
    finally:
        for drop in drops:
            drop()
    med = {k: median(v) for k, v in runs.items()}

    def pct(key: str) -> float:
        return 100 * median(a / b for a, b in zip(runs[key], runs["limit"], strict=True))

    return {
        "engine": engine,
        "raw SQL limit /s": med["limit"],
        "raw, all of a move's statements /s": med["floor"],
        "that, % of limit": pct("floor"),
        "domain /s": med["dom"],
        "domain % of limit": pct("dom"),
        "test client /s": med["tc"],
        "test client % of limit": pct("tc"),
        "HTTP /s": ht,
        "HTTP % of limit": 100 * ht / med["limit"],
        "rack size": rack,
        "rack ms": rack_ms,
        "rounds": rounds,
        "targets": "domain >= 50%, test client >= 25%, rack <= 150 ms",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="transitions per measurement")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (median taken)")
    ap.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    ap.add_argument("--rack", type=int, default=96, help="tubes received in one request")
    ap.add_argument("--rack-repeats", type=int, default=3, help="best of this many racks")
    args = parse_args(ap, TINY)
    rows = []
    for eng in engines_to_run(args.engine):
        rows.append(run_engine(eng, args.n, args.rounds, args.rack, args.rack_repeats))
    cols = [
        "engine",
        "raw SQL limit /s",
        "raw, all of a move's statements /s",
        "that, % of limit",
        "domain /s",
        "domain % of limit",
        "test client /s",
        "test client % of limit",
        "HTTP /s",
        "HTTP % of limit",
        "rack size",
        "rack ms",
    ]
    print_table("Custody transitions (one commit each)", rows, cols)
    print("\nTargets: domain >= 50% of the raw limit, test client >= 25%, rack of 96 <= 150 ms.")
    write_json(args.json, {"custody": rows})


if __name__ == "__main__":
    main()
