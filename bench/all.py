"""Run every benchmark and write one table: each figure next to its limit measured in the same run.

How it runs, its options and what "share" means: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import PG_ADMIN_URL, pg_available  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PY = sys.executable


def _row(
    bench: str,
    figure: str,
    value: float | str | None,
    unit: str,
    limit: float | str | None = None,
    limit_what: str = "",
    share: float | None = None,
    target: str = "",
    met: bool | None = None,
    note: str = "",
) -> dict:
    return {
        "benchmark": bench,
        "figure": figure,
        "value": value,
        "unit": unit,
        "limit": limit,
        "limit_what": limit_what,
        "share": share,
        "target": target,
        "met": met,
        "note": note,
    }


# --- parsers: benchmark output -> rows ------------------------------------------------------


def rows_custody(data: dict, _args: argparse.Namespace) -> list[dict]:
    out = []
    for r in data["custody"]:
        eng = r["engine"]
        lim = r["raw SQL limit /s"]
        what = f"raw {eng}: UPDATE + INSERT + COMMIT"
        floor = r["raw, all of a move's statements /s"]
        out.append(
            _row(
                f"custody ({eng})",
                "raw SQL running every statement of a move (no app code)",
                floor,
                "/s",
                lim,
                what,
                r["that, % of limit"] / 100,
                note="the best a move can reach: it also reads the sample and the chain head "
                "and advances the head",
            )
        )
        for key, name, target, need in (
            ("domain", "custody transition, domain call", ">= 50% of limit", 0.5),
            ("test client", "custody transition, API (test client)", ">= 25% of limit", 0.25),
            ("HTTP", "custody transition, API over HTTP (werkzeug)", "", None),
        ):
            # The median of the per-round ratios (bench/custody.py alternates limit and app).
            share = r[f"{key} % of limit"] / 100
            out.append(
                _row(
                    f"custody ({eng})",
                    name,
                    r[f"{key} /s"],
                    "/s",
                    lim,
                    what,
                    share,
                    target,
                    share >= need if need else None,
                )
            )
        out.append(
            _row(
                f"custody ({eng})",
                f"rack of {r['rack size']} received in one request",
                r["rack ms"],
                "ms",
                target="<= 150 ms" if r["rack size"] == 96 else "",
                met=r["rack ms"] <= 150 if r["rack size"] == 96 else None,
            )
        )
    return out


def rows_labels(data: dict, _args: argparse.Namespace) -> list[dict]:
    out = []
    for b in data["batches"]:
        kind = "stored format" if b["stored_format"] else "full labels"
        out.append(
            _row(
                "labels",
                f"{b['labels']} labels ({kind}, {b['template']}) over {b['baud']} baud (pty sim)",
                b["elapsed_s"],
                "s",
                b["link_limit_s"],
                f"{b['bytes_on_wire']} bytes at {b['baud']} baud 8N1",
                b["link_limit_s"] / b["elapsed_s"] if b["elapsed_s"] else None,
                "all printed, in order",
                bool(b["complete_in_order"]) and not b["error"],
            )
        )
    baud = data["batches"][0]["baud"] if data["batches"] else 9600
    for name, rate in data["render_per_s"].items():
        per_label = data["bytes"].get(name, {}).get("full_bytes_per_label")
        line = baud / 10 / per_label if per_label else None
        out.append(
            _row(
                "labels",
                f"ZPL render, {name}",
                rate,
                "labels/s",
                line,
                f"{baud}-baud line, {per_label} B/label" if line else "",
                rate / line if line else None,
                note="x line: render headroom over the serial link",
            )
        )
    return out


def rows_scans_reader(data: dict, _args: argparse.Namespace) -> list[dict]:
    rows = {r["what"]: r for r in data["rows"]}
    raw = rows["raw pty"]["scans_per_s"]
    out = []
    for what in ("reader via pty", "framer, 64 B reads", "framer, 1 read"):
        r = rows[what]
        out.append(
            _row(
                "scanner reader",
                what,
                r["scans_per_s"],
                "scans/s",
                raw,
                "bare os.read loop on the same pty",
                r["scans_per_s"] / raw,
                note=f"{r['ratio_to_9600_baud']:,.0f}x a 9600-baud scanner",
            )
        )
    lat = data["latency_one_scan"]
    out.append(
        _row(
            "scanner reader",
            "one scan, pty write -> on_scan, p99",
            lat["p99_ms"],
            "ms",
            note=f"p50 {lat['p50_ms']} ms, max {lat['max_ms']} ms",
        )
    )
    return out


def rows_scans(data: dict, _args: argparse.Namespace) -> list[dict]:
    rows = {r["what"]: r for r in data["rows"]}
    e2e = next(r for w, r in rows.items() if "end to end" in w)
    raw = rows["raw commit (1 event/tx)"]["per_s"]
    lat = data["latency_ms"]
    ok = (
        data["chain_verifies"]
        and data["receive_events_in_trail"] == data["stations"] * data["tubes_per_station"]
    )
    where = f"{data.get('engine', 'sqlite')}, {data.get('server', 'werkzeug')}"
    b = f"scans ({data.get('engine', 'sqlite')})"
    return [
        _row(
            b,
            f"{data['stations']} stations scanning, end to end ({where}, HTTP)",
            e2e["per_s"],
            "scans/s",
            raw,
            "raw commit of one audit event per transaction",
            e2e["per_s"] / raw,
            "every scan in the trail, chain verifies",
            ok,
            f"outcomes {data['outcomes']}, retried {data['scans_retried']}",
        ),
        _row(
            b,
            "scan -> committed event, median",
            lat["scan_to_event_median"],
            "ms",
            lat["raw_commit_median"],
            "raw commit median",
            lat["raw_commit_median"] / lat["scan_to_event_median"],
            note=f"flat out, every bench scanning again at once; max {lat['scan_to_event_max']} ms",
        ),
        _row(
            b,
            f"scan -> committed event, p99, operators {data.get('think_ms', 0):g} ms apart",
            lat.get("paced_p99", lat["scan_to_event_p99"]),
            "ms",
            lat["raw_commit_p99"],
            "raw commit p99",
            lat["raw_commit_p99"] / lat.get("paced_p99", lat["scan_to_event_p99"]),
            "<= 20 ms",
            lat.get("paced_p99", lat["scan_to_event_p99"]) <= 20,
            f"flat out: p99 {lat['scan_to_event_p99']} ms (queueing behind the other benches)",
        ),
    ]


def _p95_row(bench: str, data: dict, key: str, what: str, limit_ms: float, note: str = "") -> dict:
    """A p95 in ms of audit.py (key_p95_ms) next to the bare driver's (key_raw_p95_ms)."""
    ms, raw = data[f"{key}_p95_ms"], data[f"{key}_raw_p95_ms"]
    return _row(
        bench,
        f"{what} p95",
        ms,
        "ms",
        raw,
        "same SQL via the bare driver",
        raw / max(ms, 1e-9),
        f"<= {limit_ms} ms",
        ms <= limit_ms,
        note,
    )


def rows_therapy(data: dict, _args: argparse.Namespace) -> list[dict]:
    note = f"{data['episodes']:,} episodes, {data['statements_per_read']} statements a read"
    b = f"therapy ({data['engine']})"
    return [_p95_row(b, data, "timeline", "episode page with its COI timeline", 25, note)]


def rows_shipments(data: dict, _args: argparse.Namespace) -> list[dict]:
    """Logger import and shipment page (bench/shipments.py): p95 next to the bare driver."""
    b = f"shipments ({data['engine']})"
    note = f"{data['lines']:,}-line logger CSV, {data['statements_per_page']} statements a page"
    return [
        _p95_row(b, data, "import", "logger CSV import (executemany INSERT raw)", 1500, note),
        _p95_row(b, data, "page", "shipment page read (manifest, timeline, readings)", 250, note),
    ]


def rows_genealogy(data: dict, _args: argparse.Namespace) -> list[dict]:
    """Where used and made from (bench/genealogy.py): p95 next to the same SQL, bare driver."""
    b = f"genealogy ({data['engine']})"
    note = f"{data['lots']:,} lots, {data['links']:,} links, {data['vials']:,} vials"
    return [
        _p95_row(b, data, "where_used", "where used (recall of a material)", 50, note),
        _p95_row(b, data, "made_from", "made from (a lot's inputs, any depth)", 50, note),
    ]


def rows_audit(data: dict, args: argparse.Namespace) -> list[dict]:
    note = f"{data['events']:,} events ({data['engine']}); the issue's size is 1,000,000"
    if data["events"] >= 1_000_000:
        note = f"{data['events']:,} events ({data['engine']})"
    b = f"audit ({data['engine']})"
    return [
        _p95_row(b, data, "history", "sample history", 5, note),
        _p95_row(b, data, "page", "QA page of 100", 25),
        _p95_row(b, data, "lot_trail", "lot audit-trail review page", 25),
        _p95_row(
            b,
            data,
            "sorted_page",
            "QA page sorted by who/action/record/where",
            250,
            "first and next page of 50; where (station) sorts the matching events",
        ),
        _row(
            b,
            "CSV export",
            data["csv_rows_s"],
            "rows/s",
            data["csv_raw_rows_s"],
            "driver + csv module",
            data["csv_rows_s"] / data["csv_raw_rows_s"],
            ">= 50,000 rows/s, <= 50 MB",
            data["csv_rows_s"] >= 50_000 and data["csv_peak_mb"] <= 50,
            f"peak {data['csv_peak_mb']} MB over {data['csv_rows']:,} rows",
        ),
        _row(
            b,
            "chain verify",
            data["verify_events_s"],
            "events/s",
            data["verify_raw_read_events_s"],
            "driver reading the hashed columns",
            data["verify_events_s"] / data["verify_raw_read_events_s"],
            ">= 200,000 events/s",
            data["verify_ok"] and data["verify_events_s"] >= 200_000,
        ),
        _row(
            b,
            "statements scanning the audit table without an index",
            data["full_scans"],
            "",
            target="0",
            met=data["full_scans"] == 0,
        ),
    ]


def rows_rooms(data: dict, args: argparse.Namespace) -> list[dict]:
    b = f"rooms ({data['engine']})"
    note = f"{data['rooms']} rooms, {data['days']:,} days of bookings and EM results"
    return [
        _p95_row(b, data, "calendar", "room week calendar page", 50, note),
        _p95_row(b, data, "client_calendar", "client week calendar page (every room)", 50),
        _p95_row(b, data, "em_trend", "EM trend page (90 days)", 50),
    ]


def rows_load(data: dict, _args: argparse.Namespace) -> list[dict]:
    out = []
    eng = data["engine"]
    if "load" in data:
        r = data["load"]
        b = f"load ({eng}, gunicorn -w {r['workers']})"
        out += [
            _row(
                b,
                f"{r['stations']} stations, think {r['think s']} s: requests",
                r["requests /s"],
                "/s",
                r["raw SQL limit /s"],
                f"raw {eng}, {r['stations']} connections: UPDATE + INSERT + COMMIT",
                r["% of limit"] / 100,
                note=(
                    f"offered at most {r['offered max /s']:.0f}/s by the think time; "
                    f"{r['label jobs']} label jobs"
                    if r["offered max /s"]
                    else f"{r['label jobs']} label jobs"
                ),
            ),
            _row(b, "latency p50 / p99", f"{r['p50 ms']:.1f} / {r['p99 ms']:.1f}", "ms"),
            _row(
                b,
                "errors (non-2xx or no answer) / refused scans",
                f"{r['errors']} / {r['refused scans']}",
                "",
                target="0 / 0",
                met=r["errors"] == 0 and r["refused scans"] == 0,
            ),
            _row(
                b,
                "server memory (RSS, master + workers)",
                f"{r['RSS peak MiB']:.0f} peak, {r['RSS end MiB']:.0f} end",
                "MiB",
            ),
        ]
    for s in data.get("sweep", []):
        out.append(
            _row(
                f"scale-out ({eng})",
                f"transitions, {s['clients']} concurrent clients",
                s["transitions /s"],
                "/s",
                s["raw SQL limit /s"],
                f"raw {eng}, {s['clients']} connections",
                s["% of limit"] / 100,
                note=f"p50 {s['p50 ms']:.1f} ms, p99 {s['p99 ms']:.1f} ms, errors {s['errors']}, "
                f"CPU busy {s.get('CPU busy %', 0):.0f}%",
            )
        )
    return out


# --- the steps ----------------------------------------------------------------------------


def rows_centre(data: dict, _args: argparse.Namespace) -> list[dict]:
    """One row per page or API list of bench/centre.py, against its bare SQL."""
    size = f"{data['samples']:,} samples, {data['events']:,} events, {data['lots']:,} lots"
    b = f"centre ({data['engine']})"
    return [
        _row(
            b,
            f"{p['what']} p95",
            p["p95_ms"],
            "ms",
            p["raw_p95_ms"],
            "same SQL via the bare driver",
            p["raw_p95_ms"] / max(p["p95_ms"], 1e-9),
            f"<= {p['target_ms']:g} ms",
            p["p95_ms"] <= p["target_ms"],
            f"{p['statements']} statements; {size}" if i == 0 else f"{p['statements']} statements",
        )
        for i, p in enumerate(data["pages"])
    ]


def engines(args: argparse.Namespace) -> list[str]:
    """Return the engines to measure: --engine, without PostgreSQL when it does not answer."""
    wanted = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    if args.no_postgres:
        wanted = ["sqlite"]
    if "postgresql" in wanted and not pg_available():
        print("PostgreSQL is not reachable on 127.0.0.1:5432; skipping it", file=sys.stderr)
        wanted.remove("postgresql")
    return wanted


def steps(args: argparse.Namespace, tmp: Path) -> list[tuple[str, list[str], float, str, Callable]]:
    """Return (name, command, timeout, json source: 'stdout' or a file, parser) per benchmark."""
    q = args.quick
    eng = engines(args)

    def size(full: list[str], quick: list[str]) -> list[str]:
        return ["--tiny"] if args.tiny else quick if q else full

    def timeout(full: float, quick: float) -> float:
        return 120 if args.tiny else quick if q else full

    def audit(name: str, url: str, extra: list[str], full_timeout: float) -> tuple:
        return (
            name,
            [PY, "bench/audit.py", "--json", "--database-url", url, *extra]
            + size(
                ["--generate", "1000000", "--samples", "300"],
                ["--generate", "20000", "--samples", "100"],
            ),
            timeout(full_timeout, 120),
            "stdout",
            rows_audit,
        )

    def genealogy(name: str, url: str, extra: list[str], full_timeout: float) -> tuple:
        return (
            name,
            [PY, "bench/genealogy.py", "--json", "--database-url", url, *extra]
            + size([], ["--lots", "2000", "--links", "100000", "--materials", "1000"]),
            timeout(full_timeout, 180),
            "stdout",
            rows_genealogy,
        )

    out = [
        (
            "scans_reader",
            [PY, "bench/scans_reader.py", "--json"]
            + size(["--scans", "20000", "--repeat", "2"], ["--scans", "5000", "--repeat", "1"]),
            timeout(60, 60),
            "stdout",
            rows_scans_reader,
        ),
        ("labels", [PY, "bench/labels.py", "--json"] + size([], []), 90, "stdout", rows_labels),
    ]
    if eng:
        out.append(
            (
                "custody",
                [PY, "bench/custody.py", "--json", str(tmp / "custody.json")]
                + ["--engine", "both" if len(eng) == 2 else eng[0]]
                + size(["--n", "500"], ["--n", "100"]),
                timeout(240, 240),
                str(tmp / "custody.json"),
                rows_custody,
            )
        )
    out.append(
        (
            "scans",
            [PY, "bench/scans.py", "--json"]
            + size(["--tubes", "30", "--scans", "10000"], ["--tubes", "10", "--scans", "5000"]),
            timeout(180, 180),
            "stdout",
            rows_scans,
        )
    )
    if "postgresql" in eng:
        out.append(
            (
                "scans_pg",
                [PY, "bench/scans.py", "--json", "--engine", "postgresql"]
                + size(["--tubes", "30", "--scans", "10000"], ["--tubes", "10", "--scans", "5000"]),
                timeout(240, 240),
                "stdout",
                rows_scans,
            )
        )
    if "sqlite" in eng:
        out.append(audit("audit", f"sqlite:///{tmp / 'audit.sqlite3'}", [], 420))
    if "postgresql" in eng:
        # A schema of its own (dropped afterwards): runs at the same time do not meet.
        schema = f"bench_audit_{uuid.uuid4().hex[:8]}"
        out.append(audit("audit_pg", f"{PG_ADMIN_URL}?schema={schema}", ["--drop"], 480))

    def centre(name: str, url: str, extra: list[str]) -> tuple:
        return (
            name,
            [PY, "bench/centre.py", "--json", "--database-url", url, *extra]
            + size([], ["--events", "50000", "--samples", "10000", "--lots", "1000"]),
            timeout(3600, 300),
            "stdout",
            rows_centre,
        )

    if "sqlite" in eng:
        out.append(centre("centre", f"sqlite:///{tmp / 'centre.sqlite3'}", []))
    if "postgresql" in eng:
        schema = f"bench_centre_{uuid.uuid4().hex[:8]}"
        out.append(centre("centre_pg", f"{PG_ADMIN_URL}?schema={schema}", ["--drop"]))
    for e in eng:
        out.append(
            (
                "therapy" if e == "sqlite" else "therapy_pg",
                [PY, "bench/therapy.py", "--json", "--engine", e]
                + size(["--episodes", "500"], ["--episodes", "100", "--reads", "50"]),
                timeout(600, 240),
                "stdout",
                rows_therapy,
            )
        )
    for e in eng:
        out.append(
            (
                "shipments" if e == "sqlite" else "shipments_pg",
                [PY, "bench/shipments.py", "--json", "--engine", e]
                + size([], ["--lines", "2000", "--rounds", "5", "--reads", "10"]),
                timeout(600, 240),
                "stdout",
                rows_shipments,
            )
        )
    if "sqlite" in eng:
        out.append(
            (
                "rooms",
                [
                    PY,
                    "bench/rooms.py",
                    "--json",
                    "--database-url",
                    f"sqlite:///{tmp / 'rooms.sqlite3'}",
                ]
                + size([], ["--rooms", "20", "--days", "365", "--rounds", "50"]),
                timeout(600, 180),
                "stdout",
                rows_rooms,
            )
        )
    if "postgresql" in eng:
        schema = f"bench_rooms_{uuid.uuid4().hex[:8]}"
        out.append(
            (
                "rooms_pg",
                [
                    PY,
                    "bench/rooms.py",
                    "--json",
                    "--drop",
                    "--database-url",
                    f"{PG_ADMIN_URL}?schema={schema}",
                ]
                + size([], ["--rooms", "20", "--days", "365", "--rounds", "50"]),
                timeout(900, 240),
                "stdout",
                rows_rooms,
            )
        )
    if "sqlite" in eng:
        out.append(genealogy("genealogy", f"sqlite:///{tmp / 'genealogy.sqlite3'}", [], 600))
    if "postgresql" in eng:
        schema = f"bench_gen_{uuid.uuid4().hex[:8]}"
        out.append(genealogy("genealogy_pg", f"{PG_ADMIN_URL}?schema={schema}", ["--drop"], 900))
    if eng:
        # The load test is PostgreSQL's (the production engine); on SQLite only without it.
        load_engine = "postgresql" if "postgresql" in eng else "sqlite"
        out.append(
            (
                "load",
                [PY, "bench/load.py", "--engine", load_engine, "--json", str(tmp / "load.json")]
                + size(
                    ["--seconds", "30", "--sweep", "1,2,4,8", "--sweep-seconds", "6"],
                    ["--seconds", "10", "--sweep", "1,4", "--sweep-seconds", "4"],
                ),
                timeout(180, 180),
                str(tmp / "load.json"),
                rows_load,
            )
        )
    return out


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess | None:
    """Run cmd; on timeout interrupt it (so it stops its servers) and return None."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGINT first: the benchmark's finally blocks stop gunicorn and drop its database.
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        return None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_step(name: str, cmd: list[str], timeout: float, source: str, parse: Callable, args) -> dict:  # noqa: ANN001
    """Run one benchmark; return its rows, raw output and timing (never raises)."""
    t0 = time.monotonic()
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd[1:])}", file=sys.stderr)
    proc = _run(cmd, timeout)
    if proc is None:
        return {"name": name, "status": f"timeout after {timeout:.0f} s", "rows": [], "s": timeout}
    elapsed = time.monotonic() - t0
    tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
    try:
        text = proc.stdout if source == "stdout" else Path(source).read_text()
        data = json.loads(text[text.index("{") :])
        rows = parse(data, args)
    except Exception as exc:  # a broken benchmark is a row in the table, not the end of the run
        return {
            "name": name,
            "status": f"failed (exit {proc.returncode}): {type(exc).__name__}: {exc}; {tail}",
            "rows": [],
            "s": elapsed,
        }
    status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {tail}"
    return {"name": name, "status": status, "rows": rows, "s": elapsed, "data": data}


def _fmt(v: object, digits: int = 3) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, bool):
        return "yes" if v else "**NO**"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown(results: list[dict], args: argparse.Namespace, total_s: float) -> str:
    """Render the one table (plus the status of each benchmark)."""
    kind = "tiny" if args.tiny else "quick" if args.quick else "full"
    lines = [
        f"# Benchmarks ({kind} run, {time.strftime('%Y-%m-%d %H:%M')},"
        f" {os.cpu_count()} CPUs, {total_s:.0f} s)",
        "",
        "Each figure next to its limit measured in the same run; share = project/limit for rates,"
        " limit/project for times (1.0 = the limit). Numbers from a shared, noisy machine.",
        "",
        "| benchmark | figure | project | unit | limit (same run) | limit is | share | target |"
        " met | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        for r in res["rows"]:
            lines.append(
                "| "
                + " | ".join(
                    _fmt(x)
                    for x in (
                        r["benchmark"],
                        r["figure"],
                        r["value"],
                        r["unit"],
                        r["limit"],
                        r["limit_what"],
                        r["share"],
                        r["target"],
                        r["met"],
                        r["note"],
                    )
                )
                + " |"
            )
    lines += ["", "| benchmark | status | seconds |", "|---|---|---|"]
    for res in results:
        lines.append(f"| {res['name']} | {res['status']} | {res['s']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes: about 2 minutes")
    ap.add_argument(
        "--tiny",
        action="store_true",
        help="every benchmark with --tiny (seconds; figures meaningless); results not in "
        "bench/results/",
    )
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--no-postgres", action="store_true", help="the same as --engine sqlite")
    ap.add_argument(
        "--results",
        type=Path,
        default=None,
        help="where latest.md and latest.json go (default bench/results/; --tiny: a new "
        "temporary directory)",
    )
    args = ap.parse_args()
    results_dir = args.results or (
        Path(tempfile.mkdtemp(prefix="lims-bench-tiny-")) if args.tiny else RESULTS
    )
    results_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="lims-all-") as tmp:
        for name, cmd, timeout, source, parse in steps(args, Path(tmp)):
            if args.only and name not in args.only.split(","):
                continue
            results.append(run_step(name, cmd, timeout, source, parse, args))
    total = time.monotonic() - t0
    md = markdown(results, args, total)
    print(md)
    (results_dir / "latest.md").write_text(md)
    (results_dir / "latest.json").write_text(
        json.dumps(
            {
                "quick": args.quick,
                "tiny": args.tiny,
                "seconds": total,
                "cpus": os.cpu_count(),
                "benchmarks": results,
            },
            indent=2,
            default=str,
        )
    )
    print(f"written: {results_dir / 'latest.md'} and latest.json", file=sys.stderr)
    failed = [r for r in results if r["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
