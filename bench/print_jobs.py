"""A 96-label print job through queue -> worker -> pty printer, next to the link and the driver.

Method: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import select  # noqa: E402

from bench._common import parse_args  # noqa: E402
from lims import create_app, printing  # noqa: E402
from lims.accounts import users  # noqa: E402
from lims.db import new_session  # noqa: E402
from lims.models import Printer, PrintJob  # noqa: E402
from printers.driver import ZplPrinter  # noqa: E402
from printers.mock import PrinterSimulator  # noqa: E402
from printers.transport import link_seconds  # noqa: E402

TINY = {"labels": 4, "baud": 115200}  # --tiny


def _setup(tmp: Path, n: int) -> tuple:
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp}/b.db",
            "TESTING": True,
            "LOAD_DEMO": True,
            "SECRET_KEY": "bench",
        }
    )
    engine = app.extensions["lims"]["engine"]
    with new_session(engine) as db:
        secret, _ = users.create_token(db, username="tech1", actor=users.system_actor(db))
        db.commit()
    h = {"Authorization": f"Bearer {secret}"}
    c = app.test_client()
    # n registered tubes: a label job prints for any sample that is not finished.
    body = {"sample_type": "PBMC", "project": "CART-001", "volume": 1, "unit": "mL"}
    barcodes = [c.post("/api/samples", json=body, headers=h).json["barcode"] for _ in range(n)]
    return app, c, h, barcodes


def run(baud: int, n: int) -> dict:
    """Time one n-label job end to end and the bare driver on the same bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        app, client, h, barcodes = _setup(Path(tmp), n)
        engine = app.extensions["lims"]["engine"]
        sim = PrinterSimulator(baud=baud).start()
        try:
            with new_session(engine) as db:
                db.add(Printer(name="BENCH", url=sim.port, baud=baud))
                db.commit()
            job_id = client.post(
                "/api/labels", json={"barcodes": barcodes, "printer": "BENCH"}, headers=h
            ).json["id"]
            with new_session(engine) as db:
                claim = printing.render_claim(db, db.get(PrintJob, job_id))
            wire = len(claim.format_bytes or b"") + sum(len(b) for b in claim.labels)
            t0 = time.perf_counter()
            printing.PrintWorker(engine, printers=["BENCH"], simulate_demo=False).run_once()
            job_s = time.perf_counter() - t0
            with new_session(engine) as db:
                job = db.exec(select(PrintJob).where(PrintJob.id == job_id)).one()
                assert job.state == "sent" and job.labels_printed == n, job.error
            t0 = time.perf_counter()
            with ZplPrinter(sim.port, baud=baud) as dev:
                out = dev.print_batch(claim.format_bytes, claim.labels)
            driver_s = time.perf_counter() - t0
            assert out.ok, out.error
        finally:
            sim.stop()
            engine.dispose()
    limit = link_seconds(wire, baud)
    return {
        "labels": n,
        "baud": baud,
        "wire_bytes": wire,
        "link_limit_s": round(limit, 3),
        "job_s": round(job_s, 3),
        "driver_s": round(driver_s, 3),
        "job_vs_link": round(job_s / limit, 3),
        "job_vs_driver": round(job_s / driver_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--labels", type=int, default=96)
    ap.add_argument("--json", action="store_true")
    args = parse_args(ap, TINY, argv)
    res = run(args.baud, args.labels)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:>14}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
