"""Every script under bench/ runs in its tiny mode and produces its figures: a smoke, not a speed.

Each runs as a subprocess (loopback only, under a timeout) with TMPDIR in the test's temporary
directory, so its databases, server logs and results land there and never in bench/results/.
On SQLite the scripts' SQLite halves run; with LIMS_TEST_ENGINE=postgresql their PostgreSQL
halves. Nothing here times anything: a tiny run's figures mean nothing, only that they exist.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENGINE, PG_URL, PgDatabases, _pg_url_for, pg_available
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 180  # a tiny run takes seconds; this only bounds a hung one
# The server bench/_common.py creates its scratch databases on.
BENCH_PG = ("127.0.0.1", 5432, "postgres", "test")

# The benchmarks of bench/all.py, run through it (so its parser of each is exercised too):
# name -> (the engine it runs under, or None: its own half on each; rows it reports). Those
# with no PostgreSQL half (no database, or always a SQLite file of their own) run in the
# SQLite run only: a PostgreSQL run would repeat them to the byte.
MEMBERS = {
    "scans_reader": ("sqlite", 4),
    "labels": ("sqlite", 4),
    "custody": (None, 5),
    "scans": ("sqlite", 3),
    "scans_pg": ("postgresql", 3),  # the same behind gunicorn
    "audit": ("sqlite", 7),
    "audit_pg": ("postgresql", 7),
    "genealogy": ("sqlite", 2),
    "genealogy_pg": ("postgresql", 2),
    "load": (None, 6),  # 4 rows of the load run, one per sweep client count (1, 2)
    "centre": ("sqlite", 43),  # one row per page and API list of bench/centre.py
    "centre_pg": ("postgresql", 43),
    "therapy": ("sqlite", 1),
    "therapy_pg": ("postgresql", 1),
    "shipments": ("sqlite", 2),
    "shipments_pg": ("postgresql", 2),
    "rooms": ("sqlite", 3),  # room week, client week and EM trend pages
    "rooms_pg": ("postgresql", 3),
}


@pytest.fixture(scope="module")
def bench_engine() -> str:
    """The engine of this run; skip when PostgreSQL is wanted but not there to take it."""
    if ENGINE == "postgresql":
        u = make_url(PG_URL)
        if (u.host, u.port or 5432, u.username, u.database) != BENCH_PG:
            pytest.skip("bench/ creates its PostgreSQL databases on postgres@127.0.0.1:5432/test")
        if not pg_available():
            pytest.skip(f"PostgreSQL is not reachable at {PG_URL}")
    return ENGINE


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run `python args...` from the repository root; fail on a non-zero exit or a hang."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGINT first: the scripts' finally blocks stop their gunicorns and drop databases.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"{' '.join(args)} did not finish in {TIMEOUT_S} s\n{err[-3000:]}")
    assert proc.returncode == 0, f"{' '.join(args)}: exit {proc.returncode}\n{err[-3000:]}"
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def is_figure(value: object) -> bool:
    """A figure: a finite number, or a filled-in text such as '7.7 / 156.2'."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return math.isfinite(value)
    return isinstance(value, str) and bool(value.strip())


@pytest.mark.parametrize("name", list(MEMBERS))
def test_all_py_member(name: str, bench_engine: str, tmp_path: Path) -> None:
    tied, n_rows = MEMBERS[name]
    if tied is not None and tied != bench_engine:
        pytest.skip(f"{name} runs with LIMS_TEST_ENGINE={tied} only")
    results = tmp_path / "results"
    args = ["bench/all.py", "--tiny", "--engine", bench_engine, "--only", name]
    # labels runs without --results: a tiny run must then pick a temporary directory itself
    # (under TMPDIR, here tmp_path), never bench/results/.
    proc = run(args if name == "labels" else [*args, "--results", str(results)], tmp_path)
    if name == "labels":
        written = [ln for ln in proc.stderr.splitlines() if ln.startswith("written: ")]
        assert written, proc.stderr[-2000:]
        results = Path(written[-1].split()[1]).parent
        assert results.is_relative_to(tmp_path), results
    data = json.loads((results / "latest.json").read_text())
    assert data["tiny"] is True
    [bench] = data["benchmarks"]
    assert bench["name"] == name and bench["status"] == "ok", bench["status"]
    rows = bench["rows"]
    assert len(rows) == n_rows, rows
    for row in rows:
        assert is_figure(row["value"]), row
        if tied is None and name in ("custody", "load"):
            assert f"({bench_engine}" in row["benchmark"], row
    assert (results / "latest.md").read_text().count(f"| {name} | ok |") == 1


def test_crash(bench_engine: str, tmp_path: Path) -> None:
    out = tmp_path / "crash.json"
    run(["bench/crash.py", "--tiny", "--engine", bench_engine, "--json", str(out)], tmp_path)
    [row] = json.loads(out.read_text())["crash"]
    assert row["engine"] == bench_engine and row["kills"] == 1
    # What the crash test exists for (also its exit status): nothing lost, nothing doubled.
    assert row["ok"] and row["acknowledged"] > 0 and row["lost"] == row["duplicated"] == 0, row


sqlite_only = pytest.mark.skipif(
    ENGINE != "sqlite", reason="no PostgreSQL half: the SQLite run covers it"
)


@sqlite_only
def test_print_jobs(tmp_path: Path) -> None:
    res = json.loads(run(["bench/print_jobs.py", "--tiny", "--json"], tmp_path).stdout)
    assert res["labels"] == 4
    assert all(is_figure(res[k]) for k in ("job_s", "driver_s", "link_limit_s", "job_vs_link"))


def test_gen_audit(bench_engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    args = ["bench/gen_audit.py", "--tiny", "--json"]
    if bench_engine == "postgresql":
        dbs: PgDatabases = request.getfixturevalue("pg_databases")
        args += ["--database-url", f"{_pg_url_for(dbs.create())}?schema=bench_audit"]
    res = json.loads(run(args, tmp_path).stdout)
    assert res["events"] == 2000 and res["head_seq"] >= 2000
    assert is_figure(res["events_per_s"])


@sqlite_only
@pytest.mark.parametrize("script", ["fuzz_scan_framing.py", "fuzz_scan_parser.py"])
def test_fuzz(script: str, tmp_path: Path) -> None:
    res = json.loads(run([f"bench/{script}", "--tiny", "--json"], tmp_path).stdout)
    assert res == {"fuzzer": "hypothesis", "examples": 25, "seconds": res["seconds"]}
