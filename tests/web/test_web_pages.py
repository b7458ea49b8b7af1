"""Pages through the Flask test client: forms carry CSRF, refusals are pages, not crashes."""

from __future__ import annotations

import html
import re

from helpers import audit_count, move, page_csrf, post_form, register, sign_in
from sqlmodel import select

from lims.db import new_session
from lims.models import AuditEvent, Sample, SampleType, VectorLot

_FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S)


def _db(app):  # noqa: ANN001, ANN202
    return new_session(app.extensions["lims"]["engine"])


def _barcodes(app) -> dict[str, str]:  # noqa: ANN001
    with _db(app) as db:
        rows = db.exec(select(Sample).order_by(Sample.id)).all()
        return {
            "registered": next(s.barcode for s in rows if s.state == "registered"),
            "stored": next(s.barcode for s in rows if s.position and s.state == "available"),
            "vial": next(s.barcode for s in rows if s.lot_id is not None),
        }


def test_every_post_form_on_every_page_carries_the_session_token(app, client):  # noqa: ANN001
    codes = _barcodes(app)
    sign_in(client, "admin")
    token = page_csrf(client)
    pages = [
        "/home",
        f"/samples/{codes['stored']}",
        f"/samples/{codes['registered']}",
        "/lots/AAV9-2611-001",
        "/print-queue",
        "/admin/users",
        "/bench/BENCH-B1",
    ]
    seen = 0
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, path
        for form in _FORM.findall(r.text):
            if 'method="post"' in form:
                seen += 1
                assert f'name="csrf_token" value="{token}"' in form, (path, form[:200])
    assert seen >= 10


def test_a_refused_move_is_shown_on_the_page_and_changes_nothing(app, client):  # noqa: ANN001
    vial = _barcodes(app)["vial"]
    sign_in(client, "tech1")
    with _db(app) as db:
        before = db.exec(select(Sample).where(Sample.barcode == vial)).one()
    # A vial of a lot that is not released cannot be checked out (the lot is in quarantine).
    r = post_form(
        client, f"/samples/{vial}/transition", action="quarantine", version=str(before.version)
    )
    assert r.status_code == 302  # received -> quarantine is allowed
    with _db(app) as db:
        s = db.exec(select(Sample).where(Sample.barcode == vial)).one()
    r = post_form(client, f"/samples/{vial}/transition", action="consume", version=str(s.version))
    assert r.status_code == 422
    assert 'id="page-error"' in r.text and "it cannot be used up" in r.text
    with _db(app) as db:
        assert db.exec(select(Sample.state).where(Sample.barcode == vial)).one() == "quarantine"


def test_a_mistyped_place_or_person_is_shown_on_the_sample_page(app, client):  # noqa: ANN001
    barcode = _barcodes(app)["stored"]
    sign_in(client, "tech1")
    with _db(app) as db:
        s = db.exec(select(Sample).where(Sample.barcode == barcode)).one()
    for fields, words in (
        ({"action": "check_out", "custodian": "nobody"}, "no active user 'nobody'"),
        ({"action": "store", "location": "BOX-00O1"}, "no location 'BOX-00O1'"),
    ):
        r = post_form(client, f"/samples/{barcode}/transition", version=str(s.version), **fields)
        # The sample page with its forms and the message, not a bare 'Not found' page.
        assert r.status_code == 404
        assert 'id="page-error"' in r.text and words in html.unescape(r.text)
        assert f"{barcode}" in r.text and 'action="/samples/' in r.text
    with _db(app) as db:
        assert db.exec(select(Sample.version).where(Sample.barcode == barcode)).one() == s.version
    # A sample that does not exist is still a 404 page.
    r = post_form(client, "/samples/S26-999999-X/transition", action="receive", condition="ok")
    assert r.status_code == 404


def test_a_sample_filter_that_names_nothing_says_so(client):  # noqa: ANN001
    sign_in(client, "tech1")
    page = html.unescape(client.get("/samples?state=bogus&location=NOPE").text)
    assert 'id="page-error"' in page
    assert "no state 'bogus'" in page and "no location 'NOPE'" in page
    assert 'id="page-error"' not in client.get("/samples?state=available").text


def test_a_label_preview_of_an_unknown_template_is_not_found(app, client):  # noqa: ANN001
    barcode = _barcodes(app)["stored"]
    sign_in(client, "tech1")
    assert client.get(f"/labels/preview/{barcode}?template=bogus").status_code == 404
    assert client.get(f"/labels/preview/{barcode}").status_code == 200


def test_find_opens_the_sample_a_chain_of_identity_id_names(app, client):  # noqa: ANN001
    barcode = _barcodes(app)["stored"]
    with _db(app) as db:
        s = db.exec(select(Sample).where(Sample.barcode == barcode)).one()
        first = db.exec(select(Sample).where(Sample.coi == s.coi).order_by(Sample.id)).first()
    sign_in(client, "qa1")
    r = client.get(f"/find?q={s.coi.lower()}")
    assert r.status_code == 302 and r.location.endswith(f"/samples/{first.barcode}")
    # Another organisation's COI is as unknown as one nobody carries.
    post_form(client, "/logout")
    sign_in(client, "helix_viewer")
    if first.org_id != _org_of(app, "helix_viewer"):
        r = client.get(f"/find?q={s.coi}&back=/home")
        assert r.status_code == 302 and r.location.endswith("/home")


def _org_of(app, username: str) -> int:  # noqa: ANN001
    from lims.models import User

    with _db(app) as db:
        return db.exec(select(User.org_id).where(User.username == username)).one()


def test_a_stale_version_is_a_conflict_not_a_silent_overwrite(app, client):  # noqa: ANN001
    barcode = _barcodes(app)["registered"]
    sign_in(client, "tech1")
    form = {"csrf_token": page_csrf(client), "action": "receive", "condition": "ok"}
    assert (
        client.post(f"/samples/{barcode}/transition", data={**form, "version": "1"}).status_code
        == 302
    )
    r = client.post(
        f"/samples/{barcode}/transition",
        data={**form, "action": "reject", "reason": "x", "version": "1"},
    )
    assert r.status_code == 409
    with _db(app) as db:
        assert db.exec(select(Sample.state).where(Sample.barcode == barcode)).one() == "received"


def test_client_viewer_sees_no_action_forms_and_cannot_post_them(app, client):  # noqa: ANN001
    with _db(app) as db:
        lot = db.exec(select(VectorLot).where(VectorLot.lot_number == "AAV9-2611-001")).one()
        vial = db.exec(select(Sample).where(Sample.lot_id == lot.id)).first()
    sign_in(client, "helix_viewer")
    page = client.get(f"/samples/{vial.barcode}")
    assert page.status_code == 200
    assert 'class="action-form' not in page.text
    r = post_form(client, f"/samples/{vial.barcode}/transition", action="quarantine")
    assert r.status_code == 403
    lot_page = client.get("/lots/AAV9-2611-001").text
    assert 'id="lot-release"' not in lot_page


def test_wrong_signature_password_is_refused_and_audited(app, client):  # noqa: ANN001
    sign_in(client, "qa1")
    r = post_form(
        client,
        "/lots/AAV9-2611-001/transition",
        action="reject",
        reason="titer out of trend",
        meaning="rejection",
        password="not my password",
    )
    assert r.status_code == 422 and "signature refused" in r.text
    with _db(app) as db:
        assert (
            db.exec(select(VectorLot.state).where(VectorLot.lot_number == "AAV9-2611-001")).one()
            == "quarantine"
        )
        refused = db.exec(select(AuditEvent).where(AuditEvent.action == "signature.refused")).all()
    assert len(refused) == 1 and refused[0].actor == "qa1"


def test_qc_form_records_a_result_and_shows_it(app, client):  # noqa: ANN001
    sign_in(client, "tech1")
    r = post_form(client, "/lots/AAV9-2611-001/qc", test="mycoplasma", result="detected")
    assert r.status_code == 302
    page = client.get("/lots/AAV9-2611-001").text
    # Judged against AAV-RELEASE v1 ('not detected'): a fail, and an OOS opened for it.
    assert "qc-fail" in page and "FAIL" in page and "OOS-1" in page


def test_audit_page_filters_and_pages_with_the_cursor(app, client):  # noqa: ANN001
    sign_in(client, "qa1")
    first = client.get("/audit?since=2000-01-01T00:00")
    assert first.status_code == 200
    seqs = [int(x) for x in re.findall(r"<tr class=\"ev[^\"]*\">\s*<td>(\d+)</td>", first.text)]
    assert len(seqs) == 50
    nxt = re.search(r'href="(/audit\?[^"]*cursor=\d+)"', first.text).group(1).replace("&amp;", "&")
    second = client.get(nxt)
    more = [int(x) for x in re.findall(r"<tr class=\"ev[^\"]*\">\s*<td>(\d+)</td>", second.text)]
    # Newest first: the next page holds older events, and Previous leads back to the first.
    assert seqs == sorted(seqs, reverse=True)
    assert more and max(more) < min(seqs)
    assert "since=2000-01-01T00" in nxt
    prev = re.search(r'href="(/audit\?[^"]*before=\d+)"', second.text).group(1)
    back = client.get(prev.replace("&amp;", "&"))
    again = [int(x) for x in re.findall(r"<tr class=\"ev[^\"]*\">\s*<td>(\d+)</td>", back.text)]
    assert again == seqs
    bad = client.get("/audit?since=yesterday&actor=tech1")
    assert bad.status_code == 400 and "since must be" in bad.text
    # The form stays as typed, to be mended, with no results or exports of a search not run.
    assert 'id="audit-form"' in bad.text and 'value="tech1"' in bad.text
    assert 'id="export-csv"' not in bad.text
    unknown = client.get("/audit?sample=S26-999999-X")
    assert unknown.status_code == 404 and 'id="audit-form"' in unknown.text


def test_unknown_pages_and_bad_input_never_crash(app, client):  # noqa: ANN001
    sign_in(client, "qa1")
    for path in (
        "/samples/%00%ff",
        "/lots/" + "x" * 300,
        "/storage/" + "<script>",
        "/labels/preview/S26-000001-Y.png?template=nope",
        "/samples?cursor=abc",
        "/find?q=" + "Z" * 500,
    ):
        r = client.get(path)
        assert r.status_code < 500, (path, r.status_code)
        assert "<script>" not in r.text.replace("<script src=", "")


def test_print_jobs_show_on_the_queue_and_on_the_sample_page(app, client):  # noqa: ANN001
    from lims.models import Printer, PrintJob, PrintJobLabel, User

    stored = _barcodes(app)["stored"]
    with _db(app) as db:
        s = db.exec(select(Sample).where(Sample.barcode == stored)).one()
        printer = db.exec(select(Printer)).first()
        tech = db.exec(select(User).where(User.username == "tech1")).one()
        job = PrintJob(
            printer_id=printer.id,
            state="failed",
            template="cryovial",
            labels_total=1,
            error="printer reported: ribbon out",
            created_by_id=tech.id,
        )
        db.add(job)
        db.flush()
        db.add(PrintJobLabel(job_id=job.id, idx=0, sample_id=s.id, barcode=s.barcode, content="{}"))
        db.commit()
        job_id = job.id
    sign_in(client, "tech1")
    queue = client.get("/print-queue").text
    assert f'id="job-{job_id}"' in queue and "ribbon out" in queue and stored in queue
    page = client.get(f"/samples/{stored}").text
    assert f"#{job_id}" in page and "not printed" in page
    post_form(client, "/logout")
    # A client organisation's technician does not see the centre's label jobs.
    sign_in(client, "helix_tech")
    assert f'id="job-{job_id}"' not in client.get("/print-queue").text


def test_client_user_sees_the_same_print_jobs_on_page_and_api(app, client, auth):  # noqa: ANN001
    from lims.models import Location, Printer, PrintJob, PrintJobLabel, User

    with _db(app) as db:
        tech = db.exec(select(User).where(User.username == "tech1")).one()
        helix_tech = db.exec(select(User).where(User.username == "helix_tech")).one()
        theirs = db.exec(select(Sample).where(Sample.org_id == helix_tech.org_id)).first()
        ours = db.exec(select(Sample).where(Sample.org_id == tech.org_id)).first()
        box = db.exec(select(Location)).first()
        printer = db.exec(select(Printer)).first()
        jobs = {}
        # (who queued it, what is on it)
        for name, author, labels in (
            ("centre_only", tech, [(ours.id, ours.barcode)]),
            ("their_tubes", tech, [(theirs.id, theirs.barcode)]),
            ("mixed", tech, [(ours.id, ours.barcode), (theirs.id, theirs.barcode)]),
            ("their_box_label", helix_tech, [(None, box.code)]),
        ):
            job = PrintJob(
                printer_id=printer.id,
                state="queued",
                template="cryovial",
                labels_total=len(labels),
                created_by_id=author.id,
            )
            db.add(job)
            db.flush()
            for idx, (sample_id, code) in enumerate(labels):
                db.add(
                    PrintJobLabel(
                        job_id=job.id, idx=idx, sample_id=sample_id, barcode=code, content="{}"
                    )
                )
            jobs[name] = job.id
        db.commit()
    api = client.get("/api/print-jobs?limit=200", headers=auth("helix_tech")).json["jobs"]
    via_api = {j["id"] for j in api} & set(jobs.values())
    sign_in(client, "helix_tech")
    queue = client.get("/print-queue").text
    on_page = {i for i in jobs.values() if f'id="job-{i}"' in queue}
    assert on_page == via_api == {jobs["their_tubes"], jobs["their_box_label"]}
    # Their tube's page lists both jobs its label is in, but links only the one they can open.
    page = client.get(f"/samples/{theirs.barcode}").text
    assert f'#job-{jobs["their_tubes"]}"' in page and f'#job-{jobs["mixed"]}"' not in page
    assert f"#{jobs['mixed']}</td>" in page


def test_an_old_client_account_with_a_centre_role_gets_a_viewers_pages(app, client):  # noqa: ANN001
    from lims.models import User

    with _db(app) as db:
        viewer = db.exec(select(User).where(User.username == "helix_viewer")).one()
        viewer.role = "admin"  # as an older database may hold
        db.add(viewer)
        db.commit()
    sign_in(client, "helix_viewer")
    home = client.get("/home").text
    assert "client viewer" in home and "· admin" not in home
    assert "/admin/users" not in home and "/print-queue" not in home
    assert client.get("/admin/users").status_code == 403


def test_a_reason_typed_on_a_page_is_held_to_the_apis_rules(app, client):  # noqa: ANN001
    from lims.models import User

    sign_in(client, "admin")
    before = audit_count(app)
    r = post_form(client, "/admin/users/tech2/disable", reason="left\u202e the company")
    assert r.status_code == 302
    assert "control or invisible" in html.unescape(client.get("/admin/users").text)
    with _db(app) as db:
        assert db.exec(select(User.active).where(User.username == "tech2")).one() is True
    assert audit_count(app) == before


def test_pages_stay_out_of_the_api_description(client):  # noqa: ANN001
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert all(path.startswith("/api") for path in r.json["paths"])


def test_the_api_docs_page_loads_nothing_from_other_sites(client):  # noqa: ANN001
    page = client.get("/docs").text
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(links) == 4 and all(link.startswith("/docs/assets/") for link in links), links
    for link in links:
        assert client.get(link).status_code == 200, link
    assert client.get("/docs/assets/../../lims/__init__.py").status_code == 404
    # The bundle's own demo page would load a spec from the internet: not served.
    assert client.get("/docs/assets/index.html").status_code == 404


def test_sample_list_filters_by_state_and_links_places(app, client):  # noqa: ANN001
    stored = _barcodes(app)["stored"]
    sign_in(client, "qa1")
    page = client.get("/samples?state=available").text
    assert stored in page and "BOX-0001</a> at A1" in page
    assert "registered</span>" not in page


def test_find_opens_what_a_code_names_but_not_another_organisations_lot(client):  # noqa: ANN001
    sign_in(client, "helix_viewer")
    assert client.get("/find?q=AAV9-2611-001").location == "/lots/AAV9-2611-001"
    assert client.get("/find?q=BOX-0001:A1").location == "/storage/BOX-0001"
    other = client.get("/find?q=LV-2611-002&back=/samples")
    assert other.location == "/samples"
    assert "Nothing is known" in client.get("/samples").text


def test_out_of_range_times_and_cursors_are_clear_400s(app, client):  # noqa: ANN001
    sign_in(client, "qa1")
    for path in (
        "/audit?since=0001-01-01T00:00%2B01:00",
        "/audit?since=9999-12-31T23:59-01:00",
        "/samples?cursor=99999999999999999999",
        "/samples?cursor=-1",
        "/audit?cursor=1.5",
    ):
        r = client.get(path)
        assert r.status_code == 400, (path, r.status_code)


def test_a_label_that_fits_no_stock_is_explained_not_a_server_error(app, client, auth):  # noqa: ANN001
    # A sample type named before names were checked against the labels (an older database).
    with _db(app) as db:
        db.add(SampleType(code="LONGNAME", name="Peripheral blood mononuclear cells, washed"))
        db.commit()
    r = client.post(
        "/api/samples",
        json={"sample_type": "LONGNAME", "project": "CART-001"},
        headers=auth("tech1"),
    )
    assert r.status_code == 201, r.json
    sign_in(client, "tech1")
    page = client.get(f"/labels/preview/{r.json['barcode']}.png")
    assert page.status_code == 422
    assert "does not fit cryovial stock" in html.unescape(page.text)


def test_a_box_lists_its_tubes_in_box_order(client, auth, runner):  # noqa: ANN001
    box = ["location", "BOX-1012", "Box of 12 columns", "--kind", "box"]
    r = runner.invoke(
        args=["setup", *box, "--parent", "FRZ-80-1-R1", "--rows", "9", "--cols", "12"]
    )
    assert r.exit_code == 0, r.output
    tech = auth("tech1")
    for pos in ("A10", "B1", "A2"):
        b = register(client, tech)["barcode"]
        move(client, tech, b, "receive", condition="ok")
        r = move(client, tech, b, "quarantine", location="BOX-1012", position=pos)
        assert r.status_code == 200, r.json
    sign_in(client, "tech1")
    page = client.get("/storage/BOX-1012").text
    assert re.findall(r"<tr><td>([A-I]\d+)</td>", page) == ["A2", "A10", "B1"]
