"""Configuration defaults; environment variables LIMS_* override them."""

from __future__ import annotations

import os
from typing import Any

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,  # None: SQLite file lims.sqlite3 in the instance folder
    # PostgreSQL: the role that owns the tables, for migrations only; DATABASE_URL then names
    # the app's own role, which gets the rights it needs and no more (docs/scale-out.md).
    "MIGRATE_DATABASE_URL": None,
    "SECRET_KEY": None,  # None: a random key per instance folder, kept in instance/secret_key
    "TESTING": False,
    "MAX_CONTENT_LENGTH": 1024 * 1024,  # 1 MiB: no legitimate request is larger
    "LOAD_DEMO": False,  # python app.py sets it: demo fixtures on first start
    # LIMS_DEMO=1: python app.py may load the demo into the database LIMS_DATABASE_URL names
    # (an empty one only); without it, python app.py refuses any database but its own.
    "DEMO": False,
    "RUN_DEVICE_WORKER": False,  # python app.py: in-process print worker for local printers
    # Idle printers are asked ~HS this often (seconds) by the worker or agent that drives them;
    # a status older than 3 of these shows as unknown (docs/printing.md).
    "PRINTER_STATUS_EVERY_S": 30.0,
    "AUTO_MIGRATE": True,
    "SESSION_IDLE_MINUTES": 15,
    "SESSION_ABSOLUTE_HOURS": 12,
    # Sign-in and e-signature throttling (docs/accounts.md): after LOGIN_MAX_FAILURES wrong
    # passwords in a row an account waits LOGIN_DELAY_SECONDS; each further such run doubles
    # the wait, up to LOGIN_LOCKOUT_MINUTES. A client address the same, after
    # LOGIN_ADDRESS_MAX_FAILURES.
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_DELAY_SECONDS": 30,
    "LOGIN_LOCKOUT_MINUTES": 15,
    "LOGIN_ADDRESS_MAX_FAILURES": 20,
    # Passwords: the shortest allowed, the least zxcvbn score (0-4; 3 = "safely unguessable"),
    # how many earlier passwords cannot be used again, and ageing (0 days: off).
    "PASSWORD_MIN_LENGTH": 12,
    "PASSWORD_MIN_SCORE": 3,
    "PASSWORD_HISTORY": 5,
    "PASSWORD_MAX_AGE_DAYS": 0,
    "TOKEN_DAYS": 90,  # API tokens expire after this many days unless created with --days
    "SCAN_DUPLICATE_WINDOW_S": 3.0,
    # A shipment's logger record with no reading for longer than this has a gap: the
    # temperature then is unknown, and the import opens a deviation (docs/therapy.md).
    "LOGGER_MAX_GAP_MINUTES": 60,
    # Behind a reverse proxy (nginx, a load balancer): how many proxies in front of the app set
    # X-Forwarded-For. 0 trusts none: the header is ignored, as a client could forge it. Sign-in
    # throttling per address and the audit's client address need the real one.
    "TRUSTED_PROXIES": 0,
    # Signed audit chain checkpoints (docs/audit.md). The folder is append-only evidence and the
    # key must live off the database server. None: instance/checkpoints/<database>/ and
    # instance/checkpoint_key (demo defaults; a centre sets both).
    "CHECKPOINT_DIR": None,
    "CHECKPOINT_KEY": None,
    "CHECKPOINT_EVERY_MINUTES": 10.0,  # python app.py's in-process schedule; 0: none
}

_ENV_TYPES = {bool: lambda v: v.lower() in ("1", "true", "yes", "on"), int: int, float: float}


def from_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Read LIMS_* variables into config keys, typed like their defaults."""
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        raw = environ.get(f"LIMS_{key}")
        if raw is None:
            continue
        conv = _ENV_TYPES.get(type(default), str)
        out[key] = conv(raw)
    return out
