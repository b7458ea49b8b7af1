"""Helpers shared by the benchmark scripts: fresh databases, timing, tables."""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def timed(fn: Callable[[], object], n: int) -> float:
    """Run fn n times and return the rate per second."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def parse_args(
    ap: argparse.ArgumentParser, tiny: dict[str, object], argv: list[str] | None = None
) -> argparse.Namespace:
    """Parse argv; with --tiny the sizes in tiny replace the defaults (explicit flags still win).

    A tiny run takes seconds: it shows the benchmark still runs, its figures mean nothing.
    """
    ap.add_argument(
        "--tiny", action="store_true", help="a few iterations: a smoke run (figures meaningless)"
    )
    if ap.parse_known_args(argv)[0].tiny:
        ap.set_defaults(**tiny)
    return ap.parse_args(argv)


@contextmanager
def database_url(ap: argparse.ArgumentParser, args: argparse.Namespace) -> Iterator[str]:
    """Yield --database-url, or under --tiny without one a temporary SQLite file's URL."""
    if args.database_url:
        yield args.database_url
        return
    if not args.tiny:
        ap.error("--database-url is required (or --tiny)")
    with tempfile.TemporaryDirectory(prefix="lims-bench-db-") as tmp:
        yield f"sqlite:///{tmp}/bench.sqlite3"


def run_threads(work: Callable[[int, threading.Event], None], n: int, seconds: float) -> None:
    """Run work(i, stop) in n threads for `seconds`, then set stop and join them."""
    stop = threading.Event()
    threads = [threading.Thread(target=work, args=(i, stop)) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()


def percentile(values: list[float], p: float) -> float:
    """Return the p-th percentile (0-100) of values."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values)


def pg_available() -> bool:
    """Tell whether the local PostgreSQL answers."""
    try:
        import psycopg

        psycopg.connect(f"{PG_ADMIN_DSN} connect_timeout=3").close()
        return True
    except Exception:
        return False


def engines_to_run(choice: str) -> list[str]:
    """Return the engines a benchmark's --engine choice names, without an unreachable PostgreSQL."""
    wanted = ["sqlite", "postgresql"] if choice == "both" else [choice]
    if "postgresql" in wanted and not pg_available():
        print("PostgreSQL is not reachable on 127.0.0.1:5432; skipping it", file=sys.stderr)
        wanted.remove("postgresql")
    return wanted


def pg_create_database(template: str | None = None) -> tuple[str, Callable[[], None]]:
    """Create a scratch PostgreSQL database (a copy of template, if given: nobody may be
    connected to it); return its SQLAlchemy URL and a drop function."""
    import psycopg

    name = f"lims_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(f"{PG_ADMIN_DSN} connect_timeout=5", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def clone_database(url: str, sqlite_path: Path) -> tuple[str, Callable[[], None]]:
    """Copy the database at url (SQLite: to sqlite_path); return the copy's URL and a drop."""
    if url.startswith("sqlite"):
        src = sqlite3.connect(url.removeprefix("sqlite:///"))
        dst = sqlite3.connect(sqlite_path)
        src.backup(dst)
        src.close()
        dst.close()
        return f"sqlite:///{sqlite_path}", lambda: sqlite_path.unlink(missing_ok=True)
    return pg_create_database(template=url.rsplit("/", 1)[1])


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    """Print rows as a markdown table."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for r in rows:
        print("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |")


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
    return str(v)


def write_json(path: str | None, payload: dict) -> None:
    """Write payload as JSON to path (if given)."""
    if path:
        Path(path).write_text(json.dumps(payload, indent=2))
