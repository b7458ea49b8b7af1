"""Measure the episode page's read (the episode and its chain-of-identity timeline) on a centre
with many episodes, next to the same SQL statements replayed through the bare driver.

The figure is the p95 of the domain call (lims.therapy.episodes: episode_dict + timeline), and
the share is raw p95 / domain p95: how close the page's read runs to its statements' own cost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlmodel import select  # noqa: E402

from bench._common import parse_args, pg_create_database  # noqa: E402
from bench.audit import Capture, p95, raw_connection, replay, timed  # noqa: E402
from lims import create_app, samples  # noqa: E402
from lims.accounts.users import actor_for  # noqa: E402
from lims.db import new_session  # noqa: E402
from lims.models import User  # noqa: E402
from lims.therapy import episodes, patients  # noqa: E402
from lims.therapy.models import Episode  # noqa: E402

TINY = {"episodes": 4, "reads": 8}
TARGET_MS = 25.0
PATH = ["schedule_collection", "collect", "receive", "start_manufacturing", "submit_to_qc"]


def _actor(db, username: str):  # noqa: ANN001, ANN202
    return actor_for(db, db.exec(select(User).where(User.username == username)).one())


def populate(engine, n: int, per: int) -> None:  # noqa: ANN001
    """Give the centre n episodes, each with a bag and per derivatives of it, moved up to QC."""
    with new_session(engine) as db:
        qa, tech = _actor(db, "qa1"), _actor(db, "tech1")
        for i in range(n):
            p = patients.register_patient(
                db,
                data=patients.PatientIn(
                    full_name=f"Bench Patient {i}",
                    date_of_birth="1970-01-01",
                    hospital_id=f"BENCH-{i}",
                ),
                actor=qa,
            )
            ep = episodes.enrol(
                db,
                data=episodes.EpisodeCreate(coi=p.coi, project="CART-001", product_code="S0001"),
                actor=tech,
            )
            bag = samples.register_sample(
                db,
                data=samples.SampleCreate(sample_type="APHERESIS", project="CART-001", coi=p.coi),
                actor=tech,
            )
            for action in PATH:
                fields = {"bag": bag.barcode, "coi": p.coi} if action == "receive" else {}
                episodes.transition(
                    db,
                    number=ep.number,
                    data=episodes.EpisodeTransitionIn(action=action, **fields),
                    actor=tech,
                )
                if action == "receive":
                    samples.transition(
                        db,
                        barcode=bag.barcode,
                        data=samples.TransitionIn(action="receive", condition="intact", coi=p.coi),
                        actor=tech,
                    )
            for _ in range(per):
                samples.register_sample(
                    db,
                    data=samples.SampleCreate(sample_type="PBMC", parent=bag.barcode),
                    actor=tech,
                )
            if i % 50 == 49:
                db.commit()
        db.commit()


def measure(url: str, n: int, per: int, reads: int, seed: int) -> dict:
    """Populate the database at url and time the episode page's read."""
    app = create_app({"DATABASE_URL": url, "LOAD_DEMO": True, "SECRET_KEY": "bench"})
    engine = app.extensions["lims"]["engine"]
    try:
        populate(engine, n, per)
        cap = Capture(engine)
        raw = raw_connection(url)
        rng = random.Random(seed)
        with new_session(engine) as db:
            actor = _actor(db, "tech1")
            numbers = list(db.exec(select(Episode.number)).all())
            picks = [rng.choice(numbers) for _ in range(reads)]

            def read(number: str) -> None:
                ep = episodes.get_episode(db, number, actor)
                episodes.episode_dict(db, ep)
                episodes.timeline(db, ep)

            for number in picks[:5]:  # warm the same caches for both
                read(number)
            lims_ms, raw_ms, count = [], [], 0
            for number in picks:
                db.expunge_all()
                st = cap.grab(lambda n=number: read(n))
                count += len(st)
                db.expunge_all()
                lims_ms += timed(lambda n=number: read(n))
                raw_ms += timed(lambda st=st: replay(raw, st))
        raw.close()
        return {
            "engine": engine.dialect.name,
            "episodes": len(numbers),
            "reads": reads,
            "statements_per_read": round(count / max(reads, 1), 1),
            "timeline_p95_ms": round(p95(lims_ms), 3),
            "timeline_raw_p95_ms": round(p95(raw_ms), 3),
            "target_ms": TARGET_MS,
        }
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark on a fresh database and print the figures (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--episodes", type=int, default=500, help="episodes in the centre")
    ap.add_argument("--derived", type=int, default=4, help="samples made from each bag")
    ap.add_argument("--reads", type=int, default=200, help="episode pages to time")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = parse_args(ap, TINY, argv)
    with contextlib.ExitStack() as stack:
        if args.engine == "postgresql":
            url, drop = pg_create_database()
            stack.callback(drop)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="lims-bench-therapy-"))
            url = f"sqlite:///{Path(tmp) / 'therapy.sqlite3'}"
        with contextlib.redirect_stdout(sys.stderr):
            out = measure(url, args.episodes, args.derived, args.reads, args.seed)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:24} {v}")


if __name__ == "__main__":
    main()
