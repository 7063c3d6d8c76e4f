"""`offboard apply` and `apply --resume`: open a run (gates, guards, planned actions), then execute it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from offboard import hints
from offboard.config import ExitConfig
from offboard.engine.claim import Claim, claimed
from offboard.engine.execute import execute
from offboard.engine.guards import (
    GATES_DECIDED,
    GATES_STOPPED,
    check_guards,
    check_matches_replan,
    check_not_stale,
    check_plan_fits,
)
from offboard.engine.listings import Live
from offboard.engine.planner import discover_timed, vendor_plans
from offboard.engine.readiness import UNSIGNED, check_machine, refuse
from offboard.engine.runfolder import exit_lock, reopen, run_ended, runs_of_plan, write_documents, write_state
from offboard.engine.scope_guard import calls_of
from offboard.engine.sessions import Sessions
from offboard.engine.ticket import summary as ticket_summary
from offboard.engine.types import Guide, Limit, NoProgress, Overrides, Progress, RunResult
from offboard.errors import BadInput, ClaimRefused, ExitCode, RunInterrupted, RunStopped
from offboard.lifecycle import AWAITING_PERSON, TERMINAL, RunEnd, fold_actions, tally
from offboard.plan import Finding, Plan, write_plan
from offboard.proof.audit import AuditLog, read_records
from offboard.proof.signing import Signer
from offboard.proof.ticket_notes import open_pastes
from offboard.rundir import RunDir
from offboard.wire import waits


def apply(plan: Plan, cfg: ExitConfig, sessions: Sessions, *, overrides: Overrides | None = None,
          progress: Progress | None = None, guide: Guide | None = None,
          require_signature: bool = False) -> RunResult:
    overrides = overrides or Overrides()
    progress = progress or NoProgress()
    check_plan_fits(plan, cfg)
    check_guards(plan, overrides)  # before any call; the re-plan below proves the guards are the connector's
    ready = check_machine(cfg, require_signature=require_signature)
    refuse(ready.gates)  # before any vendor call: the signing key and the runs folder are on this machine
    # Said before the lock: naming the exit is a vendor call, which may wait for the rate limit.
    progress.phase("Re-reading the vendors to check the plan still holds (read-only)")
    # The lock before discovery: a second apply is refused, not told its plan is stale.
    with waits.listening(progress.waiting, progress.sent), exit_lock(cfg, sessions):
        live, listed_at = discover_timed(sessions)
        earlier = runs_of_plan(cfg, plan.plan_id)
        check_not_stale(plan, live, cfg, earlier, last_closed=bool(earlier) and run_ended(earlier[-1], cfg).ended)
        fresh = vendor_plans(sessions, live)
        check_matches_replan(plan, fresh, source="plan file")
        findings = [f for vp in fresh for f in vp.findings]
        refuse(findings)  # e.g. credentials that cannot make the planned writes: before the run folder
        run = RunDir.create(cfg.runs_dir)
        progress.ceilings(seconds_at_limit(plan, cfg, overrides))
        with stops_named(run, cfg.path):
            write_plan(plan, run.plan_path)
            return _apply_run(run, plan, sessions, overrides, findings, Live(live, listed_at), progress, guide,
                              ready.signer)


def seconds_at_limit(plan: Plan, cfg: ExitConfig, overrides: Overrides,
                     done: Mapping[str, str] | None = None) -> dict[str, Limit]:
    """For each vendor lane whose connector knows its rate limit: its window, and each action not
    done yet (``done``: a resumed run's log) with the seconds its API calls take at that limit (a
    removal's owner read before it, unless --trust-listing; a person's item, or one waiting for a
    person, none)."""
    out = {}
    done = done or {}
    for vp in plan.vendors:
        settings = cfg.vendors.get(vp.vendor)
        limit = settings.rate_limit() if settings is not None else None
        if not limit or not limit[0]:
            continue
        out[vp.display_name] = Limit(limit[1], {
            a.id: calls_of([a], trust_listing=overrides.trust_listing) * limit[1] / limit[0]
            for step in vp.steps for a in step.actions if done.get(a.id) not in (*TERMINAL, *AWAITING_PERSON)})
    return out


@contextmanager
def stops_named(run: RunDir, config: Path) -> Iterator[None]:
    """Once a run exists, whatever stops it names it, and so the command that continues it: an error
    is raised as ``RunStopped``, Ctrl-C as ``RunInterrupted``."""
    try:
        yield
    except (RunStopped, ClaimRefused):  # a refused claim wrote nothing: one line, exit 2
        raise
    except RunInterrupted as exc:
        exc.config = config
        raise
    except KeyboardInterrupt:
        interrupted = RunInterrupted(run.run_id)
        interrupted.config = config
        raise interrupted from None
    except Exception as exc:
        raise RunStopped(run.run_id, exc, config) from exc


def _apply_run(run: RunDir, plan: Plan, sessions: Sessions, overrides: Overrides, findings: list[Finding],
               live: Live, progress: Progress | None, guide: Guide | None,
               signer: Signer | None) -> RunResult:
    progress = progress or NoProgress()
    with run.lock():
        audit = AuditLog(run.audit_path, run.run_id)
        try:
            with _claimed(run, sessions, audit, overrides, progress):
                return _start_and_execute(run, plan, sessions, audit, live, findings, progress, guide, signer,
                                          starting=overrides, running=overrides, announce=True)
        finally:
            audit.close()


@contextmanager
def _claimed(run: RunDir, sessions: Sessions, audit: AuditLog, overrides: Overrides,
             progress: Progress) -> Iterator[Claim | None]:
    """Across machines: the exit claimed in its PSA ticket before any vendor write, checked before each,
    released at the end."""
    with claimed(sessions.ticket, sessions.identities, run.run_id, audit, take_over=overrides.take_over_claim,
                 require=overrides.require_claim, config=sessions.config, warn=progress.warning) as claim:
        sessions.claim = claim
        try:
            yield claim
        finally:
            sessions.claim = None


def _start_and_execute(run: RunDir, plan: Plan, sessions: Sessions, audit: AuditLog, live: Live,
                       findings: list[Finding], progress: Progress, guide: Guide | None, signer: Signer | None, *,
                       starting: Overrides, running: Overrides, announce: bool,
                       settle_only: set[str] | frozenset[str] = frozenset()) -> RunResult:
    """A run (new, or resumed) from its start: the exit's ticket bound to it, what it starts from
    recorded (the gates may stop it here), then its actions; its outcome told to the ticket."""
    if sessions.ticket is not None:
        sessions.ticket.bind(plan, run, audit)
    stopped = _open_run(run, plan, sessions, audit, starting, findings, signer, guided=guide is not None)
    if stopped is not None:
        return _to_ticket(stopped, plan, sessions, audit, signer)
    if signer is None:
        progress.warning(UNSIGNED)
    if announce and sessions.ticket is not None:
        sessions.ticket.run_started(run.run_id)
    result = execute(run, plan, sessions, audit, live.inventories, running, progress, guide, signer,
                     settle_only=settle_only, listed_at=live.began)
    return _to_ticket(result, plan, sessions, audit, signer)


def _to_ticket(result: RunResult, plan: Plan, sessions: Sessions, audit: AuditLog,
               signer: Signer | None) -> RunResult:
    """The run's outcome in the exit's PSA ticket (a failure, the checklist, or the closure); what
    was posted is in the log, so the chain head is signed again and the documents rewritten."""
    ticket = sessions.ticket
    if ticket is None:
        return result
    if ticket.after_run(result.exit_code, result.message, signer):
        write_documents(result.run, plan, audit, signer, sessions)
    result.ticket = ticket_summary(ticket)
    return result


def _open_run(run: RunDir, plan: Plan, sessions: Sessions, audit: AuditLog, overrides: Overrides,
              findings: list[Finding], signer: Signer | None, *, guided: bool) -> RunResult | None:
    """Record what a run starts from — preflight gates, overrides, guarded actions — skipping
    whatever the log already holds (a run that crashed while starting is resumed through here too).
    Returns the result when the gates stop the run."""
    recorded = {r["event"] for r in audit.records}
    if "run.started" not in recorded:
        audit.emit("run.started", outcome="success", detail={
            "plan_id": plan.plan_id, "plan_checksum": plan.checksum, "customer": plan.customer, "mode": "apply",
            "guided": guided})  # how a resume without --guided/--unattended continues it
    write_state(run, plan, audit, "running")
    if not GATES_DECIDED & recorded:
        blocking = [f for f in findings if f.blocking]
        for f in findings:
            audit.emit("preflight.checked", vendor=f.vendor, outcome="failure" if f.blocking else "success",
                       detail={"kind": f.kind, "count": f.count, "finding": f.detail, "blocking": f.blocking})
        if blocking and not overrides.preflight:
            audit.emit("run.finished", outcome="failure", detail=GATES_STOPPED)
            write_state(run, plan, audit, "blocked")
            write_documents(run, plan, audit, signer, sessions)
            return RunResult(run, ExitCode.PREFLIGHT_BLOCKED, blocking=blocking,
                             message="stopped before any removal: finish incident response first, "
                                     "or pass --override-preflight \"REASON\"")
        if blocking:
            audit.emit("preflight.overridden", outcome="success",
                       detail={"reason": overrides.preflight, "overridden": [f.kind for f in blocking]})
        else:
            audit.emit("preflight.cleared", outcome="success", detail={"checks": len(findings)})
    seen = {(r["event"], r.get("action_id")) for r in audit.records}
    for action in plan.actions():
        if action.confirm is not None and ("guard.confirmed", action.id) not in seen:
            audit.emit("guard.confirmed", vendor=action.vendor, step=action.step, action_id=action.id,
                       target=action.target.model_dump(), outcome="success",
                       detail={"typed": overrides.confirm_name, "unattended_flag": overrides.yes_guarded})
    return None  # each action's `action.planned` line is written as its lane reaches it (execute.RunPass)


def resume(run_id: str, cfg: ExitConfig, sessions: Sessions, *, overrides: Overrides | None = None,
           progress: Progress | None = None, guide: Guide | None = None,
           require_signature: bool = False) -> RunResult:
    overrides = overrides or Overrides()
    progress = progress or NoProgress()
    end = run_ended(run_id, cfg)
    if end.ended:
        return _resume_closed(run_id, end, cfg, sessions, overrides, progress, require_signature)
    before = f"before run {run_id} continued"
    ready = check_machine(cfg, require_signature=require_signature)
    refuse(ready.gates, before=before)
    # Said before the run is reopened: naming the exit for its lock is a vendor call, which may wait
    # for the rate limit (a run stopped by Ctrl-C during a wait finds the window still full).
    progress.phase(f"Resuming run {run_id}: re-reading the vendors first (read-only)")
    with waits.listening(progress.waiting, progress.sent), reopen(run_id, cfg, sessions) as (run, plan, audit):
        if any(r["event"] == "run.finished" and r["detail"] == GATES_STOPPED for r in audit.records):
            raise BadInput(f"run {run_id} was stopped by preflight gates; it has nothing to resume: "
                           "apply the plan again once incident response is finished")
        done = fold_actions(audit.records)
        with stops_named(run, cfg.path):  # e.g. the vendor still down: the run is named, to resume later
            live, listed_at = discover_timed(sessions)
            fresh = vendor_plans(sessions, live)
        # The run's plan.json is offboard's own file, but a file on disk all the same: what is still
        # to run must be what the connectors plan now, and what they no longer plan is never written.
        still_open = {a.id for a in plan.actions() if done.get(a.id) not in TERMINAL}
        gone = check_matches_replan(plan, fresh, source=f"run {run_id}'s plan.json", only=still_open)
        refuse((f for vp in fresh for f in vp.findings), before=before)  # nothing recorded: the run is as it was
        progress.ceilings(seconds_at_limit(plan, cfg, overrides, done))
        with stops_named(run, cfg.path), _claimed(run, sessions, audit, overrides, progress):
            return _resume_run(run, plan, sessions, audit, Live(live, listed_at), overrides, progress, guide,
                               ready.signer, done, gone)


def owed_to_ticket(records: list[dict[str, Any]]) -> list[str]:
    """What the exit's PSA ticket is still owed that a later try may post: notes and files that failed,
    but not those the PSA refused in its documented way or found unfit (those wait for a person)."""
    return sorted(k for k, d in open_pastes(records).items() if not d.get("refused") and not d.get("linked"))


def _resume_closed(run_id: str, end: RunEnd, cfg: ExitConfig, sessions: Sessions, overrides: Overrides,
                   progress: Progress, require_signature: bool) -> RunResult:
    """A closed run has nothing to resume, and its log is the exit's proof (a bundle made of it holds that
    log): a resume must not re-read every vendor into it. Refused, as bad input (nothing done), before any
    vendor call; re-checking the vendors is `verify --run`'s job, which says what it adds. One exception:
    notes its PSA ticket is still owed (the PSA was down at the close) are posted, and only they."""
    run = RunDir.existing(cfg.runs_dir, run_id)
    owed = owed_to_ticket(list(read_records(run.audit_path))) if sessions.ticket is not None else []
    if not owed:
        check = hints.command("verify", run=run_id, config=cfg.path)
        raise BadInput(f"run {run_id} is closed ({end.why}) and has nothing to resume; its audit log is the "
                       f"exit's proof, so nothing was added to it. To re-check the vendors: {check}")
    ready = check_machine(cfg, require_signature=require_signature)
    refuse(ready.gates, before=f"before run {run_id}'s ticket was posted to")
    progress.phase(f"Run {run_id} is closed: posting only what its PSA ticket is still owed ({', '.join(owed)}); "
                   "the vendors are not re-read")
    with waits.listening(progress.waiting, progress.sent), reopen(run_id, cfg, sessions) as (run, plan, audit):
        lines = len(audit.records)
        with stops_named(run, cfg.path), _claimed(run, sessions, audit, overrides, progress):
            assert sessions.ticket is not None
            sessions.ticket.bind(plan, run, audit)
            standing = tally(plan.actions(), audit.records)
            result = _to_ticket(RunResult(run, ExitCode.OK, standing.counts(), tally=standing), plan, sessions,
                                audit, ready.signer)
        added = len(audit.records) - lines
        if added:  # the claim's lines too: the head the log now ends at is signed, the documents say it
            result.documents = write_documents(run, plan, audit, ready.signer, sessions)
        signed = ", and signed" if ready.signer is not None else ""
        result.message = (f"run {run_id} is closed: only its PSA ticket was posted to; {added} line(s) were added "
                          f"to its audit log after its close{signed}. {hints.rebundle(run_id, cfg.path)}")
        return result


def _resume_run(run: RunDir, plan: Plan, sessions: Sessions, audit: AuditLog, live: Live,
                overrides: Overrides, progress: Progress, guide: Guide | None, signer: Signer | None,
                done: Mapping[str, str], gone: set[str]) -> RunResult:
    events = {r["event"] for r in audit.records}
    audit.emit("run.resumed", outcome="success",
               detail={"finished_actions": sum(1 for e in done.values() if e in TERMINAL),
                       "no_longer_listed": sorted(gone)})
    guarded = {r.get("action_id") for r in audit.records if r["event"] == "guard.confirmed"}
    if any(a.confirm is not None and a.id not in guarded for a in plan.actions()):
        check_guards(plan, overrides)  # the run stopped before the operator's word was recorded
    # A run that stopped while starting has not checked its gates yet: they are checked now.
    findings = ([] if GATES_DECIDED & events else
                [f for name, s in sessions.by_vendor.items() for f in s.preflight(live.inventories[name])])
    # Guarded actions were confirmed when the run started (audited); the run keeps that decision.
    confirmed = Overrides(overrides.preflight, overrides.evidence, None, True, overrides.trust_listing,
                          overrides.take_over_claim, overrides.require_claim)
    return _start_and_execute(run, plan, sessions, audit, live, findings, progress, guide, signer,
                              starting=overrides, running=confirmed, announce=False, settle_only=gone)
