"""Guided mode: a person does each manual item while the run waits; the vendor re-reads it.
"""

from __future__ import annotations

from offboard.connectors import Check, VendorSession
from offboard.engine.types import Guide
from offboard.engine.verify import emit_check
from offboard.plan import Action
from offboard.proof.audit import AuditLog


def ask_until_settled(action: Action, session: VendorSession, audit: AuditLog, guide: Guide) -> str:
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
