"""Entry point: `python app.py` serves the demo centre on http://127.0.0.1:5000."""

from __future__ import annotations

import gc
import os

from lims import REAL_CENTRE_HINT, StartupError, create_app
from lims.config import from_env


def demo_refusal(environ: dict[str, str] | os._Environ) -> str | None:
    """Return why `python app.py` must not start on this environment, or None.

    The demo loads its users with a published password. It goes into its own database (the
    default SQLite file in instance/); LIMS_DATABASE_URL names a centre's database, which the
    demo never touches unless LIMS_DEMO=1 says that database is a demo too.
    """
    settings = from_env(dict(environ))
    if settings.get("DATABASE_URL") and not settings.get("DEMO"):
        return (
            f"LIMS_DATABASE_URL is set. {REAL_CENTRE_HINT}. To try the demo in that database "
            "anyway (an empty one only), set LIMS_DEMO=1"
        )
    return None


def settle() -> None:
    """Leave what start-up built out of the garbage collector's full passes.

    The app holds about 190,000 objects once built (models, schemas, templates); a full
    collection walked them all every few dozen requests, a 100 ms pause in the middle of a page
    (measured by bench/centre.py). They live as long as the process anyway.
    """
    gc.freeze()


def main() -> None:
    """Serve the demo centre: demo fixtures on first start, simulated devices."""
    refusal = demo_refusal(os.environ)
    if refusal:
        raise SystemExit(f"error: {refusal}")
    try:
        host = os.environ.get("LIMS_HOST", "127.0.0.1")
        port = int(os.environ.get("LIMS_PORT", "5000"))
    except ValueError:
        raise SystemExit("error: LIMS_PORT must be a port number, like 5000") from None
    try:
        demo = create_app({"LOAD_DEMO": True, "RUN_DEVICE_WORKER": True})
    except StartupError as err:
        raise SystemExit(f"error: {err}") from None
    settle()
    print(f"LIMS demo centre on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    demo.run(host=host, port=port, threaded=True)


if __name__ == "__main__":
    main()
else:
    # `flask --app app ...` and `gunicorn app:app` use this one (the database from
    # LIMS_DATABASE_URL or the instance folder); `python app.py` builds only the demo app.
    try:
        app = create_app()
    except StartupError as err:
        # One line saying what to fix, for `flask ...` and gunicorn alike, not a traceback.
        raise SystemExit(f"error: {err}") from None
    settle()
