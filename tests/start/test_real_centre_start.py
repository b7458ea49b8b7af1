"""`python app.py` is the demo, in its own database: it never puts demo users in a centre's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from lims import StartupError, create_app

ROOT = Path(__file__).resolve().parents[2]


def _start(env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMS_")}
    env.update(env_extra)
    env["LIMS_PORT"] = "0"  # should it ever start, it binds no known port
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _usernames(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        if "app_user" not in inspect(engine).get_table_names():
            return []
        with engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(text("SELECT username FROM app_user")))
    finally:
        engine.dispose()


def test_app_py_refuses_a_centre_database_and_says_how_to_set_one_up(tmp_path: Path) -> None:
    db = tmp_path / "centre.sqlite3"
    url = f"sqlite:///{db}"
    run = _start({"LIMS_DATABASE_URL": url}, tmp_path)
    assert run.returncode != 0
    said = run.stderr
    assert "demo" in said and "flask --app app init-db" in said and "user create" in said
    assert "LIMS_DEMO=1" in said and "gunicorn" in said
    assert "Traceback" not in said
    assert not db.exists() or "admin" not in _usernames(url)


def test_even_with_lims_demo_a_database_with_people_gets_no_demo_users(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'centre.sqlite3'}"
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "t"})
    made = app.test_cli_runner().invoke(
        args=["user", "create", "boss", "--role", "admin", "--full-name", "Bo Boss"],
        input="Correct-horse-battery-staple-42\n",
    )
    assert made.exit_code == 0, made.output
    app.extensions["lims"]["engine"].dispose()
    run = _start({"LIMS_DATABASE_URL": url, "LIMS_DEMO": "1"}, tmp_path)
    assert run.returncode != 0
    assert "has users already (boss" in run.stderr and "Traceback" not in run.stderr
    assert _usernames(url) == ["boss", "system"]
    # The same through the factory, as gunicorn or a test would call it.
    with pytest.raises(StartupError, match="not the demo's"):
        create_app({"DATABASE_URL": url, "SECRET_KEY": "t", "LOAD_DEMO": True})
    assert _usernames(url) == ["boss", "system"]


def test_a_bad_port_is_a_one_line_error(tmp_path: Path) -> None:
    env = {"LIMS_PORT": "http"}
    full = {k: v for k, v in os.environ.items() if not k.startswith("LIMS_")} | env
    run = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=tmp_path,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "LIMS_PORT must be a port number" in run.stderr
