"""plan / apply / resume / verify / confirm / status, in each connector's declared order.

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
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from offboard import connectors as registry
from offboard import credentials
from offboard.audit import AuditLog
from offboard.checklist import write_checklist
from offboard.closure import write_closure_note
from offboard.config import ExitConfig
from offboard.connectors import ActionResult, Check, Connector, ExitContext, VendorSession
from offboard.errors import AmbiguousWrite, BadInput, ExitCode, RunInterrupted, VendorAuthError, VendorError
from offboard.evidence import EvidenceStore
from offboard.http import HttpRecord
from offboard.lifecycle import AWAITING_PERSON, TERMINAL, UNSETTLED, fold_actions
from offboard.plan import Action, Finding, Inventory, Plan, VendorPlan, now_iso, read_plan, write_plan
from offboard.report import write_report
from offboard.runstate import RunDir, atomic_write_bytes, file_lock
from offboard.signing import Signer, load_signer

GATES_DECIDED = frozenset({"preflight.cleared", "preflight.overridden"})  # a run's gates were passed
GATES_STOPPED = "stopped by preflight gates before any removal"


class Progress(Protocol):
    """How the engine reports long work; the CLI draws it, tests may ignore it."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self, action: Action, event: str) -> None: ...

    def finish(self) -> None: ...

    def phase(self, text: str) -> None: ...


class _NoProgress:
    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, action: Action, event: str) -> None:
        pass

    def finish(self) -> None:
        pass

    def phase(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class Overrides:
    """What the operator decided at apply time; every one is audited."""

    preflight: str | None = None  # reason to proceed despite preflight gates
    evidence: str | None = None  # reason to remove even though the evidence export failed
    confirm_name: str | None = None  # the name typed to allow a guarded action
    yes_guarded: bool = False  # unattended: allow guarded actions without typing the name


@dataclass(frozen=True)
class GuideAnswer:
    done: bool  # False: leave the item pending (it stays on the checklist)
    note: str = ""
    stop: bool = False  # stop guiding; this and the remaining items stay pending


class Guide(Protocol):
    """Guided mode: a person at the terminal does each manual item while the run waits."""

    by: str

    def ask(self, action: Action, refused: Check | None) -> GuideAnswer:
        """Show the item (and, after a refusal, what the vendor still shows); say what was done."""
        ...


@dataclass
class Sessions:
    """The exit's vendors, each opened once and closed together."""

    by_vendor: dict[str, VendorSession]
    connectors: dict[str, Connector]


@contextmanager
def open_sessions(
    cfg: ExitConfig,
    available: Mapping[str, Connector] | None = None,
    *,
    transports: Mapping[str, Any] | None = None,
    creds: Mapping[str, Mapping[str, Any]] | None = None,
) -> Iterator[Sessions]:
    """``transports``/``creds`` let tests and the demo bypass the network and the keyring."""
    available = registry.installed() if available is None else available
    opened: dict[str, VendorSession] = {}
    conns: dict[str, Connector] = {}
    c = cfg.customer
    context = ExitContext(c.name, c.end_of_service, c.ticket, c.approved_by)
    try:
        for name, settings in cfg.vendors.items():
            conn = registry.get(name, available)
            secret = (creds or {}).get(name)
            if secret is None:
                secret = credentials.load(name, conn.display_name, conn.credential_fields)
            opened[name] = conn.open(settings, secret, transport=(transports or {}).get(name), context=context)
            conns[name] = conn
        yield Sessions(opened, conns)
    finally:
        for s in opened.values():
            s.close()


# -- plan ------------------------------------------------------------------------


def make_plan(cfg: ExitConfig, sessions: Sessions) -> Plan:
    """Discover (read-only) and plan (pure) every vendor of the exit."""
    vendor_plans = []
    for name, session in sessions.by_vendor.items():
        inventory = session.discover()
        findings = tuple(session.preflight(inventory))
        parts = session.plan(inventory)
        vendor_plans.append(VendorPlan(
            vendor=name,
            display_name=sessions.connectors[name].display_name,
            scope=inventory.scope,
            account=inventory.account,
            inventory_fingerprint=inventory.fingerprint(),
            snapshot=inventory.snapshot,
            findings=findings,
            skipped=parts.skipped,
            steps=parts.steps,
        ))
    customer = cfg.customer
    return Plan(
        plan_id=str(uuid.uuid4()),
        created_at=now_iso(),
        customer=customer.name,
        end_of_service=customer.end_of_service.isoformat() if customer.end_of_service else None,
        approved_by=customer.approved_by,
        ticket=customer.ticket,
        monitoring_after_exit=customer.monitoring_after_exit,
        config_fingerprint=cfg.fingerprint(),
        vendors=tuple(vendor_plans),
    ).sealed()


# -- apply -----------------------------------------------------------------------


@dataclass
class RunResult:
    run: RunDir
    exit_code: ExitCode
    counts: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    blocking: list[Finding] = field(default_factory=list)
    pending: list[Action] = field(default_factory=list)
    message: str = ""
    documents: list[Path] = field(default_factory=list)  # the vendors' documents written (e.g. email drafts)


def _check_plan_fits(plan: Plan, cfg: ExitConfig) -> None:
    if plan.config_fingerprint != cfg.fingerprint():
        raise BadInput(
            f"plan {plan.plan_id} was made for a different exit definition (customer "
            f"{plan.customer!r}) than {cfg.path}; make a new plan with `offboard plan -o` from this config"
        )


def _check_not_stale(plan: Plan, live: Mapping[str, Inventory]) -> None:
    for vp in plan.vendors:
        inv = live[vp.vendor]
        if inv.fingerprint() != vp.inventory_fingerprint:
            raise BadInput(
                f"plan is stale: {vp.display_name} inventory for {vp.scope} changed since the plan was "
                f"made ({plan.created_at}); make a new plan with `offboard plan -o` and review it"
            )


def _check_guards(plan: Plan, overrides: Overrides) -> None:
    for action in plan.actions():
        if action.confirm is None or overrides.yes_guarded:
            continue
        if overrides.confirm_name is None:
            raise BadInput(f"this plan will {action.summary}; that cannot be undone: pass "
                           f"--confirm \"{action.confirm}\" (or --yes-delete-organization when unattended)")
        if overrides.confirm_name != action.confirm:
            raise BadInput(f"--confirm {overrides.confirm_name!r} does not match {action.confirm!r}; "
                           "type the name exactly as the plan shows it")


def apply(plan: Plan, cfg: ExitConfig, sessions: Sessions, *, overrides: Overrides | None = None,
          progress: Progress | None = None, guide: Guide | None = None) -> RunResult:
    overrides = overrides or Overrides()
    _check_plan_fits(plan, cfg)
    _check_guards(plan, overrides)
    with exit_lock(cfg):  # before discovery: a second apply is refused, not told its plan is stale
        live = {name: s.discover() for name, s in sessions.by_vendor.items()}
        _check_not_stale(plan, live)
        findings = [f for name, s in sessions.by_vendor.items() for f in s.preflight(live[name])]
        run = RunDir.create(cfg.runs_dir)
        write_plan(plan, run.plan_path)
        return _apply_run(run, plan, cfg, sessions, overrides, findings, live, progress, guide)


def exit_lock(cfg: ExitConfig) -> contextlib.AbstractContextManager[None]:
    """One process at a time per exit (customer and vendor scopes), whichever run it works on:
    a second apply of the same exit must not interleave its writes with the first's."""
    return file_lock(cfg.runs_dir / f".exit-{cfg.fingerprint()[:16]}.lock", f"the exit of {cfg.customer.name!r}")


def _apply_run(run: RunDir, plan: Plan, cfg: ExitConfig, sessions: Sessions, overrides: Overrides,
               findings: list[Finding], live: Mapping[str, Inventory], progress: Progress | None,
               guide: Guide | None) -> RunResult:
    with run.lock():
        audit = AuditLog(run.audit_path, run.run_id)
        try:
            stopped = _open_run(run, plan, cfg, sessions, audit, overrides, findings)
            if stopped is not None:
                return stopped
            return _execute(run, plan, sessions, audit, live, overrides, progress or _NoProgress(), guide,
                            signer_for(cfg))
        finally:
            audit.close()


def _open_run(run: RunDir, plan: Plan, cfg: ExitConfig, sessions: Sessions, audit: AuditLog,
              overrides: Overrides, findings: list[Finding]) -> RunResult | None:
    """Record what a run starts from — preflight gates, overrides, guarded actions, the plan's
    actions — skipping whatever the log already holds (a run that crashed while starting is
    resumed through here too). Returns the result when the gates stop the run."""
    recorded = {r["event"] for r in audit.records}
    if "run.started" not in recorded:
        audit.emit("run.started", outcome="success", detail={
            "plan_id": plan.plan_id, "plan_checksum": plan.checksum, "customer": plan.customer, "mode": "apply"})
    write_state(run, plan, audit, "running")
    if not GATES_DECIDED & recorded:
        blocking = [f for f in findings if f.blocking]
        for f in findings:
            audit.emit("preflight.checked", vendor=f.vendor, outcome="failure" if f.blocking else "success",
                       detail={"kind": f.kind, "count": f.count, "finding": f.detail, "blocking": f.blocking})
        if blocking and not overrides.preflight:
            audit.emit("run.finished", outcome="failure", detail=GATES_STOPPED)
            write_state(run, plan, audit, "blocked")
            write_documents(run, plan, audit, signer_for(cfg), sessions)
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
        if ("action.planned", action.id) not in seen:
            audit.emit("action.planned", vendor=action.vendor, step=action.step,
                       action_id=action.id, target=action.target.model_dump(),
                       detail={"summary": action.summary, "call": action.call or "manual"})
    return None


def signer_for(cfg: ExitConfig) -> Signer | None:
    """The MSP's signing key for this exit, if it has one (runs are unsigned otherwise)."""
    return load_signer(cfg.signing_key_file)


@contextmanager
def reopen(run_id: str, cfg: ExitConfig) -> Iterator[tuple[RunDir, Plan, AuditLog]]:
    """An earlier run, locked, with its plan and its audit log open for appending."""
    run = RunDir.existing(cfg.runs_dir, run_id)
    plan = read_plan(run.plan_path)
    _check_plan_fits(plan, cfg)
    with exit_lock(cfg), run.lock():
        audit = AuditLog(run.audit_path, run.run_id)
        try:
            yield run, plan, audit
        finally:
            audit.close()


def resume(run_id: str, cfg: ExitConfig, sessions: Sessions, *, overrides: Overrides | None = None,
           progress: Progress | None = None, guide: Guide | None = None) -> RunResult:
    overrides = overrides or Overrides()
    with reopen(run_id, cfg) as (run, plan, audit):
        events = {r["event"] for r in audit.records}
        if any(r["event"] == "run.finished" and r["detail"] == GATES_STOPPED for r in audit.records):
            raise BadInput(f"run {run_id} was stopped by preflight gates; it has nothing to resume: "
                           "apply the plan again once incident response is finished")
        done = fold_actions(audit.records)
        audit.emit("run.resumed", outcome="success",
                   detail={"finished_actions": sum(1 for e in done.values() if e in TERMINAL)})
        live = {name: s.discover() for name, s in sessions.by_vendor.items()}
        guarded = {r.get("action_id") for r in audit.records if r["event"] == "guard.confirmed"}
        if any(a.confirm is not None and a.id not in guarded for a in plan.actions()):
            _check_guards(plan, overrides)  # the run stopped before the operator's word was recorded
        # A run that stopped while starting has not checked its gates yet: they are checked now.
        findings = ([] if GATES_DECIDED & events else
                    [f for name, s in sessions.by_vendor.items() for f in s.preflight(live[name])])
        stopped = _open_run(run, plan, cfg, sessions, audit, overrides, findings)
        if stopped is not None:
            return stopped
        # Guarded actions were confirmed when the run started (audited); the run keeps that decision.
        confirmed = Overrides(overrides.preflight, overrides.evidence, None, True)
        return _execute(run, plan, sessions, audit, live, confirmed, progress or _NoProgress(), guide,
                        signer_for(cfg))


def _execute(run: RunDir, plan: Plan, sessions: Sessions, audit: AuditLog, live: Mapping[str, Inventory],
             overrides: Overrides, progress: Progress, guide: Guide | None, signer: Signer | None) -> RunResult:
    done = fold_actions(audit.records)
    step_of = plan.step_of()
    evidence = EvidenceStore(run.path)
    actions = plan.actions()
    progress.start(len(actions), sum(1 for a in actions if done.get(a.id) in TERMINAL))
    counts = {"succeeded": 0, "already_absent": 0, "failed": 0, "skipped": 0, "blocked": 0, "manual": 0,
              "confirmed": 0, "unknown": 0, "exported": 0}
    # Built during this pass: an export that failed before is retried here (it is not terminal),
    # and evidence steps come first, so by the first removal this set is the truth.
    evidence_failed: set[str] = set()
    override_used: set[str] = set()
    pending: list[Action] = []
    stop: VendorError | None = None
    tally = threading.Lock()  # vendors run in their own threads; these counters are shared

    def count(key: str, action: Action | None = None) -> None:
        with tally:
            counts[key] += 1
            if action is not None:
                pending.append(action)

    def to_person(action: Action) -> None:
        """A manual item, or an API action that fell back to its manual instructions."""
        nonlocal guide
        guided = _guided(action, sessions.by_vendor[action.vendor], audit, guide) if guide else "pending"
        if guided == "confirmed":
            count("confirmed")
            progress.advance(action, "manual.confirmed")
            return
        if guided == "stop":
            guide = None  # the operator left guided mode: the rest go on the checklist
        count("manual", action)
        progress.advance(action, "manual.pending")

    def one(action: Action) -> None:
        state = done.get(action.id)
        if state in TERMINAL:
            return
        if action.kind == "manual" or state in AWAITING_PERSON:
            if state not in AWAITING_PERSON:
                audit.emit("manual.pending", vendor=action.vendor, step=action.step, action_id=action.id,
                           target=action.target.model_dump(), outcome="unknown",
                           detail={"summary": action.summary,
                                   **(action.manual.model_dump() if action.manual else {})})
            to_person(action)
            return
        phase = step_of[action.id].phase
        if action.destructive and action.vendor in evidence_failed and overrides.evidence:
            if action.vendor not in override_used:
                override_used.add(action.vendor)
                audit.emit("evidence.overridden", vendor=action.vendor, outcome="success",
                           detail={"reason": overrides.evidence})
        elif action.destructive and action.vendor in evidence_failed and phase != "evidence":
            audit.emit("action.blocked", vendor=action.vendor, step=action.step, action_id=action.id,
                       target=action.target.model_dump(), outcome="failure",
                       detail="not run: this vendor's evidence export failed; fix it and resume, or "
                              "resume with --override-evidence \"REASON\"")
            count("blocked")
            progress.advance(action, "action.blocked")
            return
        session = sessions.by_vendor[action.vendor]
        if not action.destructive:
            event = _run_read(action, session, audit, evidence)
            if event == "action.failed" and phase == "evidence":
                evidence_failed.add(action.vendor)
            count("exported" if event == "action.succeeded" else "failed")
        else:
            event = _run_action(action, session, live[action.vendor], audit, interrupted=state in UNSETTLED)
            if event == "manual.pending":
                to_person(action)
                return
            count({"action.succeeded": "succeeded", "action.failed": "failed",
                   "action.skipped": "skipped", "action.unknown": "unknown"}[event])
        progress.advance(action, event)

    lanes: dict[str, list[Action]] = {}
    for action in actions:
        lanes.setdefault(action.vendor, []).append(action)
    try:
        if guide is not None or len(lanes) < 2:
            for action in actions:  # one person answers one prompt at a time, in the plan's order
                one(action)
        else:
            _in_lanes(lanes, one)  # each vendor in its own order, under its own limiter, at once
    except VendorAuthError as exc:
        audit.emit("run.finished", outcome="failure", detail=str(exc))
        write_state(run, plan, audit, "failed")
        raise
    except VendorError as exc:
        stop = exc  # the vendor stays down after retries, or answers nonsense: stop cleanly, resumable
    except KeyboardInterrupt:
        audit.emit("run.interrupted", outcome="unknown", detail="stopped by the operator (Ctrl-C)")
        write_state(run, plan, audit, "interrupted")
        raise RunInterrupted(run.run_id) from None
    finally:
        progress.finish()
    counts["already_absent"] = sum(1 for r in audit.records if r["event"] == "action.succeeded"
                                   and isinstance(r.get("detail"), dict) and r["detail"].get("already_absent"))
    if stop is not None:
        audit.emit("run.finished", outcome="failure", detail=f"stopped: {stop}; resume with "
                   f"`offboard apply --resume {run.run_id}`")
        write_state(run, plan, audit, "interrupted")
        documents = write_documents(run, plan, audit, signer, sessions)
        return RunResult(run, stop.exit_code, counts, message=f"{stop}; resume later with "
                         f"`offboard apply --resume {run.run_id}`", documents=documents)

    progress.phase("Verifying: re-reading each vendor to prove the service stopped")
    checks = verify_run(plan, sessions, audit)
    now = fold_actions(audit.records)
    # An action handed to a person is pending, not failed: its re-read is expected to disagree until done.
    failed_checks = [c for c in checks if not c.passed and now.get(c.action_id or "") not in AWAITING_PERSON]
    message = ""
    if counts["failed"] or counts["unknown"] or counts["blocked"] or failed_checks:
        code, outcome = ExitCode.FAILED, "failure"
        if counts["blocked"]:
            message = (f"{counts['blocked']} removal(s) held back because an evidence export failed; see the "
                       f"audit log, then `offboard apply --resume {run.run_id}`")
    elif pending:
        code, outcome = ExitCode.MANUAL_PENDING, "success"
        message = (f"{len(pending)} manual item(s) pending: the checklist is in {run.path / 'manual-checklist.md'}; "
                   f"do each, then `offboard confirm ITEM --by NAME --run {run.run_id}`")
    else:
        code, outcome = ExitCode.OK, "success"
    audit.emit("run.finished", outcome=outcome, detail={**counts, "checks_failed": len(failed_checks),
                                                        "exit_code": int(code)})
    write_state(run, plan, audit, "finished" if code == ExitCode.OK else f"finished-{code.name.lower()}")
    documents = write_documents(run, plan, audit, signer, sessions)
    return RunResult(run, code, counts, checks, pending=pending, message=message, documents=documents)


def _in_lanes(lanes: Mapping[str, list[Action]], one: Callable[[Action], None]) -> None:
    """Run each vendor's actions in order in its own thread. A vendor that stops (down after
    retries) does not stop the others; refused credentials or Ctrl-C stop every lane after the
    action it is on. The first error is raised once every lane has stopped."""
    halt = threading.Event()

    def lane(queue: list[Action]) -> None:
        for action in queue:
            if halt.is_set():
                return
            one(action)

    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="vendor") as pool:
        futures = [pool.submit(lane, queue) for queue in lanes.values()]
        try:
            for future in as_completed(futures):
                exc = future.exception()
                if exc is not None:
                    if not isinstance(exc, VendorError) or isinstance(exc, VendorAuthError):
                        halt.set()
                    errors.append(exc)
        except KeyboardInterrupt:
            halt.set()  # the pool's exit waits for each lane to finish the action it is on
            raise
    errors.sort(key=lambda e: 0 if not isinstance(e, VendorError) else 1 if isinstance(e, VendorAuthError) else 2)
    if errors:
        raise errors[0]


def _guided(action: Action, session: VendorSession, audit: AuditLog, guide: Guide) -> str:
    """Ask until the item is confirmed, left pending, or guiding stops ("confirmed", "pending",
    "stop"); a confirmation the vendor's re-read contradicts is recorded as refused and shown."""
    refused: Check | None = None
    while True:
        answer = guide.ask(action, refused)
        if answer.stop:
            return "stop"
        if not answer.done:
            return "pending"
        accepted, check = record_confirmation(audit, session, action, guide.by, answer.note, mode="guided")
        if accepted:
            return "confirmed"
        refused = check


def record_confirmation(audit: AuditLog, session: VendorSession, action: Action, by: str, note: str, *,
                        mode: str) -> tuple[bool, Check | None]:
    """Re-read the vendor where its API can see the item; record it confirmed, or refused."""
    check = session.check_manual(action)
    base = {"vendor": action.vendor, "step": action.step, "action_id": action.id,
            "target": action.target.model_dump()}
    if check is not None:
        emit_check(audit, action.vendor, check)
    if check is not None and not check.passed:
        audit.emit("manual.rejected", **base, outcome="failure",
                   detail={"by": by, "note": note, "mode": mode, "why": f"the vendor still shows: {check.detail}"})
        return False, check
    audit.emit("manual.confirmed", **base, outcome="success",
               detail={"by": by, "note": note, "mode": mode, "verified_by_api": check is not None})
    return True, check


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
    files = evidence.write(action.vendor, action.id, result.artifacts)
    event = "action.succeeded" if result.outcome == "success" else "action.failed"
    audit.emit(event, **base, http=_http(result.http), outcome=result.outcome,
               detail={"message": result.detail,
                       "files": [{"path": f["path"], "sha256": f["sha256"], "bytes": f["bytes"]} for f in files]})
    return event


def _run_action(action: Action, session: VendorSession, live: Inventory, audit: AuditLog,
                *, interrupted: bool) -> str:
    base = {"vendor": action.vendor, "step": action.step, "action_id": action.id,
            "target": action.target.model_dump()}

    def finish(event: str, result: ActionResult, **extra: Any) -> str:
        audit.emit(event, **base, http=_http(result.http), outcome=result.outcome,
                   detail={"message": result.detail, "already_absent": result.already_absent, **extra})
        return event

    owner = live.owner_of(action.target)
    if interrupted or owner is None:
        # A crash after `started`, or the object is gone from the live listing: find out
        # what is true before sending anything.
        settled = session.reread(action)
        if settled.outcome == "success":
            why = "interrupted run: re-read shows it is done" if interrupted else "already absent"
            return finish("action.succeeded", settled, settled_by="re-read", note=why)
        if owner is None:
            owner = settled.owner
    if owner != action.owner:
        audit.emit("action.skipped", **base, outcome="unknown",
                   detail=f"scope guard: object belongs to {owner or 'an unknown owner'}, "
                          f"not {action.owner}; not touched")
        return "action.skipped"

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
            continue  # the re-read shows the write did not land: safe to send once more
        except VendorError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and not isinstance(exc, VendorAuthError):
                return finish("action.failed", ActionResult("failure", str(exc)))
            raise
        if result.manual_fallback and action.manual is not None:
            audit.emit("manual.pending", **base, http=_http(result.http), outcome="unknown",
                       detail={"summary": action.summary, "fell_back": result.detail, **action.manual.model_dump()})
            return "manual.pending"
        event = "action.succeeded" if result.outcome == "success" else "action.failed"
        return finish(event, result)
    raise AssertionError("unreachable")


def _http(record: HttpRecord | None) -> dict[str, Any] | None:
    return record.as_dict() if record else None


def write_state(run: RunDir, plan: Plan, audit: AuditLog, status: str) -> None:
    run.write_state({
        "run_id": run.run_id,
        "status": status,
        "plan_id": plan.plan_id,
        "plan_checksum": plan.checksum,
        "customer": plan.customer,
        "updated_at": now_iso(),
        "audit_lines": len(audit.records),
        "audit_last_hash": audit.last_hash,
        "actions": fold_actions(audit.records),
    })


def write_documents(run: RunDir, plan: Plan, audit: AuditLog, signer: Signer | None,
                    sessions: Sessions | None = None) -> list[Path]:
    """Sign the chain head as it stands (when the MSP has a key), then write the documents
    that quote it, and each vendor's own (e.g. its notification draft). Returns the latter."""
    audit.sync()
    if signer is not None and audit.records:
        signer.sign_head(run.path, run.run_id, len(audit.records), audit.last_hash)
    written: list[Path] = []
    if sessions is not None:
        states = fold_actions(audit.records)
        for vp in plan.vendors:
            for doc in sessions.by_vendor[vp.vendor].documents(vp, states):
                path = run.path / "documents" / vp.vendor / PurePosixPath(doc.name).name
                atomic_write_bytes(path, doc.content)
                written.append(path)
    write_report(run, plan, audit.records)
    write_closure_note(run, plan, audit.records, EvidenceStore(run.path).manifest())
    write_checklist(run, plan, audit.records)
    return written


# -- verify ----------------------------------------------------------------------


def emit_check(audit: AuditLog, vendor: str, c: Check) -> None:
    audit.emit("verify.passed" if c.passed else "verify.failed", vendor=vendor, step="verify",
               action_id=c.action_id, target=c.target.model_dump() if c.target else None,
               http=_http(c.http), outcome="success" if c.passed else "failure",
               detail={"check": c.name, "result": c.detail})


def verify_run(plan: Plan | None, sessions: Sessions, audit: AuditLog | None = None) -> list[Check]:
    """Re-read every vendor; with a plan, also each object the plan removed."""
    checks: list[Check] = []
    for name, session in sessions.by_vendor.items():
        vp = plan.vendor(name) if plan is not None else None
        inventory = session.discover()
        vendor_checks = session.verify(vp, inventory)
        if audit is not None:
            audit.emit("snapshot.taken", vendor=name, step="verify", outcome="success",
                       detail={"when": "after", "snapshot": inventory.snapshot})
            for c in vendor_checks:
                emit_check(audit, name, c)
        checks.extend(vendor_checks)
    return checks


def verify_recorded(run_id: str, cfg: ExitConfig, sessions: Sessions) -> list[Check]:
    """Verify a past run's removals and its confirmed manual items; add the re-reads to its log."""
    with reopen(run_id, cfg) as (run, plan, audit):
        checks = verify_run(plan, sessions, audit)
        for action in plan.actions():
            if action.kind == "manual":
                check = sessions.by_vendor[action.vendor].check_manual(action)
                if check is not None:
                    emit_check(audit, action.vendor, check)
                    checks.append(check)
        audit.emit("verify.finished", outcome="success" if all(c.passed for c in checks) else "failure",
                   detail={"checks": len(checks), "failed": sum(1 for c in checks if not c.passed)})
        write_documents(run, plan, audit, signer_for(cfg), sessions)
    return checks
