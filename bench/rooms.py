"""Measure the room calendar and EM trend pages on years of bookings and monitoring results,
each next to the same SQL statements run by the bare driver in the same run.

Full size (the issue's): 20 rooms, 5 years of bookings (one every other day per room) and of
daily results at 3 sampling points per room. --tiny: 2 rooms, 60 days (a smoke run).

On PostgreSQL give the URL a schema of its own, which is made afresh (and --drop drops it):
    python bench/rooms.py --drop \
        --database-url "postgresql+psycopg://postgres@127.0.0.1/test?schema=bench_rooms"
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import event, insert, select  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

from bench._common import database_url, parse_args  # noqa: E402
from bench.audit import drop_schema, raw_connection  # noqa: E402
from lims import create_app  # noqa: E402
from lims.db import make_engine, new_session  # noqa: E402
from lims.models import Location, Organisation, User  # noqa: E402
from lims.rooms.models import Booking, EmResult, SamplingPoint  # noqa: E402

TINY = {"rooms": 2, "days": 60, "rounds": 10}
TARGET_MS = 50.0
# The demo's client organisations, whose week in every room the client calendar shows.
CLIENTS = ("helix-bio", "novacell")


class Capture:
    """Record the SQL statements (with parameters) the engine sends, to replay them raw."""

    def __init__(self, engine: Engine) -> None:
        self.on = False
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._hook)

    def _hook(self, conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if self.on:
            self.statements.append((statement, parameters))


def empty_schema(url: str) -> None:
    """Make the PostgreSQL schema named by url's ?schema= afresh (nothing on SQLite)."""
    u = make_url(url)
    if u.get_backend_name() != "postgresql":
        return
    schema = (u.query or {}).get("schema")
    if not schema:
        raise SystemExit("give the PostgreSQL URL a dedicated ?schema=NAME (it is re-created)")
    admin = make_engine(u.difference_update_query(["schema"]).render_as_string(False))
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    admin.dispose()


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]


def generate(engine: Engine, rooms: int, days: int, rng: random.Random) -> tuple[list, list]:
    """Write rooms, bookings and EM results in bulk; return the room codes and point codes."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    with new_session(engine) as db:
        site = db.exec(select(Location).where(Location.kind == "site")).first()[0]
        orgs = [o.id for o in db.exec(select(Organisation)).scalars()]
        user = db.exec(select(User).where(User.username == "admin")).scalars().one()
        codes, point_codes = [], []
        for i in range(rooms):
            code = f"RM-BENCH-{i:02d}"
            loc = Location(
                kind="room", code=code, name=f"Bench room {i}", grade="BC"[i % 2], parent_id=site.id
            )
            db.add(loc)
            db.flush()
            codes.append(code)
            booking_rows, n = [], 0
            t = start
            while t < end:
                length = timedelta(hours=rng.choice((8, 12, 24, 36)))
                booking_rows.append(
                    {
                        "number": f"BK-B{i:02d}-{n:05d}",
                        "room_id": loc.id,
                        "org_id": rng.choice(orgs),
                        "starts_at": t,
                        "ends_at": t + length,
                        "changeover_minutes": 240,
                        "state": "approved",
                        "requested_by_id": user.id,
                        "requested_at": t - timedelta(days=7),
                        "version": 1,
                    }
                )
                n += 1
                t += timedelta(days=2)
            db.connection().execute(insert(Booking), booking_rows)
            for k, kind in enumerate(("particles", "settle", "contact")):
                p = SamplingPoint(room_id=loc.id, code=f"EM-B{i:02d}-{k}", name=kind, kind=kind)
                db.add(p)
                db.flush()
                point_codes.append(p.code)
                measure = "particles_0_5" if kind == "particles" else "cfu"
                rows = [
                    {
                        "point_id": p.id,
                        "room_id": loc.id,
                        "taken_at": start + timedelta(days=d, hours=10),
                        "occupancy": "in_operation",
                        "measure": measure,
                        "value": rng.random() * (100_000 if kind == "particles" else 10),
                        "grade": loc.grade,
                        "level": "ok",
                        "recorded_by_id": user.id,
                        "recorded_at": start + timedelta(days=d, hours=11),
                    }
                    for d in range(days)
                ]
                db.connection().execute(insert(EmResult), rows)
        db.commit()
    if engine.dialect.name == "postgresql":
        # Autovacuum would have analysed tables this size long before anyone asked a page.
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    return codes, point_codes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--database-url", help="an empty database (default with --tiny: SQLite)")
    ap.add_argument("--rooms", type=int, default=20)
    ap.add_argument("--days", type=int, default=5 * 365)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--drop", action="store_true", help="drop the PostgreSQL schema afterwards")
    args = parse_args(ap, TINY, argv)
    with database_url(ap, args) as url:
        empty_schema(url)
        try:
            out = measure(url, args)
        finally:
            if args.drop:
                drop_schema(url)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Build the rooms' history at url and time the pages; return the figures."""
    rng = random.Random(19)
    app = create_app(
        {"DATABASE_URL": url, "TESTING": True, "LOAD_DEMO": True, "SECRET_KEY": "bench"}
    )
    engine = app.extensions["lims"]["engine"]
    t0 = time.perf_counter()
    rooms, points = generate(engine, args.rooms, args.days, rng)
    gen_s = time.perf_counter() - t0
    client = app.test_client()
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    client.post(
        "/login", data={"username": "admin", "password": "demo-only-lims", "csrf_token": token}
    )
    capture = Capture(engine)
    raw = raw_connection(url)
    first = datetime.now(UTC).date() - timedelta(days=args.days)
    out: dict[str, Any] = {
        "engine": make_url(url).get_backend_name(),
        "rooms": args.rooms,
        "days": args.days,
        "generate_s": round(gen_s, 2),
    }
    for name, path_of in (
        ("calendar", lambda: f"/rooms/{rng.choice(rooms)}?week={_day(first, args.days, rng)}"),
        (
            "client_calendar",
            lambda: (
                f"/bookings/calendar?org={rng.choice(CLIENTS)}&week={_day(first, args.days, rng)}"
            ),
        ),
        ("em_trend", lambda: f"/em/{rng.choice(points)}?days=90"),
    ):
        page_ms, raw_ms = [], []
        for _ in range(args.rounds):
            path = path_of()
            capture.statements, capture.on = [], True
            t = time.perf_counter()
            r = client.get(path)
            page_ms.append((time.perf_counter() - t) * 1000)
            capture.on = False
            assert r.status_code == 200, (path, r.status_code, r.text[:500])
            # The same statements, bare: reads only (the page's session bookkeeping aside).
            stmts = [s for s in capture.statements if s[0].lstrip().upper().startswith("SELECT")]
            cur = raw.cursor()
            t = time.perf_counter()
            for sql, params in stmts:
                cur.execute(sql, params)
                cur.fetchall()
            raw_ms.append((time.perf_counter() - t) * 1000)
            cur.close()
        out[f"{name}_p95_ms"] = round(p95(page_ms), 2)
        out[f"{name}_raw_p95_ms"] = round(p95(raw_ms), 3)
        out[f"{name}_statements"] = len(stmts)
    raw.close()
    engine.dispose()
    return out


def _day(first: date, days: int, rng: random.Random) -> str:
    return (first + timedelta(days=rng.randrange(max(days, 1)))).isoformat()


if __name__ == "__main__":
    raise SystemExit(main())
