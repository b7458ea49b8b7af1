"""Load: 50 bench stations scanning (and printing labels) against gunicorn + PostgreSQL.

The stations' cycle, the figures and the limit: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    parse_args,
    percentile,
    pg_available,
    print_table,
    run_threads,
    write_json,
)
from bench._server import Client, Demo, add_bench, demo_server, gunicorn_version, session_on  # noqa: E402
from lims import masterdata  # noqa: E402
from lims.accounts import users  # noqa: E402

# --tiny: two benches for a second (a label job every cycle), a sweep of 1 and 2 clients.
TINY = {
    "stations": 2,
    "tubes": 2,
    "seconds": 1,
    "think": 0.02,
    "label_every": 1,
    "workers": 1,
    "sweep": "1,2",
    "sweep_seconds": 0.5,
}
BADGE = "BADGE-0002"  # tech1 in the demo centre
PRINTER = "ZEBRA-B1"


def add_stations(url: str, n: int) -> list[tuple[str, str]]:
    """Create n benches and one 9x9 box each (audited like the demo's); return (station, box)."""
    out = []
    with session_on(url) as db:
        system = users.system_actor(db)
        for i in range(n):
            name, box = f"LOAD-{i:03d}", f"LOAD-BOX-{i:03d}"
            add_bench(db, name, system)
            place = masterdata.LocationIn(
                code=box, name=f"Load box {i}", kind="box", rows=9, cols=9, parent="FRZ-80-1-R1"
            )
            masterdata.add_location(db, data=place, actor=system)
            out.append((name, box))
        db.commit()
    return out


class Stats:
    """Latencies and outcomes shared by all client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {"scan": [], "label": [], "transition": []}
        self.errors: list[str] = []
        self.refused: list[str] = []
        self.requests = 0

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            self.requests += 1

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)


def station_loop(
    port: int,
    station: str,
    box: str,
    tubes: list[str],
    token: str,
    label_token: str,
    think: float,
    label_every: int,
    to_label: list[list[str]],
    stats: Stats,
    stop: threading.Event,
) -> None:
    """Drive one bench until stop: badge, then check-out / check-in cycles, labels now and then.

    to_label: the batches of new tubes its label jobs print, one batch per job (a tube has one
    original label, so a second job for the same tubes would be refused).
    """
    agent = Client(port, token)
    printer = Client(port, label_token)

    def scan(data: str) -> None:
        t0 = time.perf_counter()
        try:
            status, body = agent.request(
                "POST",
                "/api/scans",
                {"station": station, "data": data, "scan_id": uuid.uuid4().hex},
            )
        except ConnectionError as exc:
            stats.error(f"{station} {data}: no answer ({exc})")
            return
        stats.add("scan", time.perf_counter() - t0)
        if status != 200:
            stats.error(f"{station} {data}: HTTP {status} {str(body)[:120]}")
        elif body.get("outcome") != "accepted":
            with stats.lock:
                stats.refused.append(f"{station} {data}: {body.get('outcome')} {body.get('code')}")
        if think:
            time.sleep(think)

    scan(BADGE)
    cycle = 0
    while not stop.is_set():
        for data in ["CMD:CHECKOUT", *tubes, "CMD:CHECKIN", box, *tubes, "CMD:DONE"]:
            if stop.is_set():
                return
            scan(data)
        cycle += 1
        if label_every and cycle % label_every == 0 and to_label:
            t0 = time.perf_counter()
            try:
                status, body = printer.request(
                    "POST", "/api/labels", {"barcodes": to_label.pop(), "printer": PRINTER}
                )
                stats.add("label", time.perf_counter() - t0)
                if status >= 300:
                    stats.error(f"{station} labels: HTTP {status} {str(body)[:120]}")
            except ConnectionError as exc:
                stats.error(f"{station} labels: no answer ({exc})")


def raw_pg_concurrent(url: str, clients: int, seconds: float) -> float:
    """UPDATE + INSERT + COMMIT per operation from `clients` connections at once; ops/s."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS raw_load_s, raw_load_e")
        con.execute("CREATE TABLE raw_load_s (id INT PRIMARY KEY, state TEXT, version INT)")
        con.execute("CREATE TABLE raw_load_e (seq BIGSERIAL PRIMARY KEY, body TEXT, hash TEXT)")
        con.execute(
            "INSERT INTO raw_load_s SELECT g, 'available', 1 FROM generate_series(0, %s) g",
            (clients,),
        )
    counts = [0] * clients

    def work(i: int, stop: threading.Event) -> None:
        with psycopg.connect(dsn) as con:
            while not stop.is_set():
                con.execute("UPDATE raw_load_s SET version = version + 1 WHERE id = %s", (i,))
                con.execute(
                    "INSERT INTO raw_load_e (body, hash) VALUES (%s, %s)", ("x" * 300, "h" * 64)
                )
                con.commit()
                counts[i] += 1

    run_threads(work, clients, seconds)
    return sum(counts) / seconds


def raw_sqlite_concurrent(clients: int, seconds: float) -> float:
    """The same on a SQLite file (WAL, synchronous=FULL, BEGIN IMMEDIATE); ops/s."""
    with tempfile.TemporaryDirectory(prefix="lims-raw-") as tmp:
        return _raw_sqlite_in(Path(tmp) / "raw.sqlite3", clients, seconds)


def _raw_sqlite_in(path: Path, clients: int, seconds: float) -> float:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE s (id INTEGER PRIMARY KEY, version INT)")
    con.execute("CREATE TABLE e (seq INTEGER PRIMARY KEY, body TEXT, hash TEXT)")
    con.executemany("INSERT INTO s VALUES (?, 1)", [(i,) for i in range(clients)])
    con.close()
    counts = [0] * clients

    def work(i: int, stop: threading.Event) -> None:
        c = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        c.execute("PRAGMA synchronous=FULL")
        while not stop.is_set():
            c.execute("BEGIN IMMEDIATE")
            c.execute("UPDATE s SET version = version + 1 WHERE id = ?", (i,))
            c.execute("INSERT INTO e (body, hash) VALUES (?, ?)", ("x" * 300, "h" * 64))
            c.execute("COMMIT")
            counts[i] += 1
        c.close()

    run_threads(work, clients, seconds)
    return sum(counts) / seconds


def run_load(args: argparse.Namespace, demo: Demo) -> dict:
    """Drive `args.stations` benches for `args.seconds`; return the row."""
    server = demo.server
    benches = add_stations(demo.url, args.stations)
    tubes = [b for b, _ in demo.available_samples(args.stations * args.tubes)]
    tokens = [demo.token("admin", station=name) for name, _ in benches]
    label_token = demo.token("tech1")
    # A batch for each label job a bench can reach: a cycle takes at least its scans' think
    # time (without one, a bench has batches for 20 cycles).
    scans_per_cycle = 2 * args.tubes + 3
    cycles = args.seconds / (args.think * scans_per_cycle) if args.think else 20
    jobs = int(cycles) // args.label_every if args.label_every else 0
    new = demo.registered_samples(args.stations * jobs * args.tubes)
    batches = [new[i : i + args.tubes] for i in range(0, len(new), args.tubes)]
    stats = Stats()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=station_loop,
            args=(
                server.port,
                name,
                box,
                tubes[i * args.tubes : (i + 1) * args.tubes],
                tokens[i],
                label_token,
                args.think,
                args.label_every,
                batches[i * jobs : (i + 1) * jobs],
                stats,
                stop,
            ),
            daemon=True,
        )
        for i, (name, box) in enumerate(benches)
    ]
    rss = []
    t0 = time.monotonic()
    for t in threads:
        t.start()
    while time.monotonic() - t0 < args.seconds:
        time.sleep(min(1.0, args.seconds))
        rss.append(server.rss_mb())
    stop.set()
    for t in threads:
        t.join(timeout=60)
    elapsed = time.monotonic() - t0
    scans = stats.latency["scan"]
    every = scans + stats.latency["label"]
    return {
        "engine": args.engine,
        "stations": args.stations,
        "workers": args.workers,
        "think s": args.think,
        "seconds": round(elapsed, 1),
        "requests": stats.requests,
        "requests /s": stats.requests / elapsed,
        "offered max /s": args.stations / args.think if args.think else None,
        "scans /s": len(scans) / elapsed,
        "label jobs": len(stats.latency["label"]),
        "p50 ms": 1000 * percentile(every, 50) if every else None,
        "p99 ms": 1000 * percentile(every, 99) if every else None,
        "scan p99 ms": 1000 * percentile(scans, 99) if scans else None,
        "label p99 ms": (
            1000 * percentile(stats.latency["label"], 99) if stats.latency["label"] else None
        ),
        "errors": len(stats.errors),
        "refused scans": len(stats.refused),
        "RSS peak MiB": max(rss) if rss else None,
        "RSS end MiB": rss[-1] if rss else None,
        "error_examples": stats.errors[:5],
        "refused_examples": stats.refused[:5],
    }


def _sweep_client(
    port: int, token: str, sample: list, stop: threading.Event, lat: list, errors: list
) -> None:
    """Move one sample back and forth as fast as the server answers (sample: [barcode, state])."""
    c = Client(port, token)
    while not stop.is_set():
        if sample[1] == "available":
            body = {"action": "check_out", "custodian": "tech1"}
        else:
            body = {"action": "check_in", "location": "RM-B1"}
        t0 = time.perf_counter()
        try:
            status, data = c.request("POST", f"/api/samples/{sample[0]}/transitions", body)
        except ConnectionError as exc:
            errors.append(str(exc))
            continue
        if status != 200:
            errors.append(f"{status} {data}")
            continue
        lat.append(time.perf_counter() - t0)
        sample[1] = data["state"]


def _cpu_times() -> tuple[int, int]:
    """Return (busy, total) jiffies of the whole machine from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _sweep_once(port: int, token: str, pool: list[list], n: int, seconds: float) -> dict:
    """Transitions/s with n concurrent clients, each moving its own sample of pool."""
    lat: list[float] = []
    errors: list[str] = []
    busy0, total0 = _cpu_times()
    run_threads(lambda i, stop: _sweep_client(port, token, pool[i], stop, lat, errors), n, seconds)
    busy1, total1 = _cpu_times()
    return {
        "clients": n,
        "CPU busy %": 100 * (busy1 - busy0) / max(1, total1 - total0),
        "transitions /s": len(lat) / seconds,
        "p50 ms": 1000 * percentile(lat, 50) if lat else None,
        "p99 ms": 1000 * percentile(lat, 99) if lat else None,
        "errors": len(errors),
        "error_examples": errors[:3],
    }


def run_sweep(demo: Demo, counts: list[int], seconds: float) -> list[dict]:
    """Transitions/s with 1, 2, 4, ... concurrent clients (each on its own sample)."""
    token = demo.token("tech1")
    pool = [[b, "available"] for b, _ in demo.available_samples(max(counts))]
    return [_sweep_once(demo.server.port, token, pool, n, seconds) for n in counts]


def raw_limit(engine: str, url: str, clients: int, seconds: float) -> float:
    """The limit for `clients` connections on engine (ops/s)."""
    if engine == "postgresql":
        return raw_pg_concurrent(url, clients, seconds)
    return raw_sqlite_concurrent(clients, seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--stations", type=int, default=50)
    ap.add_argument("--tubes", type=int, default=6, help="tubes per station")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--think", type=float, default=0.5, help="seconds between a bench's scans")
    ap.add_argument("--label-every", type=int, default=3, help="a label job every N cycles")
    ap.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    ap.add_argument("--sweep", default="", help="e.g. 1,2,4,8: transitions/s per client count")
    ap.add_argument("--sweep-seconds", type=float, default=8)
    ap.add_argument("--no-load", action="store_true", help="only the sweep")
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    args = parse_args(ap, TINY)
    if args.engine == "postgresql" and not pg_available():
        sys.exit("PostgreSQL is not reachable on 127.0.0.1:5432")
    out: dict = {"gunicorn": gunicorn_version(), "engine": args.engine}
    with demo_server(args.engine, workers=args.workers, name="load") as demo:
        demo.server.start()
        if not args.no_load:
            row = run_load(args, demo)
            row["raw SQL limit /s"] = raw_limit(
                args.engine, demo.url, args.stations, min(args.seconds, 10)
            )
            row["% of limit"] = 100 * row["requests /s"] / row["raw SQL limit /s"]
            out["load"] = row
            print_table(
                f"Load: {args.stations} stations, think {args.think}s, gunicorn -w {args.workers}"
                f" on {args.engine}",
                [row],
                [
                    "requests /s",
                    "offered max /s",
                    "scans /s",
                    "label jobs",
                    "p50 ms",
                    "p99 ms",
                    "scan p99 ms",
                    "label p99 ms",
                    "errors",
                    "refused scans",
                    "RSS peak MiB",
                    "RSS end MiB",
                    "raw SQL limit /s",
                    "% of limit",
                ],
            )
            for e in row["error_examples"] + row["refused_examples"]:
                print(f"  {e}")
        if args.sweep:
            counts = [int(x) for x in args.sweep.split(",")]
            rows = run_sweep(demo, counts, args.sweep_seconds)
            for r in rows:
                r["raw SQL limit /s"] = raw_limit(
                    args.engine, demo.url, r["clients"], min(args.sweep_seconds, 5)
                )
                r["% of limit"] = 100 * r["transitions /s"] / r["raw SQL limit /s"]
            out["sweep"] = rows
            print_table(
                f"Transitions/s by concurrent clients, gunicorn -w {args.workers} on {args.engine}",
                rows,
                [
                    "clients",
                    "transitions /s",
                    "p50 ms",
                    "p99 ms",
                    "errors",
                    "CPU busy %",
                    "raw SQL limit /s",
                    "% of limit",
                ],
            )
    write_json(args.json, out)


if __name__ == "__main__":
    main()
