"""Issue 26 and issue 20 (findings 12, 13): a closed or Complete ticket is tried, not assumed; after
offboard closed the ticket itself a resume knows what the ticket holds (nothing already posted goes back
on the paste list, a refusal names its real reason) and reads the ticket a few times, not once a note;
a refused file always gets its note, whatever comes after it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from offboard import engine
from offboard.connectors.psa import MARKER_RE
from offboard.connectors.sandboxing import InProcessTransport, Logged
from offboard.errors import BadInput, ExitCode
from offboard.proof.audit import read_records
from tests.connectors.psa_harness import AT, CW, HALO, PSAS, Psa, PsaExit
from tests.connectors.test_psa_ticket import PREFLIGHT, whole_exit

CLOSED = {"halopsa": "9", "connectwise": "31", "autotask": "5"}  # each sandbox's closed status


@pytest.fixture(params=PSAS, ids=lambda p: p.kind)
def psa(request: pytest.FixtureRequest) -> Psa:
    return request.param  # type: ignore[no-any-return]


def records(result: engine.RunResult) -> list[dict[str, Any]]:
    return list(read_records(result.run.path / "audit.jsonl"))


def note_posts(x: PsaExit) -> list[Logged]:
    return [r for r in x.sandbox.requests if r.method == "POST" and r.path.startswith(x.psa.note_writes)]


def test_a_ticket_that_refuses_notes_when_closed_gets_each_once_and_the_psas_words(psa: Psa, tmp_path: Path) -> None:
    x = PsaExit(psa, tmp_path)
    x.sandbox.refuse_when_closed = True
    psa.ticket_closed(x.sandbox)
    result, _ = whole_exit(x)
    cfg = x.cfg
    with x.sessions() as s:
        engine.resume(result.run.run_id, cfg, s, overrides=PREFLIGHT)
    assert result.exit_code == ExitCode.MANUAL_PENDING  # the exit went on
    sent = [m.group(0) for r in note_posts(x) for m in MARKER_RE.finditer(r.body)]
    # The scope note is tried at `plan -o` (no run log exists yet to hold its refusal) and once more by
    # apply's scope action; every other note is tried once, none resent.
    scope = [m for m in sent if ":scope:" in m]
    rest = [m for m in sent if ":scope:" not in m]
    assert len(scope) == 2 and rest and len(rest) == len(set(rest)), sent
    failed = [r["detail"] for r in records(result) if r["event"] == "ticket.failed"]
    assert failed and all(d.get("refused") for d in failed)
    assert all("closed" in d["reason"].lower() or "complete" in d["reason"].lower() for d in failed)
    assert all("refused" in d["reason"] for d in failed)  # the PSA's answer, not offboard's assumption


def closing_exit(psa: Psa, tmp_path: Path, extra: str = "") -> tuple[PsaExit, engine.RunResult]:
    """A whole exit whose end sets the PSA's closed status: offboard closed the ticket itself."""
    x = PsaExit(psa, tmp_path, extra=f'close_status = "{CLOSED[psa.kind]}"\n' + extra)
    result, last = whole_exit(x)
    assert last is not None and not last.remaining
    info = x.sandbox.tickets[int(psa.exit_ticket)]
    assert info.get("closedFlag") or info.get("hasbeenclosed") or info.get("status") == 5
    return x, result


def test_after_offboard_closed_the_ticket_a_resume_is_refused_and_posts_nothing_again(
        psa: Psa, tmp_path: Path) -> None:
    """Once closed with nothing owed to the ticket, a resume has nothing to do (issue 22's review: it
    re-verified into the closed run's log): refused, and neither the ticket nor the log is touched."""
    x, result = closing_exit(psa, tmp_path)
    before_notes, before_files = len(x.notes()), len(psa.files(x.sandbox))
    seen, log = len(x.sandbox.requests), (result.run.path / "audit.jsonl").read_bytes()
    cfg = x.cfg
    with x.sessions() as s, pytest.raises(BadInput, match=r"is closed .* and has nothing to resume"):
        engine.resume(result.run.run_id, cfg, s, overrides=PREFLIGHT)
    assert x.sandbox.requests[seen:] == []  # nothing read, nothing posted twice
    assert (result.run.path / "audit.jsonl").read_bytes() == log
    assert (len(x.notes()), len(psa.files(x.sandbox))) == (before_notes, before_files)
    checklist = (result.run.path / "manual-checklist.md").read_text()
    assert "offboard confirm ticket." not in checklist  # nothing already in the ticket is on the paste list
    assert not [r for r in records(result) if r["event"] == "ticket.failed"]


def test_a_size_refusal_after_closing_names_the_size_not_the_closed_ticket(tmp_path: Path) -> None:
    x, result = closing_exit(HALO, tmp_path, "max_file_mb = 0.001\n")
    cfg = x.cfg
    # The file found unfit is a person's item (its note says where it is kept): nothing a resume could post.
    with x.sessions() as s, pytest.raises(BadInput, match="is closed"):
        engine.resume(result.run.run_id, cfg, s, overrides=PREFLIGHT)
    failed = [r["detail"] for r in records(result) if r["event"] == "ticket.failed"]
    assert [d["key"] for d in failed] == ["file.report.html"]
    assert "bytes is over what HaloPSA takes" in failed[0]["reason"] and "closed" not in failed[0]["reason"]
    assert sum("report.html (not attached)" in n for n in x.notes()) == 1


class FailPosts(httpx.BaseTransport):
    """The PSA answers 503 (nothing done) to the first ``times`` POSTs whose body holds ``needle``."""

    def __init__(self, inner: httpx.BaseTransport, needle: bytes, times: int) -> None:
        self.inner, self.needle, self.times = inner, needle, times

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        if self.times > 0 and request.method == "POST" and self.needle in request.content:
            self.times -= 1
            return httpx.Response(503, text="unavailable", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("kind", [AT, CW], ids=lambda p: p.kind)
def test_a_refused_files_note_survives_a_failure_and_the_status_change_after_it(kind: Psa, tmp_path: Path) -> None:
    x = PsaExit(kind, tmp_path, extra=f'close_status = "{CLOSED[kind.kind]}"\n')
    kind.refuse_file(x.sandbox, ".html")
    flaky = FailPosts(InProcessTransport(x.sandbox.app), b"report.html (not attached)", times=2)
    result, last = whole_exit(x, transport=flaky)
    assert last is not None and "offboard confirm ticket.link.report.html" in "\n".join(last.ticket)
    assert not [n for n in x.notes() if "report.html (not attached)" in n]
    assert x.sandbox.tickets[int(kind.exit_ticket)]["status"] not in (16, 8)  # the status changed right after
    cfg = x.cfg
    log = result.run.path / "audit.jsonl"
    lines = log.read_bytes().count(b"\n")
    with x.sessions() as s:  # the next occasion: the note is posted, once, on the closed ticket
        posted = engine.resume(result.run.run_id, cfg, s, overrides=PREFLIGHT)
        # A closed run's resume posts only what the ticket is owed: no vendor re-read joins its log, and
        # the bundle made before it is said to lack the lines it added.
        added = [json.loads(line)["event"] for line in log.read_text().splitlines()[lines:]]
        assert "ticket.pasted" in added and not [e for e in added if e.startswith(("verify.", "run.", "snapshot."))]
        assert posted.exit_code == ExitCode.OK
        assert "A bundle of this run made before now, if one was, still verifies" in posted.message
        with pytest.raises(BadInput, match="is closed"):  # once posted, nothing is owed: the next one is refused
            engine.resume(result.run.run_id, cfg, s, overrides=PREFLIGHT)
    links = [n for n in x.notes() if "report.html (not attached)" in n]
    assert len(links) == 1 and "SHA-256" in links[0] and "refused it" in links[0]
    assert "ticket.link.report.html" not in (result.run.path / "manual-checklist.md").read_text()


def test_an_occasion_reads_the_ticket_once_however_many_notes_it_posts(psa: Psa, tmp_path: Path) -> None:
    # The notes of a run could not be posted (the PSA answered 503); the next occasion, a confirmation,
    # posts them all on one reading of the ticket, not one reading per note.
    from offboard.connectors.sandboxing import Fault

    x = PsaExit(psa, tmp_path)
    x.sandbox.faults.append(Fault(method="POST", path_prefix=psa.note_writes, status=503, times=10**6))
    cfg = x.cfg
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        waiting = [k for k in s.ticket.open_pastes()]  # type: ignore[union-attr]
        x.sandbox.faults.clear()
        seen = len(x.sandbox.requests)
        action = next(a for a in result.pending if a.id != "huntress.scope.record-in-psa")
        import httpx as _httpx

        with _httpx.Client(transport=InProcessTransport(x.huntress.app), base_url="http://sandbox") as portal:
            portal.post(f"/_sandbox/portal/{action.operation}")
        engine.confirm(result.run.run_id, action.id, "J. Doe", "done", cfg, s)
    during = x.sandbox.requests[seen:]
    posted = [r for r in during if r.method == "POST" and r.path.startswith(psa.note_writes)]
    ticket_reads = [r for r in during if r.method == "GET" and r.path.rstrip("/").endswith(f"/{psa.exit_ticket}")]
    note_reads = [r for r in during if r.method == "GET" and r.path.startswith(psa.note_writes)]
    assert len(waiting) >= 3 and len(posted) >= len(waiting)
    assert len(ticket_reads) <= 2 and len(note_reads) <= 3, (len(ticket_reads), len(note_reads), len(posted))


def test_a_closed_ticket_is_read_a_few_times_a_run_not_once_a_note(psa: Psa, tmp_path: Path) -> None:
    x = PsaExit(psa, tmp_path, huntress_extra="")  # the whole runbook: many notes
    x.sandbox.refuse_when_closed = True
    psa.ticket_closed(x.sandbox)
    cfg = x.cfg
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        seen = len(x.sandbox.requests)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
    run = x.sandbox.requests[seen:]
    ticket_reads = [r for r in run if r.method == "GET" and r.path.rstrip("/").endswith(f"/{psa.exit_ticket}")]
    notes_tried = [r for r in run if r.method == "POST" and r.path.startswith(psa.note_writes)]
    occasions = 2 + len(plan.vendors) + 1  # the scope action, the start, each vendor's end, after the run
    assert result.exit_code == ExitCode.MANUAL_PENDING
    assert len(notes_tried) >= 3 and len(ticket_reads) <= occasions, (len(ticket_reads), len(notes_tried))
