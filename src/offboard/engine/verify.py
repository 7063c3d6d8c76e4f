"""`offboard verify`: re-read every vendor to prove the service stopped; add the re-reads to the log.
"""

from __future__ import annotations

from dataclasses import replace

from offboard.config import ExitConfig
from offboard.connectors import Check
from offboard.engine.runfolder import reopen, signer_for, write_documents
from offboard.engine.sessions import Sessions
from offboard.engine.types import http_of
from offboard.lifecycle import fold
from offboard.plan import Plan
from offboard.proof.audit import AuditLog


def emit_check(audit: AuditLog, vendor: str, c: Check) -> None:
    audit.emit("verify.passed" if c.passed else "verify.failed", vendor=vendor, step="verify",
               action_id=c.action_id, target=c.target.model_dump() if c.target else None,
               http=http_of(c.http), outcome="success" if c.passed else "failure",
               detail={"check": c.name, "result": c.detail})


def _left_untouched(plan: Plan | None, audit: AuditLog | None) -> dict[str, tuple[str, Check]]:
    """Planned removals the scope guard did not send (the object moved to another owner, or left
    the listing): whatever the vendor's listing says now, nothing proves they stopped."""
    if plan is None or audit is None:
        return {}
    state = fold(audit.records)
    out = {}
    for a in plan.actions():
        rec = state.last.get(a.id)
        if a.kind == "api" and a.destructive and rec is not None and rec["event"] == "action.skipped":
            detail = rec.get("detail")
            why = detail.get("message", "") if isinstance(detail, dict) else detail
            out[a.id] = (a.vendor, Check("not touched", False, f"{a.summary}: not done — {why}; "
                                         "nothing proves this object stopped", target=a.target, action_id=a.id))
    return out


def acknowledged(audit: AuditLog | None, action_id: str) -> bool:
    """Whether this run's audit log (hash chained) holds the vendor's own acceptance of the action's
    write: its success with a 2xx reply to the write itself, not a re-read's or a 404's."""
    if audit is None:
        return False
    for r in audit.records:
        http = r.get("http") or {}
        raw = r.get("detail")
        detail = raw if isinstance(raw, dict) else {}
        if (r["event"] == "action.succeeded" and r.get("action_id") == action_id and not detail.get("settled_by")
                and not detail.get("already_absent") and isinstance(http.get("status"), int)
                and 200 <= http["status"] < 300):
            return True
    return False


def _proven(check: Check, audit: AuditLog | None) -> Check:
    if check.acknowledged_by is None or not check.passed:
        return check
    action_id, why = check.acknowledged_by
    if acknowledged(audit, action_id):
        return replace(check, detail=f"{check.detail}; this exit's own {action_id} was acknowledged (audit log)")
    return replace(check, passed=False, detail=why + ("" if audit is not None else "; give the run that made it: "
                                                      "`offboard verify --run RUN_ID`"))


def verify_run(plan: Plan | None, sessions: Sessions, audit: AuditLog | None = None, *,
               skip: set[str] | frozenset[str] = frozenset()) -> list[Check]:
    """Re-read every vendor (but ``skip``: those whose changes wait for a person); with a plan,
    also each object the plan removed."""
    checks: list[Check] = []
    untouched = _left_untouched(plan, audit)
    for name, session in sessions.by_vendor.items():
        if name in skip:
            continue
        vp = plan.vendor(name) if plan is not None else None
        inventory = session.discover()
        vendor_checks = [_proven(c, audit) for c in session.verify(vp, inventory) if c.action_id not in untouched]
        vendor_checks += [c for vendor, c in untouched.values() if vendor == name]
        if audit is not None:
            audit.emit("snapshot.taken", vendor=name, step="verify", outcome="success",
                       detail={"when": "after", "snapshot": inventory.snapshot})
            for c in vendor_checks:
                emit_check(audit, name, c)
        checks.extend(vendor_checks)
    return checks


def verify_recorded(run_id: str, cfg: ExitConfig, sessions: Sessions) -> list[Check]:
    """Verify a past run's removals and its confirmed manual items; add the re-reads to its log."""
    with reopen(run_id, cfg, sessions) as (run, plan, audit):
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
