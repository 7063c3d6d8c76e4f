"""The exit's PSA ticket, for each PSA: what is posted when, exactly once (lost replies, resume, a
second apply), and never in the exit's way (PSA down, note refused, ticket closed)."""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from offboard import engine
from offboard.config import ExitConfig
from offboard.connectors.psa import MARKER_RE
from offboard.connectors.sandboxing import Fault, InProcessTransport
from offboard.errors import BadInput, ExitCode
from offboard.proof import signing
from offboard.proof.audit import read_records
from tests.conftest import load
from tests.connectors.psa_harness import HALO, PSAS, LoseReplies, Psa, PsaExit, confirm_all, later_occasion

PREFLIGHT = engine.Overrides(preflight="the sandbox customer's isolated host is part of the test")


@pytest.fixture(params=PSAS, ids=lambda p: p.kind)
def psa(request: pytest.FixtureRequest) -> Psa:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def halo() -> Psa:
    """The core's behaviour, the same for every PSA: checked once, against HaloPSA's sandbox."""
    return HALO


def signed(x: PsaExit) -> None:
    """Give the exit an MSP signing key (a file), so runs are signed and bundled."""
    key = signing.generate()
    signing.write_key_file(key, x.dir / "msp.key")
    (x.dir / "signing.toml").write_text('[signing]\nkey_file = "msp.key"\n')


def markers(texts: list[str]) -> list[str]:
    return [m.group(0) for t in texts for m in MARKER_RE.finditer(t)]


def audit(run_path: Path) -> list[dict[str, object]]:
    return list(read_records(run_path / "audit.jsonl"))


def whole_exit(x: PsaExit, *, transport: object = None) -> tuple[engine.RunResult, engine.ConfirmResult | None]:
    cfg = x.cfg
    with x.sessions(transport) as s:  # type: ignore[arg-type]
        plan = engine.make_plan(cfg, s)
        assert s.ticket is not None
        engine.record_scope(s.ticket, plan)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        last = confirm_all(x, cfg, s, result)
    return result, last


def test_each_occasion_posts_one_internal_note_and_the_end_attaches_the_report(psa: Psa, tmp_path: Path) -> None:
    x = PsaExit(psa, tmp_path)
    result, last = whole_exit(x)
    assert result.exit_code == ExitCode.MANUAL_PENDING and last is not None and not last.remaining
    notes = x.notes()[1:]  # the first is the ticket's own, from before the exit
    titles = [re.sub(r"<[^>]+>", "\n", n).strip().split("\n")[0] for n in notes]
    assert titles[0].startswith("offboard: exit scope for Acme Dental")
    assert titles[1].startswith("offboard: exit of Acme Dental started")
    assert titles[2].startswith("offboard: Huntress — API work finished")
    assert titles[3].startswith("offboard: manual checklist for Acme Dental (3 open)")
    assert [t for t in titles if "checklist update" in t] == [
        "offboard: checklist update — 2 item(s) open", "offboard: checklist update — 1 item(s) open",
        "offboard: checklist update — 0 item(s) open"]
    assert titles[-1].startswith("offboard: Acme Dental — exit closed")
    assert len(markers(notes)) == len(set(markers(notes))) == len(notes)  # one marker each, none twice
    closure = notes[-1]
    head = json.loads((result.run.path / "signatures.jsonl").read_text().splitlines()[0]) if (
        result.run.path / "signatures.jsonl").exists() else None
    assert head is None and "not signed" in closure  # no MSP key in this exit
    files = psa.files(x.sandbox)
    assert [name for name, _ in files] == ["report.html"]
    assert files[0][1] == (result.run.path / "ticket" / "report.html").read_bytes()
    # The scope item was offboard's: posted at `plan -o`, found (not posted again) by apply's re-read.
    records = audit(result.run.path)
    scope = [r for r in records if r.get("action_id") == "huntress.scope.record-in-psa"]
    assert scope[-1]["event"] == "action.succeeded" and "already on the ticket" in str(scope[-1]["detail"])
    assert [r["event"] for r in records if str(r["event"]).startswith("ticket.")].count("ticket.failed") == 0


def test_the_closure_quotes_the_signed_head_and_attaches_the_signed_bundle_which_lists_the_postings(
        halo: Psa, tmp_path: Path) -> None:
    x = PsaExit(halo, tmp_path)
    signed(x)
    path = x.cfg.path
    with x.sessions(cfg=_with_signing(x)) as s:
        cfg = _with_signing(x)
        plan = engine.make_plan(cfg, s)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        confirm_all(x, cfg, s, result)
    assert path.exists()
    closure = x.notes()[-1]
    heads = [json.loads(line) for line in (result.run.path / "signatures.jsonl").read_text().splitlines()]
    quoted = re.search(r"chain head ([0-9a-f]{64})", closure)
    assert quoted is not None and quoted.group(1) in {h["last_hash"] for h in heads}
    files = dict(halo.files(x.sandbox))
    bundle_name = f"offboard-exit-{result.run.run_id}.tar.gz"
    assert set(files) == {"report.html", bundle_name}
    with tarfile.open(fileobj=io.BytesIO(files[bundle_name]), mode="r:gz") as tar:
        member = tar.extractfile(f"{result.run.run_id}/proof/ticket.json")
        assert member is not None
        posted = json.loads(member.read())
    keys = [p["detail"]["key"] for p in posted if p["event"] == "ticket.posted"]
    assert "closure" in keys and "start" in keys  # the bundle holds the closure note's record, with its id
    assert all(p["detail"].get("note_id") for p in posted if p["event"] == "ticket.posted")


def _with_signing(x: PsaExit) -> ExitConfig:
    path = x.cfg.path
    text = path.read_text()
    if "[signing]" not in text:
        path.write_text(text.replace("[run]\n", '[signing]\nkey_file = "msp.key"\n\n[run]\n'))
    return load(path)


def test_lost_replies_never_post_a_note_or_a_file_twice(psa: Psa, tmp_path: Path) -> None:
    x = PsaExit(psa, tmp_path)
    signed(x)
    cfg = _with_signing(x)
    # Every note POST and every file POST: handled by the PSA, its reply lost.
    lossy = LoseReplies(LoseReplies(InProcessTransport(x.sandbox.app), "POST", psa.note_writes, times=1000),
                        "POST", psa.file_writes, times=1000)
    with x.sessions(lossy, cfg=cfg) as s:
        plan = engine.make_plan(cfg, s)
        assert s.ticket is not None
        first = engine.record_scope(s.ticket, plan)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        confirm_all(x, cfg, s, result)
    assert "now holds" in first
    notes = x.notes()[1:]
    assert len(markers(notes)) == len(set(markers(notes))) == len(notes) >= 8
    assert len([r for r in x.note_posts()]) == len(notes)  # each sent once: the re-read found it
    assert sorted(name for name, _ in psa.files(x.sandbox)) == sorted({name for name, _ in psa.files(x.sandbox)})
    assert len(psa.files(x.sandbox)) == 2
    records = audit(result.run.path)
    settled = [r for r in records if r["event"] in ("ticket.posted", "ticket.attached")
               and r["detail"].get("settled_by") == "re-read"]  # type: ignore[union-attr]
    assert len(settled) >= 8


def test_a_resume_and_a_second_apply_find_their_notes_on_the_ticket(psa: Psa, tmp_path: Path) -> None:
    x = PsaExit(psa, tmp_path)
    cfg = x.cfg
    # The vendor is down for every evidence read: the run stops (exit 1, resumable) before any removal.
    x.huntress.faults.append(Fault(method="GET", path_prefix="/v1/signals", status=503, times=10**6))
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        stopped = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        assert stopped.exit_code == ExitCode.FAILED
        again = engine.apply(plan, cfg, s, overrides=PREFLIGHT)  # a second apply of the same plan
        assert again.exit_code == ExitCode.FAILED
        posts_before = len(x.note_posts())
        x.huntress.faults.clear()
        resumed = engine.resume(again.run.run_id, cfg, s, overrides=PREFLIGHT)
        assert resumed.exit_code == ExitCode.MANUAL_PENDING
        engine.resume(again.run.run_id, cfg, s, overrides=PREFLIGHT)  # nothing new to say
    notes = x.notes()[1:]
    texts = [re.sub(r"<[^>]+>", " ", n) for n in notes]
    assert sum("exit of Acme Dental started" in t for t in texts) == 1  # the second apply found it
    failures = [t for t in texts if "needs attention" in t]
    assert len(failures) == 2 and stopped.run.run_id in failures[0] and again.run.run_id in failures[1]
    assert f"offboard apply --resume {again.run.run_id}" in failures[1]
    assert sum("offboard: manual checklist for Acme Dental" in t for t in texts) == 1  # not again on the last resume
    assert len(x.note_posts()) - posts_before == 2  # the resume: the vendor's end and the checklist
    assert len(markers(notes)) == len(set(markers(notes)))


def test_with_the_psa_down_the_exit_goes_on_and_the_notes_wait_on_the_checklist(psa: Psa, tmp_path: Path) -> None:
    x = PsaExit(psa, tmp_path)
    cfg = x.cfg
    x.sandbox.faults.append(Fault(status=503, times=10**6))
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        assert s.ticket is not None
        said = engine.record_scope(s.ticket, plan)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
    assert "was not recorded" in said and "apply tries again" in said
    assert result.exit_code == ExitCode.MANUAL_PENDING  # not failed: the PSA is not the exit
    assert not [a for a in x.huntress.agents.values() if a["organization_id"] == 42]  # the removals happened
    assert x.notes() == x.notes()[:1]
    records = audit(result.run.path)
    failed = {r["detail"]["key"] for r in records if r["event"] == "ticket.failed"}  # type: ignore[index]
    assert {"scope", "start", "vendor.huntress", "checklist"} <= failed
    # The scope item fell back to its manual instructions, with the text to paste.
    assert "huntress.scope.record-in-psa" in [a.id for a in result.pending]
    paste = (result.run.path / "ticket" / "scope.txt").read_text()
    assert MARKER_RE.search(paste) and "exit scope for Acme Dental" in paste
    checklist = (result.run.path / "manual-checklist.md").read_text()
    assert "offboard confirm ticket.start" in checklist and "ticket/start.txt" in checklist
    assert any("not posted" in line for line in result.ticket)
    # The PSA is back: the next occasion (a confirmation) posts what waited, once.
    x.sandbox.faults.clear()
    with x.sessions() as s:
        engine.confirm(result.run.run_id, "huntress.evidence.billing-detail-report", "J. Doe", "filed", cfg, s)
    texts = [re.sub(r"<[^>]+>", " ", n) for n in x.notes()]
    assert sum("exit of Acme Dental started" in t for t in texts) == 1
    assert sum("offboard: manual checklist" in t for t in texts) == 1
    records = audit(result.run.path)
    assert {r["detail"]["key"] for r in records if r["event"] == "ticket.pasted"} >= {  # type: ignore[index]
        "start", "vendor.huntress", "checklist"}


def test_a_refused_note_becomes_an_item_a_person_pastes_and_offboard_rereads(psa: Psa, tmp_path: Path) -> None:
    x = PsaExit(psa, tmp_path)
    cfg = x.cfg
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        x.sandbox.faults.append(Fault(method="POST", path_prefix=psa.note_writes, status=400, times=10**6))
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        # Not pasted yet: the re-read refuses the confirmation.
        refused = engine.confirm(result.run.run_id, "ticket.start", "J. Doe", "pasted", cfg, s)
        assert not refused.accepted and "no note with" in refused.check.detail  # type: ignore[union-attr]
        # The person pastes the text offboard kept (its marker included) into the ticket.
        psa.paste(x.sandbox, (result.run.path / "ticket" / "start.txt").read_text())
        done = engine.confirm(result.run.run_id, "ticket.start", "J. Doe", "pasted", cfg, s)
        assert done.accepted
        with pytest.raises(BadInput, match="not a ticket item"):
            engine.confirm(result.run.run_id, "ticket.start", "J. Doe", "again", cfg, s)
    records = audit(result.run.path)
    pasted = [r for r in records if r["event"] == "ticket.pasted"]
    assert pasted[-1]["detail"]["by"] == "J. Doe"  # type: ignore[index]
    assert "huntress.scope.record-in-psa" in [a.id for a in result.pending]


def test_a_closed_ticket_is_tried_not_assumed_and_what_it_takes_is_posted_once(psa: Psa, tmp_path: Path) -> None:
    # None of the three PSAs documents that a closed ticket refuses notes: offboard posts, once each.
    x = PsaExit(psa, tmp_path)
    psa.ticket_closed(x.sandbox)
    result, _ = whole_exit(x)
    assert result.exit_code == ExitCode.MANUAL_PENDING
    notes = x.notes()
    assert sum("exit scope for Acme Dental" in n for n in notes) == 1
    assert len(markers(notes)) == len(set(markers(notes)))
    assert not [r for r in audit(result.run.path) if r["event"] == "ticket.failed"]


def test_a_long_checklist_is_split_into_parts_each_posted_once_never_cut(psa: Psa, tmp_path: Path) -> None:
    x = PsaExit(psa, tmp_path, extra="max_note_chars = 700\n", huntress_extra="")
    cfg = x.cfg
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        engine.resume(result.run.run_id, cfg, s, overrides=PREFLIGHT)
    parts = [n for n in x.notes() if "offboard: manual checklist" in n]
    assert len(parts) >= 3 and all(f"of {len(parts)})" in p for p in parts)
    assert all(len(p) <= 700 for p in parts)
    joined = " ".join(parts)
    for action in result.pending:
        assert action.id in joined  # every item is in one of the parts
    assert len(markers(parts)) == len(set(markers(parts))) == len(parts)


def test_a_file_the_psa_refuses_is_linked_in_a_note_and_left_to_a_person(halo: Psa, tmp_path: Path) -> None:
    x = PsaExit(halo, tmp_path, extra='files_url = "https://files.msp.example/exits"\n')
    halo.refuse_file(x.sandbox, ".html")
    result, last = whole_exit(x)
    assert last is not None
    links = [n for n in x.notes() if "report.html (not attached)" in n]
    assert len(links) == 1 and "https://files.msp.example/exits/report.html" in links[0]
    assert not halo.files(x.sandbox)
    records = audit(result.run.path)
    assert [r["detail"]["key"] for r in records if r["event"] == "ticket.failed"] == ["file.report.html"]  # type: ignore[index]
    assert "offboard confirm ticket.file.report.html" in "\n".join(last.ticket)


def test_no_secret_reaches_any_note_or_file(psa: Psa, tmp_path: Path) -> None:
    x = PsaExit(psa, tmp_path)
    signed(x)
    cfg = _with_signing(x)
    with x.sessions(cfg=cfg) as s:
        plan = engine.make_plan(cfg, s)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        confirm_all(x, cfg, s, result)
    from tests.conftest import DEMO_CREDS

    secrets = [v for v in psa.creds.values() if len(v) > 8] + psa.tokens(x.sandbox) + [
        c.get_secret_value() for c in DEMO_CREDS["huntress"].values()]
    sent = [r.body for r in x.sandbox.requests if r.method != "GET" and not psa.is_auth(r.path)]
    blobs = sent + [gzip.decompress(body).decode(errors="replace") for name, body in psa.files(x.sandbox)
                    if name.endswith(".gz")]
    assert len(sent) >= 8
    for secret in secrets:
        assert not any(secret in blob for blob in blobs), "a credential or token reached the ticket"


def test_the_scope_item_falls_back_to_a_person_and_is_posted_once_the_psa_is_back(psa: Psa, tmp_path: Path) -> None:
    x = PsaExit(psa, tmp_path)
    cfg = x.cfg
    x.sandbox.faults.append(Fault(status=503, times=10**6))
    with x.sessions() as s:
        plan = engine.make_plan(cfg, s)
        result = engine.apply(plan, cfg, s, overrides=PREFLIGHT)
        item = "huntress.scope.record-in-psa"
        assert item in [a.id for a in result.pending]
        pending = [r for r in audit(result.run.path) if r["event"] == "manual.pending" and r["action_id"] == item]
        assert "paste ticket/scope.txt" in str(pending[0]["detail"])
        x.sandbox.faults.clear()
        done = engine.confirm(result.run.run_id, item, "J. Doe", "ticket 4711", cfg, s)
    assert done.accepted and done.check is not None and "holds the scope note" in done.check.detail
    assert sum("exit scope for Acme Dental" in n for n in x.notes()) == 1


def test_files_the_psa_could_not_take_then_are_attached_on_a_later_try_once(halo: Psa, tmp_path: Path) -> None:
    x = PsaExit(halo, tmp_path)
    x.sandbox.faults.append(Fault(method="POST", path_prefix=halo.file_writes, status=503, times=10**6))
    result, last = whole_exit(x)
    assert last is not None and not halo.files(x.sandbox)
    assert "offboard confirm ticket.file.report.html" in "\n".join(last.ticket)
    x.sandbox.faults.clear()
    cfg = x.cfg
    with x.sessions() as s:
        assert later_occasion(result.run.run_id, cfg, s) is not None  # the next occasion tries again first
        assert later_occasion(result.run.run_id, cfg, s) is None  # once attached nothing is owed: refused
    assert [name for name, _ in halo.files(x.sandbox)] == ["report.html"]
    assert "ticket.file.report.html" not in (result.run.path / "manual-checklist.md").read_text()
