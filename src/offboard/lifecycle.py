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


# The events that open, pause and end a run (not an action).
RUN_EVENTS = ("run.started", "run.resumed", "run.finished", "run.interrupted", "run.closed")
_NOT_ENDED = {"run.started": "it started and never finished", "run.resumed": "it was resumed and never finished",
              "run.interrupted": "it was interrupted"}
_FINISHED = {1: "something failed or was held back", 3: "manual items were still pending",
             4: "a preflight gate stopped it"}


@dataclass(frozen=True)
class RunEnd:
    """Where a run's record stands: ended (closed, or finished with nothing failed and nothing
    left for a person), or not yet; a log cut back to an earlier point reads as "not yet"."""

    ended: bool
    line: int  # the line of the run's last run event (0: there is none)
    event: str
    why: str

    def describe(self) -> str:
        if not self.line:
            return "no run event at all"
        return f"line {self.line}, `{self.event}`: {self.why}"


def run_end(records: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> RunEnd:
    """The run's last run event decides; what follows it (later re-reads) does not."""
    for n in range(len(records), 0, -1):
        record = records[n - 1]
        event = record.get("event")
        if event not in RUN_EVENTS:
            continue
        if event == "run.closed":
            return RunEnd(True, n, event, "every action done and every manual item confirmed")
        if event != "run.finished":
            return RunEnd(False, n, str(event), _NOT_ENDED[str(event)])
        detail = record.get("detail")
        code = detail.get("exit_code") if isinstance(detail, dict) else None
        if type(code) is int and code == 0:
            return RunEnd(True, n, event, "it finished with nothing failed and nothing left for a person")
        why = _FINISHED.get(code, "") if isinstance(code, int) else ""
        return RunEnd(False, n, event, why or "it stopped before the end")
    return RunEnd(False, 0, "", "no run event at all")
