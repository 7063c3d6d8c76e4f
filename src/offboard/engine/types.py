"""What the engine and its caller exchange: the operator's decisions, the progress and guide
hooks the CLI draws, and a run's result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from offboard.connectors import Check
from offboard.errors import ExitCode
from offboard.lifecycle import Tally
from offboard.plan import Action, Finding, Step
from offboard.rundir import RunDir
from offboard.wire.http import HttpRecord
from offboard.wire.waits import Sent, Wait


@dataclass(frozen=True)
class Limit:
    """A vendor lane's rate limit, as its ETA's floor (engine/pace.py): the limit's window, and each
    action the pass runs (by id) with the seconds its calls take at the limit (calls x window / limit)."""

    window: float
    seconds: Mapping[str, float]


class Progress(Protocol):
    """How the engine reports long work; the CLI draws it, tests may ignore it. Vendors run in
    lanes of their own, so every method but ``start`` and ``finish`` may be called from several
    threads at once. (A new progress can subclass ``NoProgress`` and draw only what it needs.)"""

    def start(self, total: int, done: int) -> None:
        """The run's actions begin: ``total`` in the plan, ``done`` of them finished before (resume)."""
        ...

    def lanes(self, counts: Mapping[str, tuple[int, int]]) -> None:
        """Right after ``start``: each vendor lane (its display name) and its (total, done before)."""
        ...

    def ceilings(self, limits: Mapping[str, Limit]) -> None:
        """Before the actions: each vendor lane's (its display name) rate limit, where its connector
        knows it: the floor of its ETA (a first window's burst makes the pace look fast, and the ETA
        then jumped up once the window held the calls back)."""
        ...

    def advance(self, action: Action, event: str) -> None:
        """An action settled; ``event`` is its audit event (a name for code, never for the screen)."""
        ...

    def held(self, vendor: str, action_ids: Sequence[str]) -> None:
        """``vendor``'s (its display name) gate was handed to a person: these of its actions, not
        settled yet, will be held until it is confirmed (its lane has no ETA to give for them)."""
        ...

    def finish(self) -> None:
        """The run's actions ended (its verification may follow)."""
        ...

    def end(self) -> None:
        """The run's last re-reads (its verification) ended: nothing more is shown."""
        ...

    def phase(self, text: str) -> None:
        """What the run does now, in a person's words (e.g. re-reading the vendors before it starts)."""
        ...

    def warning(self, text: str) -> None:
        """Something the operator should know before the run goes on (e.g. it will be unsigned)."""
        ...

    def step(self, vendor: str, step: Step, todo: int) -> None:
        """A runbook step of ``vendor`` (its display name) begins; ``todo``: its actions not done yet."""
        ...

    def waiting(self, wait: Wait) -> None:
        """The wire waits before a call (the rate limit, a vendor's Retry-After, a backoff)."""
        ...

    def sent(self, call: Sent) -> None:
        """The wire sent a call (its account's window in ``call.outlook``: a screen's ETA may read it)."""
        ...


class NoProgress:
    def start(self, total: int, done: int) -> None:
        pass

    def lanes(self, counts: Mapping[str, tuple[int, int]]) -> None:
        pass

    def ceilings(self, limits: Mapping[str, Limit]) -> None:
        pass

    def advance(self, action: Action, event: str) -> None:
        pass

    def held(self, vendor: str, action_ids: Sequence[str]) -> None:
        pass

    def finish(self) -> None:
        pass

    def end(self) -> None:
        pass

    def phase(self, text: str) -> None:
        pass

    def warning(self, text: str) -> None:
        pass

    def step(self, vendor: str, step: Step, todo: int) -> None:
        pass

    def waiting(self, wait: Wait) -> None:
        pass

    def sent(self, call: Sent) -> None:
        pass


@dataclass(frozen=True)
class Overrides:
    """What the operator decided at apply time; every one is audited."""

    preflight: str | None = None  # reason to proceed despite preflight gates
    evidence: str | None = None  # reason to remove even though the evidence export failed
    confirm_name: str | None = None  # the name typed to allow a guarded action
    yes_guarded: bool = False  # unattended: allow guarded actions without typing the name
    # --trust-listing: each write's owner from the vendor's listing (at most listings.MAX_AGE_S old)
    # instead of a read of the object alone just before it (engine/scope_guard.py)
    trust_listing: bool = False
    # The exit's claim in its PSA ticket (engine/claim.py): take over a live claim whose machine has
    # stopped (the reason, audited and noted in the ticket); refuse a run the ticket cannot claim.
    take_over_claim: str | None = None
    require_claim: bool = False


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
class RunResult:
    run: RunDir
    exit_code: ExitCode
    counts: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    blocking: list[Finding] = field(default_factory=list)
    pending: list[Action] = field(default_factory=list)
    message: str = ""
    documents: list[Path] = field(default_factory=list)  # drafts a person still has to send (e.g. an email)
    ticket: list[str] = field(default_factory=list)  # what was posted to the exit's PSA ticket, or not
    tally: Tally | None = None  # where every action of the run stands (None: stopped before it ran)

    def summary(self) -> str:
        """The run's one line of counts, the same words `confirm` and `status` print."""
        return f"Run {self.run.run_id}: {self.tally.sentence()}" if self.tally is not None else ""


def http_of(record: HttpRecord | None) -> dict[str, Any] | None:
    return record.as_dict() if record else None
