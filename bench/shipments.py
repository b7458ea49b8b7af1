"""Measure a shipment's data-logger import (a 10,000-line CSV) and its page's read, next to the
bare driver: an executemany INSERT of the same rows, and the page's SQL statements replayed.

Figures are p95s of the domain calls (lims.therapy.logger: import_readings, and
shipment_dict + readings as the shipment page asks them); the share is raw p95 / domain p95.
Each import is rolled back, so every round imports into the same shipment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlmodel import select  # noqa: E402

from bench._common import parse_args, pg_create_database  # noqa: E402
from bench.audit import Capture, p95, raw_connection, replay, timed  # noqa: E402
from lims import create_app  # noqa: E402
from lims.accounts.users import actor_for  # noqa: E402
from lims.db import new_session  # noqa: E402
from lims.models import User  # noqa: E402
from lims.therapy import logger, shipments  # noqa: E402
from lims.therapy.models import Shipment  # noqa: E402

TINY = {"lines": 200, "rounds": 3, "reads": 5}
IMPORT_TARGET_MS = 1500.0
PAGE_TARGET_MS = 250.0


def logger_csv(lines: int) -> tuple[str, list[tuple[datetime, float]]]:
    """Return a logger file of lines readings a minute apart (within limits), and its rows."""
    start = datetime(2026, 12, 1, tzinfo=UTC)
    rows = [(start + timedelta(minutes=i), -185.0 + (i % 7) * 0.3) for i in range(lines)]
    text = "\ufefftime,temperature_c\n" + "".join(
        f"{ts:%Y-%m-%dT%H:%M:%SZ},{t:.1f}\n" for ts, t in rows
    )
    return text, rows


def measure(url: str, lines: int, rounds: int, reads: int) -> dict:
    """Import into the demo's shipment in transit and read its page, domain and raw."""
    app = create_app({"DATABASE_URL": url, "LOAD_DEMO": True, "SECRET_KEY": "bench"})
    engine = app.extensions["lims"]["engine"]
    text, rows = logger_csv(lines)
    try:
        raw = raw_connection(url)
        mark = "?" if engine.dialect.name == "sqlite" else "%s"
        insert_sql = (
            "INSERT INTO therapy_logger_reading (shipment_id, ts, temp_c, import_no) "
            f"VALUES ({mark}, {mark}, {mark}, {mark})"
        )
        with new_session(engine) as db:
            user = db.exec(select(User).where(User.username == "tech1")).one()
            actor = actor_for(db, user)
            s = db.exec(select(Shipment).where(Shipment.state == "dispatched")).first()
            number, sid = s.number, s.id

            def domain_import() -> None:
                logger.import_readings(db, number=number, text=text, actor=actor)
                db.flush()
                db.rollback()

            def raw_import() -> None:
                cur = raw.cursor()
                stamp = [(sid, ts.strftime("%Y-%m-%d %H:%M:%S.%f"), t, 1) for ts, t in rows]
                cur.executemany(insert_sql, stamp)
                cur.close()
                raw.rollback()

            domain_import()  # warm both
            raw_import()
            import_ms, import_raw_ms = [], []
            for _ in range(rounds):
                import_ms += timed(domain_import)
                import_raw_ms += timed(raw_import)

            # The page reads a shipment holding one import of the file.
            logger.import_readings(db, number=number, text=text, actor=actor)
            db.commit()
            cap = Capture(engine)

            def read() -> None:
                got = shipments.get_shipment(db, number, actor)
                shipments.shipment_dict(db, got, with_timeline=True)
                shipments.readings(db, got)

            read()
            page_ms, page_raw_ms, count = [], [], 0
            for _ in range(reads):
                db.expunge_all()
                st = cap.grab(read)
                count += len(st)
                db.expunge_all()
                page_ms += timed(read)
                page_raw_ms += timed(lambda st=st: replay(raw, st))
        raw.close()
        return {
            "engine": engine.dialect.name,
            "lines": lines,
            "rounds": rounds,
            "reads": reads,
            "statements_per_page": round(count / max(reads, 1), 1),
            "import_p95_ms": round(p95(import_ms), 3),
            "import_raw_p95_ms": round(p95(import_raw_ms), 3),
            "page_p95_ms": round(p95(page_ms), 3),
            "page_raw_p95_ms": round(p95(page_raw_ms), 3),
            "import_target_ms": IMPORT_TARGET_MS,
            "page_target_ms": PAGE_TARGET_MS,
        }
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark on a fresh demo database and print the figures (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--lines", type=int, default=10_000, help="readings in the logger file")
    ap.add_argument("--rounds", type=int, default=20, help="imports to time")
    ap.add_argument("--reads", type=int, default=50, help="shipment pages to time")
    ap.add_argument("--json", action="store_true")
    args = parse_args(ap, TINY, argv)
    with contextlib.ExitStack() as stack:
        if args.engine == "postgresql":
            url, drop = pg_create_database()
            stack.callback(drop)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="lims-bench-ship-"))
            url = f"sqlite:///{Path(tmp) / 'shipments.sqlite3'}"
        with contextlib.redirect_stdout(sys.stderr):
            out = measure(url, args.lines, args.rounds, args.reads)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:24} {v}")


if __name__ == "__main__":
    main()
