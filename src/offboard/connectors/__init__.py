"""What a vendor connector provides, and how the core finds the installed ones.

A connector is a distribution that registers an object in the
``offboard.connectors`` entry-point group. The core never imports a connector
by name, so a new vendor needs no change here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib.metadata import entry_points
from typing import Any, Literal, Protocol, runtime_checkable

import httpx
from pydantic import SecretStr

from offboard.config import SectionSettings
from offboard.errors import BadInput
from offboard.plan import Action, Finding, Inventory, Skipped, Step, Target, VendorPlan
from offboard.wire.credentials import CredentialField
from offboard.wire.http import HttpRecord

GROUP = "offboard.connectors"
Outcome = Literal["success", "failure", "unknown"]


@dataclass(frozen=True)
class Artifact:
    """A file of retained evidence an action produced (an export, a downloaded report)."""

    name: str  # relative path under the vendor's evidence folder, e.g. "incident_reports.json"
    content: bytes
    # A draft a person sends (offboard never sends mail): the manual item whose confirmation
    # records that it was sent. Until then the operator is pointed at the file.
    draft_for: str | None = None
    # Every request whose reply went into this file (each page, each download), in order: the
    # audit line, the manifest and the report name exactly these (``VendorHttp.recording``).
    requests: tuple[HttpRecord, ...] = ()


@dataclass(frozen=True)
class ActionResult:
    outcome: Outcome
    detail: str
    http: HttpRecord | None = None
    already_absent: bool = False
    owner: str | None = None  # a re-read's answer: who the object belongs to, if it still exists
    artifacts: tuple[Artifact, ...] = ()
    # The vendor refused the API path itself (e.g. a write these credentials may not make):
    # nothing changed, and the action's ``manual`` instructions now apply instead.
    manual_fallback: bool = False


@dataclass(frozen=True)
class ExitContext:
    """What the core knows about the exit that a connector may need (e.g. to fill a
    vendor's notification template); never credentials."""

    customer: str
    end_of_service: date | None = None
    ticket: str = ""
    approved_by: str = ""


@dataclass(frozen=True)
class Check:
    """One verification re-read: what was asked of the vendor and what it said."""

    name: str
    passed: bool
    detail: str
    target: Target | None = None
    http: HttpRecord | None = None
    action_id: str | None = None  # the planned action this check proves, if one
    # (action id, why it fails otherwise): the check holds only where this run's own write of that
    # action was acknowledged by the vendor (a 2xx reply in the run's audit log), e.g. a 404 that
    # means "deleted" only after this exit's own deletion was accepted. Without a run, it fails.
    acknowledged_by: tuple[str, str] | None = None


def reread_check(action: Action, settled: ActionResult) -> Check:
    """An action's verification, from the re-read that settles it."""
    return Check(f"{action.summary}: {action.target.name}", settled.outcome == "success",
                 "404 Not Found" if settled.already_absent else settled.detail,
                 target=action.target, http=settled.http, action_id=action.id)


@dataclass(frozen=True)
class Watched:
    """One post-exit check of a finished exit (`offboard watch`): what was asked of the vendor and
    what came back. A quiet check has ``came_back`` False; a finding names the one thing that came
    back (an object listed again, a count above zero again, records arriving) and how to remove it."""

    check: str  # what was checked, e.g. "agents listed under organization 42"
    came_back: bool
    detail: str  # one line: what the vendor said
    # A finding's identity across runs, unique within its vendor (e.g. "agent:9001"): the ticket
    # hears of each finding once. Never a count or a time, which change between runs.
    key: str = ""
    target: Target | None = None
    remedy: str = ""  # the runbook step that removes it, as the runbook names it
    removed_by: tuple[str, ...] = ()  # the plan operations that remove it (`watch --plan-out`)
    available: bool = True  # False: the vendor cannot answer this check for the account (a feature off)
    http: HttpRecord | None = None


@dataclass(frozen=True)
class PlanParts:
    steps: tuple[Step, ...]
    skipped: tuple[Skipped, ...] = ()


Owners = Mapping[tuple[str, str], str]  # (type, id) -> owner, as a listing names it


class VendorSession(Protocol):
    """One vendor account, opened with credentials. Every method but ``plan`` does I/O.

    Optional: ``owners() -> Owners``, each listed object's owner exactly as ``discover()``'s
    inventory names it (``Inventory.owners``), read the same way but cheaper: the scope guard's
    listing re-taken under --trust-listing (``listed_owners``)."""

    def discover(self) -> Inventory: ...

    def preflight(self, inventory: Inventory) -> list[Finding]: ...

    def plan(self, inventory: Inventory) -> PlanParts:
        """Pure: the runbook's steps for what discovery found; no call is made."""
        ...

    def execute(self, action: Action) -> ActionResult: ...

    def reread(self, action: Action) -> ActionResult:
        """Settle an action whose outcome is unknown: 'success' if its effect is in place,
        'failure' if the object is untouched (then it is safe to execute)."""
        ...

    def owner_now(self, action: Action) -> ActionResult:
        """The scope guard's read, immediately before the action's write: one read of the action's
        object alone (never a listing), whose ``owner`` is what that object's own record names
        (``"unknown"`` when the record does not say, or says it in a shape the vendor does not
        document). Outcome 'failure': the object is there and the write is still to be made;
        'success' with ``already_absent``: the read shows it gone (nothing is sent); 'success'
        otherwise: its effect is already in place (nothing is sent). A connector that cannot read
        one object alone answers 'unknown', and nothing is sent."""
        ...

    def exit_identity(self) -> str:
        """What the vendor says this exit is, as one stable line (e.g. "<vendor> account 7001
        organization 42"): the machine-wide exit lock is keyed on it, so two configs that spell
        the API's address differently, or two users with their own folders, still exclude each
        other. Read from the vendor (at most a call or two), never from how the config is written."""
        ...

    def verify(self, vendor_plan: VendorPlan | None, inventory: Inventory) -> list[Check]: ...

    def check_manual(self, action: Action) -> Check | None:
        """Re-read what a manual item should have changed; None when the API cannot see it."""
        ...

    def watch(self, since: datetime) -> list[Watched]:
        """After the exit: re-read, at a few calls, whatever would show the service came back
        since ``since`` (objects listed again, counts above zero, data arriving). One entry per
        quiet check and per thing that came back. Read-only."""
        ...

    def documents(self, vendor_plan: VendorPlan, states: Mapping[str, str]) -> tuple[Artifact, ...]:
        """Pure: documents the vendor's process asks for now, filled from the plan and where each
        action stands (e.g. a notice that the exit is complete); written to the run folder's
        ``documents/<vendor>/``. One file per meaning: a notice already kept as evidence (sent
        before the exit) is not written again here."""
        ...

    def close(self) -> None: ...

    @property
    def calls_made(self) -> int:
        """Requests sent to the vendor so far (every attempt), for estimates."""
        ...


@dataclass(frozen=True)
class SandboxKit:
    """A connector's simulation of its vendor, for `offboard demo` and tests."""

    make_app: Callable[[float], Any]  # time scale -> ASGI app
    config_section: Callable[[str, float], dict[str, Any]]  # (base_url, time scale) -> [vendor]
    credentials: Mapping[str, str]  # sandbox-only credentials, never real ones
    # The demo stands in for the person at the portal: do a manual item in the sandbox.
    portal: Callable[[str, Action], bool] | None = None  # (base_url, action) -> done?
    # A batch rehearsal: an app serving ``customers`` customers of one account (time scale, count),
    # and the [vendor] section of customer ``index`` (0: the one `config_section` names).
    make_app_for: Callable[[float, int], Any] | None = None
    customer_section: Callable[[str, float, int], dict[str, Any]] | None = None


def listed_owners(session: VendorSession) -> Owners:
    """The vendor's listing now, as owners: the session's ``owners()`` where it has one, else its
    discovery's."""
    # Looked up on the class: a method the session's type defines, never an instance's __getattr__.
    owners: Callable[[VendorSession], Owners] | None = getattr(type(session), "owners", None)
    return owners(session) if callable(owners) else session.discover().owners


@runtime_checkable
class Connector(Protocol):
    name: str
    display_name: str
    settings_model: type[SectionSettings]
    credential_fields: tuple[CredentialField, ...]

    def open(self, settings: SectionSettings, credentials: Mapping[str, SecretStr], *,
             transport: httpx.BaseTransport | None = None, context: ExitContext | None = None) -> VendorSession: ...

    def sandbox(self) -> SandboxKit | None: ...


def installed() -> dict[str, Connector]:
    found: dict[str, Connector] = {}
    for ep in entry_points(group=GROUP):
        obj = ep.load()
        if not isinstance(obj, Connector):
            raise BadInput(f"entry point {ep.name!r} in {GROUP} is not an offboard connector")
        found[obj.name] = obj
    return found


def get(name: str, available: Mapping[str, Connector] | None = None) -> Connector:
    available = installed() if available is None else available
    try:
        return available[name]
    except KeyError:
        known = ", ".join(sorted(available)) or "none"
        raise BadInput(f"unknown vendor {name!r}; installed connectors: {known}") from None
