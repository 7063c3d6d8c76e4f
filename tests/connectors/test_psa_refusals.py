"""Issue 26: a refusal is not a transient — a PSA reply in the form it documents for a refusal
(Autotask: HTTP 500 with ``errors[]``; ConnectWise: its ``{code, message}`` envelope; HaloPSA: its
message under a 4xx) is recorded as refused and never resent; every refused file gets its note."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from offboard import engine
from offboard.connectors.sandboxing import Fault
from offboard.proof.audit import read_records
from offboard_autotask import sandbox as at
from tests.connectors.psa_harness import AT, PSAS, Psa, PsaExit, later_occasion
from tests.connectors.test_psa_ticket import PREFLIGHT, whole_exit


def file_posts(x: PsaExit, name: str) -> list[Any]:
    out = []
    for r in x.sandbox.requests:
        if r.method == "POST" and r.path.startswith(x.psa.file_writes) and not r.gated and name in r.body[:4000]:
            out.append(r)
    return out


def records(result: engine.RunResult) -> list[dict[str, Any]]:
    return list(read_records(result.run.path / "audit.jsonl"))


@pytest.mark.parametrize("psa", PSAS, ids=lambda p: p.kind)
def test_a_refused_attachment_is_posted_exactly_once_and_gets_its_note(psa: Psa, tmp_path: Path) -> None:
    x = PsaExit(psa, tmp_path, extra='files_url = "https://files.msp.example/exits"\n')
    psa.refuse_file(x.sandbox, ".html")
    result, _ = whole_exit(x)
    cfg = x.cfg
    with x.sessions() as s:  # later occasions: a resume, twice
        later_occasion(result.run.run_id, cfg, s, overrides=PREFLIGHT)
        later_occasion(result.run.run_id, cfg, s, overrides=PREFLIGHT)
    assert len(file_posts(x, "report.html")) == 1  # the request log: refused once, never resent
    if psa is AT:
        assert [r.status for r in file_posts(x, "report.html")] == [500]  # Autotask's refusal status
    links = [n for n in x.notes() if "report.html (not attached)" in n]
    assert len(links) == 1
    sha = re.search(r"SHA-256 ([0-9a-f]{64})", links[0])
    kept = result.run.path / "ticket" / "report.html"
    assert sha is not None and kept.exists()
    import hashlib

    assert sha.group(1) == hashlib.sha256(kept.read_bytes()).hexdigest()
    assert "https://files.msp.example/exits/report.html" in links[0] and "refused it" in links[0]
    failed = [r for r in records(result) if r["event"] == "ticket.failed" and r["detail"]["key"] == "file.report.html"]
    assert failed and "refused" in failed[-1]["detail"]["reason"] and "closed" not in failed[-1]["detail"]["reason"]


def checklist_posts(x: PsaExit) -> list[Any]:
    return [r for r in x.sandbox.requests if r.method == "POST" and r.path.startswith(x.psa.note_writes)
            and "manual checklist for Acme Dental" in r.body]


@pytest.mark.parametrize("psa", PSAS, ids=lambda p: p.kind)
def test_a_refused_note_is_sent_once_kept_to_paste_and_never_sent_again(psa: Psa, tmp_path: Path) -> None:
    # (after=4: the run's claim of the exit, the scope, the start and the vendor's end go through.)
    # The checklist note is refused (each PSA's own refusal: Autotask's HTTP 500 with errors[], ConnectWise's
    # {code, message}, HaloPSA's message); the resumes that follow do not send it again.
    x = PsaExit(psa, tmp_path)
    if psa is AT:  # Autotask's own validation refusal, as it sends it
        x.sandbox.faults.append(Fault(method="POST", path_prefix=psa.note_writes, status=500, after=4, times=1))
        x.sandbox.error = lambda status, message, headers=None: at.JSONResponse(  # type: ignore[method-assign]
            {"errors": [message]}, status_code=status, headers=headers)
    else:
        x.sandbox.faults.append(Fault(method="POST", path_prefix=psa.note_writes, status=400, after=4, times=1))
    cfg = x.cfg
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        engine.resume(result.run.run_id, cfg, s, overrides=PREFLIGHT)
        engine.resume(result.run.run_id, cfg, s, overrides=PREFLIGHT)
    sent = checklist_posts(x)
    assert len(sent) == 1 and sent[0].gated  # refused by the PSA, once
    refused = [r for r in records(result) if r["event"] == "ticket.failed" and r["detail"]["key"] == "checklist"]
    assert len(refused) == 1 and refused[0]["detail"]["refused"] is True
    assert (result.run.path / "ticket" / "checklist.txt").exists()
    assert "ticket.checklist" in (result.run.path / "manual-checklist.md").read_text()


def test_a_refused_file_confirmed_by_a_person_is_not_sent_again(tmp_path: Path) -> None:
    x = PsaExit(AT, tmp_path, extra='files_url = "https://files.msp.example/exits"\n')
    AT.refuse_file(x.sandbox, ".html")
    result, _ = whole_exit(x)
    cfg = x.cfg
    with x.sessions() as s:
        done = engine.confirm(result.run.run_id, "ticket.file.report.html", "J. Doe", "uploaded to the files share",
                              cfg, s)
        assert done.accepted
        later_occasion(result.run.run_id, cfg, s, overrides=PREFLIGHT)
    assert len(file_posts(x, "report.html")) == 1
    assert "ticket.file.report.html" not in (result.run.path / "manual-checklist.md").read_text()
    pasted = [r for r in records(result) if r["event"] == "ticket.pasted" and r["detail"]["key"] == "file.report.html"]
    assert pasted and "holds the note saying where report.html is kept" in pasted[-1]["detail"]["seen"]
