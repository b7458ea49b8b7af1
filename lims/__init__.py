"""The LIMS web application: create_app() builds it."""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

from apiflask import APIFlask, HTTPError
from flask import Request, Response, g, request, send_from_directory
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from swagger_ui_bundle import swagger_ui_path
from werkzeug.routing import IntegerConverter

from lims import config as config_mod
from lims.db import make_engine, set_read_only
from lims.errors import LimsError
from lims.version import __version__

log = logging.getLogger("lims")

_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "refused",
}


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        # {"action": "quarantine", "action": "dispose"} would otherwise dispose, silently.
        raise ValueError(f"the key {twice!r} appears more than once in one object")
    return out


def loads_request_json(data: str | bytes) -> Any:
    """Parse a request body: duplicate keys, deep nesting and giant numbers are ValueErrors."""
    try:
        return json.loads(data, object_pairs_hook=_refuse_duplicate_keys)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    except ValueError as e:
        if "integer string conversion" in str(e):
            raise ValueError("a number in the JSON has too many digits") from None
        raise


class LimsJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading with loads_request_json (Flask parses request bodies with app.json)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:  # a caller asking for something special gets Flask's own reading
            return super().loads(s, **kwargs)
        return loads_request_json(s)


class LimsRequest(Request):
    """A request whose unreadable JSON body is a clear 400, not a bare 'Bad Request'."""

    def on_json_loading_failed(self, e: ValueError | None) -> None:
        raise HTTPError(400, f"the request body is not valid JSON: {e}")


class DbIntConverter(IntegerConverter):
    """An <int:...> path part that fits an INTEGER id column; a larger number matches no route.

    Without the bound, /api/print-jobs/99999999999999999999 reached the database and failed
    there (SQLite: int overflow -> 500; PostgreSQL: 'integer out of range' -> 503) instead of
    answering 404.
    """

    def __init__(self, map, fixed_digits=0, min=None, max=2**31 - 1, signed=False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def _has_nul(req: Request) -> bool:
    """Tell whether any path part, query or form value or JSON string holds a NUL character."""
    values = [*(req.view_args or {}).values(), *req.args.values()]
    if req.mimetype == "application/x-www-form-urlencoded":
        values += list(req.form.values())
    if any(isinstance(v, str) and "\x00" in v for v in values):
        return True
    raw = req.get_data(cache=True)
    if b"\x00" not in raw and b"\\u0000" not in raw:
        return False
    try:
        stack = [loads_request_json(raw)]
    except ValueError:
        return False  # not JSON: the view answers 400 for that anyway
    while stack:
        v = stack.pop()
        if isinstance(v, str) and "\x00" in v:
            return True
        if isinstance(v, dict):
            stack += [*v.keys(), *v.values()]
        elif isinstance(v, list):
            stack += v
    return False


def _secret_key(instance: Path) -> str:
    """Return the instance's secret key, creating it on first start (never in the repo)."""
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def create_app(config: dict[str, Any] | None = None) -> APIFlask:
    """Build the app: config, database (migrated), blueprints, error handling, CLI."""
    app = APIFlask(
        __name__,
        title="Custody LIMS",
        version=__version__,
        instance_relative_config=True,
        spec_path="/openapi.json",
        docs_path="/docs",
    )
    app.request_class = LimsRequest
    app.json = LimsJSONProvider(app)
    app.url_map.converters["int"] = DbIntConverter  # before any route is added
    app.config.update(config_mod.DEFAULTS)
    app.config.update(config_mod.from_env())
    app.config.update(config or {})
    app.config["VALIDATION_ERROR_STATUS_CODE"] = 400
    app.config["VALIDATION_ERROR_DESCRIPTION"] = "The request is malformed"
    app.config["SECURITY_SCHEMES"] = {"BearerAuth": {"type": "http", "scheme": "bearer"}}
    _serve_docs_locally(app)
    instance = Path(app.instance_path)
    try:
        instance.mkdir(parents=True, exist_ok=True)
        if not app.config["SECRET_KEY"]:
            app.config["SECRET_KEY"] = _secret_key(instance)
    except OSError as err:
        raise StartupError(
            f"cannot use the instance folder {instance}: {err.strerror or err}. The LIMS keeps "
            "its secret key (and the default SQLite database) there: make it writable, or set "
            "LIMS_SECRET_KEY and LIMS_DATABASE_URL"
        ) from err
    url = app.config["DATABASE_URL"] or f"sqlite:///{instance / 'lims.sqlite3'}"
    app.config["DATABASE_URL"] = url

    try:
        engine = make_engine(url)
        app.extensions["lims"] = {"engine": engine}
        if app.config["AUTO_MIGRATE"]:
            from lims.bootstrap import ensure_base
            from lims.migrate import upgrade_database

            # As the tables' owner when LIMS_MIGRATE_DATABASE_URL names one, else as the app.
            upgrade_database(engine, app.config["MIGRATE_DATABASE_URL"])
            ensure_base(engine)
            if app.config["LOAD_DEMO"]:
                from lims.fixtures import NotADemoDatabase, load_demo_if_empty

                try:
                    load_demo_if_empty(engine)
                except NotADemoDatabase as err:
                    raise StartupError(f"{err}. {REAL_CENTRE_HINT}") from None
    except SQLAlchemyError as err:
        cause = getattr(err, "orig", None) or err
        raise StartupError(
            f"cannot open the database {_shown_url(url)}: {str(cause).strip().splitlines()[0]}. "
            "Check LIMS_DATABASE_URL (e.g. postgresql+psycopg://user@127.0.0.1:5432/lims: is "
            "the server up, the name right?) or, for the default SQLite file, that the instance "
            "folder is writable"
        ) from err

    _attach_checkpoints(app, instance)
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    _register_boundary(app)
    from lims import api, cli

    api.register(app)
    from lims import web

    web.register(app)  # browser pages, and the session hook current_actor() uses for /api
    cli.register(app)
    if app.config.get("RUN_DEVICE_WORKER"):
        from lims.printing import start_device_worker

        start_device_worker(app)  # python app.py: print worker + demo printer simulators
        every = float(app.config["CHECKPOINT_EVERY_MINUTES"] or 0)
        if every > 0:
            from lims.audit import checkpoint

            app.extensions["lims"]["checkpoint_schedule"] = checkpoint.start_schedule(
                engine, checkpoint.store_for(engine), every * 60
            )
    return app


def _attach_checkpoints(app: APIFlask, instance: Path) -> None:
    """Sign the trail's head into the configured checkpoint folder (docs/audit.md)."""
    from lims.audit import checkpoint

    directory = app.config["CHECKPOINT_DIR"] or checkpoint.default_directory(
        instance, app.config["DATABASE_URL"]
    )
    key = app.config["CHECKPOINT_KEY"] or instance / "checkpoint_key"
    engine = app.extensions["lims"]["engine"]
    checkpoint.attach(engine, checkpoint.CheckpointStore(directory, key))


class StartupError(RuntimeError):
    """The app cannot start: its message says what to set or fix (no traceback needed)."""


# What `python app.py` says when pointed at a database that is not the demo's.
REAL_CENTRE_HINT = (
    "`python app.py` serves only the demo centre, in its own database (instance/lims.sqlite3). "
    "To run a real centre: `flask --app app init-db`, then `flask --app app setup ...` and "
    "`flask --app app user create NAME --role admin --org centre`, and serve it with "
    "`gunicorn -w 4 -b 127.0.0.1:5000 app:app` (README, 'Run a real centre')"
)


def _shown_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return repr(url)


def _serve_docs_locally(app: APIFlask) -> None:
    """Serve the API docs page's Swagger UI from the installed bundle, not from a CDN.

    A lab network is often offline, and every docs visit would tell a third party about it.
    """
    assets = Path(swagger_ui_path)
    used = {
        "SWAGGER_UI_CSS": "swagger-ui.css",
        "SWAGGER_UI_BUNDLE_JS": "swagger-ui-bundle.js",
        "SWAGGER_UI_STANDALONE_PRESET_JS": "swagger-ui-standalone-preset.js",
        "DOCS_FAVICON": "favicon-32x32.png",
    }
    app.config.update({key: f"/docs/assets/{name}" for key, name in used.items()})
    # Only these: the bundle's own index.html would load a demo spec from the internet.
    served = frozenset(used.values())

    @app.get("/docs/assets/<name>")
    @app.doc(hide=True)
    def docs_asset(name: str) -> Response:
        if name not in served:
            raise HTTPError(404, f"no docs asset {name[:64]!r}")
        return send_from_directory(assets, name, max_age=3600)


def _register_boundary(app: APIFlask) -> None:
    from lims.boundary.api import handle_db_error, handle_lims_error, handle_unexpected
    from lims.boundary.unit import close_db, is_reader

    @app.before_request
    def _mark_readers() -> None:
        g.ro_token = set_read_only(is_reader())

    @app.before_request
    def _refuse_nul() -> None:
        # PostgreSQL text cannot hold NUL (the insert failed as a 503); no real input has one,
        # so both engines answer 400 before anything is read or written.
        view = app.view_functions.get(request.endpoint or "")
        if not getattr(view, "accepts_nul", False) and _has_nul(request):
            raise HTTPError(400, "text must not contain NUL (\\u0000) characters")

    @app.before_request
    def _refuse_repeated_parameters() -> None:
        # Only the first of `?lot=a&lot=b` would be read: say so instead of guessing.
        repeated = sorted(k for k, v in request.args.lists() if len(v) > 1)
        if repeated and request.path.startswith("/api/"):
            raise HTTPError(400, f"query parameter given more than once: {', '.join(repeated)}")

    @app.teardown_request
    def _end(exc: BaseException | None) -> None:
        close_db(exc)

    app.register_error_handler(LimsError, handle_lims_error)
    app.register_error_handler(DBAPIError, handle_db_error)
    app.register_error_handler(Exception, handle_unexpected)

    @app.error_processor
    def _http_error(error):  # noqa: ANN001, ANN202
        code = _ERROR_CODES.get(error.status_code, "error")
        body: dict[str, Any] = {"error": code, "message": error.message}
        if error.status_code == 400:
            body["error"] = "malformed"
        if error.detail:
            body["detail"] = error.detail
        return body, error.status_code, error.headers
