"""Issue 20, finding 11: each PSA's listing is read the way the PSA documents its paging —
ConnectWise's ``Link`` header rel="next", Autotask's ``pageDetails.nextPageUrl``, HaloPSA's single
list (its document gives ``/Actions`` and ``/Attachment`` no paging parameters) checked against its
``record_count`` — so a ticket with more notes than a page, from a server that caps pages lower than
asked, still gets each note exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from offboard import engine
from offboard.connectors.psa import MARKER_RE
from offboard.proof.audit import read_records
from offboard_autotask import sandbox as at
from offboard_connectwise import sandbox as cw
from offboard_halopsa import sandbox as halo
from tests.conftest import FAST
from tests.connectors.psa_harness import AT, CW, HALO, Psa, PsaExit, confirm_all, later_occasion
from tests.connectors.test_psa_ticket import PREFLIGHT

SCOPE = "huntress.scope.record-in-psa"


def seed(psa: Psa, sandbox: Any, n: int) -> None:
    """``n`` notes people wrote on the exit's ticket before offboard's."""
    for i in range(n):
        text = f"Call with the customer, part {i}"
        if psa is CW:
            sandbox.notes.append({"id": 60000 + i, "ticketId": cw.EXIT_TICKET, "text": text,
                                  "internalAnalysisFlag": True, "detailDescriptionFlag": False,
                                  "resolutionFlag": False})
        elif psa is AT:
            sandbox.notes.append({"id": 20000 + i, "ticketID": at.EXIT_TICKET, "title": "call", "description": text,
                                  "noteType": 1, "publish": 2})
        else:
            sandbox.actions.insert(0, {"id": 80000 + i, "ticket_id": halo.EXIT_TICKET, "outcome_id": 7, "note": text,
                                       "note_html": f"<p>{text}</p>", "hiddenfromuser": True})


def capped(psa: Psa) -> Any:
    if psa is CW:
        return cw.ConnectWiseSandbox(time_scale=FAST, page_cap=7)  # asked 1,000 a page, gives 7
    if psa is AT:
        return at.AutotaskSandbox(time_scale=FAST, page_size=7)
    return halo.HaloSandbox(time_scale=FAST)


def exit_with_many_notes(psa: Psa, tmp_path: Path, sandbox: Any) -> tuple[PsaExit, engine.RunResult]:
    x = PsaExit(psa, tmp_path, sandbox=sandbox)
    seed(psa, x.sandbox, 150)  # more than a page of every PSA (Halo's pages hold at most 100)
    cfg = x.cfg
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        assert s.ticket is not None
        engine.record_scope(s.ticket, plan)
        seed(psa, x.sandbox, 0)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        confirm_all(x, cfg, s, result)
        later_occasion(result.run.run_id, cfg, s, overrides=PREFLIGHT)
    return x, result


@pytest.mark.parametrize("psa", [CW, AT, HALO], ids=lambda p: p.kind)
def test_more_notes_than_a_page_each_note_posted_exactly_once(psa: Psa, tmp_path: Path) -> None:
    x, result = exit_with_many_notes(psa, tmp_path, capped(psa))
    notes = x.notes()
    assert sum("exit scope for Acme Dental" in n for n in notes) == 1
    found = [m.group(0) for n in notes for m in MARKER_RE.finditer(n)]
    assert len(found) >= 6 and len(found) == len(set(found))  # every note of offboard's, once
    records = list(read_records(result.run.path / "audit.jsonl"))
    scope = [r for r in records if r.get("action_id") == SCOPE]
    assert scope[-1]["event"] == "action.succeeded" and "already on the ticket" in str(scope[-1]["detail"])
    if psa is CW:  # the Link header was followed past the first, short page
        reads = [r for r in x.sandbox.requests if r.method == "GET" and r.path.endswith("/notes")]
        assert any("page=2" in r.query for r in reads) and all("pageSize=" in r.query for r in reads)


@pytest.mark.parametrize("psa", [CW, AT, HALO], ids=lambda p: p.kind)
def test_a_person_confirms_the_scope_item_and_the_reread_finds_it_on_a_later_page(psa: Psa, tmp_path: Path) -> None:
    from offboard.connectors.sandboxing import Fault

    x = PsaExit(psa, tmp_path, sandbox=capped(psa))
    seed(psa, x.sandbox, 40)
    x.sandbox.faults.append(Fault(method="POST", path_prefix=psa.note_writes, status=503, times=10**6))
    cfg = x.cfg
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        assert SCOPE in [a.id for a in result.pending]
        psa.paste(x.sandbox, (result.run.path / "ticket" / "scope.txt").read_text())  # the person pastes it
        x.sandbox.faults.clear()
        done = engine.confirm(result.run.run_id, SCOPE, "J. Doe", "pasted", cfg, s)
    assert done.accepted and done.check is not None and "holds the scope note" in done.check.detail
    assert sum("exit scope for Acme Dental" in n for n in x.notes()) == 1


def test_halopsa_list_shorter_than_its_record_count_is_never_taken_as_complete(tmp_path: Path) -> None:
    sandbox = halo.HaloSandbox(time_scale=FAST)
    x = PsaExit(HALO, tmp_path, sandbox=sandbox)
    cfg = x.cfg
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        assert s.ticket is not None
        engine.record_scope(s.ticket, plan)  # posted
        sandbox.list_cap = 1  # from now on the list holds only the ticket's first action
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
    assert sum("exit scope for Acme Dental" in n for n in x.notes()) == 1  # never a second copy
    failed = [r["detail"]["reason"] for r in read_records(result.run.path / "audit.jsonl")
              if r["event"] == "ticket.failed"]
    assert failed and all("incomplete" in f for f in failed)


def test_a_next_page_on_another_host_is_a_reply_fault_never_followed(tmp_path: Path) -> None:
    import httpx

    from offboard.connectors.sandboxing import InProcessTransport

    class ElsewhereNext(httpx.BaseTransport):
        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner = inner

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = self.inner.handle_request(request)
            if request.method == "GET" and request.url.path.endswith("/notes"):
                response.headers["Link"] = '<https://elsewhere.example/notes?page=2>; rel="next"'
            return response

    x = PsaExit(CW, tmp_path)
    cfg = x.cfg
    with x.sessions(ElsewhereNext(InProcessTransport(x.sandbox.app))) as s:
        plan = engine.make_plan(cfg, s)
        assert s.ticket is not None
        line = engine.record_scope(s.ticket, plan)
    assert "the Link header's next page is on another host" in line
    assert not [r for r in x.sandbox.requests if r.method == "POST"]
