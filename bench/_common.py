"""Helpers shared by the benchmark scripts: fresh databases, timing, tables."""

from __future__ import annotations

import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def timed(fn: Callable[[], object], n: int) -> float:
    """Run fn n times and return the rate per second."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


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

        psycopg.connect("host=127.0.0.1 user=postgres dbname=test connect_timeout=3").close()
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


def pg_create_database() -> tuple[str, Callable[[], None]]:
    """Create a scratch PostgreSQL database; return its SQLAlchemy URL and a drop function."""
    import psycopg

    name = f"lims_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


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
