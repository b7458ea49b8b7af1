"""Scans end to end: eight stations' scan -> committed audit event, next to a raw commit.

On SQLite behind the threaded werkzeug server (the embedded default), or with --engine
postgresql behind gunicorn (a centre's production set-up); --profile adds where a scan's time
goes in the server (cProfile of the same POST /api/scans in-process). Method: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


from agent.station import PostResult, StationAgent  # noqa: E402
from bench import scans_reader  # noqa: E402
from bench._common import parse_args, pg_create_database  # noqa: E402
from bench._server import Gunicorn, add_bench, session_on  # noqa: E402
from lims import audit, create_app, samples  # noqa: E402
from lims.accounts import users  # noqa: E402
from lims.db import new_session  # noqa: E402
from scanners.sim import ScannerSimulator  # noqa: E402

TIMEOUT_S = 120.0
# --tiny
TINY = {"stations": 2, "tubes": 3, "scans": 200, "raw_commits": 20, "profile": 5, "think_ms": 20}
SERVER = """
import sys
from werkzeug.serving import make_server
from lims import create_app
app = create_app({"DATABASE_URL": sys.argv[1], "SECRET_KEY": "bench"})
import gc
gc.freeze()  # as app.py does for the served app
import logging
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log: it would time the terminal
srv = make_server("127.0.0.1", 0, app, threaded=True)
print(srv.server_port, flush=True)
srv.serve_forever()
"""


def pct(values: list[float], p: float) -> float:
    """Return the p-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def setup(url: str, stations: int, tubes: int) -> list[tuple[str, str, str, list[str]]]:
    """Build the demo centre plus benches; return (station, token, badge, tubes) per bench."""
    out = []
    with session_on(url, demo=True) as db:
        system = users.system_actor(db)
        for i in range(stations):
            name, badge = f"BENCH-P{i + 1:02d}", f"BADGE-P{i + 1:02d}"
            add_bench(db, name, system)
            user = users.create_user(
                db,
                username=f"bench{i + 1}",
                role="technician",
                org="centre",
                password=None,
                badge=badge,
                actor=system,
            )
            db.flush()
            secret, _ = users.create_token(db, username="admin", station=name, actor=system)
            tech = users.actor_for(db, user, station=name)
            codes = [
                samples.register_sample(
                    db,
                    actor=tech,
                    data=samples.SampleCreate(sample_type="PBMC", project="CART-001"),
                ).barcode
                for _ in range(tubes)
            ]
            out.append((name, secret, badge, codes))
        db.commit()
    return out


def raw_commit(url: str, n: int) -> tuple[float, list[float]]:
    """Return events/s and per-event latencies for bare audit.record + commit on the file."""
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "AUTO_MIGRATE": False})
    engine = app.extensions["lims"]["engine"]
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        with new_session(engine) as db:
            audit.record(db, actor="bench", action="bench.raw", entity_type="bench", entity_id=i)
            db.commit()
        lat.append(time.perf_counter() - t)
    rate = n / (time.perf_counter() - t0)
    engine.dispose()
    return rate, lat


def end_to_end(
    url: str, benches: list, port: int, *, think_s: float = 0.0, seed: int = 3
) -> dict[str, object]:
    """Run every bench at once; return latencies (s), rate and counts.

    think_s: each operator's pause between an answer and the next scan (uniformly 0.5x to
    1.5x of it); 0 scans again at once, the most the system allows.
    """
    pause = random.Random(seed)
    server = f"http://127.0.0.1:{port}"
    sims, agents, threads = [], [], []
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    retried: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(len(benches) + 1)
    errors: list[str] = []

    def drive(sim: ScannerSimulator, answers: queue.Queue, badge: str, codes: list[str]) -> None:
        try:
            for setup_scan in (badge, "CMD:RECEIVE"):
                sim.scan(setup_scan)
                answers.get(timeout=TIMEOUT_S)
            start.wait(TIMEOUT_S)
            for k, code in enumerate(codes):
                if think_s and k:
                    time.sleep(think_s * (0.5 + pause.random()))
                sim.scan(code)
                written = time.monotonic()
                result: PostResult = answers.get(timeout=TIMEOUT_S)
                outcome = (result.body or {}).get("outcome", f"http {result.status}")
                with lock:
                    latencies.append(result.answered_at - written)
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                    if result.attempts > 1:
                        retried.append(result.attempts)
        except Exception as exc:  # noqa: BLE001 - reported, and the run fails below
            errors.append(repr(exc))
            start.abort()

    for name, token, badge, codes in benches:
        sim = ScannerSimulator(write_timeout_s=TIMEOUT_S)
        answers: queue.Queue = queue.Queue()
        agent = StationAgent(server, token, name, [sim.port], on_result=answers.put)
        agent.start()
        if not agent.wait_connected(10):
            raise TimeoutError(f"agent of {name} did not open its scanner")
        sims.append(sim)
        agents.append(agent)
        threads.append(threading.Thread(target=drive, args=(sim, answers, badge, codes)))
    for t in threads:
        t.start()
    start.wait(TIMEOUT_S)
    t0 = time.perf_counter()
    for t in threads:
        t.join(TIMEOUT_S * 4)
    elapsed = time.perf_counter() - t0
    for agent in agents:
        agent.stop()
    for sim in sims:
        sim.close()
    if errors:
        raise RuntimeError(f"benches failed: {errors}")
    return {
        "latencies": latencies,
        "elapsed": elapsed,
        "outcomes": outcomes,
        "retried": len(retried),
    }


def profile_scans(url: str, n: int, top: int = 25) -> list[dict[str, object]]:
    """Post n receive scans in-process under cProfile; return the costliest functions per scan.

    The same request the agents send (POST /api/scans), without the network and the agent:
    where the server's share of a scan goes.
    """
    import cProfile
    import pstats

    with session_on(url) as db:
        system = users.system_actor(db)
        add_bench(db, "BENCH-PROF", system)
        user = users.create_user(
            db,
            username="profiler",
            role="technician",
            org="centre",
            password=None,
            badge="BADGE-PROF",
            actor=system,
        )
        db.flush()
        secret, _ = users.create_token(db, username="admin", station="BENCH-PROF", actor=system)
        tech = users.actor_for(db, user, station="BENCH-PROF")
        codes = [
            samples.register_sample(
                db, actor=tech, data=samples.SampleCreate(sample_type="PBMC", project="CART-001")
            ).barcode
            for _ in range(n)
        ]
        db.commit()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "AUTO_MIGRATE": False})
    client = app.test_client()
    h = {"Authorization": f"Bearer {secret}"}

    def scan(data: str, i: int) -> None:
        body = {"station": "BENCH-PROF", "data": data, "scan_id": f"prof-{i}"}
        r = client.post("/api/scans", json=body, headers=h)
        if r.status_code != 200:
            raise RuntimeError(f"scan {data}: {r.status_code} {r.text[:200]}")

    scan("BADGE-PROF", -2)
    scan("CMD:RECEIVE", -1)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for i, code in enumerate(codes):
        scan(code, i)
    prof.disable()
    total = time.perf_counter() - t0
    app.extensions["lims"]["engine"].dispose()
    stats = pstats.Stats(prof)
    rows = []
    for (path, line, func), (_cc, _nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        short = path.split("site-packages/")[-1].removeprefix(ROOT + "/")
        rows.append(
            {
                "function": f"{short}:{line}({func})",
                "cumulative_ms_per_scan": round(ct * 1000 / n, 3),
                "own_ms_per_scan": round(tt * 1000 / n, 3),
            }
        )
    rows.sort(key=lambda r: -r["cumulative_ms_per_scan"])
    return [
        {"function": "(all, profiled)", "cumulative_ms_per_scan": round(total * 1000 / n, 3)}
    ] + rows[:top]


def serve(url: str, server: str, workers: int, log_dir: str):  # noqa: ANN201
    """Start the app on url (werkzeug in a subprocess, or gunicorn); return (port, stop)."""
    if server == "gunicorn":
        g = Gunicorn(url, workers=workers, log=Path(log_dir) / "gunicorn.log")
        g.start()
        return g.port, g.stop
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, url],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        text=True,
    )

    def stop() -> None:
        proc.terminate()
        proc.wait(10)

    try:
        return int(proc.stdout.readline()), stop
    except ValueError:
        stop()
        raise


def run(
    stations: int,
    tubes: int,
    scans: int,
    raw_commits: int = 200,
    *,
    engine: str = "sqlite",
    server: str = "werkzeug",
    workers: int = 4,
    profile: int = 0,
    think_ms: float = 0.0,
) -> dict[str, object]:
    """Measure everything once and return the figures."""
    raw_pty = scans_reader.bench_raw_pty(scans)
    reader = scans_reader.bench_reader(scans)
    with tempfile.TemporaryDirectory(prefix="bench-scans-") as tmp:
        if engine == "sqlite":
            url, drop = f"sqlite:///{tmp}/lims.sqlite3", (lambda: None)
        else:
            url, drop = pg_create_database()
        try:
            # Each bench's tubes: the first half scanned flat out, the second at a person's pace.
            benches = setup(url, stations, tubes * 2 if think_ms else tubes)
            port, stop = serve(url, server, workers, tmp)
            try:
                e2e = end_to_end(url, [(n, t, b, c[:tubes]) for n, t, b, c in benches], port)
                paced = (
                    end_to_end(
                        url,
                        [(n, t, b, c[tubes:]) for n, t, b, c in benches],
                        port,
                        think_s=think_ms / 1000,
                    )
                    if think_ms
                    else None
                )
            finally:
                stop()
            n_events = stations * (tubes * 2 if think_ms else tubes)
            raw_rate, raw_lat = raw_commit(url, max(raw_commits, n_events))
            with session_on(url) as db:
                received = sum(
                    len(audit.query(db, action="sample.receive", station=name, limit=10**6))
                    for name, *_ in benches
                )
                chain_ok = audit.verify(db).ok
            profiled = profile_scans(url, profile) if profile else None
        finally:
            drop()
    lat = e2e["latencies"]
    e2e_rate = len(lat) / e2e["elapsed"]
    raw_med = statistics.median(raw_lat)
    return {
        "python": sys.version.split()[0],
        "engine": engine,
        "server": server if server == "werkzeug" else f"gunicorn, {workers} workers",
        "profile": profiled,
        "stations": stations,
        "tubes_per_station": tubes * 2 if think_ms else tubes,
        "think_ms": think_ms,
        "outcomes": {
            k: e2e["outcomes"].get(k, 0) + (paced["outcomes"].get(k, 0) if paced else 0)
            for k in {*e2e["outcomes"], *(paced["outcomes"] if paced else ())}
        },
        "scans_retried": e2e["retried"] + (paced["retried"] if paced else 0),
        "receive_events_in_trail": received,
        "chain_verifies": chain_ok,
        "rows": [
            {"what": "raw pty", "per_s": round(raw_pty, 1), "ratio": 1.0},
            {"what": "reader via pty", "per_s": round(reader, 1), "ratio": reader / raw_pty},
            {"what": "raw commit (1 event/tx)", "per_s": round(raw_rate, 1), "ratio": 1.0},
            {
                "what": f"{stations} stations end to end",
                "per_s": round(e2e_rate, 1),
                "ratio": e2e_rate / raw_rate,
            },
        ],
        "latency_ms": {
            "raw_commit_median": round(raw_med * 1000, 2),
            "raw_commit_p99": round(pct(raw_lat, 0.99) * 1000, 2),
            "scan_to_event_median": round(statistics.median(lat) * 1000, 2),
            "scan_to_event_p99": round(pct(lat, 0.99) * 1000, 2),
            "scan_to_event_max": round(max(lat) * 1000, 2),
            "median_over_raw_commit": round(statistics.median(lat) / raw_med, 1),
            **(
                {
                    "paced_median": round(statistics.median(paced["latencies"]) * 1000, 2),
                    "paced_p99": round(pct(paced["latencies"], 0.99) * 1000, 2),
                    "paced_max": round(max(paced["latencies"]) * 1000, 2),
                }
                if paced
                else {}
            ),
        },
    }


def main() -> int:
    """Measure and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=8)
    parser.add_argument("--tubes", type=int, default=40, help="tubes received per station")
    parser.add_argument("--scans", type=int, default=20000, help="scans for the reader rows")
    parser.add_argument("--raw-commits", type=int, default=200, help="at least this many")
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--server",
        choices=("werkzeug", "gunicorn"),
        help="default: werkzeug on SQLite, else gunicorn",
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--profile", type=int, default=0, help="profile this many scans in-process")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=800,
        help="a second pass with this pause between an operator's scans (0: none)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parse_args(parser, TINY)
    server = args.server or ("werkzeug" if args.engine == "sqlite" else "gunicorn")
    result = run(
        args.stations,
        args.tubes,
        args.scans,
        args.raw_commits,
        engine=args.engine,
        server=server,
        workers=args.workers,
        profile=args.profile,
        think_ms=args.think_ms,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if result["chain_verifies"] else 1
    print(
        f"{result['engine']} behind {result['server']}: "
        f"{result['stations']} stations x {result['tubes_per_station']} tubes, "
        f"Python {result['python']}; outcomes {result['outcomes']}; "
        f"retried {result['scans_retried']}; "
        f"receive events in trail {result['receive_events_in_trail']}; "
        f"chain verifies: {result['chain_verifies']}"
    )
    print(f"{'what':<28}{'per s':>12}{'x limit':>10}")
    for row in result["rows"]:  # type: ignore[union-attr]
        print(f"{row['what']:<28}{row['per_s']:>12,.0f}{row['ratio']:>10.3f}")
    lat = result["latency_ms"]
    print(
        f"scan -> committed event: median {lat['scan_to_event_median']} ms, "  # type: ignore[index]
        f"p99 {lat['scan_to_event_p99']} ms, max {lat['scan_to_event_max']} ms; "  # type: ignore[index]
        f"raw commit median {lat['raw_commit_median']} ms, p99 {lat['raw_commit_p99']} ms "  # type: ignore[index]
        f"(median ratio {lat['median_over_raw_commit']}x)"  # type: ignore[index]
    )
    if "paced_p99" in lat:
        print(
            f"at a person's pace ({result['think_ms']:g} ms between scans, +-50%): median "  # type: ignore[index]
            f"{lat['paced_median']} ms, p99 {lat['paced_p99']} ms, max {lat['paced_max']} ms"  # type: ignore[index]
        )
    for row in result["profile"] or []:  # type: ignore[union-attr]
        print(f"{row['cumulative_ms_per_scan']:>9.3f} ms/scan  {row['function']}")
    return 0 if result["chain_verifies"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
