"""Run every benchmark and write one table: each figure next to its limit measured in the same run.

Every benchmark runs as a subprocess with its JSON output, under a timeout; a failed or timed
out benchmark becomes a row saying so and the others still run. The table goes to stdout and
to bench/results/latest.md, the figures to bench/results/latest.json (bench/results/ is not
committed). "share of limit" is project/limit for rates and limit/project for times, so 1.0 is
the limit itself; "x line" rows say how many times the physical line rate the software reaches.

Sizes are chosen so the whole run fits in 10 minutes on a 2-core machine (about 5 measured);
`--quick` takes about 2, with smaller sizes (the audit trail then has 20,000 events instead of
the issue's 1,000,000: the note on those rows says so).

    python bench/all.py [--quick] [--only custody,labels,...] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import pg_available  # noqa: E402

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
                "rack of 96 received in one request",
                r["rack of 96, ms"],
                "ms",
                target="<= 150 ms",
                met=r["rack of 96, ms"] <= 150,
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
    return [
        _row(
            "scans",
            f"{data['stations']} stations scanning, end to end (SQLite, HTTP)",
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
            "scans",
            "scan -> committed event, median",
            lat["scan_to_event_median"],
            "ms",
            lat["raw_commit_median"],
            "raw commit median",
            lat["raw_commit_median"] / lat["scan_to_event_median"],
            note=f"p99 {lat['scan_to_event_p99']} ms, max {lat['scan_to_event_max']} ms",
        ),
    ]


def rows_audit(data: dict, args: argparse.Namespace) -> list[dict]:
    note = f"{data['events']:,} events ({data['engine']}); the issue's size is 1,000,000"
    if data["events"] >= 1_000_000:
        note = f"{data['events']:,} events ({data['engine']})"
    b = f"audit ({data['engine']})"
    return [
        _row(
            b,
            "sample history p95",
            data["history_p95_ms"],
            "ms",
            data["history_raw_p95_ms"],
            "same SQL via the bare driver",
            data["history_raw_p95_ms"] / max(data["history_p95_ms"], 1e-9),
            "<= 5 ms",
            data["history_p95_ms"] <= 5,
            note,
        ),
        _row(
            b,
            "QA page of 100 p95",
            data["page_p95_ms"],
            "ms",
            data["page_raw_p95_ms"],
            "same SQL via the bare driver",
            data["page_raw_p95_ms"] / max(data["page_p95_ms"], 1e-9),
            "<= 25 ms",
            data["page_p95_ms"] <= 25,
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


def steps(args: argparse.Namespace, tmp: Path) -> list[tuple[str, list[str], float, str, Callable]]:
    """Return (name, command, timeout, json source: 'stdout' or a file, parser) per benchmark."""
    q = args.quick
    pg = not args.no_postgres and pg_available()
    audit_db = f"sqlite:///{tmp / 'audit.sqlite3'}"
    out = [
        (
            "scans_reader",
            [PY, "bench/scans_reader.py", "--json"]
            + (
                ["--scans", "5000", "--repeat", "1"] if q else ["--scans", "20000", "--repeat", "2"]
            ),
            60,
            "stdout",
            rows_scans_reader,
        ),
        (
            "labels",
            [PY, "bench/labels.py", "--json"],
            90,
            "stdout",
            rows_labels,
        ),
        (
            "custody",
            [PY, "bench/custody.py", "--json", str(tmp / "custody.json")]
            + ["--n", "100" if q else "500", "--engine", "both" if pg else "sqlite"],
            240,
            str(tmp / "custody.json"),
            rows_custody,
        ),
        (
            "scans",
            [PY, "bench/scans.py", "--json"]
            + (
                ["--tubes", "10", "--scans", "5000"] if q else ["--tubes", "30", "--scans", "10000"]
            ),
            180,
            "stdout",
            rows_scans,
        ),
        (
            "audit",
            [PY, "bench/audit.py", "--json", "--database-url", audit_db]
            + ["--generate", "20000" if q else "1000000", "--samples", "100" if q else "300"],
            120 if q else 420,
            "stdout",
            rows_audit,
        ),
    ]
    if pg:
        out.append(
            (
                "audit_pg",
                [
                    PY,
                    "bench/audit.py",
                    "--json",
                    "--drop",
                    "--database-url",
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test?schema=bench_audit_all",
                ]
                + ["--generate", "20000" if q else "1000000", "--samples", "100" if q else "300"],
                120 if q else 480,
                "stdout",
                rows_audit,
            )
        )
        out.append(
            (
                "load",
                [PY, "bench/load.py", "--json", str(tmp / "load.json")]
                + (
                    ["--seconds", "10", "--sweep", "1,4", "--sweep-seconds", "4"]
                    if q
                    else ["--seconds", "30", "--sweep", "1,2,4,8", "--sweep-seconds", "6"]
                ),
                180,
                str(tmp / "load.json"),
                rows_load,
            )
        )
    return out


def run_step(name: str, cmd: list[str], timeout: float, source: str, parse: Callable, args) -> dict:  # noqa: ANN001
    """Run one benchmark; return its rows, raw output and timing (never raises)."""
    t0 = time.monotonic()
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd[1:])}", file=sys.stderr)
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
        )
    except subprocess.TimeoutExpired:
        return {"name": name, "status": f"timeout after {timeout:.0f} s", "rows": [], "s": timeout}
    elapsed = time.monotonic() - t0
    try:
        text = proc.stdout if source == "stdout" else Path(source).read_text()
        data = json.loads(text[text.index("{") :])
        rows = parse(data, args)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    except Exception as exc:  # a broken benchmark is a row in the table, not the end of the run
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {
            "name": name,
            "status": f"failed (exit {proc.returncode}): {type(exc).__name__}: {exc}; "
            + " | ".join(tail),
            "rows": [],
            "s": elapsed,
        }
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
    lines = [
        f"# Benchmarks ({'quick' if args.quick else 'full'} run, {time.strftime('%Y-%m-%d %H:%M')},"
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
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--no-postgres", action="store_true", help="SQLite only; no load run")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
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
    (RESULTS / "latest.md").write_text(md)
    (RESULTS / "latest.json").write_text(
        json.dumps(
            {
                "quick": args.quick,
                "seconds": total,
                "cpus": os.cpu_count(),
                "benchmarks": results,
            },
            indent=2,
            default=str,
        )
    )
    failed = [r for r in results if r["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
