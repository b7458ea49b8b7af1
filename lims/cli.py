"""Flask commands: `flask --app app <command>`."""

from __future__ import annotations

import getpass
import os
import re
import sys
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func
from sqlmodel import Session, select

from lims import audit
from lims.accounts import users
from lims.db import new_session
from lims.errors import LimsError
from lims.models import Printer, Station, User
from lims.roles import ROLES


@contextmanager
def cli_session():
    """Open a session, commit on success, turn refusals into a clear message and exit 1."""
    db = new_session(current_app.extensions["lims"]["engine"])
    try:
        yield db
        db.commit()
    except LimsError as err:
        db.rollback()
        raise click.ClickException(err.message) from err
    finally:
        db.close()


def cli_actor(db: Session) -> users.Actor:
    """Return the system actor, marked with the OS user who ran the command."""
    actor = users.system_actor(db)
    return replace(actor, device=f"cli:{getpass.getuser()}")


@click.command("init-db")
@click.option(
    "--grant",
    "grant_to",
    metavar="ROLE",
    help="PostgreSQL: grant ROLE the app's rights and no more (run as the tables' owner)",
)
@with_appcontext
def init_db(grant_to: str | None) -> None:
    """Create or migrate the database to the newest schema."""
    from lims import StartupError
    from lims.bootstrap import ensure_base
    from lims.migrate import head_revision, upgrade_database

    engine = current_app.extensions["lims"]["engine"]
    try:
        granted = upgrade_database(
            engine, current_app.config["MIGRATE_DATABASE_URL"], grant_to=grant_to
        )
    except StartupError as err:
        raise click.ClickException(str(err)) from err
    ensure_base(engine)
    click.echo(f"database ready at schema {head_revision()}: {engine.url.render_as_string()}")
    if granted:
        click.echo(f"role {granted} may use the tables; it may not change the audit trail")


@click.command("load-fixtures")
@with_appcontext
def load_fixtures() -> None:
    """Load the demo centre (demo-only passwords; see README)."""
    from lims.fixtures import load_demo

    with cli_session() as db:
        others = db.exec(
            select(users.User.username).where(users.User.username != "system").limit(3)
        ).all()
        if others:
            # The demo accounts share a published password: never into a database in use.
            raise click.ClickException(
                f"this database has users already ({', '.join(others)}, ...): the demo centre, "
                "with its demo-only passwords, loads only into an empty database"
            )
        counts = load_demo(db)
    click.echo(f"demo centre loaded: {counts}")


user_cli = AppGroup("user", help="Manage users.")


@user_cli.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--org", default="centre", show_default=True, help="organisation name")
@click.option("--full-name", default=None)
@click.option(
    "--no-password", is_flag=True, help="an account that only badges in at benches (no sign-in)"
)
@click.option("--badge", default=None, help="the code on the person's bench badge")
def user_create(
    username: str, role: str, org: str, full_name: str | None, no_password: bool, badge: str | None
) -> None:
    """Create a user; the password is read from stdin when it is not a terminal."""
    if no_password:
        password = ""
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        # A Windows line end would become part of the password nobody can then type.
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException(
                "no password on stdin; pipe one in, or pass --no-password for an account "
                "that only badges in at benches"
            )
    with cli_session() as db:
        users.create_user(
            db,
            username=username,
            role=role,
            org=org,
            password=password or None,
            full_name=full_name,
            actor=cli_actor(db),
            config=current_app.config,
        )
        if badge is not None:
            _assign_badge(db, username, badge)
    click.echo(f"user {username} created with role {role} in {org}")


def _assign_badge(db: Session, username: str, badge: str) -> None:
    from lims import masterdata

    data = masterdata.parse(masterdata.BadgeIn, username=username, badge=badge)
    masterdata.assign_badge(db, data=data, actor=cli_actor(db))


@user_cli.command("badge")
@click.argument("username")
@click.argument("badge")
def user_badge(username: str, badge: str) -> None:
    """Give USERNAME the bench badge BADGE (replaces a lost one; it signs them in at benches)."""
    with cli_session() as db:
        _assign_badge(db, username, badge)
    click.echo(f"{username} now badges in with {badge}")


def _read_secret(prompt: str, *, confirm: bool = False) -> str:
    """Read a password: prompted on a terminal, else one line of stdin."""
    if sys.stdin.isatty():
        return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    # A Windows line end would become part of the password nobody can then type.
    return sys.stdin.readline().rstrip("\r\n")


@user_cli.command("unlock")
@click.argument("username")
@click.option("--reason", required=True, help="why (it goes into the audit trail)")
def user_unlock(username: str, reason: str) -> None:
    """End USERNAME's wait after wrong passwords (sign-in or e-signature)."""
    from lims.accounts import admin

    with cli_session() as db:
        admin.unlock_user(db, username=username, reason=reason, actor=cli_actor(db))
    click.echo(f"{username} unlocked")


@user_cli.command("password")
@click.argument("username")
def user_password(username: str) -> None:
    """Change USERNAME's own password: the current one, then the new one (stdin: two lines)."""
    from lims.accounts import passwords

    current = _read_secret("Current password")
    new = _read_secret("New password", confirm=True)
    with cli_session() as db:
        user = db.exec(select(User).where(User.username == username)).first()
        if user is None or user.username == "system":
            raise click.ClickException(f"no user {username!r}")
        passwords.change_password(
            db,
            user=user,
            current=current,
            new=new,
            config=current_app.config,
            device=cli_actor(db).device,
        )
    click.echo(f"password of {username} changed; their other sessions were ended")


@user_cli.command("reset-password")
@click.argument("username")
@click.option("--reason", required=True, help="why (it goes into the audit trail)")
def user_reset_password(username: str, reason: str) -> None:
    """Give USERNAME a one-time password, to change at the next sign-in; print it once."""
    from lims.accounts import admin

    with cli_session() as db:
        temporary = admin.reset_password(
            db, username=username, reason=reason, actor=cli_actor(db), config=current_app.config
        )
    click.echo(
        f"one-time password for {username} (they must change it at their next sign-in; shown "
        f"only now): {temporary}"
    )


token_cli = AppGroup("token", help="Manage API tokens.")


@token_cli.command("create")
@click.argument("username")
@click.option("--station", default=None, help="bind the token to a bench station")
@click.option("--days", type=int, default=None, help="days until it expires [default: TOKEN_DAYS]")
def token_create(username: str, station: str | None, days: int | None) -> None:
    """Create an API token; it is printed once, as the last word."""
    days = int(current_app.config["TOKEN_DAYS"]) if days is None else days
    with cli_session() as db:
        secret, tok = users.create_token(
            db, username=username, station=station, actor=cli_actor(db), days=days
        )
    until = tok.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    click.echo(
        f"token {tok.id} for {username}, valid until {until} "
        f"(keep it secret; it is shown only now): {secret}"
    )


@token_cli.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke an API token by its number."""
    with cli_session() as db:
        users.revoke_token(db, token_id=token_id, actor=cli_actor(db))
    click.echo(f"token {token_id} revoked")


printer_cli = AppGroup("printer", help="Manage label printers.")

# Printer names are typed at benches and shown on every job: keep them plain.
PRINTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


def _check_port_url(url: str) -> None:
    """Refuse what pyserial could never open: an unknown scheme, a socket without host:port."""
    import serial

    hint = "give a serial device (/dev/ttyUSB0) or a pyserial URL (socket://host:9100)"
    if not url or url != url.strip() or not url.isprintable() or " " in url or len(url) > 500:
        raise click.BadParameter(hint, param_hint="URL")
    try:
        serial.serial_for_url(url, do_not_open=True)
        parts = urlsplit(url)
        if parts.scheme in ("socket", "rfc2217") and not (parts.hostname and parts.port):
            raise ValueError(f"{parts.scheme}:// needs host:port")
        if parts.username is not None or parts.password is not None:
            # The URL is shown on pages and kept in the append-only audit trail.
            raise ValueError("a printer URL holds no user name or password")
    except (ValueError, serial.SerialException) as err:
        raise click.BadParameter(f"{err}; {hint}", param_hint="URL") from err


@printer_cli.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--baud", default=9600, show_default=True, type=click.IntRange(300, 921_600))
@click.option("--language", default="zpl", show_default=True, type=click.Choice(["zpl"]))
@click.option(
    "--flow", default="xonxoff", show_default=True, type=click.Choice(["xonxoff", "rtscts", "none"])
)
@click.option("--dpi", default=203, show_default=True, type=click.Choice(["203", "300"]))
@click.option("--station", default=None)
def printer_add(
    name: str, url: str, baud: int, language: str, flow: str, dpi: str, station: str | None
) -> None:
    """Add a label printer addressed by a pyserial URL (/dev/ttyUSB0, socket://host:9100)."""
    if not PRINTER_NAME.fullmatch(name):
        raise click.BadParameter(
            "letters, digits, '.', '_' and '-', at most 32 (as ZEBRA-B1)", param_hint="NAME"
        )
    _check_port_url(url)
    with cli_session() as db:
        actor = cli_actor(db)
        same = db.exec(select(Printer).where(func.lower(Printer.name) == name.lower())).first()
        if same is not None:
            # ZEBRA-C2 and zebra-c2 would be one printer to anyone choosing from a list.
            raise click.ClickException(f"printer {same.name} exists already")
        station_id = None
        if station:
            st = db.exec(select(Station).where(Station.name == station)).first()
            if st is None:
                raise click.ClickException(f"no station {station}; see GET /api/stations")
            station_id = st.id
        p = Printer(
            name=name,
            url=url,
            baud=baud,
            language=language,
            flow=flow,
            dpi=int(dpi),
            station_id=station_id,
        )
        db.add(p)
        db.flush()
        audit.record_by(
            db,
            actor,
            action="printer.create",
            entity_type="printer",
            entity_id=name,
            after={
                "name": name,
                "url": url,
                "baud": baud,
                "flow": flow,
                "language": language,
                "dpi": int(dpi),
                "station": station,
            },
        )
    click.echo(f"printer {name} added at {url} ({baud} baud)")
    if "://" not in url and not os.path.exists(url):
        # Added all the same: a printer is often set up before it is plugged in.
        click.echo(
            f"warning: {url} does not exist now; {name} prints once the device is there "
            "(is it plugged in and switched on? `ls /dev/serial/by-id/` names the connected "
            "ones by a path that does not change between reboots)",
            err=True,
        )


audit_cli = AppGroup("audit", help="Verify and export the audit trail.")


@audit_cli.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain and check it holds the newest signed checkpoint.

    Exits 1 and names the seq when the chain is broken, cut short or rewritten, or when the
    checkpoint file does not verify.
    """
    from lims.audit import checkpoint

    engine = current_app.extensions["lims"]["engine"]
    store = checkpoint.store_for(engine)
    if store is not None:
        try:
            # Every line's own signature too (verify itself checks each key's newest line).
            store.read(every_signature=True)
        except audit.CheckpointError as err:
            where = "" if err.seq is None else f" at seq {err.seq}"
            click.echo(f"BROKEN{where}: {err.message}", err=True)
            sys.exit(1)
    with new_session(engine) as db:
        total = audit.count_events(db)
        with click.progressbar(length=total, label="verifying", file=sys.stderr) as bar:
            result = audit.verify(db, progress=bar.update)
    if result.ok:
        click.echo(
            f"OK: {result.events} events, head seq {result.head_seq}, hash {result.head_hash}"
        )
        cp = result.checkpoint
        if cp is None:
            click.echo("no signed checkpoint yet: run `flask audit checkpoint`", err=True)
        else:
            click.echo(
                f"holds the checkpoint of seq {cp['seq']} written {cp['written_at']} "
                f"(key {cp['key'][:16]})"
            )
        return
    click.echo(f"BROKEN at seq {result.first_bad_seq}: {result.problem}", err=True)
    sys.exit(1)


def _checkpoint_store() -> audit.CheckpointStore:
    from lims.audit import checkpoint

    store = checkpoint.store_for(current_app.extensions["lims"]["engine"])
    if store is None:
        raise click.ClickException("no checkpoint folder is configured")
    return store


@audit_cli.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's head into the checkpoint file (run it from cron; see docs/audit.md)."""
    store = _checkpoint_store()
    try:
        cp = store.write(current_app.extensions["lims"]["engine"], "cli")
    except (audit.CheckpointError, OSError) as err:
        raise click.ClickException(getattr(err, "message", None) or str(err)) from err
    click.echo(f"{cp.summary()} in {store.path}")


@audit_cli.command("rotate-key")
def audit_rotate_key() -> None:
    """Replace the checkpoint signing key; the old one is renamed for you to take offline."""
    store = _checkpoint_store()
    try:
        old, cp = store.rotate(current_app.extensions["lims"]["engine"])
    except (audit.CheckpointError, OSError) as err:
        raise click.ClickException(getattr(err, "message", None) or str(err)) from err
    if old:
        click.echo(f"key {old[:16]} retired; its public key stays in {store.keys_dir}")
    click.echo(f"new key {cp.key[:16]} at {store.key_path}; {cp.summary()}")


@audit_cli.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "pdf"]), default="csv", show_default=True
)
@click.option("--sample", default=None, help="a sample barcode (with its lineage)")
@click.option("--lot", default=None, help="a lot number (the lot and its vials)")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None)
def audit_export(fmt: str, sample: str | None, lot: str | None, output: str | None) -> None:
    """Export audit events as CSV (or a chain-of-custody PDF)."""
    from lims.reports import checkpoint_for_export, export_csv, export_pdf, filters_for

    engine = current_app.extensions["lims"]["engine"]
    with new_session(engine) as db:
        try:
            if fmt == "csv":
                filters = filters_for(db, users.system_actor(db), sample=sample, lot=lot)
                click.echo(f"made against checkpoint {checkpoint_for_export(db)}", err=True)
                if output:
                    # A million events take a while: show how far it got (on stderr).
                    total = audit.count_events(db, **filters)
                    with click.progressbar(length=total, label="exporting", file=sys.stderr) as bar:
                        n = _write_whole(
                            output, "w", lambda fh: export_csv(db, fh, filters, progress=bar.update)
                        )
                    click.echo(f"{n} events written to {output}", err=True)
                else:
                    export_csv(db, sys.stdout, filters)
            else:
                if (sample is None) == (lot is None):
                    raise click.UsageError(
                        "a PDF report is for one sample or one lot: give "
                        "exactly one of --sample BARCODE / --lot LOT"
                    )
                if not output:
                    raise click.ClickException("a PDF needs --output FILE")
                # A refused report (unknown sample...) leaves no file behind (_write_whole).
                _write_whole(
                    output,
                    "wb",
                    lambda fh: export_pdf(db, fh, sample=sample, lot=lot, actor=cli_actor(db)),
                )
                click.echo(f"report written to {output}", err=True)
        except LimsError as err:
            raise click.ClickException(err.message) from err


def _write_whole(path: str, mode: str, write: Callable[[Any], Any]) -> Any:
    """Write a file completely or not at all (an error or Ctrl-C leaves no partial export).

    The export goes to a temporary file beside path and replaces path only once complete, so
    an earlier export there survives a failed one and a half file never looks finished.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise click.ClickException(f"no folder {target.parent}: create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with open(fd, mode, **({"newline": ""} if "b" not in mode else {})) as fh:
            result = write(fh)
        # The permissions the file had, or would have had if opened directly.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return result


setup_cli = AppGroup(
    "setup", help="Set up the centre: client organisations, projects, sample types, places."
)


def _setup(what: str, add: Callable[..., Any], model: Any, **fields: Any) -> None:
    """Validate fields, add the record as an audited change, and say what was added."""
    from lims import masterdata

    with cli_session() as db:
        data = masterdata.parse(model, **{k: v for k, v in fields.items() if v is not None})
        add(db, data=data, actor=cli_actor(db))
    click.echo(f"{what} {next(iter(fields.values()))} added")


@setup_cli.command("organisation")
@click.argument("name")
@click.argument("display_name")
def setup_organisation(name: str, display_name: str) -> None:
    """Add a client organisation: NAME like helix-bio, DISPLAY_NAME as printed on reports."""
    from lims import masterdata

    _setup(
        "organisation",
        masterdata.add_organisation,
        masterdata.OrganisationIn,
        name=name,
        display_name=display_name,
    )


@setup_cli.command("project")
@click.argument("code")
@click.argument("name")
@click.option("--org", required=True, help="the organisation that owns it (centre for ours)")
def setup_project(code: str, name: str, org: str) -> None:
    """Add a project (CODE like HX-AAV9); samples and lots are registered under one."""
    from lims import masterdata

    _setup("project", masterdata.add_project, masterdata.ProjectIn, code=code, name=name, org=org)


@setup_cli.command("sample-type")
@click.argument("code")
@click.argument("name")
def setup_sample_type(code: str, name: str) -> None:
    """Add a sample type (CODE like PBMC or VECTOR_VIAL)."""
    from lims import masterdata

    _setup("sample type", masterdata.add_sample_type, masterdata.SampleTypeIn, code=code, name=name)


@setup_cli.command("location")
@click.argument("code")
@click.argument("name")
@click.option(
    "--kind", required=True, type=click.Choice(["site", "room", "equipment", "rack", "box"])
)
@click.option("--parent", default=None, help="code of the place it is in (none for a site)")
@click.option("--grade", default=None, help="rooms: A, B, C, D or CNC")
@click.option("--equipment-type", default=None, help="freezer, ln2, fridge, incubator, cabinet")
@click.option("--temperature", default=None, help='as shown, e.g. "-80 C"')
@click.option("--rows", type=int, default=None, help="boxes: rows of the grid (A..)")
@click.option("--cols", type=int, default=None, help="boxes: columns of the grid (1..)")
def setup_location(code: str, name: str, **fields: Any) -> None:
    """Add a place (CODE is scanned and printed, like FRZ-80-2 or BOX-0104)."""
    from lims import masterdata

    _setup(
        "location", masterdata.add_location, masterdata.LocationIn, code=code, name=name, **fields
    )


@setup_cli.command("station")
@click.argument("name")
@click.option("--room", required=True, help="code of the room the bench is in")
def setup_station(name: str, room: str) -> None:
    """Add a bench station (NAME like BENCH-C2); then `token create USER --station NAME`."""
    from lims import masterdata

    _setup("station", masterdata.add_station, masterdata.StationIn, name=name, room=room)


@setup_cli.command("spec")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def setup_spec(path: str) -> None:
    """Write a specification draft from a JSON file (as POST /api/specs); QA approves it."""
    import json

    from lims import masterdata
    from lims.quality import specs

    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise click.ClickException(f"cannot read {path}: {err}") from err
    if not isinstance(body, dict):
        raise click.ClickException(f"{path} must hold one JSON object (a specification)")
    with cli_session() as db:
        data = masterdata.parse(specs.SpecIn, **body)
        spec = specs.create_draft(db, data=data, actor=cli_actor(db))
        click.echo(
            f"draft {spec.code} v{spec.version} written; QA approves it (Specifications page or "
            f"POST /api/specs/{spec.code}/{spec.version}/transitions)"
        )


@setup_cli.command("product-code")
@click.argument("code")
@click.argument("description")
@click.option("--allogeneic", is_flag=True, help="donor material for others: pools may mix COIs")
@click.option("--min-temp", type=float, help="lowest transit temperature, degrees C")
@click.option("--max-temp", type=float, help="highest transit temperature, degrees C")
def setup_product_code(
    code: str,
    description: str,
    allogeneic: bool,
    min_temp: float | None,
    max_temp: float | None,
) -> None:
    """Add an ISBT 128 product description code (CODE like S1234) to the centre's catalogue."""
    from lims import masterdata
    from lims.therapy import products

    with cli_session() as db:
        data = masterdata.parse(
            products.ProductCodeIn,
            code=code,
            description=description,
            allogeneic=allogeneic,
            min_temp_c=min_temp,
            max_temp_c=max_temp,
        )
        p = products.add_product_code(db, data=data, actor=cli_actor(db))
        kind = "allogeneic" if p.allogeneic else "autologous"
        limits = (
            f", ships at {p.min_temp_c:g} to {p.max_temp_c:g} C" if p.min_temp_c is not None else ""
        )
        click.echo(f"product code {p.code} added ({kind}{limits})")


@setup_cli.command("clinical-site")
@click.argument("name")
@click.argument("display_name")
def setup_clinical_site(name: str, display_name: str) -> None:
    """Add a clinical site we ship product to: NAME like st-marys, DISPLAY_NAME as printed.

    Its staff get accounts with the role site (user create USER --role site --org NAME).
    """
    from lims import masterdata

    _setup(
        "clinical site",
        masterdata.add_organisation,
        masterdata.OrganisationIn,
        name=name,
        display_name=display_name,
        kind="clinical_site",
    )


@setup_cli.command("room-checklist")
@click.argument("room")
@click.argument("lines", nargs=-1, required=True)
def setup_room_checklist(room: str, lines: tuple[str, ...]) -> None:
    """Write a room's line-clearance checklist: one LINES argument per line, in order."""
    from lims import masterdata
    from lims.rooms import clearance

    with cli_session() as db:
        data = masterdata.parse(clearance.ChecklistIn, items=list(lines))
        items = clearance.set_checklist(db, code=room, data=data, actor=cli_actor(db))
    click.echo(f"checklist of {room}: {len(items)} lines")


@setup_cli.command("em-point")
@click.argument("room")
@click.argument("code")
@click.argument("name")
@click.option(
    "--kind", required=True, type=click.Choice(["particles", "air", "settle", "contact", "glove"])
)
def setup_em_point(room: str, code: str, name: str, kind: str) -> None:
    """Add an environmental monitoring sampling point (CODE like EM-C1-01) to a room."""
    from lims import masterdata
    from lims.rooms import em

    with cli_session() as db:
        data = masterdata.parse(em.PointIn, room=room, code=code, name=name, kind=kind)
        em.add_point(db, data=data, actor=cli_actor(db))
    click.echo(f"sampling point {code} added to {room}")


@setup_cli.command("material-kind")
@click.argument("code")
@click.argument("name")
@click.option(
    "--category",
    required=True,
    type=click.Choice(["reagent", "medium", "plasmid", "cell_bank", "consumable"]),
)
@click.option("--gtin", default=None, help="the GTIN on the supplier's GS1 barcode (AI 01)")
@click.option("--supplier", default=None, help="who sells it")
def setup_material_kind(code: str, name: str, **fields: Any) -> None:
    """Add a kind of material (CODE like DMEM-500); a GS1 scan of its GTIN receives a lot."""
    from lims.manufacturing import materials

    _setup(
        "material kind", materials.create_kind, materials.KindCreate, code=code, name=name, **fields
    )


lots_cli = AppGroup("lots", help="Vector lot jobs.")


@lots_cli.command("expire-due")
def lots_expire_due() -> None:
    """Expire released or held lots whose expiry date has come."""
    from lims import lots

    with cli_session() as db:
        done = lots.expire_due(db, actor=cli_actor(db))
    click.echo(f"expired: {', '.join(done) or 'none'}")


materials_cli = AppGroup("materials", help="Material lot jobs.")


@materials_cli.command("expire-due")
def materials_expire_due() -> None:
    """Move material lots whose expiry date has passed to expired (one audit event each)."""
    from lims.manufacturing import materials

    with cli_session() as db:
        actor = cli_actor(db)
        due = materials.due_for_expiry(db)
        with click.progressbar(due, label="expiring", file=sys.stderr) as bar:
            for code in bar:
                materials.expire(db, code=code, actor=actor)
    click.echo(f"expired: {', '.join(due) or 'none'}")


@click.command("print-worker")
@click.option("--once", is_flag=True, help="print what can print now, then exit")
@click.option("--printer", "printer_names", multiple=True, help="only this printer (repeatable)")
@click.option("--station", default=None, help="only the printers of this bench station")
@click.option(
    "--poll",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="seconds between polls",
)
@with_appcontext
def print_worker(
    once: bool, printer_names: tuple[str, ...], station: str | None, poll: float
) -> None:
    """Send queued print jobs to their printers (status first; never resends a job)."""
    import logging
    import threading

    from lims.printing import PrintWorker

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    engine = current_app.extensions["lims"]["engine"]
    if printer_names or station:
        # Checked once here: a worker told to serve a misspelt printer would idle without a
        # word. A running worker serves the printers it finds (one may be switched off later).
        from lims.printing import printers_for

        with new_session(engine) as db:
            try:
                printers_for(db, station=station, names=list(printer_names), strict=True)
            except LimsError as err:
                raise click.ClickException(err.message) from err
    worker = PrintWorker(
        engine,
        printers=list(printer_names) or None,
        station=station,
        poll_s=poll,
        status_every_s=float(current_app.config["PRINTER_STATUS_EVERY_S"]),
    )
    try:
        if once:
            try:
                reports = worker.run_once()
            except LimsError as err:
                raise click.ClickException(err.message) from err
            failed = 0
            for rep in reports:
                out = rep.outcome
                failed += bool(out.get("error"))
                what = out.get("error") or f"{out.get('printed')} labels printed"
                click.echo(f"job {rep.job_id} on {rep.printer}: {what}")
            click.echo(f"{len(reports)} jobs handled")
            if failed:
                # Scripts and cron must see it: a label that did not print is work left.
                raise click.ClickException(
                    f"{failed} of {len(reports)} jobs did not print; see the print queue"
                )
            return
        stop = threading.Event()
        try:
            worker.run(stop)
        except KeyboardInterrupt:
            stop.set()
    finally:
        worker.close()


def register(app) -> None:  # noqa: ANN001
    """Add the commands to app."""
    from agent.station import station_cli

    for cmd in (
        init_db,
        load_fixtures,
        user_cli,
        token_cli,
        printer_cli,
        audit_cli,
        lots_cli,
        materials_cli,
        setup_cli,
        station_cli,
        print_worker,
    ):
        app.cli.add_command(cmd)
