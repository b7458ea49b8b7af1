"""Helpers for the print-job tests: simulated printers registered in the DB, workers, audit."""

from __future__ import annotations

from sqlmodel import select

from lims import printing
from lims.db import new_session
from lims.models import AuditEvent, PrintJob
from printers.mock import PrinterSimulator


def add_printer(runner, name: str, url: str, dpi: int = 203, station: str | None = None) -> None:  # noqa: ANN001
    """Add a printer with the real CLI command."""
    args = ["printer", "add", name, url, "--dpi", str(dpi)]
    if station:
        args += ["--station", station]
    res = runner.invoke(args=args)
    assert res.exit_code == 0, res.output


def worker(app, *names: str, timeout: float = 0.5) -> printing.PrintWorker:  # noqa: ANN001
    """Return a local worker for the named printers with short status timeouts."""
    return printing.PrintWorker(
        app.extensions["lims"]["engine"],
        printers=list(names),
        timeout=timeout,
        stall_timeout=5.0,
        simulate_demo=False,
    )


def queue(client, headers, barcodes, printer: str = "Z1", **extra):  # noqa: ANN001, ANN201
    """Queue barcodes on printer through the API; return the response."""
    return client.post(
        "/api/labels", json={"barcodes": barcodes, "printer": printer, **extra}, headers=headers
    )


def job_row(app, job_id: int) -> PrintJob:  # noqa: ANN001
    """Read a job straight from the database."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        return db.get(PrintJob, job_id)


def job_events(app, job_id: int) -> list[AuditEvent]:  # noqa: ANN001
    """Return the audit events of a print job, oldest first."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        return list(
            db.exec(
                select(AuditEvent)
                .where(AuditEvent.entity_type == "print_job", AuditEvent.entity_id == str(job_id))
                .order_by(AuditEvent.seq)
            ).all()
        )


def aliquots(client, headers, n: int) -> list[str]:  # noqa: ANN001
    """Register a parent sample and split it into n aliquots; return their barcodes.

    The parent is received, released by QA and checked out: split in hand, the aliquots need
    no box (a 96-tube split does not fit one).
    """
    from helpers import move, register

    from lims.accounts import users

    with new_session(client.application.extensions["lims"]["engine"]) as db:
        secret, _ = users.create_token(db, username="qa1", actor=users.system_actor(db))
        db.commit()
    qa = {"Authorization": f"Bearer {secret}"}
    parent = register(client, headers, volume=500, unit="mL")
    for who, action, fields in (
        (headers, "receive", {"condition": "intact"}),
        (headers, "quarantine", {}),
        (qa, "release", {}),
        (headers, "check_out", {"custodian": "tech1"}),
    ):
        r = move(client, who, parent["barcode"], action, **fields)
        assert r.status_code == 200, r.json
    r = client.post(
        f"/api/samples/{parent['barcode']}/aliquots",
        json={"count": n, "volume": 1, "unit": "mL"},
        headers=headers,
    )
    assert r.status_code == 201, r.json
    return [a["barcode"] for a in r.json["aliquots"]]


def printed_barcodes(sim: PrinterSimulator) -> list[str | None]:
    """Return the first barcode's data of every label the simulator printed, in order."""
    return [label.barcode for label in sim.printed]
