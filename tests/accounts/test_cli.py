"""The flask commands of the interface contract, run as an operator would."""

from __future__ import annotations

import csv

import pytest
from alembic import command
from helpers import audit_count, verify
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from lims import StartupError, create_app
from lims.migrate import alembic_config, current_revision, head_revision


def test_empty_database_is_migrated_on_start_and_by_init_db(empty_db_url):
    app = create_app({"DATABASE_URL": empty_db_url, "TESTING": True, "SECRET_KEY": "t"})
    engine = app.extensions["lims"]["engine"]
    try:
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"sample", "audit_event", "vector_lot", "print_job", "scan_event"} <= tables
        result = app.test_cli_runner().invoke(args=["init-db"])
        assert result.exit_code == 0 and "database ready" in result.output
        with engine.connect() as conn:
            users = conn.execute(text("SELECT username FROM app_user")).scalars().all()
        assert users == ["system"]
        assert verify(app).ok
    finally:
        engine.dispose()


def test_lot_numbers_differing_only_in_case_stop_the_upgrade_and_then_cannot_exist(db_url):
    def start():  # noqa: ANN202
        return create_app({"DATABASE_URL": db_url, "TESTING": True, "SECRET_KEY": "t"})

    def copy_lot_as(conn, number: str) -> None:  # noqa: ANN001
        cols = [c["name"] for c in inspect(conn).get_columns("vector_lot") if c["name"] != "id"]
        picked = ", ".join(":n" if c == "lot_number" else c for c in cols)
        conn.execute(
            text(
                f"INSERT INTO vector_lot ({', '.join(cols)}) "
                f"SELECT {picked} FROM vector_lot WHERE lot_number = 'LV-2611-002'"
            ),
            {"n": number},
        )

    engine = start().extensions["lims"]["engine"]
    # A database from before migration 0002, where such a pair could be stored.
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
        copy_lot_as(conn, "lv-2611-002")
    engine.dispose()
    with pytest.raises(StartupError, match=r"\(LV-2611-002, lv-2611-002\); QA must decide"):
        start()
    assert current_revision(engine) == "0001"  # nothing half-done
    engine.dispose()

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM vector_lot WHERE lot_number = 'lv-2611-002'"))
    engine.dispose()
    engine = start().extensions["lims"]["engine"]
    try:
        assert current_revision(engine) == head_revision()
        # Even a writer that skips the API's check cannot store the twin any more.
        with pytest.raises(IntegrityError), engine.begin() as conn:
            copy_lot_as(conn, "Lv-2611-002")
    finally:
        engine.dispose()


def test_load_fixtures_then_refuses_to_load_twice(empty_db_url):
    app = create_app({"DATABASE_URL": empty_db_url, "TESTING": True, "SECRET_KEY": "t"})
    try:
        runner = app.test_cli_runner()
        first = runner.invoke(args=["load-fixtures"])
        assert first.exit_code == 0, first.output
        again = runner.invoke(args=["load-fixtures"])
        assert again.exit_code == 1 and "has users already" in again.output
    finally:
        app.extensions["lims"]["engine"].dispose()


def test_demo_fixtures_never_load_into_a_database_with_real_users(empty_db_url):
    # The demo accounts share a password printed in the README.
    app = create_app({"DATABASE_URL": empty_db_url, "TESTING": True, "SECRET_KEY": "t"})
    try:
        runner = app.test_cli_runner()
        made = runner.invoke(
            args=["user", "create", "itadmin", "--role", "admin"], input="a long password\n"
        )
        assert made.exit_code == 0, made.output
        r = runner.invoke(args=["load-fixtures"])
        assert r.exit_code == 1 and "itadmin" in r.output and "empty database" in r.output
        with app.extensions["lims"]["engine"].connect() as conn:
            names = conn.execute(text("SELECT username FROM app_user")).scalars().all()
        assert sorted(names) == ["itadmin", "system"]
    finally:
        app.extensions["lims"]["engine"].dispose()


def test_a_password_from_stdin_is_required_and_loses_its_line_end(runner, client):
    r = runner.invoke(args=["user", "create", "bob", "--role", "qa"], input="")
    assert r.exit_code == 1 and "--no-password" in r.output
    assert runner.invoke(args=["token", "create", "bob"]).exit_code == 1  # no such user
    r = runner.invoke(
        args=["user", "create", "win", "--role", "qa"], input="Windows1Pass-of-bench-7\r\n"
    )
    assert r.exit_code == 0, r.output
    login = client.get("/login")
    token = login.text.split('name="csrf_token" value="')[1].split('"')[0]
    signed = client.post(
        "/login",
        data={"username": "win", "password": "Windows1Pass-of-bench-7", "csrf_token": token},
    )
    assert signed.status_code == 302, signed.text[:300]
    r = runner.invoke(args=["user", "create", "badge9", "--role", "technician", "--no-password"])
    assert r.exit_code == 0, r.output


def test_cli_account_events_name_the_os_user(app, runner):
    import getpass

    assert runner.invoke(args=["token", "create", "tech1"]).exit_code == 0
    with app.extensions["lims"]["engine"].connect() as conn:
        device = conn.execute(
            text("SELECT device FROM audit_event WHERE action = 'token.create' ORDER BY seq DESC")
        ).first()[0]
    assert device == f"cli:{getpass.getuser()}"


def test_user_create_reads_the_password_from_stdin_and_the_token_works(runner, client):
    r = runner.invoke(
        args=["user", "create", "ines", "--role", "technician", "--org", "helix-bio"],
        input="a long enough password\n",
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(args=["token", "create", "ines"])
    assert r.exit_code == 0
    token = r.output.split()[-1]
    me = client.get("/api/organisations", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and [o["name"] for o in me.json["organisations"]] == ["helix-bio"]


def test_user_create_refuses_bad_input_with_a_clear_message(runner):
    r = runner.invoke(args=["user", "create", "x", "--role", "technician"], input="short\n")
    assert r.exit_code == 1 and "at least" in r.output
    r = runner.invoke(args=["user", "create", "tech1", "--role", "qa"], input="long enough pw\n")
    assert r.exit_code == 1 and "exists already" in r.output
    r = runner.invoke(
        args=["user", "create", "y", "--role", "qa", "--org", "nowhere"], input="long enough pw\n"
    )
    assert r.exit_code == 1 and "no organisation" in r.output
    r = runner.invoke(args=["token", "create", "nobody"])
    assert r.exit_code == 1 and "no user" in r.output


def test_revoked_token_is_refused(runner, client):
    out = runner.invoke(args=["token", "create", "tech1"]).output
    token, number = out.split()[-1], out.split()[1]
    h = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/samples", headers=h).status_code == 200
    assert runner.invoke(args=["token", "revoke", number]).exit_code == 0
    assert client.get("/api/samples", headers=h).status_code == 401


def test_printer_add_lists_it(runner, client, auth):
    r = runner.invoke(
        args=[
            "printer",
            "add",
            "ZD-QC",
            "socket://127.0.0.1:9100",
            "--baud",
            "19200",
            "--station",
            "BENCH-QC",
        ]
    )
    assert r.exit_code == 0, r.output
    printers = client.get("/api/printers", headers=auth("tech1")).json["printers"]
    assert {"name": "ZD-QC", "station": "BENCH-QC", "baud": 19200}.items() <= next(
        p for p in printers if p["name"] == "ZD-QC"
    ).items()
    r = runner.invoke(args=["printer", "add", "ZD-QC", "loop://"])
    assert r.exit_code == 1 and "exists" in r.output


def test_printer_add_refuses_what_could_never_print(runner, client, auth):
    before = {
        p["name"] for p in client.get("/api/printers", headers=auth("tech1")).json["printers"]
    }
    for args, hint in (
        (["ZD 1", "loop://"], "NAME"),
        (["ZD\x07", "loop://"], "NAME"),
        (["ZD1", "lpt://x"], "protocol 'lpt' not known"),
        (["ZD1", ""], "URL"),
        (["ZD1", "socket://printer"], "needs host:port"),
        (["ZD1", "socket://printer:http"], "URL"),
        (["ZD1", "hwgrep://no-such-device"], "URL"),
        (["ZD1", "socket://lab:secret@10.0.0.7:9100"], "no user name or password"),
        (["ZD1", "/dev/ttyUSB0", "--baud", "-5"], "--baud"),
    ):
        r = runner.invoke(args=["printer", "add", *args])
        assert r.exit_code == 2 and hint in r.output and "Traceback" not in r.output, (
            args,
            r.output,
        )
    after = {p["name"] for p in client.get("/api/printers", headers=auth("tech1")).json["printers"]}
    assert after == before
    r = runner.invoke(args=["printer", "add", "ZD-2.lab_1", "socket://10.0.0.7:9100"])
    assert r.exit_code == 0, r.output


def test_audit_export_csv(runner, tmp_path):
    out = tmp_path / "lot.csv"
    r = runner.invoke(
        args=["audit", "export", "--format", "csv", "--lot", "LV-2611-002", "--output", str(out)]
    )
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("seq,ts,actor,action")
    assert any("lot.release" in line for line in lines)
    assert all("AAV9-2611-001" not in line for line in lines[1:])
    r = runner.invoke(args=["audit", "export", "--lot", "NOPE"])
    assert r.exit_code == 1 and "no lot" in r.output
    # A failed export leaves the earlier file whole, and no part file beside it.
    before = out.read_bytes()
    r = runner.invoke(args=["audit", "export", "--lot", "NOPE", "--output", str(out)])
    assert r.exit_code == 1 and out.read_bytes() == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    r = runner.invoke(args=["audit", "export", "--output", str(tmp_path / "no" / "x.csv")])
    assert r.exit_code == 1 and "no folder" in r.output and "Traceback" not in r.output


def test_audit_export_of_the_whole_trail_shows_progress_and_counts(runner, tmp_path, app):
    out = tmp_path / "all.csv"
    r = runner.invoke(args=["audit", "export", "--output", str(out)])
    assert r.exit_code == 0, r.output
    with out.open(newline="") as fh:
        n = sum(1 for _ in csv.reader(fh)) - 1
    assert n == audit_count(app) > 90
    assert "exporting" in r.stderr and f"{n} events written to {out}" in r.stderr


def test_a_station_token_is_only_for_a_centre_lab_account(runner):
    r = runner.invoke(args=["token", "create", "helix_tech", "--station", "BENCH-B1"])
    assert r.exit_code == 1 and "cannot hold a station token" in r.output
    r = runner.invoke(args=["token", "create", "tech1", "--station", "BENCH-B1"])
    assert r.exit_code == 0
    # --station "$BENCH" with BENCH unset: not a token bound to no bench.
    r = runner.invoke(args=["token", "create", "tech1", "--station", ""])
    assert r.exit_code == 1 and "no station ''" in r.output


def test_a_database_that_cannot_be_opened_is_one_clear_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for url in ("postgresql+psycopg://nobody@127.0.0.1:1/none", "postgressql://x", "garbage"):
        env = {**os.environ, "LIMS_DATABASE_URL": url, "LIMS_SECRET_KEY": "t"}
        r = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "init-db"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 1, (url, r.stderr)
        assert "Traceback" not in r.stderr and "LIMS_DATABASE_URL" in r.stderr, r.stderr
        assert r.stderr.strip().startswith("error: cannot open the database")
