"""The in-process print worker: claims jobs in the database, drives printers via printers/."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from lims.accounts.users import Actor, system_actor
from lims.db import new_session, set_read_only
from lims.errors import Conflict
from lims.models import Printer, PrintJob, Station
from lims.printing.lease import (
    OutcomeIn,
    claim_next,
    printers_for,
    record_outcome,
    render_claim,
    start_sending,
)
from lims.printing.status import note_printer
from printers.claim import (
    NOT_READY_CODES,
    STATUS_EVERY_S,
    new_worker_id,
    poll_status,
    print_claim,
)

log = logging.getLogger(__name__)

DEMO_SIM_URL = "demo-sim"


@contextmanager
def _tx(engine: Engine) -> Iterator[Session]:
    """One write transaction of the worker's own: commit on success, roll back on any error."""
    token = set_read_only(False)
    db = new_session(engine)
    try:
        yield db
        db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()
        token.var.reset(token)


def _worker_actor(db: Session, worker: str, printer: Printer | None = None) -> Actor:
    base = system_actor(db)
    station = None
    if printer is not None and printer.station_id:
        station = db.get(Station, printer.station_id).name
    return Actor(user=base.user, org=base.org, station=station, device=f"print-worker {worker}")


class _DbBackend:
    """Report to the database, each step in a transaction of its own.

    start commits 'sending' before the first byte leaves the port.
    """

    def __init__(self, engine: Engine, worker: str) -> None:
        self.engine = engine
        self.worker = worker

    def _actor(self, db: Session, job_id: int) -> Actor:
        job = db.get(PrintJob, job_id)
        return _worker_actor(db, self.worker, db.get(Printer, job.printer_id) if job else None)

    def start(self, job_id: int) -> bool:
        try:
            with _tx(self.engine) as db:
                start_sending(db, job_id=job_id, worker=self.worker, actor=self._actor(db, job_id))
            return True
        except Conflict as err:
            log.info("job %s: %s", job_id, err.message)
            return False

    def outcome(self, job_id: int, body: dict[str, Any]) -> None:
        with _tx(self.engine) as db:
            record_outcome(
                db,
                job_id=job_id,
                data=OutcomeIn(worker=self.worker, **body),
                actor=self._actor(db, job_id),
            )


@dataclass
class JobReport:
    """What one worker step did with one job."""

    job_id: int
    printer: str
    outcome: dict[str, Any]


@dataclass
class PrintWorker:
    """Print queued jobs on local printers: one thread per printer, leases in the database."""

    engine: Engine
    printers: list[str] | None = None
    station: str | None = None
    url_map: dict[str, str] = field(default_factory=dict)
    worker_id: str = field(default_factory=new_worker_id)
    timeout: float = 2.0
    stall_timeout: float = 15.0
    poll_s: float = 1.0
    not_ready_backoff_s: float = 5.0
    simulate_demo: bool = True
    simulators: dict[str, Any] = field(default_factory=dict)
    # Printers a station agent has claimed jobs for: that agent prints them, this worker not.
    left_to_agents: set[int] = field(default_factory=set)
    # An idle printer is asked ~HS this often (seconds): a pulled cable shows without a job.
    status_every_s: float = STATUS_EVERY_S
    _last_word: dict[int, float] = field(default_factory=dict)

    def leave_to_agent(self, printers: list[Printer], station: str | None) -> None:
        """Stop printing these printers here: a station agent serves them from now on."""
        new = [p for p in printers if p.id not in self.left_to_agents]
        self.left_to_agents.update(p.id for p in new)
        for p in new:
            # Two workers on one printer would split its jobs between two devices.
            log.warning(
                "printer %s is printed by the agent of %s from now on, not by %s "
                "(restart to print it here again)",
                p.name,
                station or "a remote worker",
                self.worker_id,
            )

    def _printers(self) -> list[Printer]:
        with new_session(self.engine) as db:
            return printers_for(db, station=self.station, names=self.printers)

    def _url(self, printer: Printer) -> str:
        if printer.name in self.url_map:
            return self.url_map[printer.name]
        if printer.url == DEMO_SIM_URL and self.simulate_demo:
            sim = start_demo_simulator(printer)
            self.simulators[printer.name] = sim
            self.url_map[printer.name] = sim.port
            return sim.port
        return printer.url

    def step(self, printer: Printer) -> JobReport | None:
        """Claim and print at most one job of printer; return what happened, or None."""
        if printer.id in self.left_to_agents:
            return None
        with _tx(self.engine) as db:
            actor = _worker_actor(db, self.worker_id, printer)
            job = claim_next(db, worker=self.worker_id, printers=[printer], actor=actor)
            claim = render_claim(db, job) if job is not None else None
        if claim is None:
            return None
        body = print_claim(
            claim,
            _DbBackend(self.engine, self.worker_id),
            url=self._url(printer),
            timeout=self.timeout,
            stall_timeout=self.stall_timeout,
        )
        # The job's outcome carried the printer's status: the idle poll counts from here.
        self._last_word[printer.id] = time.monotonic()
        return JobReport(claim.job_id, printer.name, body)

    def check_status(self, printer: Printer) -> dict[str, Any] | None:
        """Ask an idle printer ~HS and keep what it said (or that it said nothing).

        Waits for a job on the same port to finish first; None for a printer an agent serves.
        """
        if printer.id in self.left_to_agents:
            return None
        said = poll_status(
            self._url(printer), baud=printer.baud, flow=printer.flow, timeout=self.timeout
        )
        self._last_word[printer.id] = time.monotonic()
        with _tx(self.engine) as db:
            note_printer(
                db,
                printer_id=printer.id,
                ready=said["ready"],
                summary=said["status"],
                answered=said["answered"],
                worker=self.worker_id,
                actor=_worker_actor(db, self.worker_id, printer),
            )
        return said

    def check_idle(self, *, force: bool = False) -> dict[str, dict[str, Any]]:
        """Ask each of this worker's printers not heard from for status_every_s; name -> said."""
        now = time.monotonic()
        out = {}
        for printer in self._printers():
            last = self._last_word.get(printer.id)
            if force or last is None or now - last >= self.status_every_s:
                said = self.check_status(printer)
                if said is not None:
                    out[printer.name] = said
        return out

    def run_once(self) -> list[JobReport]:
        """Print every queued job that can print now (a not-ready printer is left for later)."""
        reports = []
        for printer in self._printers():
            while True:
                rep = self.step(printer)
                if rep is None:
                    break
                reports.append(rep)
                if rep.outcome.get("code") in NOT_READY_CODES:
                    break
        return reports

    def _printer_loop(self, printer_id: int, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                with new_session(self.engine) as db:
                    printer = db.get(Printer, printer_id)
                if printer is None or not printer.active:
                    return
                rep = self.step(printer)
                last = self._last_word.get(printer.id)
                if rep is None and (last is None or time.monotonic() - last >= self.status_every_s):
                    self.check_status(printer)
            except Exception:  # noqa: BLE001 - keep the worker alive; the job state is true
                log.exception("print worker step failed on printer %s", printer_id)
                rep = None
                stop.wait(self.not_ready_backoff_s)
                continue
            if rep is None:
                stop.wait(self.poll_s)
            elif rep.outcome.get("code") in NOT_READY_CODES:
                stop.wait(self.not_ready_backoff_s)

    def run(self, stop: threading.Event) -> None:
        """Run until stop is set: one thread per printer, new printers picked up as added."""
        threads: dict[int, threading.Thread] = {}
        log.info(
            "print worker %s started (station=%s printers=%s)",
            self.worker_id,
            self.station or "any",
            ",".join(self.printers or []) or "all",
        )
        while not stop.is_set():
            try:
                for p in self._printers():
                    t = threads.get(p.id)
                    if t is None or not t.is_alive():
                        t = threading.Thread(
                            target=self._printer_loop,
                            args=(p.id, stop),
                            name=f"print-worker:{p.name}",
                            daemon=True,
                        )
                        threads[p.id] = t
                        t.start()
            except Exception:  # noqa: BLE001
                log.exception("print worker could not list printers")
            stop.wait(max(self.poll_s, 5.0))
        for t in threads.values():
            t.join(timeout=self.stall_timeout + 5)
        log.info("print worker %s stopped", self.worker_id)

    def close(self) -> None:
        """Stop the simulators this worker started."""
        for sim in self.simulators.values():
            sim.stop()
        self.simulators.clear()


def start_demo_simulator(printer: Printer, print_time: float = 0.05) -> Any:
    """Start a simulated ZPL printer on a pty for a printer whose URL is 'demo-sim'."""
    from printers.mock import PrinterSimulator

    sim = PrinterSimulator(baud=printer.baud or 9600, print_time=print_time).start()
    log.info(
        "printer %s is the demo simulator on %s (%s baud)", printer.name, sim.port, printer.baud
    )
    return sim


def start_device_worker(app: Any) -> PrintWorker | None:
    """Start the in-process print worker (python app.py) with simulators for 'demo-sim'.

    Runs only when the app's RUN_DEVICE_WORKER is set; the printers' URLs in the database are
    left as they are, the simulators' pty paths are mapped at runtime.
    """
    if not app.config.get("RUN_DEVICE_WORKER"):
        return None
    engine = app.extensions["lims"]["engine"]
    worker = PrintWorker(
        engine,
        worker_id=new_worker_id("server"),
        status_every_s=float(app.config.get("PRINTER_STATUS_EVERY_S", STATUS_EVERY_S)),
    )
    with new_session(engine) as db:
        demo = list(db.exec(select(Printer).where(Printer.url == DEMO_SIM_URL)).all())
    for p in demo:
        worker._url(p)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="print-worker", daemon=True)
    thread.start()
    app.extensions["lims"]["print_worker"] = {"worker": worker, "stop": stop, "thread": thread}
    return worker
