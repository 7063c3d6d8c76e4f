"""Where an action stands, read from the audit log: the one vocabulary every reader uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from offboard.plan import Action

# The lifecycle events that say where an action stands; the last one wins.
LIFECYCLE = ("action.started", "action.unknown", "action.succeeded", "action.failed", "action.skipped",
             "action.blocked", "manual.pending", "manual.confirmed", "manual.rejected")
TERMINAL = ("action.succeeded", "action.skipped", "manual.confirmed")
UNSETTLED = ("action.started", "action.unknown")  # a write may have landed: re-read first
VERIFY = ("verify.passed", "verify.failed")
AWAITING_PERSON = ("manual.pending", "manual.rejected")


def open_for_person(action: Action, state: str | None) -> bool:
    """A manual item not yet confirmed, or an API action the vendor refused that fell back to
    its manual instructions and is not yet confirmed."""
    if action.kind == "manual":
        return state != "manual.confirmed"
    return state in AWAITING_PERSON


@dataclass
class Folded:
    last: dict[str, dict[str, Any]] = field(default_factory=dict)  # action id -> last lifecycle record
    proof: dict[str, dict[str, Any]] = field(default_factory=dict)  # action id -> last verification record


def fold(records: list[dict[str, Any]]) -> Folded:
    out = Folded()
    for r in records:
        aid = r.get("action_id")
        if not aid:
            continue
        if r.get("event") in LIFECYCLE:
            out.last[aid] = r
        elif r.get("event") in VERIFY:
            out.proof[aid] = r
    return out


def fold_actions(records: list[dict[str, Any]]) -> dict[str, str]:
    """Each action's last lifecycle event."""
    return {aid: r["event"] for aid, r in fold(records).last.items()}
