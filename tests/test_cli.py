"""The flask commands of the interface contract, run as an operator would."""

from __future__ import annotations

from helpers import verify
from sqlalchemy import inspect, text

from lims import create_app
from lims.migrate import current_revision, head_revision


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


def test_load_fixtures_then_refuses_to_load_twice(empty_db_url):
    app = create_app({"DATABASE_URL": empty_db_url, "TESTING": True, "SECRET_KEY": "t"})
    try:
        runner = app.test_cli_runner()
        first = runner.invoke(args=["load-fixtures"])
        assert first.exit_code == 0, first.output
        again = runner.invoke(args=["load-fixtures"])
        assert again.exit_code == 1 and "loaded already" in again.output
    finally:
        app.extensions["lims"]["engine"].dispose()


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


def test_a_station_token_is_only_for_a_centre_lab_account(runner):
    r = runner.invoke(args=["token", "create", "helix_tech", "--station", "BENCH-B1"])
    assert r.exit_code == 1 and "cannot hold a station token" in r.output
    r = runner.invoke(args=["token", "create", "tech1", "--station", "BENCH-B1"])
    assert r.exit_code == 0
