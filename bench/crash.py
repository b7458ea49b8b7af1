"""Crash test: SIGKILL the real server (gunicorn, several workers) under concurrent transitions.

What is checked (exit status 1 on any loss, duplicate or broken chain): docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import engines_to_run, parse_args, print_table, write_json  # noqa: E402
from bench._server import Client, demo_server, gunicorn_version, session_on  # noqa: E402
from lims import audit  # noqa: E402
from lims.models import Sample  # noqa: E402

# --tiny: one kill, two clients with a sample each; still two workers (the point of the test).
TINY = {
    "kills": 1,
    "seconds": 10,
    "workers": 2,
    "threads": 2,
    "samples_per_thread": 1,
    "min_up": 0.3,
    "max_up": 0.6,
}


@dataclass
class Tally:
    """What the clients saw (shared by the threads; guarded by lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: list[tuple[str, int, str]] = field(default_factory=list)  # barcode, version, key
    attempts: int = 0
    retries: int = 0
    replayed: int = 0
    anomalies: list[str] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)


def _body(state: str, version: int) -> dict:
    if state == "available":
        return {"action": "check_out", "custodian": "tech1", "version": version}
    return {"action": "check_in", "location": "RM-B1", "version": version}


def client_thread(
    port: int, token: str, mine: list[list], tally: Tally, stop: threading.Event, tid: int
) -> None:
    """Move this thread's samples until stop; retry each intended move with its own key."""
    client = Client(port, token, timeout=15)
    rnd = random.Random(tid)
    while not stop.is_set():
        item = rnd.choice(mine)  # [barcode, state, version]
        barcode, state, version = item
        body = _body(state, version)
        # One key per intended transition: this sample, from this version.
        key = f"crash-{barcode}-v{version}"
        first = True
        while True:
            if not first:
                with tally.lock:
                    tally.retries += 1
            first = False
            with tally.lock:
                tally.attempts += 1
            try:
                status, data = client.request(
                    "POST",
                    f"/api/samples/{barcode}/transitions",
                    body,
                    headers={"Idempotency-Key": key},
                )
            except ConnectionError:
                if stop.is_set():
                    return  # the run is over; this move stays unacknowledged
                time.sleep(0.05 + rnd.random() * 0.1)
                continue
            with tally.lock:
                tally.statuses[status] += 1
            if 200 <= status < 300:
                with tally.lock:
                    tally.acked.append((barcode, data["version"], key))
                    if client.last_headers.get("idempotent-replayed") == "true":
                        tally.replayed += 1
                item[1], item[2] = data["state"], data["version"]
                break
            if status >= 500 or (status == 409 and data.get("error") == "conflict"):
                # Not answered (worker died, database busy): the same request again.
                if stop.is_set():
                    return
                time.sleep(0.05 + rnd.random() * 0.1)
                continue
            with tally.lock:
                tally.anomalies.append(f"{barcode} {body} -> {status} {json.dumps(data)[:200]}")
            # Resynchronise from the server, then go on with a new intended move.
            try:
                status, data = client.request("GET", f"/api/samples/{barcode}")
                if status == 200:
                    item[1], item[2] = data["state"], data["version"]
            except ConnectionError:
                pass
            break


def check(url: str, acked: list[tuple[str, int, str]], barcodes: list[str]) -> dict:
    """Compare what was acknowledged with what the audit trail holds; verify the chain."""
    with session_on(url) as db:
        versions: dict[str, list[int]] = defaultdict(list)
        for ev in audit.query(db, entity_type="sample", entity_ids=barcodes, limit=10_000_000):
            after = json.loads(ev.after) if ev.after else {}
            versions[ev.entity_id].append(after.get("version"))
        final = {
            s.barcode: s.version
            for s in db.exec(Sample.__table__.select().where(Sample.barcode.in_(barcodes)))
        }
        result = audit.verify(db)
    present = lost = 0
    lost_examples = []
    for barcode, version, _key in acked:
        if version in versions[barcode]:
            present += 1
        else:
            lost += 1
            lost_examples.append((barcode, version))
    duplicated = sum(n - 1 for b in barcodes for n in Counter(versions[b]).values() if n > 1)
    acked_twice = sum(n - 1 for n in Counter((b, v) for b, v, _ in acked).values() if n > 1)
    gaps = [b for b in barcodes if sorted(versions[b]) != list(range(1, final[b] + 1))]
    return {
        "present": present,
        "lost": lost,
        "lost_examples": lost_examples[:5],
        "duplicated": duplicated,
        "acked_twice": acked_twice,
        "samples_with_gaps": len(gaps),
        "events": sum(len(v) for v in versions.values()),
        "verify_ok": result.ok,
        "verify": result.to_dict(),
    }


def run_engine(engine: str, args: argparse.Namespace) -> dict:
    """Run the crash test on one engine; return its row."""
    rnd = random.Random(args.seed)
    with demo_server(engine, workers=args.workers, name="crash") as demo:
        server = demo.server
        token = demo.token("tech1")
        samples = demo.available_samples(args.threads * args.samples_per_thread)
        per_thread = [
            [[b, "available", v] for b, v in samples[i :: args.threads]]
            for i in range(args.threads)
        ]
        boot = [server.start()]
        tally = Tally()
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=client_thread,
                args=(server.port, token, per_thread[i], tally, stop, i),
                daemon=True,
            )
            for i in range(args.threads)
        ]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        kills = 0
        while kills < args.kills and time.monotonic() - t0 < args.seconds:
            time.sleep(rnd.uniform(args.min_up, args.max_up))
            server.kill()
            kills += 1
            time.sleep(rnd.uniform(0, 0.3))  # clients hammer a dead port meanwhile
            boot.append(server.start())
        time.sleep(args.min_up)  # let the retries after the last kill land
        stop.set()
        for t in threads:
            t.join(timeout=30)
        elapsed = time.monotonic() - t0
        api_verify = Client(server.port, token).request("GET", "/api/audit/verify")
        server.stop()
        barcodes = [b for b, _ in samples]
        res = check(demo.url, tally.acked, barcodes)
    ok = (
        res["lost"] == 0
        and res["duplicated"] == 0
        and res["acked_twice"] == 0
        and res["samples_with_gaps"] == 0
        and res["verify_ok"]
        and api_verify[0] == 200
        and api_verify[1].get("ok") is True
    )
    return {
        "engine": engine,
        "workers": args.workers,
        "client threads": args.threads,
        "seconds": round(elapsed, 1),
        "kills": kills,
        "attempts": tally.attempts,
        "retries": tally.retries,
        "acknowledged": len(tally.acked),
        "replayed acks": tally.replayed,
        "present": res["present"],
        "lost": res["lost"],
        "duplicated": res["duplicated"] + res["acked_twice"],
        "gaps": res["samples_with_gaps"],
        "events": res["events"],
        "verify": "ok" if res["verify_ok"] else f"BROKEN at {res['verify']['first_bad_seq']}",
        "api verify": api_verify[1].get("ok"),
        "anomalies": len(tally.anomalies),
        "statuses": dict(tally.statuses),
        "boot s (median)": sorted(boot)[len(boot) // 2],
        "ok": ok,
        "anomaly_examples": tally.anomalies[:5],
        "lost_examples": res["lost_examples"],
        "log": str(server.log),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs per engine")
    ap.add_argument("--seconds", type=float, default=150, help="stop killing after this long")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--samples-per-thread", type=int, default=3)
    ap.add_argument("--min-up", type=float, default=0.5, help="least seconds between kills")
    ap.add_argument("--max-up", type=float, default=3.0, help="most seconds between kills")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    args = parse_args(ap, TINY)
    print(f"gunicorn {gunicorn_version()}", file=sys.stderr)
    rows = []
    for eng in engines_to_run(args.engine):
        rows.append(run_engine(eng, args))
    cols = [
        "engine",
        "kills",
        "acknowledged",
        "present",
        "lost",
        "duplicated",
        "gaps",
        "verify",
        "replayed acks",
        "retries",
        "anomalies",
        "seconds",
        "boot s (median)",
    ]
    print_table("Crash test: SIGKILL gunicorn under concurrent transitions", rows, cols)
    for r in rows:
        for a in r["anomaly_examples"]:
            print(f"  anomaly ({r['engine']}): {a}")
        for b, v in r["lost_examples"]:
            print(f"  LOST ({r['engine']}): {b} version {v}")
    write_json(args.json, {"crash": rows, "gunicorn": gunicorn_version()})
    return 0 if rows and all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
