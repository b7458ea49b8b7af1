"""Small helpers shared by tests: audit counts, registering samples, racing requests, pages."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import pypdfium2 as pdfium
from sqlalchemy import text

from lims import audit
from lims.accounts import users
from lims.db import new_session


def audit_count(app) -> int:  # noqa: ANN001
    """Return how many audit events the app's database holds."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        return audit.count_events(db)


def verify(app) -> audit.VerifyResult:  # noqa: ANN001
    """Verify the app's audit chain."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        return audit.verify(db)


def register(client, headers, **fields) -> dict:  # noqa: ANN001
    """Register a sample through the API and return its JSON."""
    body = {"sample_type": "PBMC", "project": "CART-001", "volume": 5, "unit": "mL", **fields}
    r = client.post("/api/samples", json=body, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


def move(client, headers, barcode: str, action: str, **fields):  # noqa: ANN001, ANN201
    """Post a transition and return the response."""
    return client.post(
        f"/api/samples/{barcode}/transitions", json={"action": action, **fields}, headers=headers
    )


def bearer(app, username: str) -> dict[str, str]:  # noqa: ANN001
    """Return the headers of a fresh bearer token of username."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        secret, _ = users.create_token(db, username=username, actor=users.system_actor(db))
        db.commit()
    return {"Authorization": f"Bearer {secret}"}


def race(app, fire: Callable[[Any, int], Any], threads: int) -> list:  # noqa: ANN001
    """Run fire(client, i) from `threads` test clients released together; return each result."""
    barrier = threading.Barrier(threads)
    results: list = [None] * threads

    def worker(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        results[i] = fire(client, i)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in pool), "a racing request hung"
    return results


def tamper(app, sql: str, **params) -> None:  # noqa: ANN001, ANN003
    """Change audit events behind the application's back (its guard triggers put out first)."""
    engine = app.extensions["lims"]["engine"]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER audit_no_change")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_no_update")
        conn.execute(text(sql), params)


def review_trail(client, lot: str, headers, password: str = "demo-only-lims"):  # noqa: ANN001, ANN201
    """Sign QA's review of the lot's audit trail up to its newest event, as release needs."""
    page = client.get(f"/api/lots/{lot}/audit-trail?limit=1", headers=headers)
    assert page.status_code == 200, page.json
    seq = page.json["review"]["newest_seq"]
    r = client.post(
        f"/api/lots/{lot}/audit-trail/review",
        json={"up_to_seq": seq, "signature": {"password": password, "meaning": "review"}},
        headers=headers,
    )
    assert r.status_code == 201, r.json
    return r


def pdf_text(data: bytes) -> str:
    """Return the text of every page of a PDF, whitespace (table cell wraps) as single spaces."""
    assert data.startswith(b"%PDF-")
    doc = pdfium.PdfDocument(data)
    try:
        raw = " ".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
        return " ".join(raw.split())
    finally:
        doc.close()


# --- the pages, as a browser uses them ---------------------------------------------------------

PASSWORD = "demo-only-lims"
FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')
_PAGE_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


def sign_in(  # noqa: ANN201
    client,  # noqa: ANN001
    username: str,
    password: str = PASSWORD,
    *,
    form_page: str = "/login",
    next_url: str | None = None,
    **request_kw: object,
):
    """Post the sign-in form the way a browser does (token from the page and its cookie)."""
    page = client.get(form_page, **request_kw)
    token = FORM_TOKEN.search(page.text).group(1)
    data = {"username": username, "password": password, "csrf_token": token}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/login", data=data, **request_kw)


def post_form(client, path: str, **fields: str):  # noqa: ANN001, ANN201
    """Post a page's form with the session's CSRF token, as the browser does."""
    return client.post(path, data={"csrf_token": page_csrf(client), **fields})


def page_csrf(client) -> str:  # noqa: ANN001
    """Return the CSRF token of the signed-in session, as the pages carry it."""
    r = client.get("/home")
    assert r.status_code == 200, r.location
    return _PAGE_TOKEN.search(r.text).group(1)


# --- the quality loop: results reviewed by QA before a release --------------------------------

REVIEW = {"password": PASSWORD, "meaning": "review"}


def review_all(client, lot: str, headers: dict[str, str], *, trail: bool = True) -> None:  # noqa: ANN001
    """Review every unreviewed QC result of a lot, then its audit trail, as release needs."""
    for q in client.get(f"/api/lots/{lot}", headers=headers).json["qc"]:
        if q["reviewed_by"] is None:
            r = client.post(
                f"/api/lots/{lot}/qc/{q['id']}/review", json={"signature": REVIEW}, headers=headers
            )
            assert r.status_code == 200, r.json
    if trail:
        review_trail(client, lot, headers)
