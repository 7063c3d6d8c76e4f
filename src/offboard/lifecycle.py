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


# -- where a run stands as a whole: the one count every command prints ----------------------------

# Each action of a run stands in exactly one of these, read from the whole audit log (not from what
# one command's pass did), so apply, resume, confirm, status and the report say the same numbers.
STANDINGS = ("removed", "already_absent", "exported", "drafted", "noted", "confirmed", "for_person", "waiting",
             "not_started", "failed", "unknown", "blocked", "skipped", "interrupted")
DONE_STANDINGS = ("removed", "already_absent", "exported", "drafted", "noted", "confirmed", "skipped")

TICKET_OPERATIONS = "ticket."  # what offboard posts to the exit's PSA ticket (its scope note)
DOCUMENT_TARGET = "document"  # a read whose target is a document drafts it for a person to send (an email)
# What each kind of read is called wherever it is counted: the plan's summary and the run's.
READ_WORDS = {"exported": "evidence export(s)", "drafted": "document(s) drafted for a person to send",
              "noted": "ticket note(s)"}


def counted_as(action: Action) -> str:
    """What an action counts as once done: the one rule behind every count offboard prints, before the
    run (plan's summary) and after it (apply's, confirm's, status's, the report's), so they agree: "removed",
    "confirmed" (a person's item), and of the reads: "noted" (the exit's PSA ticket told), "drafted" (a
    document for a person to send, no evidence) or "exported" (evidence)."""
    if action.kind == "manual":
        return "confirmed"
    if action.destructive:
        return "removed"
    if action.operation.startswith(TICKET_OPERATIONS):
        return "noted"
    return "drafted" if action.target.type == DOCUMENT_TARGET else "exported"


def planned_reads(actions: list[Action]) -> str:
    """The plan's reads in the words the run's tally uses for them (``READ_WORDS``), each kind it has; evidence
    exports always."""
    kinds = [counted_as(a) for a in actions]
    return ", ".join(f"{kinds.count(k)} {words}" for k, words in READ_WORDS.items() if k == "exported" or k in kinds)
PROBLEM_STANDINGS = ("failed", "unknown", "blocked", "interrupted")
_BY_EVENT = {"action.failed": "failed", "action.skipped": "skipped", "action.blocked": "blocked",
             "action.unknown": "unknown", "action.started": "interrupted", "manual.pending": "for_person",
             "manual.rejected": "for_person", "manual.confirmed": "confirmed"}


def standing(action: Action, rec: dict[str, Any] | None, gate_open: bool) -> str:
    """Where one action stands. ``gate_open``: its vendor's gate item (e.g. "notify the vendor
    first") waits for a person, so nothing of that vendor but its reads runs until it is confirmed."""
    if rec is None:
        return "waiting" if gate_open and (action.kind == "manual" or action.destructive) else "not_started"
    event = rec["event"]
    if event == "action.succeeded":
        detail = rec.get("detail")
        if not action.destructive:  # a read: what the plan counted it as (a document drafted is no evidence)
            return counted_as(action)
        return "already_absent" if isinstance(detail, dict) and detail.get("already_absent") else "removed"
    return _BY_EVENT.get(event, "not_started")


@dataclass(frozen=True)
class Tally:
    """Every action's standing, and the gate items the waiting ones wait for."""

    of: dict[str, str]  # action id -> standing
    waiting_on: tuple[str, ...]  # gate items not yet confirmed (their vendors' changes wait for them)
    removals: tuple[str, ...] = ()  # the planned removals by API, done or not

    def __getitem__(self, name: str) -> int:
        return sum(1 for s in self.of.values() if s == name)

    def ids(self, *names: str) -> list[str]:
        return [aid for aid, s in self.of.items() if s in names]

    @property
    def complete(self) -> bool:
        """Every action done (removed, exported, confirmed, or left alone by the scope guard)."""
        return all(s in DONE_STANDINGS for s in self.of.values())

    def counts(self) -> dict[str, int]:
        """The run's counts under the names `apply --json` has always used (see schemas/apply.v1.json)."""
        return {"succeeded": self["removed"] + self["already_absent"], "already_absent": self["already_absent"],
                "failed": self["failed"], "skipped": self["skipped"], "unknown": self["unknown"] + self["interrupted"],
                "blocked": self["blocked"], "held": self["waiting"], "exported": self["exported"],
                "drafted": self["drafted"], "noted": self["noted"],
                "confirmed": self["confirmed"], "manual": self["for_person"], "not_started": self["not_started"]}

    def removals_not_done(self) -> str:
        """The planned removals not (yet) done, by why ("1 held until a person confirms <vendor>.notify.sent"):
        said beside the removed count wherever it is smaller than the plan's, so the two never disagree
        unexplained. Empty when every planned removal is done."""
        words = {"waiting": f"held until a person confirms {', '.join(self.waiting_on)}", "not_started": "not run yet",
                 "skipped": "left alone by the scope guard", "failed": "failed", "unknown": "unknown",
                 "interrupted": "unknown", "blocked": "held back (evidence export failed)"}
        left: dict[str, int] = {}
        for aid in self.removals:
            why = words.get(self.of.get(aid, ""))
            if why is not None:
                left[why] = left.get(why, 0) + 1
        return ", ".join(f"{n} {why}" for why, n in left.items())

    def removed_words(self) -> str:
        """"42 removed by API of 43 planned (0 already gone; 1 held until a person confirms …)"; the plan's
        count is said only while some removal is not done."""
        done, rest = self["removed"] + self["already_absent"], self.removals_not_done()
        planned = f" of {len(self.removals)} planned" if rest else ""
        return (f"{done} removed by API{planned} ({self['already_absent']} already gone"
                + (f"; {rest})" if rest else ")"))

    def sentence(self) -> str:
        """One line for the screen: the same words and numbers after every command."""
        parts = [self.removed_words()]
        parts += [f"{self[k]} {words}" for k, words in READ_WORDS.items() if k == "exported" or self[k]]
        parts += [f"{self['confirmed']} manual item(s) confirmed",
                  f"{self['for_person']} manual item(s) waiting for a person"]
        if self["waiting"]:
            parts.append(f"{self['waiting']} action(s) wait for {', '.join(self.waiting_on)}")
        if self["not_started"]:
            parts.append(f"{self['not_started']} action(s) not run yet")
        parts += [f"{self['failed']} failed", f"{self['unknown'] + self['interrupted']} unknown",
                  f"{self['blocked']} held back (evidence export failed)",
                  f"{self['skipped']} left alone by the scope guard"]
        return ", ".join(parts) + "."


def tally(actions: list[Action], records: list[dict[str, Any]]) -> Tally:
    last = fold(records).last
    open_gates = {a.vendor: a.id for a in actions if a.gate and last.get(a.id, {}).get("event") in AWAITING_PERSON}
    return Tally({a.id: standing(a, last.get(a.id), a.vendor in open_gates) for a in actions},
                 tuple(open_gates.values()), tuple(a.id for a in actions if a.kind == "api" and a.destructive))
