"""`--json`: the one document `plan`, `apply`, `status`, `verify` and `confirm` print for a script
(an RMM, a PSA automation) instead of tables.

Each document names its schema, ``"schema": "offboard.<command>.v1"``, a JSON Schema file in the
repository's ``schemas/`` folder. Within a version fields are only added (and the schema file with
them); a change that would break a reader makes a new version. Nothing else reaches stdout: human
lines go to stderr. When a command fails before it has a result, the document is ``offboard.error.v1``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from offboard import engine
from offboard.connectors import Check
from offboard.plan import Action, Finding, Plan
from offboard.proof.audit import VerifyResult
from offboard.wire.redact import REDACTOR

VERSION = 1

requested = False  # set by a command given --json: its errors are documents too


def start() -> None:
    global requested
    requested = True


def reset() -> None:
    global requested
    requested = False


def emit(kind: str, exit_code: int, body: dict[str, Any]) -> None:
    """Write the document, with every secret this process knows scrubbed from it, as the one thing on stdout."""
    doc = {"schema": f"offboard.{kind}.v{VERSION}", "exit_code": int(exit_code), **body}
    sys.stdout.write(json.dumps(REDACTOR.value(doc), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def error(exit_code: int, line: str) -> None:
    emit("error", exit_code, {"error": REDACTOR.text(line.removeprefix("error: "))})


def _action(a: Action) -> dict[str, Any]:
    return a.model_dump(mode="json")


def _finding(f: Finding) -> dict[str, Any]:
    return f.model_dump(mode="json")


def _check(c: Check) -> dict[str, Any]:
    return {"name": c.name, "passed": c.passed, "detail": c.detail, "action_id": c.action_id,
            "target": c.target.model_dump(mode="json") if c.target is not None else None,
            "http": c.http.as_dict() if c.http is not None else None}


def _checks(checks: Sequence[Check]) -> dict[str, Any]:
    return {"stopped": all(c.passed for c in checks),
            "passed": sum(1 for c in checks if c.passed), "failed": sum(1 for c in checks if not c.passed),
            "checks": [_check(c) for c in checks]}


def plan(the_plan: Plan, exit_code: int, *, saved_to: Path | None, signature: Path | None,
         warnings: list[str], ticket_visibility: str | None = None) -> None:
    removals = [a for a in the_plan.api_actions() if a.destructive]
    reads = len(the_plan.api_actions()) - len(removals)
    emit("plan", exit_code, {
        "changes": bool(removals),
        "counts": {"removals": len(removals), "evidence_exports": reads,
                   "manual": len(the_plan.actions()) - len(the_plan.api_actions()),
                   "blocking_findings": len(the_plan.gates())},
        "saved_to": str(saved_to) if saved_to is not None else None,
        "signature": str(signature) if signature is not None else None,
        "ticket_visibility": ticket_visibility,
        "warnings": warnings,
        # Exactly what `plan -o` writes: `jq .plan` gives a plan file `apply` reads.
        "plan": the_plan.sealed().model_dump(mode="json"),
    })


def apply(result: engine.RunResult, chain: VerifyResult, *, plan_signature: str | None,
          warnings: list[str]) -> None:
    run = result.run
    emit("apply", result.exit_code, {
        "run_id": run.run_id,
        "message": REDACTOR.text(result.message),
        "counts": dict(result.counts),
        "blocking": [_finding(f) for f in result.blocking],
        "verification": _checks(result.checks) if result.checks else None,
        "pending": [_action(a) for a in result.pending],
        "audit": {"path": str(run.audit_path), "events": chain.lines, "chain_intact": chain.ok,
                  "last_hash": chain.last_hash},
        "report": {"markdown": str(run.report_path), "html": str(run.report_path.with_suffix(".html"))},
        "documents": [str(p) for p in result.documents],
        "plan_signature": plan_signature,
        "warnings": warnings,
    })


def verify(checks: Sequence[Check], run_id: str | None, exit_code: int) -> None:
    emit("verify", exit_code, {"run_id": run_id, **_checks(checks)})


def status(run_id: str, rows: Sequence[engine.StatusRow], exit_code: int) -> None:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    emit("status", exit_code, {
        "run_id": run_id,
        "counts": counts,
        "items": [{"id": r.action.id, "vendor": r.action.vendor, "step": r.step, "kind": r.action.kind,
                   "operation": r.action.operation, "target": r.action.target.model_dump(mode="json"),
                   "state": r.state, "detail": r.detail} for r in rows],
    })


def confirm(result: engine.ConfirmResult, by: str, exit_code: int) -> None:
    run_id = result.run.run_id
    emit("confirm", exit_code, {
        "run_id": run_id,
        "item": result.action.id,
        "by": by,
        "accepted": result.accepted,
        "check": _check(result.check) if result.check is not None else None,
        "remaining": [_action(a) for a in result.remaining],
        "to_resume": len(result.to_resume),
        "resume_command": f"offboard apply --resume {run_id}" if result.to_resume else None,
        "documents": [str(p) for p in result.documents],
    })
