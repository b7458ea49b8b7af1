"""The hot paths keep their number of database statements: QA's home, the lot page, one scan.

Upper bounds, not timings: on PostgreSQL every statement is a round trip (about half a
millisecond each), so a change that adds a query per row or per lookup fails here long before a
centre notices it (docs/benchmarks.md, "Statements per request").
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from helpers import register, sign_in
from sqlalchemy import event

from lims import db as lims_db

LOT = "AAV9-2611-001"
STATION = "BENCH-B1"
# Bounds for each path: what it sends now (counted in docs/benchmarks.md). Before this bound
# QA's home sent 18, the lot page 25, the lot API 12 and a scan 17 (sqlite) / 15 (postgresql).
QA_HOME = 9
# The lot page then gained the batch record (read twice) and the genealogy picture (four
# reads of the links): 22, the next to combine.
LOT_PAGE = 22
LOT_API = 11
# On PostgreSQL the chain head comes back with the sample's UPDATE and the append is one
# statement (lims.audit.chain); SQLite, in-process, reads and writes the head apart.
# The rented-room rule then added one read: the room of the place the tube is kept in.
SCAN = {"postgresql": 10, "sqlite": 12}


class Statements:
    """Record every statement the app sends: through SQLAlchemy and past it (driver_execute)."""

    def __init__(self, engine) -> None:  # noqa: ANN001
        self.sql: list[str] = []
        self.on = False
        event.listen(engine, "before_cursor_execute", self._hook)

    def _hook(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if self.on:
            self.sql.append(statement + _where())

    @contextmanager
    def counting(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
        """Count the statements sent inside the block."""
        original = lims_db.driver_execute

        def recorded(session, sql: str, params=()):  # noqa: ANN001, ANN202
            if self.on:
                self.sql.append(sql + _where())
            return original(session, sql, params)

        # Every lims module that imported the driver fast path by name sends through it.
        for name, module in list(sys.modules.items()):
            if name.startswith("lims") and getattr(module, "driver_execute", None) is original:
                monkeypatch.setattr(module, "driver_execute", recorded)
        self.sql = []
        self.on = True
        try:
            yield self.sql
        finally:
            self.on = False
            monkeypatch.undo()


@pytest.fixture
def statements(engine) -> Statements:  # noqa: ANN001
    return Statements(engine)


def _where() -> str:
    import os
    import traceback

    if not os.environ.get("WHERE"):
        return ""
    frames = [
        f for f in traceback.extract_stack() if "/lims/" in f.filename and "db.py" not in f.filename
    ]
    return " @ " + " < ".join(
        f"{f.filename.split('/lims/')[1]}:{f.lineno}" for f in frames[::-1][:4]
    )


def _show(sql: list[str]) -> str:
    return "\n".join(
        f"{i + 1:2d}. {s.split(chr(10))[0][:60] + (s[s.index(' @ ') :] if ' @ ' in s else '')}"
        for i, s in enumerate(sql)
    )


def test_qa_home_reads_its_lists_in_a_few_statements(client, statements, monkeypatch):  # noqa: ANN001
    assert sign_in(client, "qa1").status_code == 302
    client.get("/home")  # the session's first request may do once-only work
    with statements.counting(monkeypatch) as sql:
        r = client.get("/home")
    assert r.status_code == 200 and 'id="now-results_to_review"' in r.text
    print(f"QA home: {len(sql)}\n{_show(sql)}")
    assert len(sql) <= QA_HOME, _show(sql)


def test_the_lot_page_and_api_read_a_lot_in_a_few_statements(
    client,
    statements,
    monkeypatch,
    auth,  # noqa: ANN001
):
    assert sign_in(client, "qa1").status_code == 302
    client.get(f"/lots/{LOT}")
    with statements.counting(monkeypatch) as sql:
        r = client.get(f"/lots/{LOT}")
    assert r.status_code == 200 and LOT in r.text
    print(f"lot page: {len(sql)}\n{_show(sql)}")
    assert len(sql) <= LOT_PAGE, _show(sql)
    qa = auth("qa1")
    client.get(f"/api/lots/{LOT}", headers=qa)
    with statements.counting(monkeypatch) as sql:
        r = client.get(f"/api/lots/{LOT}", headers=qa)
    assert r.status_code == 200 and r.json["lot_number"] == LOT
    print(f"lot API: {len(sql)}\n{_show(sql)}")
    assert len(sql) <= LOT_API, _show(sql)


def test_a_scan_at_the_bench_is_a_few_statements(
    client,
    engine,
    statements,
    monkeypatch,
    auth,
    tech,  # noqa: ANN001
):
    headers = auth("admin", STATION)
    tubes = [register(client, tech)["barcode"] for _ in range(2)]

    def scan(data: str, scan_id: str):  # noqa: ANN202
        body = {"station": STATION, "data": data, "scan_id": scan_id}
        return client.post("/api/scans", json=body, headers=headers)

    for i, data in enumerate(("BADGE-0002", "CMD:RECEIVE", tubes[0])):
        assert scan(data, f"warm-{i}").json["outcome"] == "accepted"
    with statements.counting(monkeypatch) as sql:
        r = scan(tubes[1], "counted")
    assert r.status_code == 200 and r.json["outcome"] == "accepted", r.json
    print(f"scan: {len(sql)}\n{_show(sql)}")
    assert len(sql) <= SCAN[engine.dialect.name], _show(sql)


def test_a_change_sent_past_the_orm_is_undone_with_its_savepoint(app, engine, tech, client):  # noqa: ANN001
    """A savepoint rolled back takes back what driver_execute sent inside it (a refused scan)."""
    barcode = register(client, tech)["barcode"]
    with lims_db.new_session(engine) as db:
        # The transaction has sent past the ORM before (a scan reads its sample that way).
        lims_db.driver_execute(db, "SELECT id FROM sample WHERE barcode = ?", (barcode,))
        with pytest.raises(RuntimeError), db.begin_nested():
            # The first statement inside the savepoint goes past the ORM: the savepoint must
            # still be opened before it.
            lims_db.driver_execute(
                db, "UPDATE sample SET volume = 99 WHERE barcode = ?", (barcode,)
            )
            raise RuntimeError("refused half-way")
        volume = lims_db.driver_execute(
            db, "SELECT volume FROM sample WHERE barcode = ?", (barcode,)
        ).fetchone()[0]
        db.commit()
    assert volume != 99
