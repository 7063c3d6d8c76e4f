"""The calls each PSA connector makes for an exit's ticket: method, path and body shape, as the
vendor notes give them (vendor-notes/psa-apis.md), and few of them: the PSA's limits are shared."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
from pathlib import Path
from typing import Any

from offboard import engine
from offboard.connectors.sandboxing import Logged
from offboard_autotask import sandbox as at
from offboard_connectwise import sandbox as cw
from offboard_halopsa import sandbox as halo
from tests.connectors.psa_harness import AT, CW, HALO, Psa, PsaExit, confirm_all, is_claim

PREFLIGHT = engine.Overrides(preflight="the sandbox customer's isolated host is part of the test")


def exit_with(psa: Psa, tmp_path: Path, extra: str = "") -> PsaExit:
    x = PsaExit(psa, tmp_path, extra=extra)
    cfg = x.cfg
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        assert s.ticket is not None
        engine.record_scope(s.ticket, plan)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        confirm_all(x, cfg, s, result)
    return x


def calls(x: PsaExit) -> list[Logged]:
    return [r for r in x.sandbox.requests if not r.path.startswith("/_sandbox/") and not is_claim(r)]


def writes(x: PsaExit) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in calls(x) if r.method != "GET"]


def test_halopsa(tmp_path: Path) -> None:
    x = exit_with(HALO, tmp_path, 'close_status = "21"\n')
    api = calls(x)
    assert api[0].method == "POST" and api[0].path == "/auth/token"  # one token for the whole exit
    assert sum(r.path == "/auth/token" for r in api) == 1
    assert {(r.method, r.path) for r in api} == {
        ("POST", "/auth/token"), ("GET", "/api/Tickets/4711"), ("GET", "/api/Actions"), ("POST", "/api/Actions"),
        ("GET", "/api/Attachment"), ("POST", "/api/Attachment"), ("POST", "/api/Tickets"),
        ("GET", "/api/Outcome/7")}  # the action type's visibility, read once
    assert sum(r.path == "/api/Outcome/7" for r in api) == 1
    assert all(r.query == "ticket_id=4711&excludesys=true&includehtmlnote=true" for r in api
               if r.method == "GET" and r.path == "/api/Actions")
    notes = [json.loads(r.body) for r in api if (r.method, r.path) == ("POST", "/api/Actions")]
    assert all(n == [{"ticket_id": 4711, "outcome_id": 7, "note_html": n[0]["note_html"], "hiddenfromuser": True,
                      "sendemail": False}] for n in notes)
    files = [json.loads(r.body)[0] for r in api if (r.method, r.path) == ("POST", "/api/Attachment")]
    assert [(f["ticket_id"], f["filename"], f["showforusers"]) for f in files] == [(4711, "report.html", False)]
    assert base64.b64decode(files[0]["data_base64"]).lower().startswith(b"<!doctype html>")
    assert [json.loads(r.body) for r in api if (r.method, r.path) == ("POST", "/api/Tickets")] == [
        [{"id": 4711, "status_id": 21}]]
    assert len(api) <= 60  # of the 300 in 5 minutes the instance shares with every integration
    assert not [r for r in api if "5001" in r.path or "4712" in r.path]  # no other ticket is read


def test_connectwise(tmp_path: Path) -> None:
    x = exit_with(CW, tmp_path, 'close_status = "32"\n')
    api = calls(x)
    p = cw.PREFIX
    assert {(r.method, r.path) for r in api} == {
        ("GET", f"{p}/service/tickets/4711"), ("GET", f"{p}/service/tickets/4711/notes"),
        ("POST", f"{p}/service/tickets/4711/notes"), ("GET", f"{p}/system/documents"),
        ("POST", f"{p}/system/documents"), ("PATCH", f"{p}/service/tickets/4711")}
    assert all("pageSize=1000" in r.query for r in api if r.method == "GET" and r.path.endswith("/notes"))
    for r in api:
        if r.method == "POST" and r.path.endswith("/notes"):
            body = json.loads(r.body)
            assert set(body) == {"text", "detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag",
                                 "processNotifications"}
            assert body["internalAnalysisFlag"] is True and body["detailDescriptionFlag"] is False
            assert body["processNotifications"] is False and not body["text"].startswith("<")
    upload = next(r for r in api if r.method == "POST" and r.path.endswith("/system/documents"))
    form = _form(upload)
    assert form["file"][0] == "report.html" and form["recordType"][1] == b"Ticket" and form["recordId"][1] == b"4711"
    assert form["privateFlag"][1] == b"true" and b"[offboard:" in form["title"][1]
    patch = next(r for r in api if r.method == "PATCH")
    assert json.loads(patch.body) == [{"op": "replace", "path": "status", "value": {"id": 32}}]
    assert x.sandbox.tickets[cw.EXIT_TICKET]["closedFlag"] is True


def test_autotask(tmp_path: Path) -> None:
    x = exit_with(AT, tmp_path, 'close_status = "5"\n')
    api = calls(x)
    v = at.PREFIX + "/V1.0"
    assert {(r.method, r.path) for r in api} == {
        ("GET", f"{v}/Tickets/4711"), ("GET", f"{v}/Tickets/4711/Notes"), ("POST", f"{v}/Tickets/4711/Notes"),
        ("GET", f"{v}/TicketNotes/entityInformation/fields"), ("GET", f"{v}/Tickets/4711/Attachments"),
        ("GET", f"{v}/TicketAttachments/entityInformation/fields"),
        ("POST", f"{v}/Tickets/4711/Attachments"), ("PATCH", f"{v}/Tickets")}
    assert sum(r.path.endswith("/entityInformation/fields") for r in api) == 2  # the picklists, read once each
    for r in api:
        if r.method == "POST" and r.path.endswith("/Notes"):
            body = json.loads(r.body)
            assert set(body) == {"ticketID", "title", "description", "noteType", "publish"}
            # The common tenant's internal value (Internal Project Team) and its default note type; plain text.
            assert body["publish"] == at.INTERNAL and body["noteType"] == 3 and "<p>" not in body["description"]
            assert body["description"].startswith(body["title"])
    upload = json.loads(next(r for r in api if r.method == "POST" and r.path.endswith("/Attachments")).body)
    assert upload["attachmentType"] == "FILE_ATTACHMENT" and upload["fullPath"] == "report.html"
    assert upload["publish"] == at.INTERNAL
    assert upload["parentID"] == 4711 and base64.b64decode(upload["data"]).lower().startswith(b"<!doctype html>")
    assert json.loads(next(r for r in api if r.method == "PATCH").body) == {"id": 4711, "status": 5}
    assert len(api) <= 60  # the tenant's 10,000 an hour is shared by every integration


def test_each_posts_only_to_the_exit_ticket_and_sends_nothing_before_reading_it(tmp_path: Path) -> None:
    for n, (psa, ticket) in enumerate(((HALO, halo.EXIT_TICKET), (CW, cw.EXIT_TICKET), (AT, at.EXIT_TICKET))):
        x = PsaExit(psa, tmp_path / str(n))
        (tmp_path / str(n)).mkdir()
        cfg = x.cfg
        with x.sessions() as s:
            plan = engine.make_plan(cfg, s)
            assert s.ticket is not None
            engine.record_scope(s.ticket, plan)
        api = [r for r in calls(x) if not psa.is_auth(r.path)]
        kinds = [r.method for r in api]
        assert kinds[:2] == ["GET", "GET"] and kinds.count("POST") == 1  # ticket, notes, then the one note
        assert all(str(ticket) in r.path + r.body for r in api if r.method != "GET"), psa.kind


def _form(r: Logged) -> dict[str, Any]:
    raw = r.body.encode("utf-8", errors="surrogateescape")
    boundary = raw.split(b"\r\n", 1)[0][2:].decode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode() + raw)
    return {p.get_param("name", header="content-disposition"): (p.get_filename() or "", p.get_payload(decode=True))
            for p in msg.iter_parts()}


def test_a_429_is_waited_out_and_the_note_still_posted_once(tmp_path: Path) -> None:
    for n, psa in enumerate((HALO, CW, AT)):
        (tmp_path / str(n)).mkdir()
        x = PsaExit(psa, tmp_path / str(n))
        x.sandbox.faults.append(halo.Fault(method="POST", path_prefix=psa.note_writes, status=429, times=2,
                                           retry_after="0.01"))
        cfg = x.cfg
        with x.sessions() as s:
            plan = engine.make_plan(cfg, s)
            assert s.ticket is not None
            assert "now holds" in engine.record_scope(s.ticket, plan), psa.kind
        refused = [r for r in x.sandbox.requests if r.status == 429]
        assert len(refused) == 2 and len(x.note_posts()) == 1, psa.kind  # refused twice, sent once more, once


def test_each_stays_within_its_psas_published_limit() -> None:
    from offboard_autotask.settings import AutotaskSettings
    from offboard_halopsa.settings import HaloSettings

    assert HaloSettings.model_fields["requests_per_window"].default <= 300
    assert HaloSettings.model_fields["rate_window_seconds"].default == 300.0
    assert AutotaskSettings.model_fields["requests_per_hour"].default * 10 <= 10_000
    assert AutotaskSettings.model_fields["rate_window_seconds"].default == 3600.0
