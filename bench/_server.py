"""The demo centre for fault and load runs: sessions, tokens, samples, benches; gunicorn, RSS."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import Session, select  # noqa: E402

from bench._common import pg_create_database  # noqa: E402
from lims import create_app, masterdata, samples  # noqa: E402
from lims.accounts import users  # noqa: E402
from lims.db import new_session  # noqa: E402
from lims.models import User  # noqa: E402


def gunicorn_version() -> str:
    """Return the installed gunicorn version (or 'missing')."""
    try:
        import gunicorn

        return gunicorn.__version__
    except ImportError:
        return "missing"


@contextmanager
def session_on(url: str, *, demo: bool = False) -> Iterator[Session]:
    """Yield a session on the database at url (after loading the demo centre into it, if demo);
    the caller commits, the engine is disposed afterwards."""
    config = {"DATABASE_URL": url, "SECRET_KEY": "bench"}
    config.update({"LOAD_DEMO": True} if demo else {"AUTO_MIGRATE": False})
    engine = create_app(config).extensions["lims"]["engine"]
    try:
        with new_session(engine) as db:
            yield db
    finally:
        engine.dispose()


def add_bench(db: Session, name: str, actor: users.Actor) -> None:
    """Add a bench station in the demo centre's clean room RM-B1 (audited, as an admin would)."""
    masterdata.add_station(db, data=masterdata.StationIn(name=name, room="RM-B1"), actor=actor)


def prepare_database(engine: str) -> tuple[str, Callable[[], None]]:
    """Create a migrated demo centre on engine; return its URL and a cleanup function."""
    if engine == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="lims-srv-"))
        url = f"sqlite:///{tmp / 'lims.sqlite3'}"

        def drop() -> None:
            for p in tmp.iterdir():
                p.unlink()
            tmp.rmdir()

    else:
        url, drop = pg_create_database()
    app = create_app({"DATABASE_URL": url, "LOAD_DEMO": True, "SECRET_KEY": "bench"})
    app.extensions["lims"]["engine"].dispose()
    return url, drop


def make_token(url: str, username: str, station: str | None = None) -> str:
    """Create a bearer token for username (optionally bound to a station)."""
    with session_on(url) as db:
        secret, _ = users.create_token(
            db, username=username, station=station, actor=users.system_actor(db)
        )
        db.commit()
    return secret


def make_samples(url: str, n: int, *, available: bool = True) -> list[tuple[str, int]]:
    """Register n samples (and bring them to 'available'); return (barcode, version) pairs."""
    out = []
    with session_on(url) as db:
        tech, qa = (
            users.actor_for(db, db.exec(select(User).where(User.username == name)).one())
            for name in ("tech1", "qa1")
        )
        for _ in range(n):
            s = samples.register_sample(
                db,
                actor=tech,
                data=samples.SampleCreate(
                    sample_type="PBMC", project="CART-001", volume=1, unit="mL"
                ),
            )
            steps = (
                (
                    ("receive", tech, {"condition": "ok"}),
                    ("quarantine", tech, {}),
                    ("release", qa, {}),
                )
                if available
                else ()
            )
            for action, who, extra in steps:
                samples.transition(
                    db,
                    barcode=s.barcode,
                    actor=who,
                    data=samples.TransitionIn(action=action, **extra),
                )
            out.append((s.barcode, s.version))
        db.commit()
    return out


def free_port() -> int:
    """Return a TCP port on loopback that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """`gunicorn app:app` with N sync workers in its own process group (killable as a whole)."""

    def __init__(self, url: str, *, workers: int = 3, port: int | None = None, log: Path) -> None:
        self.url = url
        self.workers = workers
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> float:
        """Start the server and wait until it answers; return the seconds it took."""
        env = {
            **os.environ,
            "LIMS_DATABASE_URL": self.url,
            "LIMS_SECRET_KEY": "bench-secret",
            "PYTHONPATH": str(ROOT),
        }
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(self.workers),
            "-b",
            f"127.0.0.1:{self.port}",
            "--graceful-timeout",
            "2",
            # Otherwise every server shares ~/.gunicorn/gunicorn.ctl, concurrent runs included.
            "--no-control-socket",
            "app:app",
        ]
        t0 = time.monotonic()
        with open(self.log, "ab") as logf:
            # A session of its own: SIGKILL to the group takes the master and every worker.
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=logf, stderr=logf, start_new_session=True
            )
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; see {self.log}")
            if self._answers():
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {timeout}s; see {self.log}")

    def _answers(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/api/audit/verify")  # 401 without a token: the app is up
            status = conn.getresponse().status
            conn.close()
            return status < 500
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the master and all its workers at once (a power cut for the app)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), then kill whatever is left."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def pids(self) -> list[int]:
        """Return the master's and workers' process ids."""
        if self.proc is None:
            return []
        out = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            out += [int(p) for p in children.split()]
        except OSError:
            pass
        return out

    def rss_mb(self) -> float:
        """Return the summed resident memory of the master and workers, in MiB."""
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024


@dataclass
class Demo:
    """A demo centre's database and the gunicorn that serves it."""

    url: str
    server: Gunicorn

    def token(self, username: str, station: str | None = None) -> str:
        return make_token(self.url, username, station)

    def available_samples(self, n: int) -> list[tuple[str, int]]:
        return make_samples(self.url, n)

    def registered_samples(self, n: int) -> list[str]:
        return [b for b, _ in make_samples(self.url, n, available=False)]


@contextmanager
def demo_server(engine: str, *, workers: int, name: str) -> Iterator[Demo]:
    """Yield a fresh demo centre on engine with a gunicorn for it (not started yet).

    On exit the server is stopped and the database dropped; the server's log stays in a
    temporary directory named after `name` (for the post-mortem of a failed run).
    """
    url, drop = prepare_database(engine)
    log = Path(tempfile.mkdtemp(prefix=f"lims-{name}-")) / f"gunicorn-{engine}.log"
    server = Gunicorn(url, workers=workers, log=log)
    try:
        yield Demo(url, server)
    finally:
        server.stop()
        drop()


class Client:
    """A keep-alive HTTP client that reconnects after any connection error."""

    def __init__(self, port: int, token: str, timeout: float = 30.0) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.last_headers: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: dict | None = None, headers: dict | None = None
    ) -> tuple[int, dict]:
        """Send one request; return (status, JSON). Connection errors propagate (OSError)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self.conn.request(
                method,
                path,
                body=json.dumps(body) if body is not None else None,
                headers={**self.headers, **(headers or {})},
            )
            resp = self.conn.getresponse()
            raw = resp.read()
            self.last_headers = {k.lower(): v for k, v in resp.getheaders()}
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ConnectionError(str(exc)) from exc
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {"raw": raw[:200].decode(errors="replace")}
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        return resp.status, data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
