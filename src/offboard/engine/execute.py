"""Executing a run's actions in each connector's declared order.
Exactly-once on resume: before an action's call is sent, ``action.started`` is
fsynced to the audit log. A resumed run folds the log; an action that started
but never finished is re-read before anything is sent again. An action whose
write reply was lost is recorded ``unknown`` and re-read the same way.

Order: the engine never reorders a plan. It also enforces the runbook's two
ordering rules itself: no destructive action of a vendor runs when that vendor's
evidence export failed (unless overridden, and audited), and a guarded action
(e.g. deleting a whole organization) runs only when the operator named it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from offboard import hints
from offboard.connectors import ActionResult, VendorSession
from offboard.engine import collector
from offboard.engine.guided import ask_until_settled
from offboard.engine.listings import Listings
from offboard.engine.runfolder import write_documents, write_state
from offboard.engine.scope_guard import OwnerSeen, ScopeGuard, describe
from offboard.engine.sessions import Sessions
from offboard.engine.types import Guide, Overrides, Progress, RunResult, http_of
from offboard.engine.verify import verify_run
from offboard.errors import AmbiguousWrite, ExitCode, RunInterrupted, VendorAuthError, VendorError
from offboard.lifecycle import AWAITING_PERSON, TERMINAL, UNSETTLED, fold_actions, tally
from offboard.plan import Action, Inventory, Plan
from offboard.proof.audit import AuditLog
from offboard.proof.evidence import EvidenceStore
from offboard.proof.signing import Signer
from offboard.rundir import RunDir
from offboard.wire import waits


@dataclass
class PassTally:
    """What this pass of the run decided, shared by the vendor lanes (each in its own thread): the
    exit code is decided from it; what every command prints is the run's whole log (``tally``)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("succeeded", "already_absent", "failed", "skipped", "blocked", "manual", "confirmed", "unknown",
         "exported", "held"), 0))
    pending: list[Action] = field(default_factory=list)  # handed to a person in this pass
    held_by: dict[str, Action] = field(default_factory=dict)  # vendor -> its gate item nobody confirmed yet
    # Built during this pass: an export that failed before is retried here (it is not terminal), and
    # evidence steps come first, so by a vendor's first removal this set is the truth.
    evidence_failed: set[str] = field(default_factory=set)
    override_used: set[str] = field(default_factory=set)
    announced: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str, action: Action | None = None) -> None:
        with self.lock:
            self.counts[key] += 1
            if action is not None:
                self.pending.append(action)

    def first_time(self, step_id: str) -> bool:
        with self.lock:
            if step_id in self.announced:
                return False
            self.announced.add(step_id)
            return True


WRITE_OUTCOMES = {"action.succeeded": "succeeded", "action.failed": "failed", "action.skipped": "skipped",
                  "action.unknown": "unknown"}


class RunPass:
    """One pass over a run's actions (a start or a resume). ``one`` is an action's whole path, in
    the order the runbook's rules apply: done already; held behind its vendor's gate; a person's
    item; held back by a failed evidence export; settled by a re-read only; a read; a write."""

    def __init__(self, run: RunDir, plan: Plan, sessions: Sessions, audit: AuditLog, guard: ScopeGuard,
                 overrides: Overrides, progress: Progress, guide: Guide | None,
                 settle_only: set[str] | frozenset[str]) -> None:
        self.run, self.plan, self.sessions, self.audit, self.guard = run, plan, sessions, audit, guard
        self.overrides, self.progress, self.guide, self.settle_only = overrides, progress, guide, settle_only
        self.done = fold_actions(audit.records)
        self.planned = {r["action_id"] for r in audit.records if r["event"] == "action.planned"}
        self.step_of = plan.step_of()
        self.evidence = EvidenceStore(run.path)
        self.tally = PassTally()

    def one(self, action: Action) -> None:
        state = self.done.get(action.id)
        if state in TERMINAL:
            return
        self._planned(action)
        awaiting_person = action.kind == "manual" or state in AWAITING_PERSON
        if action.vendor in self.tally.held_by and (awaiting_person or action.destructive):
            # Not started: the resume after the gate's confirmation runs it. Its step is not
            # announced: the vendor's lane stays on the gate it waits at.
            return self._advance(action, "action.held", "held")
        self._announce(action)
        if awaiting_person:
            if state not in AWAITING_PERSON:
                self.audit.emit("manual.pending", **_base(action), outcome="unknown",
                                detail={"summary": action.summary,
                                        **(action.manual.model_dump() if action.manual else {})})
            return self._to_person(action)
        if self._held_back_by_evidence(action):
            return
        session = self.sessions.by_vendor[action.vendor]
        if action.id in self.settle_only:
            event = _settle_only(action, session, self.audit)
            key = "succeeded" if event == "action.succeeded" else "skipped"
        elif not action.destructive:
            event = _run_read(action, session, self.audit, self.evidence)
            if event == "action.failed" and self.step_of[action.id].phase == "evidence":
                self.tally.evidence_failed.add(action.vendor)
            key = "exported" if event == "action.succeeded" else "failed"
        else:
            if self.sessions.claim is not None:  # across machines: the exit's claim still holds (or the run stops)
                self.sessions.claim.check()
            event = _run_action(action, session, self.guard, self.audit, interrupted=state in UNSETTLED)
            key = WRITE_OUTCOMES.get(event, "")
        if event == "manual.pending":  # the vendor refused the API path: its manual instructions apply
            return self._to_person(action)
        self._advance(action, event, key)

    def _planned(self, action: Action) -> None:
        """The action's ``action.planned`` line, written as its lane reaches it, before any other of
        its lines. The whole plan is bound to the log from its start (``run.started`` names the
        plan's checksum; plan.json beside it); writing 10,000 agents' lines there, before the first
        removal, held the lane back (0.3 s of the window at the ceiling), where a lane waiting for
        its rate limit absorbs one line before each action."""
        if action.id not in self.planned:
            self.planned.add(action.id)
            self.audit.emit("action.planned", vendor=action.vendor, step=action.step, action_id=action.id,
                            target=action.target.model_dump(),
                            detail={"summary": action.summary, "call": action.call or "manual"})

    def lane_done(self, vendor: str) -> None:
        if self.sessions.ticket is not None:  # the exit's PSA ticket hears of each vendor as it finishes
            self.sessions.ticket.vendor_finished(vendor)

    def _advance(self, action: Action, event: str, key: str) -> None:
        self.tally.count(key)
        self.progress.advance(action, event)

    def _announce(self, action: Action) -> None:
        step = self.step_of[action.id]
        if self.tally.first_time(step.id):
            self.progress.step(self.plan.vendor(action.vendor).display_name, step,
                               sum(1 for a in step.actions if self.done.get(a.id) not in TERMINAL))

    def _to_person(self, action: Action) -> None:
        """A manual item, or an API action that fell back to its manual instructions."""
        guided = "pending"
        if self.guide is not None:
            guided = ask_until_settled(action, self.sessions.by_vendor[action.vendor], self.audit, self.guide)
        if guided == "confirmed":
            return self._advance(action, "manual.confirmed", "confirmed")
        if guided == "stop":
            self.guide = None  # the operator left guided mode: the rest go on the checklist
        self.tally.count("manual", action)
        self.progress.advance(action, "manual.pending")
        if action.gate:
            self.tally.held_by[action.vendor] = action
            self.progress.held(self.plan.vendor(action.vendor).display_name, self._held_behind(action))
            config, run_id = self.sessions.config, self.run.run_id
            self.audit.emit("vendor.held", vendor=action.vendor, step=action.step, action_id=action.id,
                            outcome="unknown", detail=f"no change is made at this vendor until {action.id} is "
                            f"confirmed (`{hints.confirm(run_id, config, item=action.id)}`), then "
                            f"`{hints.resume(run_id, config)}`")

    def _held_behind(self, gate: Action) -> list[str]:
        """The gate's vendor's actions after it that ``one`` will hold (its rule, told ahead)."""
        lane = [a for a in self.plan.actions() if a.vendor == gate.vendor]
        return [a.id for a in lane[lane.index(gate) + 1:] if self.done.get(a.id) not in TERMINAL and (
            a.kind == "manual" or self.done.get(a.id) in AWAITING_PERSON or a.destructive)]

    def _held_back_by_evidence(self, action: Action) -> bool:
        """The runbook's rule: no removal of a vendor whose evidence export failed, unless the
        operator overrode it (audited once per vendor)."""
        if not action.destructive or action.vendor not in self.tally.evidence_failed:
            return False
        if self.overrides.evidence:
            if action.vendor not in self.tally.override_used:
                self.tally.override_used.add(action.vendor)
                self.audit.emit("evidence.overridden", vendor=action.vendor, outcome="success",
                                detail={"reason": self.overrides.evidence})
            return False
        if self.step_of[action.id].phase == "evidence":
            return False
        self.audit.emit("action.blocked", **_base(action), outcome="failure",
                        detail="not run: this vendor's evidence export failed; fix it and resume, or "
                               "resume with --override-evidence \"REASON\"")
        self._advance(action, "action.blocked", "blocked")
        return True


def _base(action: Action) -> dict[str, Any]:
    return {"vendor": action.vendor, "step": action.step, "action_id": action.id,
            "target": action.target.model_dump()}


def execute(run: RunDir, plan: Plan, sessions: Sessions, audit: AuditLog, live: Mapping[str, Inventory],
            overrides: Overrides, progress: Progress, guide: Guide | None, signer: Signer | None, *,
            settle_only: set[str] | frozenset[str] = frozenset(),
            listed_at: Mapping[str, float] | None = None) -> RunResult:
    """``settle_only``: actions whose objects left the live listing since the plan; a re-read may
    settle them, nothing is ever sent to them. ``listed_at``: when each vendor's discovery of
    ``live`` began (``listings.now``); --trust-listing believes it until it is ``MAX_AGE_S`` old
    (a vendor not given: its listing is re-taken before the first write)."""
    config = sessions.config
    done = fold_actions(audit.records)
    guard = ScopeGuard("listing" if overrides.trust_listing else "object",
                       Listings(sessions, live, taken=listed_at), dict(live))
    if any(a.destructive and a.kind == "api" and done.get(a.id) not in TERMINAL for a in plan.actions()):
        audit.emit("scope_guard.mode", outcome="success", detail=describe(guard.mode))
    actions = plan.actions()
    progress.start(len(actions), sum(1 for a in actions if done.get(a.id) in TERMINAL))
    counts: dict[str, tuple[int, int]] = {}
    for a in actions:
        total, before = counts.get(plan.vendor(a.vendor).display_name, (0, 0))
        counts[plan.vendor(a.vendor).display_name] = (total + 1, before + (done.get(a.id) in TERMINAL))
    progress.lanes(counts)
    this = RunPass(run, plan, sessions, audit, guard, overrides, progress, guide, settle_only)
    lanes: dict[str, list[Action]] = {}
    for action in actions:
        lanes.setdefault(action.vendor, []).append(action)
    stop: VendorError | None = None
    try:
        with collector.run_objects_frozen():
            if guide is not None or len(lanes) < 2:
                for action in actions:  # one person answers one prompt at a time, in the plan's order
                    this.one(action)
                for vendor in lanes:
                    this.lane_done(vendor)
            else:
                # each vendor in its own order, under its own limiter, at once
                _in_lanes(lanes, this.one, this.lane_done, progress.warning)
    except VendorAuthError as exc:
        audit.emit("run.finished", outcome="failure", detail=str(exc))
        write_state(run, plan, audit, "failed")
        raise
    except VendorError as exc:
        stop = exc  # the vendor stays down after retries, or answers nonsense: stop cleanly, resumable
    except KeyboardInterrupt:
        raise _interrupted(run, plan, audit) from None
    finally:
        progress.finish()
    # What every command prints is the run's standing as a whole, read from the log (this pass's own
    # counters decide only the exit): a resume after a confirmation still counts it.
    standing = tally(actions, audit.records)
    if stop is not None:
        audit.emit("run.finished", outcome="failure", detail=f"stopped: {stop}; resume with "
                   f"`{hints.resume(run.run_id, config)}`")
        write_state(run, plan, audit, "interrupted")
        documents = write_documents(run, plan, audit, signer, sessions)
        return RunResult(run, stop.exit_code, standing.counts(), message=f"{stop}; resume later with "
                         f"`{hints.resume(run.run_id, config)}`", documents=documents, tally=standing)
    return _verify_and_close(run, plan, sessions, audit, progress, signer, this.tally)


def _interrupted(run: RunDir, plan: Plan, audit: AuditLog) -> RunInterrupted:
    """Ctrl-C (or a batch's stop) after the run opened: recorded in its log and its state, resumable."""
    audit.emit("run.interrupted", outcome="unknown", detail="stopped by the operator (Ctrl-C)")
    write_state(run, plan, audit, "interrupted")
    return RunInterrupted(run.run_id)


def _verify_and_close(run: RunDir, plan: Plan, sessions: Sessions, audit: AuditLog, progress: Progress,
                      signer: Signer | None, this: PassTally) -> RunResult:
    """The run's end: every vendor re-read, the exit code from this pass, the documents written."""
    config, actions, counts = sessions.config, plan.actions(), this.counts
    progress.phase("Verifying: re-reading each vendor to prove the service stopped")
    try:
        checks = verify_run(plan, sessions, audit, skip=set(this.held_by))
    except KeyboardInterrupt:  # during the re-reads (a rate-limit wait, a batch's stop): the log says so too
        raise _interrupted(run, plan, audit) from None
    finally:
        progress.end()
    now = fold_actions(audit.records)
    standing = tally(actions, audit.records)
    pending = [a for a in actions if standing.of[a.id] == "for_person"]
    # An action handed to a person is pending, not failed: its re-read is expected to disagree until done.
    failed_checks = [c for c in checks if not c.passed and now.get(c.action_id or "") not in AWAITING_PERSON]
    message = ""
    if counts["failed"] or counts["unknown"] or counts["blocked"] or failed_checks:
        code, outcome = ExitCode.FAILED, "failure"
        if counts["blocked"]:
            message = (f"{counts['blocked']} removal(s) held back because an evidence export failed; see the "
                       f"audit log, then `{hints.resume(run.run_id, config)}`")
    elif pending:
        code, outcome = ExitCode.MANUAL_PENDING, "success"
        message = (f"{len(pending)} manual item(s) waiting for a person: the checklist is in "
                   f"{run.path / 'manual-checklist.md'}; do each, then `{hints.confirm(run.run_id, config)}`")
        if standing["waiting"]:
            message += (f"; {standing['waiting']} action(s) wait for {', '.join(standing.waiting_on)}, then run "
                        f"with: {hints.resume(run.run_id, config)}")
    else:
        code, outcome = ExitCode.OK, "success"
    audit.emit("run.finished", outcome=outcome, detail={**standing.counts(), "checks_failed": len(failed_checks),
                                                        "exit_code": int(code)})
    write_state(run, plan, audit, "finished" if code == ExitCode.OK else f"finished-{code.name.lower()}")
    documents = write_documents(run, plan, audit, signer, sessions)
    return RunResult(run, code, standing.counts(), checks, pending=pending, message=message, documents=documents,
                     tally=standing)


STOPPING = "stopping after the current action — Ctrl-C again to stop now"


def _in_lanes(lanes: Mapping[str, list[Action]], one: Callable[[Action], None],
              done: Callable[[str], None] = lambda _vendor: None,
              stopping: Callable[[str], None] = lambda _text: None) -> None:
    """Run each vendor's actions in order in its own thread. A vendor that stops (down after
    retries) does not stop the others; refused credentials or Ctrl-C stop every lane after the
    action it is on. The first error is raised once every lane has stopped.

    Ctrl-C is told at once (``stopping``), and wakes every lane's wait (the rate limiter's, a
    vendor's Retry-After): the call it held back is not sent."""
    halt = threading.Event()
    caller = waits.origin()

    def lane(vendor: str, queue: list[Action]) -> None:
        with waits.working_for(caller):  # its waits and calls are the run's (a batch tells exits apart by thread)
            for action in queue:
                if halt.is_set():
                    return
                one(action)
            done(vendor)

    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="vendor") as pool:
        pending = {pool.submit(lane, vendor, queue) for vendor, queue in lanes.items()}
        try:
            while pending:
                # In slices: the main thread then sees Ctrl-C at once, whichever thread the signal reached.
                finished, pending = wait(pending, timeout=waits.SLICE, return_when=FIRST_COMPLETED)
                for future in finished:
                    exc = future.exception()
                    if exc is not None:
                        if not isinstance(exc, VendorError) or isinstance(exc, VendorAuthError):
                            halt.set()
                        errors.append(exc)
        except KeyboardInterrupt:
            halt.set()  # the pool's exit waits for each lane to finish the action it is on
            waits.request_stop()
            with contextlib.suppress(Exception):
                stopping(STOPPING)
            raise
        finally:
            if halt.is_set():
                pool.shutdown(wait=True)  # a second Ctrl-C here stops now
            waits.clear_stop()
    errors.sort(key=lambda e: 0 if not isinstance(e, VendorError) else 1 if isinstance(e, VendorAuthError) else 2)
    if errors:
        raise errors[0]


def _run_read(action: Action, session: VendorSession, audit: AuditLog, evidence: EvidenceStore) -> str:
    """A read-only action (an evidence export): no scope guard, safe to repeat, files kept."""
    base = {"vendor": action.vendor, "step": action.step, "action_id": action.id,
            "target": action.target.model_dump()}
    audit.emit("action.started", **base, outcome="unknown", detail={"call": action.call})
    try:
        result = session.execute(action)
    except VendorError as exc:
        if isinstance(exc, VendorAuthError) or exc.status is None or exc.status >= 500:
            raise
        audit.emit("action.failed", **base, outcome="failure", detail={"message": str(exc)})
        return "action.failed"
    if result.manual_fallback and action.manual is not None:  # e.g. the ticket could not take the scope note
        audit.emit("manual.pending", **base, http=http_of(result.http), outcome="unknown",
                   detail={"summary": action.summary, "fell_back": result.detail, **action.manual.model_dump()})
        return "manual.pending"
    files = evidence.write(action.vendor, action.id, result.artifacts)
    event = "action.succeeded" if result.outcome == "success" else "action.failed"
    # Each file names the requests that produced it; the line's own ``http`` is left empty when the
    # files carry them, so no request made for another file (or for nothing) stands on it.
    per_file = any(a.requests for a in result.artifacts)
    audit.emit(event, **base, http=None if per_file else http_of(result.http), outcome=result.outcome,
               detail={"message": result.detail,
                       "files": [{"path": f["path"], "sha256": f["sha256"], "bytes": f["bytes"],
                                  "requests": f["requests"], **({"draft_for": f["draft_for"]} if f.get("draft_for")
                                                                else {})} for f in files]})
    return event


def _settle_only(action: Action, session: VendorSession, audit: AuditLog) -> str:
    """An action the connectors no longer plan (its object left the exit's listing): settled by a
    re-read when its object is gone, otherwise left untouched and counted against the stop."""
    base = {"vendor": action.vendor, "step": action.step, "action_id": action.id,
            "target": action.target.model_dump()}
    if action.destructive:
        settled = session.reread(action)
        if settled.outcome == "success":
            audit.emit("action.succeeded", **base, http=http_of(settled.http), outcome="success",
                       detail={"message": settled.detail, "already_absent": True, "settled_by": "re-read",
                               "note": "no longer listed; the re-read shows it gone"})
            return "action.succeeded"
    audit.emit("action.skipped", **base, outcome="unknown",
               detail="no longer planned from the config and the live vendor (its object left the exit's "
                      "listing); not touched")
    return "action.skipped"


def _run_action(action: Action, session: VendorSession, guard: ScopeGuard, audit: AuditLog,
                *, interrupted: bool) -> str:
    base = {"vendor": action.vendor, "step": action.step, "action_id": action.id,
            "target": action.target.model_dump()}

    def finish(event: str, result: ActionResult, **extra: Any) -> str:
        audit.emit(event, **base, http=http_of(result.http), outcome=result.outcome,
                   detail={"message": result.detail, "already_absent": result.already_absent, **extra})
        return event

    if interrupted:
        # A crash after `started`: find out what is true before sending anything.
        settled = session.reread(action)
        if settled.outcome == "success":
            return finish("action.succeeded", settled, settled_by="re-read", note="interrupted run: re-read shows "
                          "it is done")
        if settled.outcome == "unknown":
            # A write that may have landed and that the re-read cannot settle (an asynchronous
            # dispatch still in flight): sending it again could act twice. A later re-read
            # (`apply --resume`, `verify`) settles it, or a person does (`offboard confirm`).
            return finish("action.unknown", settled, settled_by="re-read", note="not resent")
    seen = guard.owner(action, session)
    if seen.settled and seen.read is not None:
        why = "already absent" if seen.read.already_absent else "already in effect"
        return finish("action.succeeded", seen.read, settled_by="owner read", note=why)
    if seen.owner != action.owner:
        return _not_ours(action, seen, guard, audit)

    audit.emit("action.started", **base, outcome="unknown", detail={"call": action.call})
    for attempt in (1, 2):
        try:
            result = session.execute(action)
        except AmbiguousWrite as exc:
            audit.emit("action.unknown", **base, outcome="unknown",
                       detail=f"{exc}; re-reading before anything is resent")
            settled = session.reread(action)
            if settled.outcome == "success":
                return finish("action.succeeded", settled, settled_by="re-read")
            if settled.outcome == "unknown":
                return finish("action.unknown", settled, settled_by="re-read")
            if attempt == 2:
                return finish("action.failed", settled, settled_by="re-read")
            if settled.owner != action.owner:  # the re-read is the object's own record: it moved meanwhile
                return _not_ours(action, OwnerSeen(settled.owner, "the re-read after a lost reply", settled),
                                 guard, audit)
            continue  # the re-read shows the write did not land, and it is still ours: safe to send once more
        except VendorError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and not isinstance(exc, VendorAuthError):
                return finish("action.failed", ActionResult("failure", str(exc)))
            raise
        if result.manual_fallback and action.manual is not None:
            audit.emit("manual.pending", **base, http=http_of(result.http), outcome="unknown",
                       detail={"summary": action.summary, "fell_back": result.detail, **action.manual.model_dump()})
            return "manual.pending"
        event = "action.succeeded" if result.outcome == "success" else "action.failed"
        return finish(event, result)
    raise AssertionError("unreachable")


def _not_ours(action: Action, seen: OwnerSeen, guard: ScopeGuard, audit: AuditLog) -> str:
    """The scope guard's refusal: the object is not (or not provably) the exit's now. Never
    written; recorded with both owners; verification counts it against "stopped"."""
    listed = guard.listed_owner(action)
    now = seen.owner or "an unknown owner"
    why = f"object belongs to {now}, not {action.owner}"
    if seen.owner is None and seen.read is not None and seen.read.outcome == "unknown":
        why = f"its owner could not be confirmed ({seen.source}), so it is not known to be {action.owner}'s"
    detail: dict[str, Any] = {"message": f"scope guard: {why}; not touched", "owner_planned": action.owner,
                              "owner_now": seen.owner, "owner_from": seen.source}
    if listed is not None and listed != seen.owner and guard.mode == "object":
        detail["owner_listed"] = listed
        detail["message"] += f" (the listing said {listed}; the object's own record wins)"
    audit.emit("action.skipped", vendor=action.vendor, step=action.step, action_id=action.id,
               target=action.target.model_dump(), http=http_of(seen.read.http if seen.read else None),
               outcome="unknown", detail=detail)
    return "action.skipped"
