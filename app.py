"""Entry point: `python app.py` serves the demo centre on http://127.0.0.1:5000."""

from __future__ import annotations

import os

from lims import StartupError, create_app


def main() -> None:
    """Serve the demo centre: demo fixtures on first start, simulated devices."""
    try:
        demo = create_app({"LOAD_DEMO": True, "RUN_DEVICE_WORKER": True})
    except StartupError as err:
        raise SystemExit(f"error: {err}") from None
    host = os.environ.get("LIMS_HOST", "127.0.0.1")
    port = int(os.environ.get("LIMS_PORT", "5000"))
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
