"""What the engine and its caller exchange: the operator's decisions, the progress and guide
hooks the CLI draws, and a run's result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from offboard.connectors import Check
from offboard.errors import ExitCode
from offboard.plan import Action, Finding
from offboard.rundir import RunDir
from offboard.wire.http import HttpRecord


class Progress(Protocol):
    """How the engine reports long work; the CLI draws it, tests may ignore it."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self, action: Action, event: str) -> None: ...

    def finish(self) -> None: ...

    def phase(self, text: str) -> None: ...


class NoProgress:
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
class RunResult:
    run: RunDir
    exit_code: ExitCode
    counts: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    blocking: list[Finding] = field(default_factory=list)
    pending: list[Action] = field(default_factory=list)
    message: str = ""
    documents: list[Path] = field(default_factory=list)  # the vendors' documents written (e.g. email drafts)
    ticket: list[str] = field(default_factory=list)  # what was posted to the exit's PSA ticket, or not


def http_of(record: HttpRecord | None) -> dict[str, Any] | None:
    return record.as_dict() if record else None
