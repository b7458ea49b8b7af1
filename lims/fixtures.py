"""Load the demo centre (fixtures/demo_centre.json) through the same operations users call."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from lims import lots, masterdata, samples
from lims.accounts import users
from lims.db import new_session
from lims.manufacturing import batch, materials
from lims.manufacturing.models import MaterialKind, MaterialLot
from lims.models import Printer, Specification, Station, User
from lims.quality import deviations, results, specs, trail
from lims.rooms import demo as rooms_demo
from lims.signatures import SignatureIn

DEMO_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "demo_centre.json"


def _actor(db: Session, username: str, station: str | None = None) -> users.Actor:
    user = db.exec(select(User).where(User.username == username)).one()
    return users.actor_for(db, user, station=station)


def _locations(db: Session, actor: users.Actor, nodes: list[dict], parent: str | None) -> None:
    for node in nodes:
        fields = {k: v for k, v in node.items() if k != "children"}
        place = masterdata.LocationIn(**fields, parent=parent)
        masterdata.add_location(db, data=place, actor=actor)
        _locations(db, actor, node.get("children", []), place.code)


def load_spec(db: Session, spec: dict, *, password: str) -> Specification:
    """Write a specification as its author's draft and approve it as its approver (signed)."""
    fields = {k: spec[k] for k in ("code", "product", "stage", "title", "limits")}
    draft = specs.create_draft(db, data=specs.SpecIn(**fields), actor=_actor(db, spec["author"]))
    return specs.transition_spec(
        db,
        code=draft.code,
        version=draft.version,
        actor=_actor(db, spec["approved_by"]),
        data=specs.SpecTransitionIn(
            action="approve", signature=SignatureIn(password=password, meaning="approval")
        ),
    )


def load_demo(db: Session, path: Path = DEMO_FILE) -> dict[str, int]:
    """Load the demo centre into an initialised database (one transaction)."""
    data = json.loads(path.read_text())
    system = users.system_actor(db)
    password = data["demo_password"]
    for o in data["organisations"]:
        org = masterdata.OrganisationIn(
            name=o["name"], display_name=o["display_name"], kind=o.get("kind", "client")
        )
        masterdata.add_organisation(db, data=org, actor=system)
    for u in data["users"]:
        users.create_user(db, password=password, actor=system, **u)
    for code, name in data["sample_types"]:
        kind = masterdata.SampleTypeIn(code=code, name=name)
        masterdata.add_sample_type(db, data=kind, actor=system)
    for p in data["projects"]:
        project = masterdata.ProjectIn(code=p["code"], name=p["name"], org=p["org"])
        masterdata.add_project(db, data=project, actor=system)
    _locations(db, system, data["locations"], None)
    for st in data["stations"]:
        bench = masterdata.StationIn(name=st["name"], room=st["room"])
        masterdata.add_station(db, data=bench, actor=system)
    for pr in data["printers"]:
        station = db.exec(select(Station).where(Station.name == pr["station"])).one()
        printer = Printer(name=pr["name"], url=pr["url"], baud=pr["baud"], station_id=station.id)
        masterdata.add_record(db, system, printer, "printer", pr["name"], pr)
    for spec in data.get("specifications", []):
        load_spec(db, spec, password=password)
    tech = _actor(db, "tech1", "BENCH-B1")
    qa = _actor(db, "qa1", "BENCH-QC")
    for spec in data["lots"]:
        fields = {
            k: spec[k]
            for k in (
                "lot_number",
                "vector_type",
                "vector",
                "serotype",
                "project",
                "titer_vg_per_ml",
                "volume_ml",
            )
        }
        for k in ("manufactured_on", "expires_on"):
            fields[k] = date.fromisoformat(spec[k])
        lot = lots.create_lot(db, data=lots.LotCreate(**fields), actor=tech)
        for action in spec["advance"][:1]:
            lots.transition_lot(
                db, lot_number=lot.lot_number, data=lots.LotTransitionIn(action=action), actor=tech
            )
        for test, result in spec["qc"]:
            qc = lots.record_qc(
                db,
                lot_number=lot.lot_number,
                actor=tech,
                data=lots.QcIn(test=test, result=result),
            )
            if spec.get("reviewed_by"):
                results.review(
                    db,
                    result=qc,
                    actor=_actor(db, spec["reviewed_by"]),
                    data=results.ReviewIn(
                        signature=SignatureIn(password=password, meaning="review")
                    ),
                )
        for action in spec["advance"][1:]:
            lots.transition_lot(
                db, lot_number=lot.lot_number, data=lots.LotTransitionIn(action=action), actor=tech
            )
        if spec.get("release_by"):
            qa = _actor(db, spec["release_by"])
            # QA reviews the lot's audit trail (Annex 11 §9) before it may release it.
            trail.review(
                db,
                lot=lot,
                actor=qa,
                data=trail.ReviewIn(
                    up_to_seq=trail.review_status(db, lot)["newest_seq"],
                    signature=SignatureIn(password=password, meaning="review"),
                ),
            )
            lots.transition_lot(
                db,
                lot_number=lot.lot_number,
                actor=qa,
                data=lots.LotTransitionIn(
                    action="release",
                    signature=lots.SignatureIn(password=password, meaning="release"),
                ),
            )
        for _ in range(spec["vials"]):
            s = samples.register_sample(
                db,
                actor=tech,
                data=samples.SampleCreate(
                    sample_type="VECTOR_VIAL",
                    lot=lot.lot_number,
                    volume=spec["vial_volume"],
                    unit="mL",
                    container="cryovial",
                ),
            )
            samples.transition(
                db,
                barcode=s.barcode,
                actor=tech,
                data=samples.TransitionIn(
                    action="receive", condition="frozen", location="BOX-0101"
                ),
            )
    for spec in data["samples"]:
        s = samples.register_sample(
            db,
            actor=tech,
            data=samples.SampleCreate(
                sample_type=spec["sample_type"],
                project=spec["project"],
                volume=spec["volume"],
                unit=spec["unit"],
                container=spec["container"],
            ),
        )
        for action, fields in spec["steps"]:
            who = qa if action == "release" else tech
            samples.transition(
                db, barcode=s.barcode, actor=who, data=samples.TransitionIn(action=action, **fields)
            )
        if spec.get("aliquots"):
            count, volume, unit, box = spec["aliquots"]
            samples.aliquot(
                db,
                barcode=s.barcode,
                actor=tech,
                data=samples.AliquotIn(count=count, volume=volume, unit=unit, location=box),
            )
        for action, fields in spec.get("after", []):
            samples.transition(
                db,
                barcode=s.barcode,
                actor=tech,
                data=samples.TransitionIn(action=action, **fields),
            )
    _materials(db, data.get("materials", {}), password)
    for spec in data.get("process_templates", []):
        _process_template(db, spec, password)
    for spec in data["lots"]:
        if spec.get("batch"):
            _batch_record(db, spec["lot_number"], spec["batch"], password)
    for spec in data.get("deviations", []):
        _deviation(db, spec, password)
    if data.get("therapy"):
        from lims.therapy import demo as therapy_demo

        therapy_demo.load(
            db, data["therapy"], admin=_actor(db, "admin"), qa=qa, tech=tech, password=password
        )
    rooms_demo.load(db)
    return {
        "users": len(data["users"]),
        "lots": len(data["lots"]),
        "samples": len(samples.list_samples(db, system, limit=1000)),
    }


def _deviation(db: Session, spec: dict, password: str) -> None:
    """Raise a demo deviation and take it as far as the fixture says (investigated, closed)."""
    dev = deviations.create_deviation(
        db,
        actor=_actor(db, spec["raised_by"]),
        data=deviations.DeviationCreate(
            title=spec["title"],
            description=spec["description"],
            severity=spec["severity"],
            category=spec.get("category"),
            links=[deviations.LinkIn(kind=k, ref=r) for k, r in spec["links"]],
        ),
    )
    qa = spec.get("closed_by")
    if qa is None:
        return
    qa_actor = _actor(db, qa)
    deviations.transition(
        db,
        number=dev.number,
        actor=qa_actor,
        data=deviations.DeviationTransitionIn(action="investigate"),
    )
    for c in spec.get("capa", []):
        capa = deviations.add_capa(
            db,
            number=dev.number,
            actor=qa_actor,
            data=deviations.CapaIn(
                description=c["description"],
                owner=c["owner"],
                due_on=date.fromisoformat(c["due_on"]),
            ),
        )
        deviations.complete_capa(
            db,
            number=dev.number,
            capa_id=capa.id,
            actor=_actor(db, c["owner"]),
            data=deviations.CapaComplete(effectiveness_check=c["effectiveness_check"]),
        )
    if spec.get("closed_by"):
        deviations.transition(
            db,
            number=dev.number,
            actor=qa_actor,
            data=deviations.DeviationTransitionIn(
                action="close",
                root_cause=spec["root_cause"],
                signature=deviations.DeviationSignature(password=password, meaning="approval"),
            ),
        )


def _process_template(db: Session, spec: dict, password: str) -> None:
    """Write a process template as its author and approve it as another QA person (signed)."""
    tpl = batch.create_template(
        db, data=batch.TemplateIn(**spec["template"]), actor=_actor(db, spec["author"])
    )
    batch.approve_template(
        db,
        code=tpl.code,
        version=tpl.version,
        data=batch.ApproveIn(signature=SignatureIn(password=password, meaning="approval")),
        actor=_actor(db, spec["approved_by"]),
    )


def _batch_record(db: Session, lot_number: str, spec: dict, password: str) -> None:
    """Execute a lot's batch record: each step by its operator with the materials it used,
    verified by a second person, then the lot's next moves and QA's signed review."""
    batch.start(
        db,
        lot_number=lot_number,
        data=batch.BatchStart(template=spec["template"]),
        actor=_actor(db, spec["started_by"]),
    )
    for n, step in enumerate(spec["steps"], start=1):
        used = [
            db.exec(
                select(MaterialLot.code)
                .join(MaterialKind, MaterialKind.id == MaterialLot.kind_id)
                .where(MaterialKind.code == kind, MaterialLot.state == "released")
                .order_by(MaterialLot.id)
            ).first()
            for kind in step.get("materials", [])
        ]
        batch.record_step(
            db,
            lot_number=lot_number,
            position=n,
            data=batch.StepRecord(
                values=step.get("values", {}),
                equipment=step.get("equipment"),
                room=step.get("room"),
                materials=used,
            ),
            actor=_actor(db, step["by"]),
        )
        if step.get("verified_by"):
            batch.verify_step(
                db,
                lot_number=lot_number,
                position=n,
                data=batch.VerifyIn(signature=SignatureIn(password=password, meaning="review")),
                actor=_actor(db, step["verified_by"]),
            )
    for action in spec.get("then", []):
        lots.transition_lot(
            db,
            lot_number=lot_number,
            data=lots.LotTransitionIn(action=action),
            actor=_actor(db, spec["started_by"]),
        )
    if spec.get("reviewed_by"):
        batch.review(
            db,
            lot_number=lot_number,
            data=batch.ReviewIn(signature=SignatureIn(password=password, meaning="review")),
            actor=_actor(db, spec["reviewed_by"]),
        )


class NotADemoDatabase(RuntimeError):
    """The database holds a centre's own users: the demo (published passwords) never loads."""


def _materials(db: Session, spec: dict, password: str) -> None:
    """Set up material kinds and receive lots: some released, one in quarantine, one expired."""
    if not spec:
        return
    admin, tech, qa = _actor(db, "admin"), _actor(db, "tech1"), _actor(db, "qa1")
    for k in spec.get("kinds", []):
        materials.create_kind(db, data=materials.KindCreate(**k), actor=admin)
    for m in spec.get("lots", []):
        received = date.fromisoformat(m["received_on"]) if m.get("received_on") else None
        mat = materials.receive_manual(
            db,
            data=materials.ReceiveManual(
                kind=m["kind"],
                supplier_lot=m["supplier_lot"],
                serial=m.get("serial"),
                expires_on=date.fromisoformat(m["expires_on"]),
            ),
            actor=tech,
            today=received,
        )
        if m.get("release"):
            materials.transition(
                db,
                code=mat.code,
                data=materials.MaterialTransitionIn(
                    action="release", signature=SignatureIn(password=password, meaning="release")
                ),
                actor=qa,
                today=received,
            )
        if m.get("expire"):
            materials.transition(
                db, code=mat.code, data=materials.MaterialTransitionIn(action="expire"), actor=tech
            )


def users_besides_system(db: Session, limit: int = 3) -> list[str]:
    """Return a few usernames other than the system user (none: the database is unused)."""
    return list(db.exec(select(User.username).where(User.username != "system").limit(limit)).all())


def load_demo_if_empty(engine: Engine) -> bool:
    """Load the demo centre into an unused database; tell whether it loaded.

    A database that holds the demo already (its admin) is left as it is. One that holds other
    users is a real centre's: NotADemoDatabase, because the demo's accounts share a published
    password and must never sit beside real ones.
    """
    with new_session(engine) as db:
        if db.exec(select(User.id).where(User.username == "admin")).first() is not None:
            return False
        others = users_besides_system(db)
        if others:
            raise NotADemoDatabase(
                f"this database has users already ({', '.join(others)}, ...) and is not the "
                "demo's: the demo centre, with its published passwords, loads only into an "
                "empty database"
            )
        load_demo(db)
        db.commit()
        return True
