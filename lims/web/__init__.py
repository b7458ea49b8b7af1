"""Server-rendered pages for the bench and for QA (Jinja templates, small vanilla JS)."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Register the web pages and the browser-session hook the /api boundary uses."""
    from lims.boundary import websession
    from lims.web.areas import bp

    app.register_blueprint(bp)
    app.extensions["lims"]["session_user"] = websession.session_user
    # Flask's own signed cookie carries only one-shot page messages (flash); keep it same-site.
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
