r"""Measure genealogy recall ("where used") and "made from" at 10,000 lots and 500,000 links.

Each query runs through the domain (lims.manufacturing.genealogy, as the API calls it) and its
SQL statements are captured and replayed through the bare driver in the same run: the figure is
the domain's p95 next to the bare-SQL p95 of the very same statements. Target: <= 50 ms p95.

The data: vector lots in chains of four (harvest -> purification -> formulation -> fill, each
made from the one before), every lot made from about links/lots material lots, two vials per
fill lot. A material is then found in about links/materials lots directly and in up to three
more lots down each chain.

    python bench/genealogy.py --database-url sqlite:///gen.sqlite3
    python bench/genealogy.py --drop \
        --database-url "postgresql+psycopg://postgres@127.0.0.1/test?schema=bench_gen"
    python bench/genealogy.py --tiny        # a smoke run: figures meaningless
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, date, datetime

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import insert, text  # noqa: E402
from sqlmodel import select  # noqa: E402

from bench._common import database_url, parse_args  # noqa: E402
from bench.audit import Capture, drop_schema, p95, raw_connection, replay  # noqa: E402
from bench.gen_audit import fresh_engine  # noqa: E402
from lims.accounts.users import actor_for  # noqa: E402
from lims.db import new_session  # noqa: E402
from lims.manufacturing import genealogy  # noqa: E402
from lims.manufacturing.models import GenealogyLink, MaterialKind, MaterialLot  # noqa: E402
from lims.models import Project, Sample, SampleType, User, VectorLot  # noqa: E402

TINY = {"lots": 200, "links": 5000, "materials": 100, "rounds": 10}
TARGET_MS = 50.0
CHAIN = 4  # harvest -> purification -> formulation -> fill
CHUNK = 10_000


def generate(engine, n_lots: int, n_links: int, n_materials: int, seed: int) -> dict:  # noqa: ANN001
    """Insert the lots, materials, links and vials; return what the measurement needs."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        centre = conn.execute(text("SELECT id FROM organisation WHERE name='centre'")).scalar()
        system = conn.execute(text("SELECT id FROM app_user WHERE username='system'")).scalar()
        proj = conn.execute(
            insert(Project)
            .values(code="GEN", name="Genealogy", org_id=centre)
            .returning(Project.id)
        ).scalar_one()
        stype = conn.execute(
            insert(SampleType).values(code="VV", name="Vector vial").returning(SampleType.id)
        ).scalar_one()
        kinds = [
            conn.execute(
                insert(MaterialKind)
                .values(code=f"K-{k}", name=f"Kind {k}", category="reagent", created_at=now)
                .returning(MaterialKind.id)
            ).scalar_one()
            for k in range(20)
        ]
        conn.execute(
            insert(MaterialLot),
            [
                dict(
                    code=f"MAT-B-{m:06d}",
                    kind_id=kinds[m % len(kinds)],
                    org_id=centre,
                    supplier_lot=f"S{m}",
                    serial="",
                    expires_on=date(2099, 1, 1),
                    state="released",
                    received_by_id=system,
                    received_at=now,
                    version=1,
                    updated_at=now,
                )
                for m in range(n_materials)
            ],
        )
        mat_ids = [r[0] for r in conn.execute(text("SELECT id FROM material_lot ORDER BY id"))]
        for start in range(0, n_lots, CHUNK):
            conn.execute(
                insert(VectorLot),
                [
                    dict(
                        lot_number=f"GEN-{i:06d}",
                        vector_type="AAV",
                        vector="AAV9-BENCH",
                        project_id=proj,
                        org_id=centre,
                        state="planned",
                        version=1,
                        created_at=now,
                        updated_at=now,
                    )
                    for i in range(start, min(n_lots, start + CHUNK))
                ],
            )
        lot_ids = [r[0] for r in conn.execute(text("SELECT id FROM vector_lot ORDER BY id"))]
        chained = [(i, lot_ids[i - 1]) for i in range(len(lot_ids)) if i % CHAIN]
        per_lot, extra = divmod(max(0, n_links - len(chained)), len(lot_ids))
        links = [dict(parent_kind="lot", parent_id=p, child_lot_id=lot_ids[i]) for i, p in chained]
        for k, lot_id in enumerate(lot_ids):
            # The remainder one each to the first lots: exactly n_links links in all.
            n = min(per_lot + (k < extra), len(mat_ids))
            for m in rng.sample(mat_ids, n):
                links.append(dict(parent_kind="material", parent_id=m, child_lot_id=lot_id))
        for row in links:
            row |= {"recorded_by_id": system, "recorded_at": now}
        for start in range(0, len(links), CHUNK):
            conn.execute(insert(GenealogyLink), links[start : start + CHUNK])
        fills = [lot_ids[i] for i in range(len(lot_ids)) if i % CHAIN == CHAIN - 1]
        vials = [
            dict(
                barcode=f"GV-{lid}-{v}",
                sample_type_id=stype,
                project_id=proj,
                org_id=centre,
                lot_id=lid,
                coi=f"COI-GV-{lid}-{v}",
                coi_scheme="local",
                state="available",
                freeze_thaw_count=0,
                version=1,
                created_at=now,
                updated_at=now,
            )
            for lid in fills
            for v in range(2)
        ]
        for start in range(0, len(vials), CHUNK):
            conn.execute(insert(Sample), vials[start : start + CHUNK])
    if engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load: statistics and the visibility map
        # (without it the covering indexes cannot answer alone).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("genealogy_link", "vector_lot", "sample", "material_lot"):
                conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
    return {"links": len(links), "vials": len(vials), "lots": len(lot_ids)}


def measure(url: str, engine, rounds: int, seed: int) -> dict:  # noqa: ANN001
    """Time where-used and made-from through the domain and their SQL through the driver."""
    rng = random.Random(seed + 1)
    cap = Capture(engine)
    raw = raw_connection(url)
    out: dict = {}
    with new_session(engine) as db:
        actor = actor_for(db, db.exec(select(User).where(User.username == "system")).one())
        materials = db.exec(select(MaterialLot.code)).all()
        lots = db.exec(select(VectorLot.lot_number)).all()
        queries = {
            "where_used": lambda: genealogy.where_used(db, code=rng.choice(materials), actor=actor),
            "made_from": lambda: genealogy.made_from(db, lot_number=rng.choice(lots), actor=actor),
        }
        for name, fn in queries.items():
            fn()  # warm the caches once
            ms, raw_ms, found = [], [], []
            for _ in range(rounds):
                t = time.perf_counter()
                statements = cap.grab(lambda fn=fn, found=found: found.append(fn()))
                ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                replay(raw, statements)
                raw_ms.append((time.perf_counter() - t) * 1000)
                db.rollback()  # each call reads afresh, as a request would
            out[f"{name}_p95_ms"] = round(p95(ms), 3)
            out[f"{name}_raw_p95_ms"] = round(p95(raw_ms), 3)
            sizes = [len(r.get("lots", [])) + len(r.get("materials", [])) for r in found]
            out[f"{name}_mean_rows"] = round(sum(sizes) / len(sizes), 1)
    raw.close()
    return out


def main(argv: list[str] | None = None) -> None:
    """Generate the genealogy, measure, and print the figures (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--database-url", help="where to build it (--tiny: a temporary SQLite file)")
    ap.add_argument("--lots", type=int, default=10_000)
    ap.add_argument("--links", type=int, default=500_000)
    ap.add_argument("--materials", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=200, help="queries timed of each kind")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--drop", action="store_true", help="drop the PostgreSQL schema afterwards")
    ap.add_argument("--json", action="store_true")
    args = parse_args(ap, TINY, argv)
    with database_url(ap, args) as url:
        try:
            engine = fresh_engine(url)
            t = time.perf_counter()
            made = generate(engine, args.lots, args.links, args.materials, args.seed)
            gen_s = time.perf_counter() - t
            out = {
                "engine": engine.dialect.name,
                **made,
                "materials": args.materials,
                "generate_s": round(gen_s, 1),
                "target_ms": TARGET_MS,
                **measure(url, engine, args.rounds, args.seed),
            }
            engine.dispose()
        finally:
            if args.drop:
                drop_schema(url)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"genealogy on {out['engine']}: {out['lots']:,} lots, {out['links']:,} links")
    for q in ("where_used", "made_from"):
        ms, raw = out[f"{q}_p95_ms"], out[f"{q}_raw_p95_ms"]
        ok = "meets" if ms <= TARGET_MS else "MISSES"
        print(f"  {q:<11} p95 {ms:8.2f} ms, bare SQL {raw:8.2f} ms ({ok} <= {TARGET_MS} ms)")


if __name__ == "__main__":
    main()
