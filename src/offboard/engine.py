"""plan / apply / resume / verify, in each connector's declared order.

Exactly-once on resume: before an action's call is sent, ``action.started`` is
fsynced to the audit log. A resumed run folds the log; an action that started
but never finished is re-read before anything is sent again. An action whose
write reply was lost is recorded ``unknown`` and re-read the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from offboard import connectors as registry
from offboard import credentials
from offboard.audit import AuditLog
from offboard.config import ExitConfig
from offboard.connectors import ActionResult, Check, Connector, VendorSession
from offboard.errors import AmbiguousWrite, BadInput, ExitCode, RunInterrupted, VendorAuthError, VendorError
from offboard.http import HttpRecord
from offboard.plan import Action, Finding, Inventory, Plan, VendorPlan, now_iso, read_plan, write_plan
from offboard.report import write_report
from offboard.runstate import RunDir

TERMINAL = ("action.succeeded", "action.skipped")
UNSETTLED = ("action.started", "action.unknown")  # a write may have landed: re-read first


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


@dataclass
class Sessions:
    """The exit's vendors, each opened once and closed together."""

    by_vendor: dict[str, VendorSession]
    connectors: dict[str, Connector]

    def close(self) -> None:
        for s in self.by_vendor.values():
            s.close()


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
    try:
        for name, settings in cfg.vendors.items():
            conn = registry.get(name, available)
            secret = (creds or {}).get(name)
            if secret is None:
                secret = credentials.load(name, conn.display_name, conn.credential_fields)
            opened[name] = conn.open(settings, secret, transport=(transports or {}).get(name))
            conns[name] = conn
        sessions = Sessions(opened, conns)
        yield sessions
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
    return Plan(
        plan_id=str(uuid.uuid4()),
        created_at=now_iso(),
        customer=cfg.customer.name,
        end_of_service=cfg.customer.end_of_service.isoformat() if cfg.customer.end_of_service else None,
        approved_by=cfg.customer.approved_by,
        ticket=cfg.customer.ticket,
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
    message: str = ""


def fold_actions(records: list[dict[str, Any]]) -> dict[str, str]:
    """Each action's last lifecycle event, from the audit log."""
    state: dict[str, str] = {}
    for r in records:
        if r.get("action_id") and str(r.get("event", "")).startswith("action."):
            state[r["action_id"]] = r["event"]
    return state


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


def apply(
    plan: Plan,
    cfg: ExitConfig,
    sessions: Sessions,
    *,
    override_preflight: str | None = None,
    progress: Progress | None = None,
) -> RunResult:
    _check_plan_fits(plan, cfg)
    live = {name: s.discover() for name, s in sessions.by_vendor.items()}
    _check_not_stale(plan, live)
    findings = [f for name, s in sessions.by_vendor.items() for f in s.preflight(live[name])]
    blocking = [f for f in findings if f.blocking]

    run = RunDir.create(cfg.runs_dir)
    write_plan(plan, run.plan_path)
    with run.lock():
        audit = AuditLog(run.audit_path, run.run_id)
        try:
            audit.emit("run.started", outcome="success", detail={
                "plan_id": plan.plan_id, "plan_checksum": plan.checksum, "customer": plan.customer,
                "mode": "apply"})
            _write_state(run, plan, audit, "running")
            for f in findings:
                audit.emit("preflight.checked", vendor=f.vendor, outcome="failure" if f.blocking else "success",
                           detail={"kind": f.kind, "count": f.count, "finding": f.detail,
                                   "blocking": f.blocking})
            if blocking and not override_preflight:
                audit.emit("run.finished", outcome="failure",
                           detail="stopped by preflight gates before any removal")
                _write_state(run, plan, audit, "blocked")
                return RunResult(run, ExitCode.PREFLIGHT_BLOCKED, blocking=blocking,
                                 message="stopped before any removal: finish incident response first, "
                                         "or pass --override-preflight \"REASON\"")
            if blocking:
                audit.emit("preflight.overridden", outcome="success",
                           detail={"reason": override_preflight,
                                   "overridden": [f.kind for f in blocking]})
            for action in plan.actions():
                audit.emit("action.planned", vendor=action.vendor, step=action.step,
                           action_id=action.id, target=action.target.model_dump(),
                           detail={"summary": action.summary, "call": action.call})
            return _execute(run, plan, cfg, sessions, audit, live, progress or _NoProgress())
        finally:
            audit.close()


@contextmanager
def _reopen(run_id: str, cfg: ExitConfig) -> Iterator[tuple[RunDir, Plan, AuditLog]]:
    """An earlier run, locked, with its plan and its audit log open for appending."""
    run = RunDir.existing(cfg.runs_dir, run_id)
    plan = read_plan(run.plan_path)
    _check_plan_fits(plan, cfg)
    with run.lock():
        audit = AuditLog(run.audit_path, run.run_id)
        try:
            yield run, plan, audit
        finally:
            audit.close()


def resume(run_id: str, cfg: ExitConfig, sessions: Sessions, *, progress: Progress | None = None
           ) -> RunResult:
    with _reopen(run_id, cfg) as (run, plan, audit):
        events = {r["event"] for r in audit.records}
        if "preflight.overridden" not in events and any(
                r["event"] == "preflight.checked" and r["outcome"] == "failure" for r in audit.records):
            raise BadInput(f"run {run_id} was stopped by preflight gates; it has nothing to resume: "
                           "apply the plan again once incident response is finished")
        done = fold_actions(audit.records)
        audit.emit("run.resumed", outcome="success",
                   detail={"finished_actions": sum(1 for e in done.values() if e in TERMINAL)})
        live = {name: s.discover() for name, s in sessions.by_vendor.items()}
        return _execute(run, plan, cfg, sessions, audit, live, progress or _NoProgress())


def _execute(run: RunDir, plan: Plan, cfg: ExitConfig, sessions: Sessions, audit: AuditLog,
             live: Mapping[str, Inventory], progress: Progress) -> RunResult:
    done = fold_actions(audit.records)
    actions = plan.actions()
    progress.start(len(actions), sum(1 for a in actions if done.get(a.id) in TERMINAL))
    counts = {"succeeded": 0, "already_absent": 0, "failed": 0, "skipped": 0, "manual": 0, "unknown": 0}
    stop: VendorError | None = None
    try:
        for action in actions:
            if done.get(action.id) in TERMINAL:
                continue
            if action.kind == "manual":
                audit.emit("manual.pending", vendor=action.vendor, step=action.step, action_id=action.id,
                           target=action.target.model_dump(), detail=action.summary)
                counts["manual"] += 1
                continue
            event = _run_action(action, sessions.by_vendor[action.vendor], live[action.vendor],
                                audit, interrupted=done.get(action.id) in UNSETTLED)
            key = {"action.succeeded": "succeeded", "action.failed": "failed",
                   "action.skipped": "skipped", "action.unknown": "unknown"}[event]
            counts[key] += 1
            progress.advance(action, event)
    except VendorAuthError as exc:
        audit.emit("run.finished", outcome="failure", detail=str(exc))
        _write_state(run, plan, audit, "failed")
        raise
    except VendorError as exc:
        stop = exc  # the vendor stays down after retries, or answers nonsense: stop cleanly, resumable
    except KeyboardInterrupt:
        audit.emit("run.interrupted", outcome="unknown", detail="stopped by the operator (Ctrl-C)")
        _write_state(run, plan, audit, "interrupted")
        raise RunInterrupted(run.run_id) from None
    finally:
        progress.finish()
    counts["already_absent"] = sum(1 for r in audit.records if r["event"] == "action.succeeded"
                                   and isinstance(r.get("detail"), dict)
                                   and r["detail"].get("already_absent"))
    if stop is not None:
        audit.emit("run.finished", outcome="failure", detail=f"stopped: {stop}; resume with "
                   f"`offboard apply --resume {run.run_id}`")
        _write_state(run, plan, audit, "interrupted")
        write_report(run, plan, audit.records)
        return RunResult(run, stop.exit_code, counts, message=f"{stop}; resume later with "
                         f"`offboard apply --resume {run.run_id}`")

    progress.phase("Verifying: re-reading each vendor to prove the service stopped")
    checks = verify_run(plan, sessions, audit)
    failed_checks = [c for c in checks if not c.passed]
    if counts["failed"] or counts["unknown"] or failed_checks:
        code, outcome = ExitCode.FAILED, "failure"
    elif counts["manual"]:
        code, outcome = ExitCode.MANUAL_PENDING, "success"
    else:
        code, outcome = ExitCode.OK, "success"
    audit.emit("run.finished", outcome=outcome, detail={**counts, "checks_failed": len(failed_checks),
                                                        "exit_code": int(code)})
    _write_state(run, plan, audit, "finished" if code == ExitCode.OK else f"finished-{code.name.lower()}")
    write_report(run, plan, audit.records)
    return RunResult(run, code, counts, checks)


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
        event = "action.succeeded" if result.outcome == "success" else "action.failed"
        return finish(event, result)
    raise AssertionError("unreachable")


def _http(record: HttpRecord | None) -> dict[str, Any] | None:
    return record.as_dict() if record else None


def _write_state(run: RunDir, plan: Plan, audit: AuditLog, status: str) -> None:
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


# -- verify ----------------------------------------------------------------------


def verify_run(plan: Plan | None, sessions: Sessions, audit: AuditLog | None = None) -> list[Check]:
    """Re-read every vendor; with a plan, also each object the plan removed."""
    checks: list[Check] = []
    for name, session in sessions.by_vendor.items():
        vp = plan.vendor(name) if plan is not None else None
        vendor_checks = session.verify(vp, session.discover())
        for c in vendor_checks:
            if audit is not None:
                audit.emit("verify.passed" if c.passed else "verify.failed", vendor=name,
                           step="verify", target=c.target.model_dump() if c.target else None,
                           http=_http(c.http), outcome="success" if c.passed else "failure",
                           detail={"check": c.name, "result": c.detail})
        checks.extend(vendor_checks)
    return checks


def verify_recorded(run_id: str, cfg: ExitConfig, sessions: Sessions) -> list[Check]:
    """Verify a past run's removals and add the re-reads to its audit log."""
    with _reopen(run_id, cfg) as (run, plan, audit):
        checks = verify_run(plan, sessions, audit)
        audit.emit("verify.finished", outcome="success" if all(c.passed for c in checks) else "failure",
                   detail={"checks": len(checks), "failed": sum(1 for c in checks if not c.passed)})
        write_report(run, plan, audit.records)
    return checks
