"""Generate a realistic audit trail of N events (a valid hash chain) for the audit benchmarks.

What it holds and how it is written: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

from bench._common import database_url, parse_args  # noqa: E402
from lims.audit import HASHED_FIELDS, canonical_json, event_hash  # noqa: E402
from lims.bootstrap import ensure_base  # noqa: E402
from lims.db import make_engine  # noqa: E402
from lims.identifiers import coi_id, sample_barcode  # noqa: E402
from lims.migrate import migrate  # noqa: E402
from lims.models import (  # noqa: E402
    AuditEvent,
    AuditHead,
    Location,
    Organisation,
    Project,
    Sample,
    SampleType,
    Station,
    User,
    VectorLot,
)

TINY = {"events": 2000}  # --tiny (in a temporary SQLite file unless --database-url is given)
COLUMNS = (*HASHED_FIELDS, "hash")
CLIENTS = ("helix-bio", "novacell", "orbis-tx")
TECHS = [f"tech{i:02d}" for i in range(1, 9)]
QAS = ["qa1", "qa2", "qa3"]
STATIONS = ("BENCH-B1", "BENCH-B2", "BENCH-C1", "BENCH-C2", "BENCH-QC", "BENCH-STORE")
# The custody cycle a sample goes through: the first steps once, then check-out/in repeatedly.
INTAKE = ("register", "receive", "quarantine", "release", "store")
CYCLE = ("check_out", "check_in")
LOT_STEPS = ("create", "start_production", "qc", "qc", "qc", "qc", "complete", "release")
OTHER_ACTIONS = ("token.create", "user.login", "printer.status", "station.mode")


def fresh_engine(url: str) -> Engine:
    """Return an engine on an empty database at url (deleted or re-created first)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        path = Path(u.database)
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
    else:
        schema = (u.query or {}).get("schema")
        if not schema:
            raise SystemExit("give the PostgreSQL URL a dedicated ?schema=NAME (it is dropped)")
        admin = make_engine(u.difference_update_query(["schema"]).render_as_string(False))
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        admin.dispose()
    engine = make_engine(url)
    migrate(engine)
    ensure_base(engine)
    return engine


def reference_rows(engine: Engine, n_samples: int, n_lots: int, rng: random.Random) -> dict:
    """Insert organisations, users, locations, lots and samples; return what events need."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        centre_id = conn.execute(text("SELECT id FROM organisation WHERE name='centre'")).scalar()
        org_ids = {"centre": centre_id}
        for name in CLIENTS:
            org_ids[name] = conn.execute(
                insert(Organisation)
                .values(name=name, display_name=name.title(), kind="client")
                .returning(Organisation.id)
            ).scalar_one()
        conn.execute(
            insert(User),
            [
                dict(
                    username=u,
                    full_name=f"Bench {u}",
                    org_id=centre_id,
                    role="qa" if u.startswith("qa") else "technician",
                    active=True,
                    failed_logins=0,
                    created_at=now,
                )
                for u in (*TECHS, *QAS)
            ],
        )
        st_id = conn.execute(
            insert(SampleType).values(code="PBMC", name="PBMC").returning(SampleType.id)
        ).scalar_one()
        proj_ids = {}
        for org, oid in org_ids.items():
            proj_ids[org] = conn.execute(
                insert(Project)
                .values(code=f"P-{org}", name=f"Project of {org}", org_id=oid)
                .returning(Project.id)
            ).scalar_one()
        site = conn.execute(
            insert(Location).values(kind="site", code="B-SITE", name="Site").returning(Location.id)
        ).scalar_one()
        freezer = conn.execute(
            insert(Location)
            .values(parent_id=site, kind="equipment", code="B-FRZ", name="Freezer")
            .returning(Location.id)
        ).scalar_one()
        boxes = []
        for i in range(40):
            boxes.append(
                conn.execute(
                    insert(Location)
                    .values(
                        parent_id=freezer,
                        kind="box",
                        code=f"B-BOX-{i:03d}",
                        name=f"Box {i}",
                        rows=9,
                        cols=9,
                    )
                    .returning(Location.id)
                ).scalar_one()
            )
        box_codes = {b: f"B-BOX-{i:03d}" for i, b in enumerate(boxes)}
        conn.execute(
            insert(Station),
            [dict(name=s, version=1, updated_at=now) for s in STATIONS],
        )
        orgs = list(org_ids)
        lots = []
        for i in range(n_lots):
            org = orgs[1 + i % len(CLIENTS)] if i % 4 else "centre"
            lot_id = conn.execute(
                insert(VectorLot)
                .values(
                    lot_number=f"BL-{i:05d}",
                    vector_type="AAV",
                    vector="AAV9-CMV-GFP",
                    project_id=proj_ids[org],
                    org_id=org_ids[org],
                    state="released",
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
                .returning(VectorLot.id)
            ).scalar_one()
            lots.append((lot_id, f"BL-{i:05d}", org_ids[org]))
        rows = []
        samples = []
        for i in range(n_samples):
            serial = i + 1
            barcode = sample_barcode(2026, serial % 1_000_000 or 1)
            parent = None
            lot = None
            if i > 100 and rng.random() < 0.3:
                parent = rng.randrange(max(0, i - 2000), i)  # aliquot of a recent sample
                org_id, lot_id = samples[parent][1], samples[parent][2]
            elif rng.random() < 0.1:
                lot = lots[rng.randrange(len(lots))]
                org_id, lot_id = lot[2], lot[0]
            else:
                org_id = org_ids[orgs[rng.randrange(len(orgs))]]
                lot_id = None
            coi = samples[parent][3] if parent is not None else coi_id(2026, serial % 999_999 + 1)
            samples.append((barcode, org_id, lot_id, coi))
            rows.append(
                dict(
                    id=serial,
                    barcode=barcode,
                    sample_type_id=st_id,
                    project_id=next(p for o, p in proj_ids.items() if org_ids[o] == org_id),
                    org_id=org_id,
                    volume=1.0,
                    unit="mL",
                    container="cryovial",
                    parent_id=parent + 1 if parent is not None else None,
                    lineage="aliquot" if parent is not None else None,
                    lot_id=lot_id,
                    coi=coi,
                    coi_scheme="local",
                    state="available",
                    freeze_thaw_count=0,
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
        for i in range(0, len(rows), 5000):
            conn.execute(insert(Sample), rows[i : i + 5000])
        head = conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
    return {
        "samples": samples,
        "lots": lots,
        "boxes": boxes,
        "box_codes": box_codes,
        "centre": centre_id,
        "head": (head[0], head[1]),
    }


def events(n: int, ref: dict, rng: random.Random, start: datetime):  # noqa: ANN201
    """Yield n event rows (tuples in COLUMNS order), chained from the current head."""
    seq, prev = ref["head"]
    samples, lots, boxes, box_codes = ref["samples"], ref["lots"], ref["boxes"], ref["box_codes"]
    step = timedelta(seconds=700 * 86400 / max(n, 1))
    ts = start
    # Each active sample walks its custody cycle; a pool keeps ~600 in flight so each history is
    # spread across the trail as it is in a real centre.
    pool: list[list[Any]] = []
    next_sample = 0
    lot_pos = [0] * len(lots)
    conditions = ("frozen, dry ice", "intact, 2-8 C", "frozen", "thawed on arrival")
    produced = 0
    while produced < n:
        seq += 1
        ts = ts + step * (0.5 + rng.random())
        r = rng.random()
        actor = rng.choice(TECHS)
        station = rng.choice(STATIONS)
        before = after = reason = None
        org_id = lot_id = location_id = signature_id = None
        if r < 0.86 and (pool or next_sample < len(samples)):
            if next_sample < len(samples) and (len(pool) < 600 or rng.random() < 0.05):
                # barcode, org, lot, index-in-cycle, state, location, events left
                b, o, lo, _coi = samples[next_sample]
                pool.append([b, o, lo, 0, None, None, rng.randint(6, 30)])
                next_sample += 1
            i = rng.randrange(len(pool))
            s = pool[i]
            k = s[3]
            action = INTAKE[k] if k < len(INTAKE) else CYCLE[(k - len(INTAKE)) % 2]
            old = {"state": s[4], "location": box_codes.get(s[5]), "version": k}
            if action in ("store", "check_in"):
                s[5] = rng.choice(boxes)
            elif action == "check_out":
                s[5] = None
            s[4] = {
                "register": "registered",
                "receive": "received",
                "quarantine": "quarantine",
                "release": "available",
                "store": "available",
                "check_out": "in_use",
                "check_in": "available",
            }[action]
            new = {
                "state": s[4],
                "version": k + 1,
                "location": box_codes.get(s[5]),
                "position": f"{'ABCDEFGHI'[k % 9]}{k % 9 + 1}" if s[5] else None,
                "custodian": actor if action == "check_out" else None,
                "volume": 1.0,
                "unit": "mL",
                "condition": conditions[k % 4] if action == "receive" else None,
                "freeze_thaw_count": k // 2,
            }
            if action == "release":
                actor = rng.choice(QAS)
            before = None if action == "register" else canonical_json(old)
            after = canonical_json(new)
            etype, eid, org_id, lot_id, location_id = "sample", s[0], s[1], s[2], s[5]
            action = f"sample.{action}"
            s[3] += 1
            s[6] -= 1
            if s[6] <= 0:
                pool.pop(i)
        elif r < 0.95:
            j = rng.randrange(len(lots))
            lot_db_id, lot_number, org_id = lots[j]
            k = lot_pos[j]
            lot_pos[j] += 1
            step_name = LOT_STEPS[k] if k < len(LOT_STEPS) else "qc"
            action = f"lot.{step_name}"
            if step_name == "release":
                actor = rng.choice(QAS)
            if k >= len(LOT_STEPS):
                reason = f"retest after deviation DEV-{rng.randrange(10000):04d}"
            before = None if step_name == "create" else canonical_json({"version": k})
            after = canonical_json({"lot_number": lot_number, "version": k + 1})
            etype, eid, lot_id = "lot", lot_number, lot_db_id
        else:
            action = rng.choice(OTHER_ACTIONS)
            actor = rng.choice(("admin", "system", *QAS))
            etype, eid = action.split(".")[0], f"{rng.randrange(1000)}"
            org_id = ref["centre"]
            after = canonical_json({"detail": action})
        fields = {
            "seq": seq,
            "ts": ts,
            "actor": actor,
            "action": action,
            "entity_type": etype,
            "entity_id": eid,
            "org_id": org_id,
            "lot_id": lot_id,
            "location_id": location_id,
            "before": before,
            "after": after,
            "reason": reason,
            "station": station,
            "device": None,
            "signature_id": signature_id,
            "corrects_seq": None,
            "prev_hash": prev,
        }
        prev = event_hash(fields)
        fields["hash"] = prev
        produced += 1
        yield fields


def _sqlite_ts(ts: datetime) -> str:
    # The text SQLAlchemy's SQLite DateTime stores (UTC, no offset, microseconds).
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f")


def load(engine: Engine, n: int, ref: dict, rng: random.Random, *, batch: int = 20000) -> tuple:
    """Write n events and move the head; return (last seq, last hash)."""
    start = datetime.now(UTC) - timedelta(days=710)
    indexes = list(AuditEvent.__table__.indexes)
    placeholders = ", ".join("?" for _ in COLUMNS)
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    last = ref["head"]
    with engine.begin() as conn:
        for idx in indexes:
            idx.drop(conn)
        raw = conn.connection.driver_connection
        if engine.dialect.name == "sqlite":
            raw.execute("PRAGMA cache_size=-262144")
            sql = f"INSERT INTO audit_event ({cols}) VALUES ({placeholders})"
            buf = []
            for f in events(n, ref, rng, start):
                row = [f[c] for c in COLUMNS]
                row[1] = _sqlite_ts(row[1])
                buf.append(row)
                if len(buf) >= batch:
                    raw.executemany(sql, buf)
                    buf.clear()
                last = (f["seq"], f["hash"])
            if buf:
                raw.executemany(sql, buf)
        else:
            with raw.cursor().copy(f"COPY audit_event ({cols}) FROM STDIN") as copy:
                for f in events(n, ref, rng, start):
                    copy.write_row([f[c] for c in COLUMNS])
                    last = (f["seq"], f["hash"])
        print(f"  rows written, rebuilding {len(indexes)} indexes", file=sys.stderr)
        for idx in indexes:
            idx.create(conn)
        conn.execute(
            AuditHead.__table__.update().where(AuditHead.id == 1).values(seq=last[0], hash=last[1])
        )
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return last


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and generate."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--database-url", help="where (--tiny: a temporary SQLite file)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parse_args(ap, TINY, argv)
    if not 1 <= args.events <= 20_000_000:
        raise SystemExit("--events must be between 1 and 20000000")
    with database_url(ap, args) as url:
        out = generate(url, args.events, args.seed)
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"{out['events']} events ({out['samples']} samples, {out['lots']} lots) in "
        f"{out['seconds']:.1f} s ({out['events_per_s']:,.0f}/s; setup {out['setup_s']:.1f} s); "
        f"head seq {out['head_seq']} hash {out['head_hash']}"
    )


def generate(
    url: str, n: int, seed: int, *, samples: int | None = None, lots: int | None = None
) -> dict[str, Any]:
    """Build a fresh database at url holding a chained trail of n events; return the figures.

    Without samples/lots the trail sets them from n (about 18 events a sample, 5,000 a lot);
    a centre after five years has more of both (bench/quality.py asks for 100,000 and 10,000).
    """
    rng = random.Random(seed)
    t0 = time.perf_counter()
    engine = fresh_engine(url)
    n_samples = samples or min(999_000, max(50, n // 18))
    n_lots = lots or max(4, n // 5000)
    ref = reference_rows(engine, n_samples, n_lots, rng)
    t1 = time.perf_counter()
    seq, h = load(engine, n, ref, rng)
    t2 = time.perf_counter()
    engine.dispose()
    return {
        "events": n,
        "samples": n_samples,
        "lots": n_lots,
        "seconds": round(t2 - t1, 3),
        "events_per_s": round(n / (t2 - t1)),
        "setup_s": round(t1 - t0, 3),
        "head_seq": seq,
        "head_hash": h,
    }


if __name__ == "__main__":
    main()
