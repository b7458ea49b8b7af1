"""The roles a user can hold and the groups of them that rules name (tuples: a fixed order)."""

from __future__ import annotations

ROLES = ("technician", "qa", "admin", "client_viewer", "site")
# Roles that only the centre's own staff may hold (a client organisation cannot).
CENTRE_ROLES = ("qa", "admin")
# Who works with material at a bench.
LAB = ("technician", "qa", "admin")
QA = ("qa",)
# Who may read the audit trail and reports (clients: of their own organisation only).
AUDIT_READERS = ("qa", "admin", "client_viewer")
# A clinical site's staff: they see what was shipped to their site and take delivery of it.
SITE = ("site",)
